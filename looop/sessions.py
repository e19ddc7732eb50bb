"""The worker-session contract and the one answer to "is this session alive?".

A session is ``sessions/<id>/`` with ``meta.json`` (``id``, ``pid``,
``started``, ``cmd``) and, once it ends, ``status.json`` (``state``,
``exit_code``, ``ended``). It is *dead* when its status says it ended, or when
its pid is gone or now belongs to a process that started after the session did
(pids are reused; the process start time tells them apart). A session whose
meta cannot be read is *unknown*, and unknown is never treated as dead: a
reaper must never delete blind. ``sys-sessions``, ``looop _ state`` and the
reaper all ask ``inspect``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

ALIVE, DEAD, UNKNOWN = "alive", "dead", "unknown"
# A worker's meta is written just after its process starts; allow for clock
# granularity and a slow writer before calling a process "started later".
START_SLACK = 2.0


@dataclass(frozen=True)
class Session:
    id: str
    path: Path
    liveness: str  # ALIVE, DEAD or UNKNOWN
    state: str  # "running", "exited", "dead" (pid gone) or "unknown"
    exit_code: int | None
    meta: dict[str, Any] | None
    status: dict[str, Any] | None

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "state": self.state, "exit_code": self.exit_code}


def _read_json_object(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as fh:
            value = json.load(fh)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def pid_runs_session(pid: int, started: float | None) -> bool:
    """True when ``pid`` exists and is not a process started after ``started``."""
    try:
        created = psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return False
    except (psutil.AccessDenied, psutil.ZombieProcess, OSError):
        return True  # it exists; we cannot see more, so do not call it dead
    if started is None:
        return True
    return created <= started + START_SLACK


def inspect(path: Path) -> Session:
    """Read one session directory (never following a symlink) and judge it."""
    sid = path.name
    if path.is_symlink() or not path.is_dir():
        return Session(sid, path, UNKNOWN, "unknown", None, None, None)
    meta = _read_json_object(path / "meta.json")
    status = _read_json_object(path / "status.json")
    if status is not None and status.get("state") == "exited":
        code = status.get("exit_code")
        exit_code = code if isinstance(code, int) and not isinstance(code, bool) else None
        return Session(sid, path, DEAD, "exited", exit_code, meta, status)
    if meta is None:
        return Session(sid, path, UNKNOWN, "unknown", None, None, status)
    pid = meta.get("pid")
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return Session(sid, path, UNKNOWN, "unknown", None, meta, status)
    if pid_runs_session(pid, _number(meta.get("started"))):
        return Session(sid, path, ALIVE, "running", None, meta, status)
    return Session(sid, path, DEAD, "dead", None, meta, status)


def scan(sessions_dir: Path) -> list[Session]:
    """Every entry directly under ``sessions/``, sorted by id."""
    try:
        entries = sorted(os.scandir(sessions_dir), key=lambda e: e.name)
    except OSError:
        return []
    return [inspect(Path(e.path)) for e in entries if not e.name.startswith(".")]
