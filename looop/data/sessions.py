"""The worker-session contract and the one answer to "is this session alive?".

A session is ``sessions/<id>/`` with ``meta.json`` (``id``, ``pid``,
``started``, ``cmd``) and, once it ends, ``status.json`` (``state``:
``exited`` or ``killed``, ``exit_code``, ``ended``). It is *dead* when its
status says it ended, or when
its pid is gone, is a zombie, or now belongs to a process that started after
the session did (pids are reused; the process start time tells them apart).
A meta whose ``pid`` is null is a worker being started (``_ worker start``
writes it before the supervisor runs, and the supervisor writes its pid):
alive for ``START_GRACE`` seconds, dead after that. A
session whose meta cannot be read is *unknown*, and unknown is never treated
as dead: a reaper must never delete blind.

``sys-sessions``, ``looop _ state`` and the reaper all reach the same
judgment, ``judge_at``, so the three can never disagree about a session. It
works on an open directory descriptor because the reaper must judge exactly
the directory it is about to delete, not whatever a path names a moment
later; ``inspect`` and ``scan`` are the path-based front doors for readers.

Nothing here follows a symlink: a link directly under ``sessions/`` is not a
session (unknown), and a ``meta.json`` or ``status.json`` that is a link, a
FIFO or anything but a small regular file is unreadable (read by
``looop.fs.read_small`` relative to the session's directory descriptor, or
``fs.read_small_fd`` for a file the reaper already holds open). Meta is read
before anything is called dead, even when the status says the session exited:
without it the directory may not be a session at all. A session whose status
says it ended (and whose meta reads) is judged without asking the process
table, which keeps a scan of thousands of finished sessions cheap.
"""

from __future__ import annotations

import errno
import json
import math
import os
import time
from pathlib import Path

from looop import fs, proc
from looop.data.layout import shown

TYPE_CHECKING = False  # not typing's: the probes' start-up should not pay for it
if TYPE_CHECKING:
    from typing import Any

ALIVE, DEAD, UNKNOWN = "alive", "dead", "unknown"
# The states a supervisor writes into status.json when its worker has ended.
EXITED, KILLED = "exited", "killed"
ENDED = (EXITED, KILLED)
# How long a session may stay "starting" (meta written, no supervisor pid yet).
START_GRACE = 60.0
# meta.json and status.json are a few hundred bytes; anything bigger than this
# is not a session file and is not worth reading into memory.
MAX_JSON_BYTES = fs.SMALL

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# How the reaper opens a claim or run record it will judge (fs's rules: no link, no block).
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class Verdict:
    """What ``judge_at`` found.

    Plain slotted classes here and in ``Session`` rather than dataclasses:
    ``_ state`` and the pulse's probes load this module, and ``dataclasses``
    costs them more start-up (it loads ``inspect``) than judging a session.
    """

    __slots__ = ("exit_code", "liveness", "meta", "state", "status", "why")

    def __init__(
        self,
        liveness: str,  # ALIVE, DEAD or UNKNOWN
        state: str,  # "starting", "running", "exited", "killed", "dead" (pid gone), "unknown"
        exit_code: int | None,
        meta: dict[str, Any] | None,
        status: dict[str, Any] | None,
        why: str,  # for UNKNOWN and DEAD: the reason, in a few words
    ) -> None:
        self.liveness, self.state, self.exit_code = liveness, state, exit_code
        self.meta, self.status, self.why = meta, status, why

    @property
    def ended(self) -> float | None:
        """``ended`` from the status, when it is a finite number."""
        return finite_number(self.status.get("ended")) if self.status else None

    def session(self, sid: str, path: Path) -> Session:
        return Session(sid, path, self)


class Session(Verdict):
    """A judged session directory: the verdict, and the id and path it was given for."""

    __slots__ = ("id", "path")

    def __init__(self, sid: str, path: Path, verdict: Verdict) -> None:
        super().__init__(
            verdict.liveness,
            verdict.state,
            verdict.exit_code,
            verdict.meta,
            verdict.status,
            verdict.why,
        )
        self.id, self.path = sid, path

    def summary(self) -> dict[str, Any]:
        # Shown as text: a directory name need not be UTF-8, and this is published.
        return {"id": shown(self.id), "state": self.state, "exit_code": self.exit_code}


