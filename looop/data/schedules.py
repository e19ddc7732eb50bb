"""``schedules/*.json``: durable time triggers, and when each one is due.

A schedule is how the root agent says "look at this again tomorrow morning":
``schedules/<name>.json`` holding ``{"at", "every", "note", "written"}``
(``at`` and ``written`` in Unix seconds, ``every`` in seconds or null). Its
*instants* are ``at`` for a one-shot, and ``at``, ``at + every``, ``at +
2 every``... for a recurring one. Nothing else is stored: whether a schedule
is due, and when it is next, are computed from the file and the clock by
whoever asks (``Schedule.last``, ``Schedule.next``), so no timer lives in a
process to be lost (a pulse restart, a reboot, a crashed wait), and a
recurring schedule re-arms by itself at each instant without a write.

What "due" means, and what wakes (``looop.agent.wait``, SPEC §8):

* a one-shot is due from its instant until it is removed (``_ schedule
  remove``): ``_ state`` lists it, with its note, every time, the way a
  pending ask stays listed until it is answered;
* a recurring one is listed from its first instant on with its latest
  instant (``due``) and its next one (``next``): each instant is one wake,
  and it needs nothing from the agent to fire again;
* a wait wakes (``changed: schedules``) at the first instant after its
  starting point: the output its ``--since`` cursor came from (the cursor
  carries the latest instant that output had seen come, ``latest``), or
  the moment the wait was armed.
  So an agent that was busy, or whose wait was killed by its tool, when an
  instant came is woken at once by its next ``_ wait --since``: an instant
  is never lost, and several missed instants of one schedule are one wake
  (the listing says the latest). Rejected: re-arming when a wait reports the
  instant (a reader that writes, two waits racing, and an output lost to a
  killed tool call loses the instant) or when the agent acknowledges (an
  agent that forgets never wakes again, and one more verb to learn).

Bounds: a recurring period is at least ``MIN_EVERY`` seconds; ``at`` and
``every`` at most ``MAX_AHEAD`` away; a note at most ``NOTE_MAX``
characters. A file that breaks them, or is not such a record, is no
schedule: it goes to ``problems`` (``_ state`` lists it) and wakes nothing.

Every read goes through ``jsonfile.read_object`` (no link followed, never
blocking on a FIFO, capped). The writes are the verbs' (``looop.agent.verbs``),
through ``record``; ``new`` holds a write to the bounds (and says what a
past ``--at`` means), ``instant`` reads ``--at``. Instants are compared in
whole microseconds (``us``), the form a cursor carries (``latest``).
"""

from __future__ import annotations

import math
import os
import time

from looop import jsonfile
from looop.data.layout import Problem, problem, shown, unlisted
from looop.errors import UsageError
from looop.paths import Paths

TYPE_CHECKING = False  # not typing's: ``_ wait`` and ``_ state`` read schedules
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

SUFFIX = ".json"
MIN_EVERY = 1.0  # seconds: a tighter loop is the pulse's beat, not a schedule
MAX_AHEAD = 10 * 366 * 86400.0  # seconds: ten years
NOTE_MAX = 4096  # characters
RECORD_MAX = 64 * 1024  # bytes a schedule file may have


class Schedule:
    """One schedule: its name, first instant, period (None: a one-shot) and note."""

    __slots__ = ("at", "every", "name", "note")

    def __init__(self, name: str, at: float, every: float | None, note: str | None) -> None:
        self.name, self.at, self.every, self.note = name, at, every, note

    def last(self, t: float) -> float | None:
        """Its latest instant at or before ``t``; None when none has come yet."""
        if t < self.at:
            return None
        if self.every is None:
            return self.at
        return self.at + math.floor((t - self.at) / self.every) * self.every

    def next(self, t: float) -> float | None:
        """Its first instant after ``t``; None for a one-shot whose instant has come."""
        if t < self.at:
            return self.at
        if self.every is None:
            return None
        return self.at + (math.floor((t - self.at) / self.every) + 1) * self.every

    def as_dict(self, now: float) -> dict[str, Any]:
        """``{"name", "due", "next", "every", "note"}`` at ``now`` (``due``: ``last``)."""
        return {
            "name": self.name,
            "due": self.last(now),
            "next": self.next(now),
            "every": self.every,
            "note": self.note,
        }


def path(paths: Paths, name: str) -> Path:
    """The file of schedule ``name``."""
    return paths.schedules / f"{name}{SUFFIX}"


def named(name: str) -> bool:
    """Does ``name`` look like a schedule's file? ``<name>.json``, never a dot-file (a temp)."""
    return name.endswith(SUFFIX) and not name.startswith(".")


def record(at: float, every: float | None, note: str | None, written: float) -> bytes:
    """The file a schedule is written as."""
    import json

    value = {"at": at, "every": every, "note": note, "written": written}
    return (json.dumps(value, ensure_ascii=False) + "\n").encode("utf-8")


def parse(name: str, value: dict[str, Any]) -> Schedule:
    """The schedule in a file's object; ValueError saying why it is none."""
    at, every, note = jsonfile.finite(value.get("at")), value.get("every"), value.get("note")
    if at is None or not 0 < at < time.time() + MAX_AHEAD:
        raise ValueError("has no valid 'at' (Unix seconds)")
    if every is not None:
        every = jsonfile.finite(every)
        if every is None or not MIN_EVERY <= every <= MAX_AHEAD:
            raise ValueError(f"has an 'every' that is not {MIN_EVERY:g} s to ten years")
    if note is not None and (not isinstance(note, str) or len(note) > NOTE_MAX):
        raise ValueError(f"has a 'note' that is not text of at most {NOTE_MAX} characters")
    return Schedule(name, at, every, note)


