"""``python -m looop.cli ARGS``: the command line through click alone.

The same handler as ``looop`` (``looop.__main__.run``) with its click-free
fast path off, so ``status``, ``_ state``, ``reap`` and ``_ worker start`` go through
their click commands: what tests/test_fast_path.py compares the fast answers
with. Rejected: an environment switch read by the fast path, which every
``looop status`` would pay for and a user could leave set.
"""

from __future__ import annotations

import sys

from looop.__main__ import run

if __name__ == "__main__":
    sys.exit(run(sys.argv[1:], fast=False))
