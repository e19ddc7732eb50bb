"""What a terminal gets that a pipe does not: colour, and a progress line on a long wait.

A person reading ``status``, ``workers``, ``doctor`` or ``sense -v`` finds
the one red word faster than the one word that differs; a script or an agent
reading the same output through a pipe wants no escape codes at all. This
module is the one place that decides, and the one place that writes an
escape sequence: the printers ask ``paint(text, role)`` with a role (``good``,
``bad``, ``warn``, ``dim``, ``head``), never a colour code of their own.

The decision, once per stream and per run: ``--color always`` paints,
``--color never`` does not, and ``auto`` (the default) paints only a stream
that is a terminal, when ``NO_COLOR`` is unset or empty (no-color.org: any
non-empty value) and ``TERM`` is not ``dumb``. The root group's ``--color``
and ``looop.__main__``'s click-free answers (``looop --color never status``)
both call ``choose``. Machine output (``--json``) is never painted.
Paint after escaping (``say.escaped``): an escape written by this module
must reach the terminal, and one in text looop did not write must not.

``waiting`` is the other thing only a terminal gets: a wait that lasts over
a second (``up`` waiting for the first beat, ``down`` for the lock, ``sense``
for its sensors) says what it waits for and for how long, on one line of
stderr rewritten in place each second and erased when the wait ends; on a
pipe, stderr stays silent, so a script's log holds only what happened.
Rejected: a progress callback threaded through every waiting loop (the
service module's loops stay as they are; a timer thread watches them from
outside) and a progress library (a dependency for one line of text).

Imports nothing at import time: ``looop status`` paints on its fast path.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not typing's: ``status`` loads this on its fast path
if TYPE_CHECKING:
    from collections.abc import Iterator
    from contextlib import AbstractContextManager
    from typing import TextIO

CHOICES = ("auto", "always", "never")
# Select Graphic Rendition parameters, by what the text means.
ROLES = {"good": "32", "bad": "1;31", "warn": "33", "dim": "2", "head": "1"}
DELAY = 1.0  # a wait shorter than this says nothing

_choice = "auto"
_decided: dict[int, bool] = {}  # by file descriptor


def choose(choice: str) -> None:
    """Set ``--color``'s answer (``auto``, ``always`` or ``never``) for this run."""
    global _choice
    if choice not in CHOICES:
        raise ValueError(f"--color takes {', '.join(CHOICES)}, not {choice!r}")
    _choice = choice
    _decided.clear()


def enabled(stream: TextIO | None = None) -> bool:
    """Does ``stream`` (stdout by default) get colour?"""
    stream = sys.stdout if stream is None else stream
    if _choice != "auto":
        return _choice == "always"
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (a test's buffer): no terminal
        return False
    if fd not in _decided:
        _decided[fd] = (
            not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb" and os.isatty(fd)
        )
    return _decided[fd]


def paint(text: str, role: str, stream: TextIO | None = None) -> str:
    """``text`` in ``role``'s colour where ``stream`` (stdout) gets colour; else as it is."""
    if not text or not enabled(stream):
        return text
    return f"\x1b[{ROLES[role]}m{text}\x1b[0m"


def waiting(what: str) -> AbstractContextManager[None]:
    """A context that says ``looop: waiting for WHAT (Ns)…`` on a terminal's stderr after a second.

    Nothing at all when stderr is not a terminal, or the wait ends sooner.
    """
    from contextlib import contextmanager, nullcontext

    if not _stderr_is_terminal():
        return nullcontext()

    @contextmanager
    def shown() -> Iterator[None]:
        import threading
        import time

        done = threading.Event()
        start = time.monotonic()

        def tick() -> None:
            while not done.wait(DELAY):
                elapsed = int(time.monotonic() - start)
                line = paint(f"looop: waiting for {what} ({elapsed}s)…", "dim", sys.stderr)
                sys.stderr.write(f"\r\x1b[K{line}")
                sys.stderr.flush()

        thread = threading.Thread(target=tick, name="looop-waiting", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()
            if time.monotonic() - start >= DELAY:
                sys.stderr.write("\r\x1b[K")  # the line goes: what happened is said next
                sys.stderr.flush()

    return shown()


def _stderr_is_terminal() -> bool:
    try:
        return os.isatty(sys.stderr.fileno())
    except (AttributeError, OSError, ValueError):
        return False
