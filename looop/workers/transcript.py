"""``sessions/<id>/output.log``: a worker's transcript, written capped and read back.

The supervisor is the only writer: it copies the worker's stdout and stderr
(one pipe, so their order is kept) into the file, with its own few lines
(``[looop] ...``: the command, how it ended) among them. A worker that
prints without end must not fill the disk, so the file is capped: once it
passes ``CAP`` bytes, its newest ``KEEP`` bytes are written to a new file
that replaces it whole (``fs.write_whole``), starting at a line boundary,
after a line saying how much was dropped. Rejected: rotation into
``output.log.1`` (two files for every reader to stitch) and truncating from
the front in place (no such call; a copy is what every way costs).

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

    def __init__(self, path: Path, cap: int = CAP, keep: int = KEEP) -> None:
        self.path, self.cap, self.keep = path, cap, keep
        self.fd = self._open(truncate=True)
        self.size = 0

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
            cut = tail.find(b"\n")
            if 0 <= cut < len(tail) - 1:
                tail = tail[cut + 1 :]
            dropped = self.size - len(tail)
            head = f"[looop] ... {dropped} earlier bytes dropped (cap {self.cap})\n".encode()
            fs.write_whole(self.path, head + tail, mode=0o600)
            os.close(self.fd)
            self.fd = self._open(truncate=False)
            self.size = len(head) + len(tail)
        except OSError:
            pass  # trimming again at the next write is as good

    def close(self) -> None:
        os.close(self.fd)
