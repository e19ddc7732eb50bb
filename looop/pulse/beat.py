"""One beat: run every sensor, publish the readings, record what happened.

This is the whole of sensing; the pulse decides *when* to beat and ``looop
sense`` may beat once, but both call ``run_beat`` and only while holding the
profile's lock, so no two beats ever run at once on one data dir. A beat never
raises for a sensor's sake: failures become readings. It reports a publish
failure (disk full) in its result and keeps the previous generation.

Its result becomes the beat record (``looop.pulse.record``) that ``looop status``
and ``looop sense`` read.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from looop import say
from looop.config import Config
from looop.data import events, snapshots
from looop.data.sensors import PREFIX, age, discover
from looop.paths import Paths, child_environment
from looop.pulse import cadence, lock, probes, sensors, worldhash


@dataclass
class BeatResult:
    number: int
    started: float  # wall clock, Unix seconds
    ended: float
    total: int
    failed: list[str]
    world_hash: str
    publish_error: str | None = None
    cancelled: bool = False
    error: str | None = None  # the beat itself failed (the data dir is gone...): why
    fresh: bool = False  # every sensor ran, cadence or not (a beat a person asked for)
    # Each user sensor's result: name, ok, duration (s), exit_code, reason (None when ok),
    # every (its cadence, s), cached (a republished reading's age, s), warning (its cadence's).
    sensors: list[dict[str, Any]] = field(default_factory=list)
    # The live workers ``sys-sessions`` counted: what ``status`` shows, never scanning itself.
    workers: int | None = None

    @property
    def healthy(self) -> bool:
        """The beat ran and its world was published (sensors may still have failed)."""
        return self.error is None and self.publish_error is None and not self.cancelled

    @property
    def ok(self) -> int:
        return self.total - len(self.failed)

    @property
    def duration(self) -> float:
        return self.ended - self.started

    def summary(self) -> str:
        if self.cancelled:
            return f"beat {self.number} cancelled"
        if self.error is not None:
            return f"beat {self.number} failed: {self.error}"
        if self.failed:
            line = f"{self.ok}/{self.total} sensors ok · failed: {', '.join(self.failed)}"
        else:
            line = f"{say.count(self.total, 'sensor')} ok ({self.duration:.1f}s)"
        cached = sum(1 for row in self.sensors if row.get("cached") is not None)
        if cached:
            line += f" · {cached} cached"
        if self.publish_error:
            line += f" · not published: {self.publish_error}"
        return line


def user_readings(
    paths: Paths,
    config: Config,
    scripts: list[Path],
    on_tick: Callable[[], None] | None = None,
    cancel_fd: int | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> list[sensors.Reading]:
    """Run ``scripts`` as a beat runs its sensors (environment, limits, data dir as cwd).

    ``looop _ sensor test`` runs one sensor through here, so a test is exactly
    a beat's run of it, without publishing.
    """
    if not scripts:  # every sensor kept (or none): no runner, no lifeline to start
        return []
    env = child_environment(paths, os.environ)
    limits = sensors.Limits(
        config.sensor_timeout, config.sensor_max_bytes, config.sensor_concurrency
    )
    run = sensors.SensorRun(
        scripts,
        cwd=paths.data_dir,
        env=env,
        limits=limits,
        on_tick=on_tick,
        cancel_fd=cancel_fd,
        cancelled=cancelled,
    )
    return run.run()


def run_beat(
    paths: Paths,
    config: Config,
    number: int,
    *,
    on_tick: Callable[[], None] | None = None,
    cancel_fd: int | None = None,
    cancelled: Callable[[], bool] | None = None,
    scripts: list[Path] | None = None,
    fresh: bool = False,
) -> BeatResult:
    """One beat; ``scripts`` are the sensors (discovered when not given).

    Sensors with a cadence run only when due (``looop.pulse.cadence``);
    ``fresh`` runs every one (a beat a person asked for).

    OSError when ``sensors/`` cannot be listed: the previous world stays.

    The data dir's beat lock is held throughout (``lock.beat_lock``), so a
    beat never overlaps another on this data dir, whoever runs it.
    """
    stopped = cancelled or (lambda: False)
    with lock.beat_lock(paths, stopped) as held:
        if not held:
            return BeatResult(number, time.time(), time.time(), 0, [], "", cancelled=True)
        return _locked_beat(paths, config, number, on_tick, cancel_fd, stopped, scripts, fresh)


def _locked_beat(
    paths: Paths,
    config: Config,
    number: int,
    on_tick: Callable[[], None] | None,
    cancel_fd: int | None,
    stopped: Callable[[], bool],
    scripts: list[Path] | None,
    fresh: bool,
) -> BeatResult:
    if scripts is None:  # raises when sensors/ cannot be listed: nothing is published
        scripts = discover(paths.sensors)
    started = time.time()
    pid = os.getpid()
    events.record(paths.events, "beat_start", beat=number, pid=pid)
    chosen = cadence.plan(paths, scripts, config.interval, started, fresh)
    readings = user_readings(paths, config, chosen.due, on_tick, cancel_fd, stopped)

    def cancel() -> BeatResult:
        # Stopped mid-beat: nothing is published, the previous world stays.
        events.record(paths.events, "beat_cancelled", beat=number, pid=pid)
        return BeatResult(number, started, time.time(), len(scripts), [], "", cancelled=True)

    if stopped():
        return cancel()
    files, rows = _sensor_files(chosen, readings, started)
    failed = [row["name"] for row in rows if not row["ok"]]
    workers = None
    for name, probe in probes.PROBES.items():
        try:
            value = probe(paths)
        except Exception as exc:  # a probe's bug must not cost the beat
            value = sensors.error_value({"probe_failed": True}, f"{name}: {exc!r}")
            failed.append(name)
        if name == probes.SESSIONS:
            workers = value.get("detail", {}).get("live")
        files[f"{name}.json"] = _encode(value)
        if on_tick is not None:
            on_tick()
        if stopped():
            return cancel()
    publish_error = None
    try:
        snapshots.publish(paths, files)
    except snapshots.PublishError as exc:
        publish_error = str(exc)
    # Published: the world is what was just written, not read back file by file.
    result = BeatResult(
        number,
        started,
        time.time(),
        len(rows),
        failed,
        worldhash.world_hash(paths, files if publish_error is None else None),
        publish_error,
        fresh=fresh,
        sensors=rows,
        workers=workers,
    )
    events.record(
        paths.events,
        "sense_done",
        beat=number,
        pid=pid,
        total=result.total,
        ok=result.ok,
        failed=failed,
        duration=round(result.duration, 3),
        world_hash=result.world_hash,
        publish_error=publish_error,
    )
    return result


def _sensor_files(
    chosen: cadence.Plan, readings: list[sensors.Reading], now: float
) -> tuple[dict[str, bytes], list[dict[str, Any]]]:
    """The files the user sensors publish, and their rows in the beat record, sorted by name.

    A sensor run now publishes its reading; a kept one republishes its
    reading marked ``cached``, and its ``.err`` as it was. The kept record
    of every sensor with a cadence goes into ``cadence.KEPT``.
    """
    files: dict[str, bytes] = {}
    rows: list[dict[str, Any]] = []
    kept: dict[str, dict[str, Any]] = {}
    for reading in readings:
        name, every = reading.name, chosen.every.get(reading.name)
        files[f"{name}.json"] = _encode(reading.value)
        if every is not None:
            kept[name] = cadence.kept_record(reading, every, chosen.identity[name], now)
        if not reading.ok:
            files[f"{name}.err"] = reading.stderr
        rows.append(_row(reading, every, None, chosen.warnings.get(name)))
    for old in chosen.kept:
        reading = old.reading
        files[f"{reading.name}.json"] = _encode(cadence.mark(reading.value, old.read_at, old.every))
        kept[reading.name] = old.record
        if not reading.ok:
            files[f"{reading.name}.err"] = reading.stderr
        rows.append(_row(reading, old.every, age(old.read_at, now), None))
    if kept:
        files[cadence.KEPT] = _encode(dict(sorted(kept.items())))
    rows.sort(key=lambda row: row["name"])
    return files, rows


def _row(
    reading: sensors.Reading, every: int | None, cached: int | None, warning: str | None
) -> dict[str, Any]:
    """A sensor's row in the beat record; ``cached`` is a kept reading's age (s)."""
    return {
        "name": reading.name.removeprefix(PREFIX),
        "ok": reading.ok,
        "duration": round(reading.duration, 3),
        "exit_code": reading.exit_code,
        "reason": reading.reason,
        "every": every,
        "cached": cached,
        "warning": warning,
    }


def _encode(value: Any) -> bytes:
    # ASCII escapes: a reading may hold text that is not valid UTF-8 (a lone
    # surrogate from a "\ud800" escape) and must still be written.
    return (json.dumps(value, ensure_ascii=True) + "\n").encode()
