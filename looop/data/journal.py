"""``journal.md``: one line per move, the one writer and the one reader.

The line format is SPEC §1's (the reference's): ``- YYYY-MM-DD HH:MM <text>``
in local time. ``append`` writes one such line; ``tail`` reads the last lines
(``_ state``'s ``journal_tail``, ``sys-goals``); ``parse`` turns a line into
its time and text, and also accepts a full ISO-8601 stamp (``- 2026-12-02T
10:30:00+01:00 <text>``) that a person may have written by hand. A date
without a time is not a stamp: reading ``- 2026-12-02 10:30 x`` as midnight
with the text ``10:30 x`` was a bug.

Why it is shaped so:

* **Appends are lines, whole.** ``looop.lines.append`` (as ``events.jsonl``
  and ``cost.jsonl``): whole or not at all, never interleaved, never glued
  onto a line torn by a crash; newlines in the text are folded to spaces, so
  a line is one move, and any other control character is escaped
  (``say.escaped``), so no text can forge a line a reader of the tail sees.
  The journal is the user's file to keep in git, so it is never rotated or
  rewritten; unlike an event, a journal line that cannot be written raises
  (OSError naming the journal). A verb opens it before its move
  (``opened``) and writes the line after, so a journal that cannot be opened
  (a directory, a FIFO, no permission) fails the move before it is made,
  not after: all of a verb's work or none of it.
* **Reads are tails, bounded.** The journal only grows; a reader wants its
  end. ``tail`` is ``lines.tail``: backwards from the end in blocks until it
  has the lines asked for or ``max_bytes``, so a 100 MB journal costs one
  block, not 100 MB, and a FIFO named ``journal.md`` cannot hang a reader.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from looop import lines, lockfile
from looop.paths import Paths
from looop.say import escaped

TAIL_LINES = 20
TAIL_BYTES = lines.TAIL_BYTES  # the most any tail reads: far more than 20 lines
_DATE = re.compile(r"\d{4}-\d\d-\d\d")
_MINUTE = re.compile(r"\d\d:\d\d")


def line(text: str, when: float | None = None) -> str:
    """The journal line for ``text`` at ``when`` (now), local time, newline-terminated."""
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(when))
    flat = escaped(" ".join(text.splitlines()).strip())
    return f"- {stamp} {flat}\n"


def append(
    paths: Paths, text: str, when: float | None = None, *, reason: str | None = None
) -> None:
    """Append one line for ``text`` (``text: reason`` when the caller gives ``--journal``).

    Raises OSError naming the journal when it cannot.
    """
    lines.append(paths.journal, line(_said(text, reason), when).encode())


def _said(text: str, reason: str | None) -> str:
    return f"{text}: {reason}" if reason else text


@contextmanager
def opened(paths: Paths) -> Iterator[Callable[..., None]]:
    """The journal open for one line, before the move it records: ``note(text, reason=None)``.

    Raises OSError naming the journal when it cannot be opened, before the
    caller has done anything; ``note`` appends as ``append`` does.
    """
    fd = lines.open_append(paths.journal)
    try:

        def note(text: str, reason: str | None = None) -> None:
            lockfile.lock(fd, block=True, path=paths.journal)
            lines.write_locked(fd, line(_said(text, reason)).encode(), path=paths.journal)

        yield note
    finally:
        os.close(fd)


def tail(paths: Paths, count: int | None = TAIL_LINES, max_bytes: int = TAIL_BYTES) -> list[str]:
    """The journal's last ``count`` lines (None: every whole line in its last ``max_bytes``).

    Raises OSError (``fs.BadFile`` for a FIFO, a directory...); a missing
    journal is FileNotFoundError, which a caller treats as empty.
    """
    return lines.tail(paths.journal, count, max_bytes=max_bytes)


def parse(text: str) -> tuple[float, str] | None:
    """(epoch seconds, text) of a journal line, or None when it carries no stamp.

    ``- YYYY-MM-DD HH:MM <text>`` is local time at that minute; a full
    ISO-8601 stamp (date and time, ``Z`` or an offset allowed) is taken as
    written. The list marker (``-`` or ``*``) is optional.
    """
    from datetime import datetime  # the pulse's probe parses; ``_ state`` only tails

    words = text.split(None, 1)
    if words and words[0] in ("-", "*"):
        text = words[1] if len(words) > 1 else ""
    parts = text.split(None, 2)
    if len(parts) >= 2 and _DATE.fullmatch(parts[0]) and _MINUTE.fullmatch(parts[1]):
        day, hm = parts[0], parts[1]
        try:  # a naive datetime is local time: what the writer wrote
            minute = datetime(int(day[:4]), int(day[5:7]), int(day[8:]), int(hm[:2]), int(hm[3:]))
        except ValueError:
            return None
        return minute.timestamp(), parts[2] if len(parts) > 2 else ""
    if parts and "T" in parts[0]:
        try:
            full = datetime.fromisoformat(parts[0].replace("Z", "+00:00"))
        except ValueError:
            return None
        return full.timestamp(), text.split(None, 1)[1] if len(parts) > 1 else ""
    return None
