"""What ``looop watch`` shows of a profile, read through the readers every printer uses.

This module owns the screen's reading, never a judgment: the state is
``looop.agent.state.collect``'s (the pending asks with ``stranded``, each
worker as ``sessions.rows`` gives every printer, the snapshots, the due
schedules, the journal's tail), the pulse is ``looop.pulse.status``'s report
(running, beats, next beat, failing streak, overdue), the schedules are
``data.schedules.listing``'s and a worker's last output line is
``looop.lines.tail`` of its ``output.log``. ``read`` gathers them into one
plain dict that ``looop.screen.frame`` turns into text.

What it watches (``watched``) is ``_ wait``'s list (``agent.wait.watched``:
the world hash's files, the mailbox, ``sessions/.changed``, ``schedules/``),
widened by what only a person looks at: the journal (in the data dir), the
pulse's beat record and pid file (in the runtime dir), and each live
worker's ``output.log`` (its last line). Rejected: a timer that re-reads
the profile every second (a screen kept open all day would cost a read a
second of everything, for nothing most of the time).

Nothing shown is an age counted in seconds: a countdown would redraw every
second. Times are said as clock times (the next beat at ``14:02:30``) and
an ask's age in whole minutes, so the text changes with time only at the
moments ``next_change`` names: an ask's age rolling over a minute, a worker
turning quiet or stuck, the next beat turning overdue, a schedule's
instant coming.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

from looop import lines, watch
from looop.agent import state, wait
from looop.data import health, schedules, sensors, sessions
from looop.paths import Paths
from looop.pulse import status

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

OUTPUT_ROLE = "output"  # a live worker's output.log moved: only its last line may have
PULSE_ROLE = "pulse"  # the beat record or the pid file moved


LOG_LINES = 500  # of a followed worker's output.log, at most


def read(paths: Paths, follow: str | None = None) -> dict[str, Any]:
    """Everything the screen shows, as of now (``now`` included, for the ages).

    ``follow``: a worker whose ``output.log`` tail is read too (``log``).
    """
    data = state.collect(paths)
    report = status.collect(paths)
    pulse = report.as_dict()
    pulse["next_beat"] = (
        None if pulse["next_beat_in"] is None else report.now + pulse["next_beat_in"]
    )
    pulse["last_beat_at"] = (report.last_beat or {}).get("ended")
    for worker in data["workers"]:
        worker["last_line"] = last_line(paths, worker["id"]) if worker["alive"] else None
    return {
        "now": report.now,
        "data_dir": data["data_dir"],
        "pulse": pulse,
        "asks": data["asks"],
        "workers": data["workers"],
        "sensors": {
            name.removeprefix(sensors.PREFIX): value
            for name, value in sorted(data["snapshots"].items())
            if name.startswith(sensors.PREFIX)
        },
        "schedules": [s.as_dict(report.now) for s in schedules.listing(paths)],
        "journal": data["journal_tail"],
        "problems": data["problems"],
        "log": [] if follow is None else log_tail(paths, follow, LOG_LINES),
    }


def last_line(paths: Paths, wid: str) -> str | None:
    """The last non-blank line worker ``wid`` wrote to its ``output.log``; None for none."""
    try:
        found = lines.tail(paths.sessions / wid / sessions.OUTPUT, 5)
    except OSError:
        return None
    said = [line for line in found if line.strip()]
    return said[-1] if said else None


def log_tail(paths: Paths, wid: str, count: int) -> list[str]:
    """The last ``count`` lines of worker ``wid``'s ``output.log`` (followed with ``l``)."""
    try:
        return lines.tail(paths.sessions / wid / sessions.OUTPUT, count)
    except FileNotFoundError:
        return []
    except OSError as exc:
        return [f"({exc.strerror or exc})"]


def watched(paths: Paths, view: dict[str, Any] | None, follow: str | None) -> list[watch.Dir]:
    """``_ wait``'s directories, plus the journal, the beat record and the workers' output.

    ``view``: the live workers whose last line is shown; ``follow``: the
    worker whose log is followed.
    """
    found = [_with_journal(paths, d) for d in wait.watched(paths)]
    runtime = (os.path.basename(paths.beat_file), os.path.basename(paths.pid_file))
    found.append(watch.Dir(Path(paths.runtime_dir), PULSE_ROLE, names=runtime.__contains__))
    ids = {w["id"] for w in (view or {}).get("workers", []) if w["alive"]}
    for wid in sorted(ids | ({follow} if follow else set())):
        output = paths.sessions / wid
        found.append(watch.Dir(output, OUTPUT_ROLE, names=sessions.OUTPUT.__eq__))
    return found


def _with_journal(paths: Paths, d: watch.Dir) -> watch.Dir:
    """``d``, and when it is the data dir, with the journal among its names."""
    if d.path != paths.data_dir:
        return d
    names, journal = d.names, paths.journal.name
    return watch.Dir(d.path, d.role, lambda name: names(name) or name == journal, d.follow)


def next_change(paths: Paths, view: dict[str, Any]) -> float | None:
    """When (wall clock) the text shown would change though no file moved; None: never.

    An ask's age rolls over to the next minute; a live worker turns quiet,
    then stuck (its knobs, as ``Verdict.health`` judges); the next beat
    turns overdue (``status.OVERDUE_GRACE``); a schedule's next instant comes.
    """
    now = view["now"]
    moments: list[float] = []
    for ask in view["asks"]:
        ts = ask.get("ts")
        if isinstance(ts, int | float) and math.isfinite(ts):
            moments.append(ts + 60 * (math.floor(max(0.0, now - ts) / 60) + 1))
    for session in sessions.live(paths.sessions):
        if session.active is not None:
            quiet_after, _stuck_after = health.knobs(session.meta)
            moments.append(session.active + quiet_after)
        stuck = session.stuck_at()
        if stuck is not None:
            moments.append(stuck)
    pulse = view["pulse"]
    if pulse["next_beat"] is not None and isinstance(pulse["interval"], int | float):
        moments.append(pulse["next_beat"] + max(status.OVERDUE_GRACE * pulse["interval"], 60.0))
    moments += [s["next"] for s in view["schedules"] if s["next"] is not None]
    ahead = [t for t in moments if t > now]
    return min(ahead) if ahead else None


def ask_age(ask: dict[str, Any], now: float) -> str:
    """An ask's age in whole minutes (``<1m``, ``12m``, ``2h 5m``): it changes once a minute."""
    from looop.say import duration

    ts = ask.get("ts")
    if not isinstance(ts, int | float) or not math.isfinite(ts):
        return "?"
    minutes = int(max(0.0, now - ts) // 60)
    return "<1m" if minutes < 1 else f"{minutes}m" if minutes < 60 else duration(minutes * 60)


def clock(stamp: Any) -> str:
    """A moment as the local ``HH:MM:SS``; ``-`` for none."""
    if not isinstance(stamp, int | float) or not math.isfinite(stamp):
        return "-"
    return time.strftime("%H:%M:%S", time.localtime(stamp))
