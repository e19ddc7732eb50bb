"""``journal.md``: one line per move, the one writer and the one reader.

The line format is SPEC §1's (the reference's): ``- YYYY-MM-DD HH:MM <text>``
in local time. ``append`` writes one such line; ``tail`` reads the last lines
(``_ state``'s ``journal_tail``, ``sys-goals``); ``parse`` turns a line into
its time and text, and also accepts a full ISO-8601 stamp (``- 2026-12-02T
10:30:00+01:00 <text>``) that a person may have written by hand. A date
without a time is not a stamp: reading ``- 2026-12-02 10:30 x`` as midnight
with the text ``10:30 x`` was a bug.

Why it is shaped so:

* **Appends are lines, whole.** ``O_APPEND`` under an exclusive ``flock``
  (as ``events.jsonl``), one ``write`` per line, and newlines in the text
  folded to spaces, so two writers never interleave and a line is one move.
  The journal is the user's file to keep in git, so it is never rotated or
  rewritten; unlike an event, a journal line that cannot be written raises.
* **Reads are tails, bounded.** The journal only grows; a reader wants its
  end. ``tail`` reads backwards from the end in blocks until it has the lines
  asked for or ``max_bytes``, so a 100 MB journal costs one block, not 100 MB.
  It opens the file by ``looop.fs``'s rules (no link followed, never blocking,
  regular files only), so a FIFO named ``journal.md`` cannot hang a reader.
"""

from __future__ import annotations

import fcntl
import os
import re
import stat
import time

from looop import fs
from looop.paths import Paths

TAIL_LINES = 20
TAIL_BYTES = 256 * 1024  # the most any tail reads: far more than 20 lines, far less than a journal
BLOCK = 8192
_DATE = re.compile(r"\d{4}-\d\d-\d\d")
_MINUTE = re.compile(r"\d\d:\d\d")


def line(text: str, when: float | None = None) -> str:
    """The journal line for ``text`` at ``when`` (now), local time, newline-terminated."""
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(when))
    flat = " ".join(text.splitlines()).strip()
    return f"- {stamp} {flat}\n"


def append(paths: Paths, text: str, when: float | None = None) -> None:
    """Append one line for ``text``; raises OSError when it cannot be written."""
    data = line(text, when).encode()
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    fd = os.open(paths.journal, flags, 0o644)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise fs.BadFile(paths.journal, f"is {fs.kind(st.st_mode)}, not a regular file")
        fcntl.flock(fd, fcntl.LOCK_EX)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)


def tail(paths: Paths, lines: int | None = TAIL_LINES, max_bytes: int = TAIL_BYTES) -> list[str]:
    """The journal's last ``lines`` lines (None: every whole line in its last ``max_bytes``).

    Raises OSError (``fs.BadFile`` for a FIFO, a directory...); a missing
    journal is FileNotFoundError, which a caller treats as empty.
    """
    fd, st = fs.open_regular(paths.journal)
    try:
        end = st.st_size
        pos = end
        blocks: list[bytes] = []  # newest first; joined once (prepending is quadratic)
        newlines = 0
        while pos > 0 and end - pos < max_bytes:
            if lines is not None and newlines > lines:
                break
            # Every line wanted: the whole bounded tail in one read.
            step = min(BLOCK if lines is not None else max_bytes, pos, max_bytes - (end - pos))
            pos -= step
            block = os.pread(fd, step, pos)
            blocks.append(block)
            newlines += block.count(b"\n")
    finally:
        os.close(fd)
    data = b"".join(reversed(blocks))
    if pos > 0:
        data = data.partition(b"\n")[2]  # the first line is cut: drop it
    found = data.decode("utf-8", errors="replace").split("\n")
    if found and found[-1] == "":
        found.pop()  # the newline ending the last line starts no line
    return found if lines is None else found[-lines:] if lines else []


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
