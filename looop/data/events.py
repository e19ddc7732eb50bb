"""``events.jsonl``: machine-readable lifecycle events, capped and rotated.

Writers (the pulse, a reaper run by a timer) may append at the same time, so
each append holds an exclusive ``flock`` on the file while it checks the size,
rotates (one old file, ``events.jsonl.1``, is kept) and writes one line. An
event that cannot be written is dropped, never raised: losing a log line must
not stop a beat.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

MAX_BYTES = 5 * 1024 * 1024


def _open_current(path: Path) -> int:
    """Open ``path`` for append with the lock held, following a rotation.

    Never through a link and never blocking: a FIFO named ``events.jsonl``
    would otherwise hang the beat on ``open``; anything but a regular file is
    refused (OSError), so the event is dropped.
    """
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    while True:
        fd = os.open(path, flags, 0o644)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # rotated under us: lock the new file instead


def record(path: Path, event: str, max_bytes: int = MAX_BYTES, **fields: Any) -> None:
    record_many(path, [(event, fields)], max_bytes)


def record_many(
    path: Path, entries: list[tuple[str, dict[str, Any]]], max_bytes: int = MAX_BYTES
) -> None:
    """Append several events with one lock and one write (a reaper's whole run)."""
    if not entries:
        return
    now = round(time.time(), 3)
    lines = [
        json.dumps({"ts": now, "event": event, **fields}, default=str) for event, fields in entries
    ]
    data = ("\n".join(lines) + "\n").encode()
    try:
        fd = _open_current(path)
        try:
            if os.fstat(fd).st_size + len(data) > max_bytes:
                os.replace(path, path.with_name(path.name + ".1"))
                rotated, fd = fd, -1
                os.close(rotated)
                fd = _open_current(path)
            os.write(fd, data)
        finally:
            if fd >= 0:
                os.close(fd)
    except OSError:
        pass
