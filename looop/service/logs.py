"""``looop logs``: where a log is, and reading it (its end, then what follows).

Whoever runs a process decides where its output goes, so the pulse's log is
asked of the driver of the manager it is installed under
(``units.installed_driver``, the same question ``up`` asks):

- **systemd**: the unit's journal, read with ``journalctl --user -u UNIT``
  (looop runs journalctl in its place, so ``-f`` ends on ^C as journalctl's
  does), unless the unit or a drop-in sends stderr to a file
  (``StandardError=append:...``), which is then read like any log file;
- **launchd**: the agent's log file (the plist's ``StandardErrorPath``);
- **neither** (``looop up`` detached it): ``pulse.log`` in the data dir.

A worker's log is its transcript (``workers.transcript``), followed until
the worker ends (``data.sessions``' judgment). Files are read with
``log.tail`` and ``log.follow``, one reader for both. ``read`` yields the
bytes to print and the CLI only writes them. Rejected: copying the journal
into a file of our own (two logs to keep in step, and journald already
keeps, rotates and prioritises the lines).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from looop import log
from looop.errors import LooopError
from looop.paths import Paths
from looop.service import detached, units
from looop.service.driver import PulseLog


def pulse_log(paths: Paths, lines: int, follow: bool) -> PulseLog:
    """Where the pulse's log is: its manager's say, else the detached pulse's file."""
    driver = units.installed_driver(paths)
    if driver is not None:
        return driver.pulse_log(paths, lines, follow)
    file = detached.log_file(paths)
    return PulseLog(str(file), file=file)


def read(paths: Paths, wid: str | None, lines: int, follow: bool) -> Iterator[bytes]:
    """What ``looop logs [ID] [-n LINES] [-f]`` prints: the last ``lines``, then (follow) more.

    The pulse's log without ``wid``, worker ``wid``'s transcript with it. A
    journal is read by journalctl, which replaces this process (stdout is
    flushed first). LooopError when there is no such log (yet).
    """
    path, ended = _worker_log(paths, wid) if wid is not None else _pulse_file(paths, lines, follow)
    if not follow:
        yield log.tail(path, lines)
        return
    yield from log.follow(path, lines, ended)


def _pulse_file(paths: Paths, lines: int, follow: bool) -> tuple[Path, Callable[[], bool]]:
    where = pulse_log(paths, lines, follow)
    if where.command is not None:
        _exec(where.command, where.where)
    path = where.file
    assert path is not None
    if not os.path.lexists(path):
        raise LooopError(f"no pulse log yet at {where.where}")
    return path, lambda: False  # the pulse's log is followed until ^C


def _exec(command: list[str], where: str) -> None:
    sys.stdout.flush()
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        raise LooopError(f"cannot run {command[0]} to read {where}: {exc.strerror}") from None


def _worker_log(paths: Paths, wid: str) -> tuple[Path, Callable[[], bool]]:
    from looop.data import ids, sessions

    session = paths.sessions / ids.check("worker", wid)
    path = session / sessions.OUTPUT
    if not os.path.lexists(session):
        raise LooopError(f"no worker {wid}")
    if not os.path.lexists(path):
        raise LooopError(f"worker {wid} has no transcript yet ({path})")

    def ended() -> bool:
        return sessions.inspect(session).liveness != sessions.ALIVE

    return path, ended
