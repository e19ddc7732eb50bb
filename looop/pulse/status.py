"""``looop status``: is the pulse running? Answered from the lock, quickly.

The kernel's lock table is the truth (``lock.holder``, the same answer
``lock.pulse_holder`` gives every other command); the pid file and
the beat record only add detail to an answer already given. The probe never
takes the lock exclusively, so asking can never make a starting pulse fail.
Exit codes follow LSB / ``systemctl``: 0 running, 3 not running, 4 unknown
(the runtime dir cannot be trusted or read). Imports stay light: this is run
by people and scripts in a loop and should answer in tens of milliseconds.

It costs the same however many workers live: the live workers are counted
by the pulse's ``sys-sessions`` probe each beat and read from the beat
record (``workers``), never by scanning ``sessions/`` here, which judged
every session (948 ms with 5,000 live ones). So the count is the last
beat's, and a stopped pulse shows none; ``looop workers`` lists each live
worker with its health, now. Rejected: a count kept by the starts and ends
of workers, which a worker killed outright (its end never recorded) would
leave wrong until something rescanned.
"""

from __future__ import annotations

import json
import os
import sys
import time

from looop import errors
from looop.paths import Paths, RuntimeDirError, check_runtime_dir
from looop.pulse import lock, record

TYPE_CHECKING = False  # not typing's: importing typing costs this probe ~4 ms
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

RUNNING, STOPPED, UNKNOWN = "running", "not running", "unknown"
EXIT_CODES = {RUNNING: errors.OK, STOPPED: errors.NOT_RUNNING, UNKNOWN: errors.UNKNOWN}
# The next beat is overdue once it is this many intervals late (and at least a
# minute): a beat whose sensors run long is late, not yet stuck.
OVERDUE_GRACE = 1.0


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
        self.last_end = _last_end(paths, pid if state == RUNNING else None)

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
            "data_dir": self.paths.root,
            "runtime_dir": self.paths.runtime_dir,
            "service": self.manager,
            "error": self.error,
            # The streak of beats that failed (count, since, why); None while they succeed.
            "failing": self.failing,
            "healthy": self.state == RUNNING and self.failing is None,
            # The live workers the last beat counted (None without a running pulse's record).
            "workers": self._workers(),
            # Added with the human status: when the pulse started (epoch s), its
            # interval, and whether the next beat is overdue (see ``overdue``).
            "started_at": (self.last_beat or {}).get("pulse_started"),
            "interval": (self.last_beat or {}).get("interval"),
            "overdue": self.overdue,
            # How the previous run ended ({how, pid, at}), None before any ended.
            "last_run": self.last_end,
        }

    def _workers(self) -> int | None:
        count = (self.last_beat or {}).get("workers")
        return count if type(count) is int else None

    @property
    def failing(self) -> dict[str, Any] | None:
        value = (self.last_beat or {}).get("failing")
        return value if isinstance(value, dict) else None

    @property
    def overdue(self) -> bool | None:
        """Is the next beat late by more than ``OVERDUE_GRACE`` intervals (at least a minute)?"""
        beat = self.last_beat or {}
        next_beat, interval = beat.get("next_beat"), beat.get("interval")
        if not isinstance(next_beat, int | float) or not isinstance(interval, int | float):
            return None
        return self.now - next_beat > max(OVERDUE_GRACE * interval, 60.0)


def render(d: dict[str, Any]) -> str:
    """The human status, read from the report's ``as_dict`` (what ``--json`` prints)."""
    from looop import say, style

    state, pid, failing, overdue = d["state"], d["pid"], d["failing"], d["overdue"]
    if state == UNKNOWN:
        head = f"looop pulse: unknown ({d['error']})"
    elif d["role"] == "sense":
        head = f"looop pulse: not running; a one-off beat holds the lock (pid {pid})"
    elif state == STOPPED:
        head = "looop pulse: not running"
    elif failing:
        head = f"looop pulse: running (pid {pid}), but its beats fail"
    elif overdue:
        head = f"looop pulse: running (pid {pid}), but its next beat is overdue"
    else:
        head = f"looop pulse: running (pid {pid})"
    lines = [head]

    def when(stamp: Any) -> str:
        return time.strftime("%a %Y-%m-%d %H:%M:%S %Z", time.localtime(stamp))

    if failing:
        since = failing.get("since")
        count = failing.get("count")
        beats = say.count(count, "beat") if isinstance(count, int) else "beats"
        started = f" since {when(since)}" if isinstance(since, int | float) else ""
        lines.append(f"  failing     {beats}{started}: {failing.get('why')}")
    if d["error"] and state != UNKNOWN:
        lines.append(f"  problem     {d['error']}")
    if state == RUNNING and d["beats"] is not None:
        lines += _beat_lines(d, when)
    ended = d["last_run"]
    if ended:
        at = ended.get("at")
        ago = f", {say.duration(time.time() - at)} ago" if isinstance(at, int | float) else ""
        lines.append(f"  last run    pid {ended.get('pid') or '?'}{ago}: {ended['how']}")
    lines += [f"  data dir    {d['data_dir']}", f"  runtime dir {d['runtime_dir']}"]
    lines += _manager_lines(d["service"])
    if d["workers"]:
        lines.append(
            f"  workers     {d['workers']} live at the last beat (looop workers lists them)"
        )
    if state != RUNNING or failing or overdue or d["error"]:
        lines.append("  logs        looop logs -n 50 (or -f to follow); looop doctor")
    lines = [say.escaped(line) for line in lines]
    fine = state == RUNNING and not (failing or overdue)
    lines[0] = style.paint(lines[0], "good" if fine else "warn" if state == UNKNOWN else "bad")
    if failing:
        lines[1] = style.paint(lines[1], "bad")
    return "\n".join(lines)


