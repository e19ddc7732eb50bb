"""``looop logs``: where a log is, and reading it (its end, a time on, then what follows).

Whoever runs a process decides where its output goes, so the pulse's log is
asked of the driver of the manager it is installed under
(``units.installed_driver``, the same question ``up`` asks):

- **systemd**: the unit's journal, read with ``journalctl --user -u UNIT``
  (looop runs journalctl in its place, so ``-f`` ends on ^C as journalctl's
  does, and ``--since``/``-o json`` are journalctl's own), unless the unit or
  a drop-in sends stderr to a file (``StandardError=append:%h/...``: the
  driver expands the specifiers as systemd does), which is then read like
  any log file;
- **launchd**: the agent's log file (the plist's ``StandardErrorPath``);
- **neither** (``looop up`` detached it): ``pulse.log`` in the data dir.

``locate`` says which, and the CLI names it on stderr (one line), so a
person never wonders which file they are reading. A worker's log is its
transcript (``workers.transcript``), followed until the worker ends
(``data.sessions``' judgment). Files are read with ``log.tail`` and
``log.follow`` (woken by file notifications), one reader for all.
``--since TIME`` bisects the file for where TIME begins (a log is appended
in time order: a few 64 KiB reads, not the log), then reads on line by line
(``lines``' chunked reader: memory stays bounded) and keeps the lines
stamped at TIME or later (a line without a stamp goes with the one before
it); ``-o json`` prints each line as one object
``{"timestamp", "message", "source"}``, journalctl's ``-o json`` reduced to
what looop has. Rejected: copying the journal into a file of our own (two
logs to keep in step, and journald already keeps, rotates and prioritises
the lines).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from looop import fs, log
from looop import lines as linereader
from looop.errors import LooopError, UsageError
from looop.paths import Paths
from looop.service import detached, units
from looop.service.driver import PulseLog

DEFAULT_LINES = 50
STAMP = "%Y-%m-%d %H:%M:%S%z"  # a log file's line begins so (``log.Logger``)
STAMP_LEN = len("2026-12-08 00:15:22+0000")
PROBE = 1 << 16  # what one step of --since's bisection reads


class Source(NamedTuple):
    """A log to read: what to call it, the file (or journalctl), when a follow ends."""

    where: str
    file: Path | None
    command: list[str] | None = None
    ended: Callable[[], bool] | None = None


def pulse_log(paths: Paths) -> PulseLog:
    """Where the pulse's log is: its manager's say, else the detached pulse's file."""
    driver = units.installed_driver(paths)
    if driver is not None:
        return driver.pulse_log(paths)
    file = detached.log_file(paths)
    return PulseLog(f"the detached pulse's log, {file}", file=file)


def locate(paths: Paths, wid: str | None) -> Source:
    """The log ``looop logs [ID]`` reads; LooopError when there is none (yet)."""
    if wid is not None:
        return _worker_log(paths, wid)
    where = pulse_log(paths)
    if where.command is None and where.file is not None and not os.path.lexists(where.file):
        raise LooopError(f"no pulse log yet at {where.file}")
    return Source(where.where, where.file, where.command)


def read(
    source: Source,
    count: int | None,
    follow: bool,
    since: float | None = None,
    as_json: bool = False,
) -> Iterator[bytes]:
    """What ``looop logs`` prints: the last ``count`` lines (or those since), then (follow) more.

    ``count`` None: 50, or every line since ``since``. A journal is read by
    journalctl, which replaces this process (stdout is flushed first).
    """
    if source.command is not None:
        _journalctl(source, count, follow, since, as_json)
    path = source.file
    assert path is not None
    shown = count if count is not None else DEFAULT_LINES
    first, start = ([], None) if since is None else _since(path, since, count)
    chunks: Iterable[bytes] = first
    if follow:  # the tail (or, after --since's lines, what follows them), then more
        chunks = _chain(first, log.follow(path, shown, source.ended, start))
    elif since is None:
        chunks = [log.tail(path, shown)]
    if as_json:
        chunks = (_as_json(line, source.where) for line in _whole(chunks))
    yield from chunks


def _chain(first: list[bytes], rest: Iterator[bytes]) -> Iterator[bytes]:
    yield from first
    yield from rest


def _since(path: Path, since: float, count: int | None) -> tuple[list[bytes], int]:
    """The lines stamped ``since`` or later (the last ``count`` of them), and where they end."""
    kept: deque[bytes] = deque(maxlen=count)
    offset = _first_line_at(path, since)
    keeping = False  # a line without a stamp before the first stamped one goes with an older one
    for line in linereader.whole_lines(path, start=offset):
        offset += len(line) + 1
        stamp = line_time(line)
        if stamp is not None:
            keeping = stamp >= since
        if keeping:
            kept.append(line + b"\n")
    return list(kept), offset