def listing(paths: Paths, problems: list[Problem] | None = None) -> list[Schedule]:
    """Every schedule, sorted by name; a file that holds none goes to ``problems``."""
    found: list[Schedule] = []
    try:
        names = sorted(n for n in os.listdir(paths.schedules) if named(n))
    except OSError as exc:
        unlisted(paths, paths.schedules, exc, problems)
        return []
    for file in names:
        where = paths.schedules / file
        try:
            if shown(file) != file:
                raise ValueError("is not a schedule: its name is not valid UTF-8; remove it")
            value = jsonfile.read_object(where, limit=RECORD_MAX)
            found.append(parse(file[: -len(SUFFIX)], value))
        except OSError as exc:
            if problems is not None:
                problems.append(problem(paths, where, exc))
        except ValueError as exc:
            if problems is not None:
                problems.append(problem(paths, where, str(exc)))
    return found


def us(instant: float) -> int:
    """An instant in whole microseconds: the one form instants are compared in."""
    return int(instant * 1_000_000)


def latest(found: list[Schedule], now: float) -> int:
    """The latest instant of any of ``found`` that has come by ``now`` (``us``); 0 for none.

    A cursor's mark: every instant after it is news, and it is the same for
    the same files whenever between two instants it is taken.
    """
    return max((us(t) for t in (s.last(now) for s in found) if t is not None), default=0)


def next_due(found: list[Schedule], mark: int) -> float | None:
    """The first instant of any of ``found`` after the mark ``mark`` (``us``); None for none."""
    after, instants = mark / 1_000_000, []
    for s in found:
        t = s.next(after)
        if t is not None and us(t) <= mark:  # the mark itself, rounded: not after it
            t = s.next(t)
        if t is not None:
            instants.append(t)
    return min(instants) if instants else None


def due(found: list[Schedule], now: float) -> list[dict[str, Any]]:
    """``Schedule.as_dict`` of each schedule whose (first) instant has come by ``now``."""
    return [s.as_dict(now) for s in found if s.last(now) is not None]


def instant(text: str, now: float) -> float:
    """The Unix time ``--at TEXT`` names; a UsageError (exit 2) for anything else.

    ``2026-12-08T09:00`` (or with a space, or with seconds) is local time,
    as the journal's stamps are: the human means their clock. An explicit
    offset (``+01:00``, ``Z``) is honoured. A date alone is its midnight;
    a time alone (``09:00``) is its next coming, today or tomorrow.
    """
    from datetime import datetime, timedelta

    try:
        if len(text) <= 8 and ":" in text:  # HH:MM[:SS]
            today = datetime.fromtimestamp(now).date().isoformat()
            when = datetime.fromisoformat(f"{today}T{text}")
            if when.timestamp() <= now:
                when += timedelta(days=1)
        else:
            when = datetime.fromisoformat(text)
        return when.timestamp()  # naive: local time
    except (ValueError, OverflowError, OSError):
        raise UsageError(
            f"--at: {text!r} is not a time (say 2026-12-08T09:00 for local time, "
            "add +01:00 or Z for another zone, or 09:00 for its next coming)"
        ) from None


def new(
    name: str,
    now: float,
    after: float | None = None,
    at: float | None = None,
    every: float | None = None,
    note: str | None = None,
) -> Schedule:
    """The schedule ``_ schedule write`` makes at ``now``; a UsageError for one out of bounds.

    ``after`` (``--in``, seconds from now) or ``at`` (``--at``, Unix time)
    give the first instant, ``every`` the period. A recurring schedule with
    neither is first due one period from now; with ``at`` in the past, that
    is its phase (``--at 09:00 --every 1d``: each day at nine) and its first
    instant is the next one to come. A one-shot ``at`` in the past is
    refused: it is a mistake (a date, a zone), not a wish to be woken at once.
    """
    if after is not None and at is not None:
        raise UsageError("give --in or --at, not both")
    if after is None and at is None and every is None:
        raise UsageError("give --in DURATION, --at TIME or --every DURATION")
    if every is not None and not MIN_EVERY <= every <= MAX_AHEAD:
        raise UsageError(f"--every must be {MIN_EVERY:g} s to ten years, not {every:g} s")
    if after is not None and not 0 < after <= MAX_AHEAD:
        raise UsageError(f"--in must be more than 0 s and at most ten years, not {after:g} s")
    if at is not None and at > now + MAX_AHEAD:
        raise UsageError("--at must be at most ten years ahead")
    if at is not None and at <= now and every is None:
        raise UsageError("--at names a time that has passed (a one-shot must be ahead)")
    if note is not None and len(note) > NOTE_MAX:
        raise UsageError(f"--note must be at most {NOTE_MAX} characters")
    first = now + after if after is not None else at if at is not None else now + (every or 0)
    schedule = Schedule(name, first, every, note)
    schedule.at = schedule.next(now) or first  # a past phase: its next instant is the first
    return schedule
