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
transcript): without following a link, without blocking on a FIFO, from the
end (``looop.lines.tail_bytes``: ``logs -n 5`` of a 2 GB log reads a block,
not the log), and reopened when a trim or a rotation replaced the file.
``log_tail`` is the one-line excerpt a failed start quotes.

A message is one line whatever text it carries (a sensor's name, a worker's
error): the human and journal formats escape it with ``say.escaped``, so no
name can add a log line of its own; NDJSON escapes by itself.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from looop import fs, lines
from looop.say import escaped

PRIORITY = {"error": 3, "warning": 4, "info": 6, "debug": 7}
FORMATS = ("auto", "human", "journal", "json")
ENDED_CHECK = 1.0  # a follow that may end asks whether it has at least this often (s)
FOLLOW_CHUNK = 1 << 20  # the most a follow reads at once
LINE_BYTES = 4096  # what a tail of n lines may read per line, past ``lines.TAIL_BYTES``


def stderr_is_journal() -> bool:
    """True when stderr is the stream systemd connected to journald."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(x) for x in stream.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return st.st_dev == dev and st.st_ino == ino


def log_tail(path: Path, since: int = 0, count: int = 5) -> str:
    """The last lines written to a log file after offset ``since``, on one line.

    For telling a user why a pulse that was started elsewhere did not come up.
    """
    try:
        fd, st = fs.open_regular(path)
        try:
            start = since if st.st_size >= since else 0  # a shorter file was started anew
            data = lines.tail_bytes(fd, st.st_size, None, start=start, path=path)
        finally:
            os.close(fd)
    except OSError:
        return ""
    text = data.decode("utf-8", "replace")
    said = [line.strip() for line in text.splitlines() if line.strip()]
    return " · ".join(said[-count:])


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
            line = f"<{PRIORITY[level]}>{escaped(message)}"
        else:
            prefix = "" if level == "info" else f"{level}: "
            line = f"{time.strftime(self.clock)} looop: {prefix}{escaped(message)}"
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


def tail(path: Path, count: int) -> bytes:
    """The last ``count`` lines of a log file, read from its end (``lines.tail_bytes``)."""
    return _tail(path, count)[0]


def follow(
    path: Path, count: int, ended: Callable[[], bool] | None = None, start: int | None = None
) -> Iterator[bytes]:
    """``tail`` (or, given ``start``, what follows that offset), then what is written after it.

    Woken by file notifications on the file's directory (``looop.watch``, as
    ``_ wait`` is), never by a timer: an idle follow sleeps in the kernel. A
    file replaced under the same name (a trim, a rotation) is read from its
    start; a file that is gone for a moment is waited for. What was written
    meanwhile is read ``FOLLOW_CHUNK`` at a time, never whole. ``ended`` None
    follows until the caller stops (^C); otherwise until ``ended()`` and
    nothing more came, asked on any change in the directory and at least every
    ``ENDED_CHECK`` seconds (a process that dies writes nothing).
    """
    from looop import watch  # only a follow pays for it

    names = path.name.__eq__
    dirs = [watch.Dir(path.parent, "log", names if ended is None else _any, names)]
    with watch.open_watch(dirs) as woken:
        if start is None:
            data, (ino, offset) = _tail(path, count)
            yield data
        else:
            ino, offset = _stat(path)[0], start
        while True:
            done = ended is not None and ended()  # asked first: what came before the end shows
            try:
                st = os.stat(path, follow_symlinks=False)
                if st.st_ino != ino:
                    ino, offset = st.st_ino, 0
                more, (ino, offset) = _read_from(path, offset)
            except FileNotFoundError:
                more = b""
            if more:
                yield more
                continue  # there may be more: look again before sleeping
            if done:
                return
            woken.wait(None if ended is None else ENDED_CHECK)


def _any(name: str) -> bool:
    return True


def _stat(path: Path) -> tuple[int, int]:
    fd, st = fs.open_regular(path)
    os.close(fd)
    return st.st_ino, st.st_size


def _tail(path: Path, count: int) -> tuple[bytes, tuple[int, int]]:
    """The last ``count`` lines, and (the file's inode, its size: where a follow goes on)."""
    fd, st = fs.open_regular(path)
    try:
        bound = max(lines.TAIL_BYTES, count * LINE_BYTES)
        data = lines.tail_bytes(fd, st.st_size, count, max_bytes=bound, path=path)
        return data, (st.st_ino, st.st_size)
    finally:
        os.close(fd)


def _read_from(path: Path, offset: int) -> tuple[bytes, tuple[int, int]]:
    """Up to ``FOLLOW_CHUNK`` of what the file holds after ``offset``; (its inode, new offset)."""
    fd, st = fs.open_regular(path)
    try:
        if st.st_size < offset:  # truncated in place: start again
            offset = 0
        try:
            data = os.pread(fd, FOLLOW_CHUNK, offset)
        except OSError as exc:
            raise fs.named(exc, path) from None
        return data, (st.st_ino, offset + len(data))
    finally:
        os.close(fd)
