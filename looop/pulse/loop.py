"""The pulse: a single, long-running loop that beats on a fixed rate.

Shaped like gunicorn's arbiter. Signal handlers do nothing but queue the
signal (``looop.signals``); ``signal.set_wakeup_fd`` writes to a self-pipe
that wakes the loop's selector, and the loop handles the queue with one
``handle_<signal>`` method each, outside any handler. Of the stop signals,
SIGHUP means "reload the config" here (``RELOAD``), and SIGUSR1 "beat now"
(what ``looop sense`` sends: that beat runs every sensor, cached ones too;
see ``looop.pulse.cadence``). During a beat the
same pipe is watched by the sensor runner, so a stop ends running sensor
groups at once, and the beat is not published.

Start order matters to the service manager: config (exit 78) -> signal
handlers -> lock (exit 1 if a pulse holds it; a one-off ``looop sense`` is
waited for) -> seed -> first beat -> ``READY=1``. ``systemctl start``
therefore returns only once the world is readable, and a second pulse never
gets as far as touching the data dir.
"""

from __future__ import annotations

import math
import os
import selectors
import signal
import time
from pathlib import Path
from typing import Any

from looop import config, config_edit, fs
from looop.config import Config
from looop.data import events, layout
from looop.data.sensors import discover
from looop.errors import os_error_line
from looop.log import log
from looop.paths import Paths, RuntimeDirError
from looop.pulse import beat, beatlog, lock, notify, record, sensors
from looop.pulse.beat import BeatResult
from looop.signals import STOP_SIGNALS, SignalQueue

RELOAD = signal.SIGHUP  # a stop signal elsewhere; the pulse re-reads its config
BEAT_NOW = signal.SIGUSR1  # what `looop sense` sends a running pulse
IDLE_WAKE = 5.0  # the loop wakes (and ticks) at least this often between beats
BEAT_SLACK = 30.0  # allowance over the worst-case beat before the watchdog stops pinging
FAILING_LIMIT = 3  # beats in a row that cannot run at all before the pulse stops


def prepare(paths: Paths) -> list[Path]:
    """Seed the data dir and write the default config on first run."""

    written = layout.ensure_layout(paths)
    config_edit.write_defaults_if_missing(paths.config_file)
    return written


def beat_budget(cfg: Config, sensor_count: int) -> float | None:
    """The longest a beat may legitimately take, or None when it is unbounded."""
    if cfg.sensor_timeout <= 0:
        return None
    waves = max(1, math.ceil(sensor_count / max(1, cfg.sensor_concurrency)))
    return waves * (cfg.sensor_timeout + 2 * sensors.KILL_GRACE) + BEAT_SLACK


def longest_beat(paths: Paths, cfg: Config) -> float:
    """How long one beat of this profile may take; an hour when sensors have no timeout.

    An hour too when ``sensors/`` cannot be listed: how many there are is not known.
    """
    try:
        count = len(discover(paths.sensors))
    except OSError:
        return 3600.0
    return beat_budget(cfg, count) or 3600.0


