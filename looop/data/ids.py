"""The one check of an id a verb takes (SPEC §9): goal, sensor, worker, ask, claim.

An id is a file name looop makes from the user's word (``goals/<id>.md``,
``asks/<worker>-<n>.json``), so it must name a file inside its directory
and nothing else: ``[A-Za-z0-9][A-Za-z0-9._-]{0,63}``. The leading letter or
digit rules out ``.``, ``..``, a dot-file (a writer's temp file) and a
flag-shaped word; the alphabet rules out ``/``, NUL and newlines. Every verb
calls ``check`` before it touches a file. Rejected: a check per verb (the
reference's ``_ worker start ../goals/x`` wrote outside its directory because
one verb forgot).
"""

from __future__ import annotations

import re

from looop.errors import UsageError

PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check(kind: str, value: str) -> str:
    """``value`` if it is a valid ``kind`` id; else UsageError (exit 2) saying why."""
    if PATTERN.fullmatch(value) is None:
        raise UsageError(
            f"invalid {kind} id {value!r}: use 1 to 64 of A-Z a-z 0-9 . _ -, "
            "starting with a letter or digit"
        )
    return value
