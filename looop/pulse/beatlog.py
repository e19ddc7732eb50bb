"""What the pulse's log says about its beats: what changed, once, not every beat.

A sensor that fails every beat used to be the same warning every beat:
1,440 lines a day at the default interval, burying the one line that
mattered. Here each failing thing (a sensor, a built-in probe, the beat
itself, the publish) is said when it starts failing, again when its reason
changes, as a reminder while it lasts (after ``REMIND_FIRST`` beats, then
at most hourly), and once when it is well again. The first beat's summary is
said, so the log shows the pulse sensing; after it, a beat that changes
nothing says nothing.
A sensor's malformed cadence declaration is said once, when first seen
(again if it goes and comes back), not every beat it runs without one.
The beat record, ``looop status`` and the service manager's ``STATUS=``
line still show every beat.

The judgment is a small class fed one ``BeatResult`` at a time and
returning the lines to log, so the loop decides where they go and a test
reads them from the pulse's stderr. Rejected: rate-limiting the logger
itself (it would drop the recovery line as readily as a repeat, and cannot
tell a changed reason from the same one).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from looop import say
from looop.pulse.beat import BeatResult

REMIND_FIRST = 10  # beats of the same failure before the first reminder
REMIND_EVERY = 3600.0  # then at most one reminder this often (seconds)


@dataclass
class _Streak:
    reason: str
    since: float
    beats: int = 1
    reminded: float | None = None  # when the last reminder was said


def _failures(result: BeatResult) -> dict[str, str]:
    """What failed in this beat, by what to call it in the log: ``sensor x``, ``the beat``..."""
    if result.error is not None:
        return {"the beat": result.error}
    failing = {
        f"sensor {s['name']}": str(s.get("reason") or "failed")
        for s in result.sensors
        if not s.get("ok")
    }
    named = {s["name"] for s in result.sensors}
    for name in result.failed:
        if name not in named:  # a built-in probe: a bug of looop's, said as such
            failing[f"probe {name}"] = "failed (a looop bug: see its snapshot)"
    if result.publish_error is not None:
        failing["publishing"] = result.publish_error
    return failing


class BeatLog:
    """Feed it each beat (``lines``); it answers the lines worth logging, as (level, text)."""

    def __init__(self) -> None:
        self.streaks: dict[str, _Streak] = {}
        self.warned: set[str] = set()  # the cadence warnings said and still true
        self.first = True

    def lines(self, result: BeatResult) -> list[tuple[str, str]]:
        said: list[tuple[str, str]] = []
        failures = _failures(result)
        for what, streak in list(self.streaks.items()):
            if what not in failures:
                del self.streaks[what]
                beats = say.count(streak.beats, "failing beat")
                said.append(("info", f"{what} is ok again after {beats}"))
        for what, reason in failures.items():
            current = self.streaks.get(what)
            if current is None or current.reason != reason:
                self.streaks[what] = _Streak(reason, result.started)
                said.append(("warning", f"{what} fails: {reason}"))
            else:
                streak = current
                streak.beats += 1
                last = streak.reminded
                if streak.beats >= REMIND_FIRST and (
                    last is None or result.started - last >= REMIND_EVERY
                ):
                    streak.reminded = result.started
                    since = time.strftime("%Y-%m-%d %H:%M", time.localtime(streak.since))
                    said.append(
                        (
                            "warning",
                            f"{what} still fails ({streak.beats} beats, since {since}): {reason}",
                        )
                    )
        warnings = {str(s["warning"]) for s in result.sensors if s.get("warning")}
        said += [("warning", warning) for warning in sorted(warnings - self.warned)]
        self.warned = warnings
        if self.first:
            self.first = False
            level = "info" if result.healthy and not result.failed else "warning"
            said.append((level, f"first beat: {result.summary()}"))
        return said