def _beat_lines(d: dict[str, Any], when: Callable[[Any], str]) -> list[str]:
    """A running pulse's beats: up since, the last one, the next one, the world hash."""
    from looop import say

    lines = []
    if d["uptime"] is not None:
        lines.append(f"  up          {say.duration(d['uptime'])}, since {when(d['started_at'])}")
    age = d["last_beat_age"]
    ago = "-" if age is None else f"{say.duration(age)} ago"
    lines.append(f"  last beat   #{d['beats']}, {ago}: {d['last_beat']}")
    failed = d["last_beat_failed"] or []
    if failed:
        lines.append(f"  failed      {', '.join(map(str, failed))}")
    next_in, interval = d["next_beat_in"], d["interval"]
    every = f" (every {say.duration(interval)})" if isinstance(interval, int | float) else ""
    if next_in is None:
        pass  # a record from before the pulse kept its next beat
    elif d["overdue"]:
        lines.append(
            f"  next beat   OVERDUE: it was due {say.duration(-next_in)} ago{every}; "
            "is a sensor or the disk stuck? See looop logs"
        )
    elif next_in < 0:
        lines.append(f"  next beat   due {say.duration(-next_in)} ago{every}")
    else:
        lines.append(f"  next beat   in {say.duration(next_in)}{every}")
    lines.append(f"  world hash  {str(d['world_hash'])[:16]}")
    return lines


def _manager_lines(manager: dict[str, Any] | None) -> list[str]:
    """The service manager's view, one fact a line: what is installed, enabled, active."""
    if not manager:
        return ["  service     not installed (looop install runs it as a user service)"]
    name = manager.get("unit") or manager.get("label")
    lines = [f"  service     {manager.get('manager')} {name}"]
    if "enabled" in manager:
        lines.append(f"    enabled   {manager.get('enabled') or '-'}")
    active = str(manager.get("state") or "?")
    if manager.get("pid"):
        active += f", pid {manager['pid']}"
    lines.append(f"    active    {active}")
    restarts = manager.get("restarts")
    if restarts is not None:
        lines.append(f"    restarts  {restarts}")
    timer = manager.get("reap_timer")
    if timer:
        from looop.service.units import timer_said

        lines.append(f"    reap      {timer_said(timer)}")
    return lines


def _last_end(paths: Paths, running: int | None) -> dict[str, Any] | None:
    """How the last run ended (``record.how_ended``), once one has: a small file read.

    ``running``: the pid of the pulse that runs now, whose end is not the
    question. A beat record of a pulse that no longer runs and whose end was
    never recorded is a run that ended without a clean stop.
    """
    end = record.read_end(paths)
    if running is None:
        beat = record.read(paths) or {}
        pid = beat.get("pid") if beat.get("pulse_started") else None  # a pulse's, not a sense's
        if pid and (end is None or end.get("pid") != pid):
            return {"how": record.how_ended(None), "pid": pid, "at": None}
    if end is None or (running is not None and end.get("pid") == running):
        return None
    return {"how": record.how_ended(end), "pid": end.get("pid"), "at": end.get("at")}


def _service_state(paths: Paths) -> dict[str, Any] | None:
    from looop.service import units

    # Only the driver's state query: status never loads the installer.
    driver = units.installed_driver(paths)
    return None if driver is None else driver.state(paths)


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
    d = report.as_dict()
    text = json.dumps(d, indent=2) if as_json else render(d)
    sys.stdout.write(text + "\n")
    return report.exit_code