def read_json_at(dir_fd: int | None, name: str | Path) -> dict[str, Any] | None:
    """A JSON object from a small regular file, never through a symlink; else None."""
    try:
        return parse_object(fs.read_small(name, limit=MAX_JSON_BYTES, dir_fd=dir_fd))
    except OSError:
        return None


def read_json_fd(fd: int) -> tuple[dict[str, Any] | None, os.stat_result | None]:
    """The JSON object in the open file ``fd`` (from its start) and its ``fstat``.

    Both are None unless the file is a small regular file; the object is also
    None when it does not hold a JSON object.
    """
    try:
        data, st = fs.read_small_fd(fd, limit=MAX_JSON_BYTES)
    except OSError:
        return None, None
    return parse_object(data), st


def parse_object(data: bytes) -> dict[str, Any] | None:
    """The JSON object in ``data``; None for anything else, strictly JSON.

    ``NaN`` and ``Infinity`` (which Python's json reads) and numbers too big
    to be finite (``1e999``) are not JSON: a status holding one is unreadable,
    so the session is judged by its pid, and no such value reaches an output.
    """
    try:
        value = json.loads(data, parse_constant=_not_json, parse_float=_finite)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is not a finite number")
    return value


def finite_number(value: Any) -> float | None:
    """A finite number, else None: ``NaN`` or ``Infinity`` in a status is no time at all."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _exit_code(status: dict[str, Any]) -> int | None:
    code = status.get("exit_code")
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def judge_at(session_fd: int) -> Verdict:
    """Judge the session whose directory is open as ``session_fd``.

    A session whose meta cannot be read is unknown whatever its status says.
    One that says it exited is then dead without a look at the process table.
    """
    status = read_json_at(session_fd, "status.json")
    meta = read_json_at(session_fd, "meta.json")
    if meta is None:
        return Verdict(UNKNOWN, "unknown", None, None, status, "meta.json unreadable")
    if status is not None and status.get("state") in ENDED:
        state = status["state"]
        return Verdict(DEAD, state, _exit_code(status), meta, status, state)
    pid = meta.get("pid")
    started = finite_number(meta.get("started"))
    if pid is None and "pid" in meta and started is not None:
        # Written by ``_ worker start`` before its supervisor runs, which
        # writes its own pid within moments; one that never does is dead.
        if time.time() - started < START_GRACE:
            return Verdict(ALIVE, "starting", None, meta, status, "")
        return Verdict(DEAD, "dead", None, meta, status, "its supervisor never started")
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return Verdict(UNKNOWN, "unknown", None, meta, status, "meta.json has no valid pid")
    if proc.runs_since(pid, started):
        return Verdict(ALIVE, "running", None, meta, status, "")
    return Verdict(DEAD, "dead", None, meta, status, f"pid {pid} gone or reused")


def not_a_session(why: str) -> Verdict:
    return Verdict(UNKNOWN, "unknown", None, None, None, why)


def judge(parent_fd: int | None, name: str | Path) -> Verdict:
    """Open ``name`` (relative to ``parent_fd``) without following a link, and judge it."""
    try:
        fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            return not_a_session("not a directory (a link or a file)")
        return not_a_session(f"cannot open: {exc.strerror}")
    try:
        return judge_at(fd)
    finally:
        os.close(fd)


def inspect(path: Path) -> Session:
    """Read one session directory (never following a symlink) and judge it."""
    return judge(None, path).session(path.name, path)


def scan(sessions_dir: Path) -> list[Session]:
    """Every session under ``sessions/``, sorted by id.

    Only real directories count: a link or a file there is not a session, and a
    dot name is scratch (the reaper's lock, a removal in progress). An entry
    that fails to be read is left out; the others are still listed.
    """
    try:
        # A reader may look through a linked sessions/ (the reaper refuses to);
        # entries inside it are still judged without following links.
        dir_fd = os.open(sessions_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        names: list[str] = []
        try:
            with os.scandir(dir_fd) as it:
                for entry in it:
                    if entry.name.startswith("."):
                        continue
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            names.append(entry.name)
                    except OSError:
                        continue
        except OSError:
            pass  # the listing broke off: what it gave so far still counts
        found = []
        for name in sorted(names):
            try:
                found.append(judge(dir_fd, name).session(name, sessions_dir / name))
            except OSError:
                continue
        return found
    finally:
        os.close(dir_fd)
