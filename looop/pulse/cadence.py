"""Sensor cadence: which sensors a beat runs, and the readings it republishes between runs.

A sensor that declares ``# looop: every 10m`` (``looop.data.sensors.cadence``
reads the declaration) is run only when its last reading is due; between
its runs each beat republishes that reading: the same signal, so the world
hash does not move, and a ``detail.cached`` object saying when it was read
and the cadence (``mark``; ``_ state`` adds its age as of the moment it is
read). A rate-limited observer (an API, a slow build) is then not run every
beat, and the root agent still finds its reading in every world.

**Where the last reading is kept.** In the published generation itself:
``snapshots/.cadence`` (``KEPT``) is one JSON object holding, for each
sensor with a cadence, by snapshot name: its raw reading (as the sensor
printed it, or the error object a failure became), whether it was ok, its
exit code, when it was read (wall-clock Unix seconds: it must mean the same
to the next pulse), the declared cadence and the script's identity (device,
inode, size, mtime, ctime). It is published with the readings it describes,
in the same atomic swap, so the two never disagree, and it goes when its
generation is pruned; a failed reading's ``.err`` is republished beside it.
A restarted pulse reads the generation it finds and reruns nothing that is
not due. It is not ``.json``: nothing of it is part of the world. One file
for all, not one beside each reading: a beat that republishes 45 readings
would link and prune 45 more files, which cost as much as the readings
themselves (``bench/bench_cadence.py``); unchanged, the one file is
hard-linked into the next generation. Rejected: the runtime dir (a reboot
empties it and every cached sensor would run at once on the first beat), a
file of its own under the data dir (a second thing to keep in step with the
published readings, and to repair when a crash leaves it ahead of them),
and the snapshot's mtime (files are hard-linked between generations when
their bytes do not change, so the mtime is when the bytes first appeared,
not when the sensor last ran).

**When a sensor is due.** When it has no kept reading, when its script's
identity changed (edited, replaced, ``chmod``-ed: a fix is run at once, not
after the stale reading ages out), when the reading is from the future (the
clock was set back: rather one run too many than a sensor frozen for as long
as the clock jumped), or when the reading is at least ``every`` old, less
``SLACK`` (or half the beat interval, when that is shorter) for the beats'
own timing: a sensor with ``every 10m`` under a 60 s beat runs every tenth
beat, not every eleventh for a reading a few milliseconds short. Never
earlier than that: the cadence is the most often a rate-limited observer is
run, so ``every 7m`` under a 5 min beat runs every other beat (10 min),
not every beat. A cadence shorter than the beat interval is every beat. A failed reading is
kept like any other: rerunning a rate-limited observer every beat because it
failed would make it fail the more; it still counts as failed in each beat.

**A beat asked for by a person** (``looop sense``, by itself or through the
running pulse's SIGUSR1) runs every sensor, cached ones included (``fresh``):
whoever asks for a beat now wants readings as of now. The pulse's own beats
and a reload's beat keep the cadence.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any

from looop import fs, say
from looop.data import snapshots
from looop.data.sensors import cadence, every_text, snapshot_name
from looop.paths import Paths
from looop.pulse import sensors

KEPT = ".cadence"  # in each generation: what ``plan`` needs to republish a reading
SLACK = 1.0  # seconds a reading may be short of its cadence and still be due


class Kept:
    """A sensor not run this beat: its last reading and what to republish with it."""

    __slots__ = ("every", "read_at", "reading", "record")

    def __init__(self, reading: sensors.Reading, record: dict[str, Any]) -> None:
        self.reading, self.record = reading, record
        self.read_at, self.every = float(record["read_at"]), int(record["every"])


class Plan:
    """One beat's sensors: those to run, those kept, and what each declares."""

    def __init__(self) -> None:
        self.due: list[Path] = []
        self.kept: list[Kept] = []
        self.every: dict[str, int] = {}  # snapshot name -> seconds, sensors with a cadence
        self.identity: dict[str, list[int]] = {}  # snapshot name -> the script's identity
        self.warnings: dict[str, str] = {}  # snapshot name -> a malformed declaration's warning


def identity(script: Path) -> list[int]:
    """What changes when the script is edited, replaced or ``chmod``-ed (links followed)."""
    st = os.stat(script)
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def due_at(read_at: float, every: int, interval: float) -> float:
    """When a reading taken at ``read_at`` is due again (wall clock)."""
    return read_at + every - min(SLACK, interval / 2)


def _due(read_at: float, every: int, interval: float, now: float) -> bool:
    """Is a reading taken at ``read_at`` due now? Always, when it is from the future."""
    return now < read_at or now >= due_at(read_at, every, interval)


def plan(paths: Paths, scripts: list[Path], interval: float, now: float, fresh: bool) -> Plan:
    """Which of ``scripts`` this beat runs, and the readings it keeps; ``fresh`` runs them all."""
    result = Plan()
    gen = snapshots.current(paths)
    kept = read_kept(gen)
    for script in scripts:
        name = snapshot_name(script)
        try:
            ident = identity(script)
        except OSError:  # gone or unreadable: the runner says why
            result.due.append(script)
            continue
        last = kept.get(name)
        if last is not None and last["script"] == ident:
            every: int | None = last["every"]
        else:
            last = None
            declared = cadence(script)
            if declared.warning is not None:
                result.warnings[name] = declared.warning
            every = declared.every
        if every is None:
            result.due.append(script)
            continue
        result.every[name], result.identity[name] = every, ident
        if fresh or last is None or _due(last["read_at"], every, interval, now):
            result.due.append(script)
        else:
            result.kept.append(_kept(gen, name, last))
    return result