class Pulse:
    def __init__(self, paths: Paths, cfg: Config) -> None:
        self.paths, self.config = paths, cfg
        self.lock: lock.PulseLock | None = None
        self.exit_code = 0
        self.notifier = notify.Notifier()
        self.watchdog = notify.Watchdog(self.notifier, notify.manager_watchdog_period())
        stop = frozenset(STOP_SIGNALS) - {RELOAD}
        self.signals = SignalQueue((*STOP_SIGNALS, BEAT_NOW), stop=stop)
        self.stopping = False
        self.beat_requested = False
        self.fresh_requested = False  # `looop sense` asked: cached sensors run too
        self.beats = 0
        self.last_result: BeatResult | None = None
        # The streak of beats that failed, for the beat record: count, since, why.
        self.failing: dict[str, Any] | None = None
        self.beat_log = beatlog.BeatLog()  # what the log says of each beat: changes only
        self.started_wall = time.time()
        # When the config was last (re)loaded: `looop reload` waits for a beat record saying so.
        self.config_loaded = self.started_wall
        self.next_beat = time.monotonic()
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.signals.fd, selectors.EVENT_READ)

    # --- signals: queued by their handlers, handled here ------------------
    def _handle_queued(self) -> None:
        while (signum := self.signals.pop()) is not None:
            getattr(self, f"handle_{signal.Signals(signum).name[3:].lower()}")()

    def _stop_requested(self) -> bool:
        """For the beat: has a stop signal arrived? Leaves every signal queued."""
        if self.signals.stop_requested() is not None:
            self.stopping = True
        return self.stopping

    def handle_term(self) -> None:
        log.info("stopping (SIGTERM)")
        self.stopping = True

    def handle_int(self) -> None:
        log.info("stopping (SIGINT)")
        self.stopping = True

    def handle_hup(self) -> None:
        self.notifier.reloading()
        try:
            self.config = config.load(self.paths.config_file)
            self.config_loaded = time.time()
            for warning in self.config.warnings:
                log.warning(warning)
            log.info(f"config reloaded · interval {self.config.interval:g}s")
        except config.ConfigError as exc:
            log.error(f"config not reloaded, keeping the previous one: {exc}")
        self.notifier.ready()
        self.beat_requested = True

    def handle_usr1(self) -> None:
        self.beat_requested = self.fresh_requested = True

    # --- the loop ----------------------------------------------------------
    def run(self) -> int:
        period = self.watchdog.period
        if period is None:
            events_file = self.paths.events
            notify.InternalWatchdog(
                self.watchdog,
                notify.internal_period(),
                on_stall=lambda why: events.record(events_file, "watchdog_abort", message=why),
            ).start()
        self.beat()
        if self.stopping:
            return self.shutdown()
        self.notifier.ready(self.status_text())
        while not self.stopping:
            self._handle_queued()
            if self.stopping:
                break
            now = time.monotonic()
            if self.beat_requested or now >= self.next_beat:
                self.beat()
                continue
            wake = min(self.next_beat - now, IDLE_WAKE)
            ping_in = self.watchdog.next_ping_in()
            if ping_in is not None:
                wake = min(wake, ping_in)
            self.watchdog.deadline = self.next_beat + IDLE_WAKE + BEAT_SLACK
            self.selector.select(max(0.0, wake))
            self.watchdog.tick()
        return self.shutdown()

    def beat(self) -> None:
        self.beat_requested = False
        started = time.monotonic()
        self.beats += 1
        self.watchdog.tick()
        # Fixed rate: the next beat starts `interval` after this one started;
        # an overrun starts it at once (never overlapping).
        self.next_beat = started + self.config.interval
        if not self._keep_lock():
            return
        wall = time.time()
        scripts: list[Path] = []
        # Taken before anything can fail: a failed beat a person asked for answers them.
        fresh, self.fresh_requested = self.fresh_requested, False
        try:
            self._lay_out()
            # A listing that fails is not "no sensors": this beat fails, the last world stays.
            scripts = discover(self.paths.sensors)
            budget = beat_budget(self.config, len(scripts))
            self.watchdog.deadline = None if budget is None else started + budget
            self.watchdog.tick()
            result = beat.run_beat(
                self.paths,
                self.config,
                self.beats,
                on_tick=self.watchdog.tick,
                cancel_fd=self.signals.fd,
                cancelled=self._stop_requested,
                scripts=scripts,
                fresh=fresh,
            )
        except Exception as exc:  # a bug or a broken data dir must not end the loop unsaid
            why = os_error_line(exc) if isinstance(exc, OSError) else repr(exc)
            result = BeatResult(
                self.beats, wall, time.time(), len(scripts), [], "", error=why, fresh=fresh
            )
        if result.cancelled:
            return
        self._judge(result)
        record.write(
            self.paths,
            result,
            pid=os.getpid(),
            pulse_started=self.started_wall,
            config_loaded=self.config_loaded,
            interval=self.config.interval,
            next_beat=time.time() + max(0.0, self.next_beat - time.monotonic()),
            failing=self.failing,
        )
        for level, line in self.beat_log.lines(result):
            log.emit(level, line)
        self.last_result = result
        self.notifier.status(self.status_text())
        self.watchdog.tick()

    def _lay_out(self) -> None:
        """Lay the data dir out again before each beat: one removed under the pulse comes back.

        A layout directory whose name holds something else (a dangling
        ``goals/`` link) is said, and the beat goes on: the sensors and the
        rest of the world do not depend on it. A data dir that cannot be made
        at all raises, and the beat fails.
        """
        try:
            prepare(self.paths)
        except fs.BadFile as exc:
            log.warning(os_error_line(exc))

    def _judge(self, result: BeatResult) -> None:
        """Keep the streak of failing beats, and stop when the data dir stays broken.

        A beat that could not run at all (the data dir replaced by a file,
        unwritable, its beat lock refused) ``FAILING_LIMIT`` times in a row
        ends the pulse with exit 1, so the service manager restarts it and
        says so, instead of a pulse that looks up while nothing is sensed. A
        beat whose world could not be published (a full or read-only disk)
        keeps the previous world and the pulse keeps beating: that heals by
        itself. Either way ``status`` and ``_ state`` show the streak.
        """
        if result.healthy:
            self.failing = None
            return
        why = result.error or result.publish_error or "failed"
        if self.failing is None:
            self.failing = {"count": 0, "since": result.started, "why": why, "errors": 0}
        self.failing["count"] += 1
        self.failing["why"] = why
        self.failing["errors"] = self.failing["errors"] + 1 if result.error else 0
        if self.failing["errors"] >= FAILING_LIMIT:
            log.error(f"stopping: {FAILING_LIMIT} beats in a row could not run: {why}")
            self.stopping = True
            self.exit_code = 1

    def _keep_lock(self) -> bool:
        """Make sure the lock file still names the file we hold locked.

        A temp-file cleaner (or a person) may delete the lock file under a
        long-running pulse; then the next pulse would lock a new file and run
        beside us. So every beat checks, touches the file (cleaners go by
        age), and takes the lock afresh if it is gone, before letting go of
        the old one. False means: do not beat now (if another pulse has the
        lock, this one stops; otherwise it tries again next beat). A name
        that holds something no pulse can lock (a FIFO, a directory) excludes
        every other pulse too, so this one goes on under the lock it has and
        says so.
        """
        held = self.lock
        if held is not None and held.still_ours():
            held.touch()
            return True
        if held is not None:
            log.warning(f"lock file {self.paths.lock_file} was removed; taking the lock again")
        try:
            fresh = lock.acquire(self.paths)
        except lock.AlreadyRunning as other:
            if other.holder is not None and not other.holder.is_pulse:
                log.warning(f"a one-off beat (pid {other.pid}) holds the lock; retrying")
                return False
            log.error(f"another pulse took the lock (pid {other.pid}); stopping")
            self.stopping = True
            self.exit_code = 1
            return False
        except fs.BadFile as exc:
            if held is None:
                log.error(f"cannot take the lock again: {exc}; retrying next beat")
                return False
            log.error(f"{exc}; beating on under the lock this pulse holds")
            return True
        except (OSError, RuntimeDirError) as exc:
            log.error(f"cannot take the lock again: {exc}; retrying next beat")
            return False
        if held is not None:
            held.abandon()
        self.lock = fresh
        return True

    def status_text(self) -> str:
        """``beat 12 · 7/8 sensors ok · next in 52s`` for ``STATUS=``."""
        next_in = max(0, round(self.next_beat - time.monotonic()))
        last = self.last_result
        if last is None:
            return f"next beat in {next_in}s"
        return f"beat {last.number} · {last.ok}/{last.total} sensors ok · next in {next_in}s"

    def shutdown(self) -> int:
        self.notifier.stopping()
        log.info("pulse stopped")
        return self.exit_code


def run_pulse(paths: Paths, cfg: Config) -> int:
    """``looop pulse``: lock, seed, beat forever. Raises lock.AlreadyRunning."""
    pulse = Pulse(paths, cfg)
    # Handlers first: a `looop sense` that sees the lock held sends SIGUSR1 at
    # once, and the default action of SIGUSR1 (and SIGHUP) is to die.
    pulse.signals.install()
    try:
        pulse.lock = lock.acquire(paths, outwait_sense=lambda: not pulse._stop_requested())
    except lock.AlreadyRunning:
        if pulse.stopping:  # stopped while waiting for a one-off beat to end
            return pulse.shutdown()
        raise
    try:
        record.close_unended(paths)  # before the first beat's record names this run
        prepare(paths)
        log.info(f"pulse started (pid {os.getpid()}) · sensing every {cfg.interval:g}s")
        code = pulse.run()
        # A clean end, said while the lock is still held (a crash says nothing: record.how_ended).
        record.write_end(paths, result="success", code="exited", status=code)
        return code
    finally:
        if pulse.lock is not None:
            pulse.lock.release()