def _first_line_at(path: Path, since: float) -> int:
    """Where ``--since`` starts reading: a line's start before every line stamped ``since`` on.

    A log is appended in time order, so the file is bisected: each probe
    reads ``PROBE`` bytes and dates the first stamped whole line in them. Only
    a line stamped before ``since`` moves the start past it; a probe that
    dates nothing moves the search's end down instead, so nothing that might
    be wanted is skipped. O(log size) reads for a log stamped throughout.
    """
    fd, st = fs.open_regular(path)
    try:
        lo, hi = 0, st.st_size
        while hi - lo > PROBE:
            mid = (lo + hi) // 2
            try:
                block = os.pread(fd, PROBE, mid)
            except OSError as exc:
                raise fs.named(exc, path) from None
            cut = block.find(b"\n")
            stamp = None
            for line in block[cut + 1 :].split(b"\n")[:-1] if cut >= 0 else []:
                stamp = line_time(line)
                if stamp is not None:
                    break
            if stamp is not None and stamp < since:
                lo = mid + cut + 1
            else:
                hi = mid
        return lo
    finally:
        os.close(fd)


def line_time(line: bytes) -> float | None:
    """When a log line was written (its stamp, or a JSON line's ``ts``); None if it says not."""
    if line[:1] == b"{":
        try:
            ts = json.loads(line).get("ts")
        except (ValueError, AttributeError):
            return None
        return float(ts) if isinstance(ts, int | float) else None
    from datetime import datetime

    try:
        return datetime.strptime(line[:STAMP_LEN].decode("ascii"), STAMP).timestamp()
    except (ValueError, UnicodeDecodeError):
        return None


def _whole(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The lines in ``chunks`` (a follow's reads end anywhere), each without its newline."""
    pending = b""
    for chunk in chunks:
        *done, pending = (pending + chunk).split(b"\n")
        yield from done
        pending = pending[-linereader.MAX_LINE :]
    if pending:
        yield pending


def _as_json(line: bytes, source: str) -> bytes:
    """One line as ``{"timestamp", "message", "source"}`` (journalctl's -o json, reduced)."""
    text = line.decode("utf-8", "replace")
    stamp = line_time(line)
    message = text
    if line[:1] == b"{":
        with contextlib.suppress(ValueError, AttributeError):
            message = str(json.loads(line).get("msg", text))
    elif stamp is not None:
        message = text[STAMP_LEN + 1 :]
    out = {"timestamp": stamp, "message": message, "source": source}
    return (json.dumps(out) + "\n").encode()


def since_time(text: str, now: float | None = None) -> float:
    """The Unix time a ``--since`` says, in journalctl's forms (a documented subset).

    ``YYYY-MM-DD``, ``YYYY-MM-DD HH:MM[:SS]``, ``HH:MM[:SS]`` (today),
    ``now``, ``today``, ``yesterday``, and a duration back from now:
    ``-10m``, ``10m ago``, ``1h30m ago``. UsageError for anything else.
    """
    from looop import say

    now = time.time() if now is None else now
    said = text.strip()
    midnight = time.mktime((*time.localtime(now)[:3], 0, 0, 0, 0, 0, -1))
    words = {"now": now, "today": midnight, "yesterday": midnight - 86400}
    if said in words:
        return words[said]
    back = said[1:] if said.startswith("-") else said.removesuffix(" ago")
    if back != said:
        try:
            return now - say.seconds(back)
        except ValueError:
            pass
    for form in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"):
        try:
            return time.mktime(time.strptime(said, form))
        except ValueError:
            continue
    for form in ("%H:%M:%S", "%H:%M"):
        try:
            clock = time.strptime(said, form)
        except ValueError:
            continue
        return midnight + clock.tm_hour * 3600 + clock.tm_min * 60 + clock.tm_sec
    raise UsageError(
        f"--since {text!r}: say YYYY-MM-DD [HH:MM[:SS]], HH:MM, today, yesterday, -10m or 1h ago"
    )


def _journalctl(
    source: Source, count: int | None, follow: bool, since: float | None, as_json: bool
) -> None:
    assert source.command is not None
    argv = [*source.command]
    if count is not None or since is None:
        argv += ["-n", str(count if count is not None else DEFAULT_LINES)]
    argv.append("--no-pager")
    if follow:
        argv.append("-f")
    if since is not None:
        argv += ["--since", f"@{since:.0f}"]
    if as_json:
        argv += ["-o", "json"]
    sys.stdout.flush()
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        raise LooopError(f"cannot run {argv[0]} to read {source.where}: {exc.strerror}") from None


def _worker_log(paths: Paths, wid: str) -> Source:
    from looop.data import ids, sessions

    session = paths.sessions / ids.check("worker", wid)
    path = session / sessions.OUTPUT
    if not os.path.lexists(session):
        raise LooopError(f"no worker {wid}")
    if not os.path.lexists(path):
        raise LooopError(f"worker {wid} has no transcript yet ({path})")

    def ended() -> bool:
        return sessions.inspect(session).liveness != sessions.ALIVE

    return Source(f"worker {wid}'s transcript, {path}", path, ended=ended)