def read_kept(gen: Path | None) -> dict[str, dict[str, Any]]:
    """The kept records of generation ``gen`` by snapshot name; only well-formed ones."""
    if gen is None:
        return {}
    try:
        found = json.loads(fs.read_small(gen / KEPT, limit=snapshots.READ_LIMIT))
    except (OSError, ValueError):
        return {}  # none, or not one looop wrote: the sensors run
    if not isinstance(found, dict):
        return {}
    return {
        name: record
        for name, record in found.items()
        if isinstance(record, dict)
        and isinstance(record.get("read_at"), int | float)
        and isinstance(record.get("every"), int)
        and isinstance(record.get("script"), list)
        and isinstance(record.get("ok"), bool)
        and "value" in record
    }


def _kept(gen: Path | None, name: str, record: dict[str, Any]) -> Kept:
    """A kept reading as the runner would have made it, its stderr from the ``.err`` kept."""
    err = b""
    if not record["ok"] and gen is not None:
        with contextlib.suppress(OSError):
            err = fs.read_small(gen / f"{name}.err", limit=sensors.STDERR_FILE)
    code = record.get("exit_code")
    reading = sensors.Reading(
        name, record["value"], record["ok"], code if isinstance(code, int) else None, err
    )
    return Kept(reading, record)


def kept_record(
    reading: sensors.Reading, every: int, ident: list[int], read_at: float
) -> dict[str, Any]:
    """The kept record of a reading just taken."""
    return {
        "read_at": read_at,
        "every": every,
        "script": ident,
        "ok": reading.ok,
        "exit_code": reading.exit_code,
        "value": reading.value,
    }


def mark(value: Any, read_at: float, every: int) -> Any:
    """``value`` as republished: the same wake signal, ``detail.cached`` saying when it was read.

    A reading with a ``signal`` keeps it, and its ``detail`` gains ``cached``
    (a ``detail`` that is not an object moves to ``detail.value``); any other
    reading, whose whole self is its signal, becomes that ``signal``. The
    mark holds no age: the same bytes every beat until the sensor runs
    again, so the file is hard-linked into each generation, not written
    anew (``bench/bench_cadence.py``: writing 45 files a beat cost more than
    all the rest of a cached beat); readers add the age as of when they read
    (``looop.data.sensors.with_age``).
    """
    cached = {"read_at": round(read_at, 3), "every": every}
    if isinstance(value, dict) and "signal" in value:
        detail = value.get("detail")
        if isinstance(detail, dict):
            return {**value, "detail": {**detail, "cached": cached}}
        kept = {"value": detail} if "detail" in value else {}
        return {**value, "detail": {**kept, "cached": cached}}
    return {"signal": value, "detail": {"cached": cached}}


def next_run(interval: float, next_beat: float | None, read_at: float, every: int) -> float:
    """When the pulse would next run a sensor read at ``read_at``: the first beat once due.

    ``next_beat`` is the running pulse's next beat (None when none runs: the
    answer is then the due time itself).
    """
    due = due_at(read_at, every, interval)
    if next_beat is None:
        return due
    if due <= next_beat:
        return next_beat
    return next_beat + math.ceil((due - next_beat) / interval) * interval


def outlook(paths: Paths, interval: float, script: Path, now: float) -> dict[str, Any]:
    """``_ sensor test``'s word on a sensor's cadence, and when the pulse would next run it.

    ``every`` (s, None: every beat), ``line`` (of the declaration),
    ``warning`` (a malformed one's), ``next_run`` (wall clock: the running
    pulse's beat that will run it, or with no pulse running the time it is
    due; None when that is the next beat of a pulse not running) and
    ``said``, the one line a person reads.
    """
    from looop.pulse import lock, record  # the beat does not need them

    declared = cadence(script)
    running = lock.pulse_holder(paths)
    beat_record = record.read(paths) or {}
    next_beat = beat_record.get("next_beat")
    if not (running and beat_record.get("pid") == running and isinstance(next_beat, int | float)):
        next_beat = None
    report: dict[str, Any] = {
        "every": declared.every,
        "line": declared.line,
        "warning": declared.warning,
        "next_run": next_beat,
    }
    if declared.every is None:
        said = "no cadence: the pulse runs it every beat"
        report["said"] = declared.warning or said
        return report
    said = f"every {every_text(declared.every)} (line {declared.line})"
    name = snapshot_name(script)
    last = read_kept(snapshots.current(paths)).get(name)
    try:
        changed = last is not None and last["script"] != identity(script)
    except OSError:
        changed = True
    if last is None or changed:
        why = "the script changed since its last run" if changed else "no reading of it is kept"
        report["said"] = f"{said} · the pulse runs it at its next beat ({why})"
        return report
    when = report["next_run"] = next_run(interval, next_beat, last["read_at"], declared.every)
    at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))
    if next_beat is None:
        report["said"] = f"{said} · due at {at}; no pulse is running"
    else:
        in_words = say.duration(when - now)
        report["said"] = f"{said} · the pulse would next run it at {at} (in {in_words})"
    return report
