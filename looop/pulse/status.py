"""``looop status``: is the pulse running? Answered from the lock, quickly.

The kernel's lock table is the truth (``lock.holder``, the same answer
``lock.pulse_holder`` gives every other command); the pid file and
the beat record only add detail to an answer already given. The probe never
takes the lock exclusively, so asking can never make a starting pulse fail.
Exit codes follow LSB / ``systemctl``: 0 running, 3 not running, 4 unknown
(the runtime dir cannot be trusted or read). Imports stay light: this is run
by people and scripts in a loop and should answer in tens of milliseconds.
"""

from __future__ import annotations

import json
import os
import sys
import time

from looop.paths import Paths, RuntimeDirError, check_runtime_dir
from looop.pulse import lock, record

TYPE_CHECKING = False  # not typing's: importing typing costs this probe ~4 ms
if TYPE_CHECKING:
    from typing import Any

RUNNING, STOPPED, UNKNOWN = "running", "not running", "unknown"
EXIT_CODES = {RUNNING: 0, STOPPED: 3, UNKNOWN: 4}


class StatusReport:
    def __init__(
        self,
        state: str,
        paths: Paths,
        pid: int | None = None,
        role: str | None = None,
        last_beat: dict[str, Any] | None = None,
        manager: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        self.state, self.paths, self.pid, self.role = state, paths, pid, role
        self.last_beat, self.manager, self.error = last_beat, manager, error
        self.now = time.time()
        self.workers = live_workers(paths)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.state]

    def _age(self, key: str) -> float | None:
        value = (self.last_beat or {}).get(key)
        return round(self.now - value, 3) if isinstance(value, int | float) else None

    def as_dict(self) -> dict[str, Any]:
        beat = self.last_beat or {}
        next_beat = beat.get("next_beat")
        return {
            "state": self.state,
            "running": self.state == RUNNING,
            "pid": self.pid,
            "role": self.role,
            "uptime": self._age("pulse_started"),
            "beats": beat.get("number"),
            "last_beat_age": self._age("ended"),
            "last_beat": beat.get("summary"),
            "last_beat_failed": beat.get("failed"),
            "world_hash": beat.get("world_hash"),
            "next_beat_in": (
                round(next_beat - self.now, 3) if isinstance(next_beat, int | float) else None
            ),
            "data_dir": str(self.paths.data_dir),
            "runtime_dir": str(self.paths.runtime_dir),
            "service": self.manager,
            "error": self.error,
            # The streak of beats that failed (count, since, why); None while they succeed.
            "failing": self.failing,
            "healthy": self.state == RUNNING and self.failing is None,
            # The profile's live workers: {id, state} each (they outlive a stopped pulse).
            "workers": self.workers,
        }

    @property
    def failing(self) -> dict[str, Any] | None:
        value = (self.last_beat or {}).get("failing")
        return value if isinstance(value, dict) else None

    def render(self) -> str:
        d = self.as_dict()
        if self.state == UNKNOWN:
            head = f"looop pulse: unknown ({self.error})"
        elif self.role == "sense":
            head = f"looop pulse: not running; a one-off beat holds the lock (pid {self.pid})"
        elif self.state == STOPPED:
            head = "looop pulse: not running"
        elif self.failing:
            head = f"looop pulse: running (pid {self.pid}), but its beats fail"
        else:
            head = f"looop pulse: running (pid {self.pid})"
        lines = [head]
        if self.failing:
            since = self.failing.get("since")
            when = time.strftime("%H:%M:%S", time.localtime(since)) if since else "?"
            count = self.failing.get("count")
            lines.append(f"  failing     {count} beats since {when}: {self.failing.get('why')}")
        if self.error and self.state != UNKNOWN:
            lines.append(f"  problem     {self.error}")

        def seconds(value: float | None) -> str:
            return "-" if value is None else f"{value:.0f}s"

        if self.state == RUNNING and self.last_beat:
            lines += [
                f"  uptime      {seconds(d['uptime'])}",
                f"  beats       {d['beats']}",
                f"  last beat   {seconds(d['last_beat_age'])} ago · {d['last_beat']}",
                f"  world hash  {str(d['world_hash'])[:16]}",
                f"  next beat   in {seconds(d['next_beat_in'])}",
            ]
        lines += [f"  data dir    {d['data_dir']}", f"  runtime dir {d['runtime_dir']}"]
        if self.manager:
            shown = " · ".join(f"{k}={v}" for k, v in self.manager.items())
            lines.append(f"  service     {shown}")
        if self.workers:
            names = ", ".join(w["id"] for w in self.workers)
            lines.append(f"  workers     {len(self.workers)} live: {names}")
        return "\n".join(lines)


def live_workers(paths: Paths) -> list[dict[str, Any]]:
    """``{id, state}`` of each live worker session (``data.sessions``'s judgment)."""
    from looop.data import sessions

    found = sessions.scan(paths.sessions)
    return [
        {"id": s.summary()["id"], "state": s.state} for s in found if s.liveness == sessions.ALIVE
    ]


def _service_state(paths: Paths) -> dict[str, Any] | None:
    from looop.service import units

    manager = units.installed_manager(paths)
    if manager is None:
        return None
    # Only the driver's state query: status never loads the installer.
    if manager == units.SYSTEMD:
        from looop.service import systemd

        return systemd.state(paths)
    from looop.service import launchd

    return launchd.state(paths)


def collect(paths: Paths) -> StatusReport:
    try:
        if os.path.lexists(paths.runtime_dir):
            check_runtime_dir(paths.runtime_dir)
        held = lock.holder(paths)
    except (RuntimeDirError, OSError) as exc:
        return StatusReport(UNKNOWN, paths, error=str(exc), manager=_service_state(paths))
    if held is None:
        return StatusReport(STOPPED, paths, manager=_service_state(paths))
    pid, role = held.pid, held.role
    if not held.is_pulse:
        # A one-off `looop sense` holds the lock: no pulse runs.
        return StatusReport(STOPPED, paths, pid=pid, role=role, manager=_service_state(paths))
    problems: list[str] = []
    last = record.read(paths, problems)
    if last is not None and last.get("pid") != pid:
        last = None  # the record of an earlier holder says nothing about this one
    return StatusReport(
        RUNNING,
        paths,
        pid=pid,
        role=role,
        last_beat=last,
        manager=_service_state(paths),
        error=problems[0] if problems else None,
    )


def print_report(paths: Paths, as_json: bool = False) -> int:
    """Print the status (human or JSON) and return its exit code."""
    report = collect(paths)
    text = json.dumps(report.as_dict(), indent=2) if as_json else report.render()
    sys.stdout.write(text + "\n")
    return report.exit_code
