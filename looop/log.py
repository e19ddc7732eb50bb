"""Log lines, shaped for wherever stderr goes, and log files read back.

Under journald (``JOURNAL_STREAM`` names our stderr) lines carry ``<N>``
priority prefixes and no timestamps, because the journal adds its own and
shows priorities; in a terminal they are short human lines (the time of
day); into a file (the detached pulse's ``pulse.log``, launchd's log, a
unit's ``StandardError=append:``) the same lines carry the full date, time
and offset, because a file is read days later and nothing else dates it.
With ``--log-format json`` they are NDJSON for machines. One process-wide
logger, configured once by the CLI, so no module decides formatting on its
own; ``chosen`` is the format asked for, which ``looop up`` hands on to the
pulse it detaches (``auto`` lets that pulse decide by its own stderr).

Reading: ``tail`` and ``follow`` are the one way a log file is read back,
for ``looop logs`` (the pulse's file) and ``looop logs ID`` (a worker's
transcript): without following a link, without blocking on a FIFO, and
reopened when a trim or a rotation replaced the file. ``log_tail`` is the
one-line excerpt a failed start quotes.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from looop import fs

PRIORITY = {"error": 3, "warning": 4, "info": 6, "debug": 7}
FORMATS = ("auto", "human", "journal", "json")
FOLLOW_POLL = 0.2  # seconds between looks at a followed file


def stderr_is_journal() -> bool:
    """True when stderr is the stream systemd connected to journald."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(x) for x in stream.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return st.st_dev == dev and st.st_ino == ino


def log_tail(path: Path, since: int = 0, lines: int = 5) -> str:
    """The last lines written to a log file after offset ``since``, on one line.

    For telling a user why a pulse that was started elsewhere did not come up.
    """
    try:
        with open(path, "rb") as fh:
            if fh.seek(0, os.SEEK_END) >= since:  # a shorter file was started anew
                fh.seek(since)
            else:
                fh.seek(0)
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    said = [line.strip() for line in text.splitlines() if line.strip()]
    return " · ".join(said[-lines:])


class Logger:
    def __init__(self, fmt: str = "auto") -> None:
        self.configure(fmt)

    def configure(self, fmt: str) -> None:
        self.chosen = fmt
        if fmt == "auto":
            fmt = "journal" if stderr_is_journal() else "human"
        self.format = fmt
        try:
            to_terminal = sys.stderr.isatty()
        except (AttributeError, ValueError):
            to_terminal = False
        self.clock = "%H:%M:%S" if to_terminal else "%Y-%m-%d %H:%M:%S%z"

    def emit(self, level: str, message: str, **fields: Any) -> None:
        if self.format == "json":
            record = {"ts": round(time.time(), 3), "level": level, "msg": message, **fields}
            line = json.dumps(record, separators=(",", ":"), default=str)
        elif self.format == "journal":
            line = f"<{PRIORITY[level]}>{message}"
        else:
            prefix = "" if level == "info" else f"{level}: "
            line = f"{time.strftime(self.clock)} looop: {prefix}{message}"
        try:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass  # a closed or full stderr must never stop the pulse

    def info(self, message: str, **fields: Any) -> None:
        self.emit("info", message, **fields)

    def warning(self, message: str, **fields: Any) -> None:
        self.emit("warning", message, **fields)

    def error(self, message: str, **fields: Any) -> None:
        self.emit("error", message, **fields)


log = Logger()


def tail(path: Path, lines: int) -> bytes:
    """The last ``lines`` lines of a log file (all of it for a negative count)."""
    data, _ = _read_from(path, 0)
    return tail_of(data, lines)


def follow(path: Path, lines: int, ended: Callable[[], bool]) -> Iterator[bytes]:
    """``tail``, then what is written after it, until ``ended()`` and nothing more came.

    A file replaced under the same name (a trim, a rotation) is read from its
    start; a file that is gone for a moment is waited for.
    """
    data, (ino, offset) = _read_from(path, 0)
    yield tail_of(data, lines)
    while True:
        done = ended()  # asked before the read: what was written before the end is shown
        try:
            st = os.stat(path, follow_symlinks=False)
            if st.st_ino != ino:
                ino, offset = st.st_ino, 0
            more, (ino, offset) = _read_from(path, offset)
        except FileNotFoundError:
            more = b""
        if more:
            yield more
        elif done:
            return
        else:
            time.sleep(FOLLOW_POLL)


def tail_of(data: bytes, lines: int) -> bytes:
    """The last ``lines`` lines of ``data`` (all of it for a negative count)."""
    if lines < 0:
        return data
    return b"".join(data.splitlines(keepends=True)[-lines:]) if lines else b""


def _read_from(path: Path, offset: int) -> tuple[bytes, tuple[int, int]]:
    """What the file holds after ``offset``, and (its inode, the new offset)."""
    fd, st = fs.open_regular(path)
    try:
        if st.st_size < offset:  # truncated in place: start again
            offset = 0
        os.lseek(fd, offset, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        data = b"".join(chunks)
        return data, (st.st_ino, offset + len(data))
    finally:
        os.close(fd)
