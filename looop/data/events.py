"""``events.jsonl``: machine-readable lifecycle events, capped and rotated.

Writers (the pulse, a reaper run by a timer) may append at the same time, so
each append holds an exclusive ``flock`` on the file while it checks the size,
rotates (one old file, ``events.jsonl.1``, is kept) and writes its lines by
``looop.lines``' rules (opened by ``lines.open_append``, written by
``lines.write_locked``): whole or absent, never glued onto a line torn by a
crash. An event that cannot be written is dropped, never raised: losing a
log line must not stop a beat.
"""

from __future__ import annotations

import json
import os
import time

from looop import lines, lockfile

TYPE_CHECKING = False  # not typing's: the verbs and the reaper should not pay for it
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

MAX_BYTES = 5 * 1024 * 1024


def _open_current(path: Path) -> int:
    """Open ``path`` for append with the lock held, following a rotation.

    Never through a link and never blocking: a FIFO named ``events.jsonl``
    would otherwise hang the beat on ``open``; anything but a regular file is
    refused (OSError), so the event is dropped.
    """
    while True:
        fd = lines.open_append(path)
        try:
            lockfile.lock(fd, block=True, path=path)
            same = os.fstat(fd).st_ino == os.stat(path, follow_symlinks=False).st_ino
        except FileNotFoundError:
            same = False
        except BaseException:
            os.close(fd)
            raise
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
    encode = json.JSONEncoder(default=str).encode  # one encoder for the lot, not one per event
    records = [encode({"ts": now, "event": event, **fields}) for event, fields in entries]
    data = ("\n".join(records) + "\n").encode()
    try:
        fd = _open_current(path)
        try:
            if os.fstat(fd).st_size + len(data) > max_bytes:
                os.replace(path, path.with_name(path.name + ".1"))
                rotated, fd = fd, -1
                os.close(rotated)
                fd = _open_current(path)
            lines.write_locked(fd, data, path=path)
        finally:
            if fd >= 0:
                os.close(fd)
    except OSError:
        pass
