"""``sessions/<id>/output.log``: a worker's transcript, written capped and read back.

A supervisor process is its only writer: it copies the worker's stdout and
stderr (one pipe, so their order is kept) into the file, with its own few
lines (``[looop] ...``: the command, how it ended) among them. A worker that
prints without end must not fill the disk, so the file is capped: once it
passes ``CAP`` bytes, its newest ``KEEP`` bytes are written to a new file
that replaces it whole (``fs.write_whole``), starting at a line boundary,
after a line saying how much was dropped. Rejected: rotation into
``output.log.1`` (two files for every reader to stitch) and truncating from
the front in place (no such call; a copy is what every way costs).

A worker its unit supervises alone (``workers.unit``) has its output
appended by systemd, which holds the file open: nobody copies it, so the
cap is applied after the fact, by ``Writer`` once the worker has ended and
by the reaper (``trim_live``) while it runs. Replacing the file then would
leave systemd writing to one nobody sees, so the live trim is made in place:
the newest part read, the file truncated and that part written back (what
the worker appends in between is lost, a line or two in a flood).

It is opened by ``looop.lines.open_append`` (no link followed, never
blocking, a regular file only), but written as it comes, not by
``lines.append``: a worker's output is bytes, not whole lines, and it has
one writer, so there is nothing to lock against and no torn line to end.

``looop logs ID`` reads it back with ``log.tail`` and ``log.follow``, the
one reader of every log file (the pulse's too): the last ``n`` lines, then
what is appended until the session has ended, reopening the file when a trim
replaced it.
"""

from __future__ import annotations

import os
from pathlib import Path

from looop import fs, lines

CAP = 4 << 20  # 4 MiB
KEEP = 1 << 20  # what a trim keeps: the newest 1 MiB


class Writer:
    """The supervisor's end: append, and trim to the newest part past the cap."""

    def __init__(self, path: Path, cap: int = CAP, keep: int = KEEP, fresh: bool = True) -> None:
        """``fresh``: a new transcript; else the one there is appended to (trimmed first)."""
        self.path, self.cap, self.keep = path, cap, keep
        self.fd = self._open(truncate=fresh)
        self.size = 0 if fresh else os.fstat(self.fd).st_size
        if self.size > self.cap:
            self._trim()

    def _open(self, truncate: bool) -> int:
        return lines.open_append(self.path, mode=0o600, truncate=truncate)

    def write(self, data: bytes) -> None:
        if not data:
            return
        try:
            os.write(self.fd, data)
        except OSError:
            return  # a full disk loses transcript, never the worker or its status
        self.size += len(data)
        if self.size > self.cap:
            self._trim()

    def note(self, text: str) -> None:
        """One line of the supervisor's own, marked as such."""
        self.write(f"[looop] {text}\n".encode(errors="replace"))

    def _trim(self) -> None:
        try:
            tail = os.pread(self.fd, self.keep, max(0, self.size - self.keep))  # our own file
            tail = _from_a_line(tail)
            head = _dropped(self.size - len(tail), self.cap)
            fs.write_whole(self.path, head + tail, mode=0o600)
            os.close(self.fd)
            self.fd = self._open(truncate=False)
            self.size = len(head) + len(tail)
        except OSError:
            pass  # trimming again at the next write is as good

    def close(self) -> None:
        os.close(self.fd)


def trim_live(session_fd: int) -> bool:
    """Trim ``output.log`` in place if it is past the cap (a unit appends to it); True if trimmed.

    ``session_fd``: the session's directory, open. No link is followed.
    """
    from looop.data.sessions import OUTPUT

    fd = os.open(OUTPUT, os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=session_fd)
    try:
        fs.regular(fd, OUTPUT)
        size = os.fstat(fd).st_size
        if size <= CAP:
            return False
        tail = _from_a_line(os.pread(fd, KEEP, size - KEEP))
        os.ftruncate(fd, 0)
        os.write(fd, _dropped(size - len(tail), CAP) + tail)
        return True
    finally:
        os.close(fd)


def _from_a_line(tail: bytes) -> bytes:
    """``tail`` from its first whole line (all of it when it has no line end before its last)."""
    cut = tail.find(b"\n")
    return tail[cut + 1 :] if 0 <= cut < len(tail) - 1 else tail


def _dropped(size: int, cap: int) -> bytes:
    return f"[looop] ... {size} earlier bytes dropped (cap {cap})\n".encode()
