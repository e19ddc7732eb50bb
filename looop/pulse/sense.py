"""``looop sense``: one beat now, without ever beating beside the pulse.

If a pulse runs, it is asked to beat (SIGUSR1) and its beat record is
awaited: the pulse stays the sole senser. Otherwise this process takes the
lock as a one-off (role ``sense``, so nobody mistakes it for a pulse), beats
once and lets go; a pulse started meanwhile waits for that beat to end.

A one-off beat is stopped the way the pulse is (``looop.signals``):
SIGTERM, SIGINT or SIGHUP is queued, the beat sees it through the wake-up
pipe, ends every running sensor group, publishes nothing and the command
exits 128 + the signal's number.

Either way the beat is *fresh*: sensors with a cadence run too
(``looop.pulse.cadence``), since whoever asks for a beat now wants readings
as of now; the pulse's own beats keep the cadence.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

from looop import errors
from looop.config import Config
from looop.data.sensors import every_text
from looop.errors import LooopError
from looop.paths import Paths
from looop.pulse import beat, lock, record
from looop.pulse.loop import BEAT_NOW, longest_beat, prepare
from looop.signals import STOP_SIGNALS, SignalQueue

ASK_POLL = 0.02  # how often the pulse's beat record is read while it beats for us


@dataclass
class SenseOutcome:
    summary: str
    record: dict[str, Any]
    via_pulse: bool

    @property
    def healthy(self) -> bool:
        """The beat ran and published its world (whatever its sensors said)."""
        return self.failure is None

    @property
    def failure(self) -> str | None:
        """Why the beat failed or was not published (a line naming the file); None if it was."""
        why = self.record.get("error") or self.record.get("publish_error")
        return str(why) if why else None

    @property
    def exit_code(self) -> int:
        """``sense``'s exit: 0 once the beat published, whatever its sensors said; else 1."""
        return errors.OK if self.healthy else errors.FAILED


class SenseError(LooopError):
    pass


def _stopped(signum: int) -> SenseError:
    name = signal.Signals(signum).name
    return SenseError(
        f"interrupted by {name}: nothing was published and running sensors were ended",
        exit_code=128 + signum,
    )


def sense_now(paths: Paths, cfg: Config, wait_limit: float | None = None) -> SenseOutcome:
    """One beat now: by the running pulse if there is one, else by us under the lock."""
    # Another `looop sense` may mistake us for a pulse and ask us to beat.
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    signals = SignalQueue(STOP_SIGNALS)
    signals.install()
    try:
        held = lock.acquire(paths, role=lock.SENSE)
    except lock.AlreadyRunning as running:
        if running.holder is not None and not running.holder.is_pulse:
            raise SenseError(f"a beat is already running (pid {running.pid}); try again") from None
        return _ask_pulse(paths, cfg, wait_limit, signals)
    try:
        prepare(paths)
        result = beat.run_beat(
            paths,
            cfg,
            _next_number(paths),
            cancel_fd=signals.fd,
            cancelled=lambda: signals.stop_requested() is not None,
            fresh=True,
        )
        stop = signals.stop_requested()
        if stop is not None:
            raise _stopped(stop)
        record.write(paths, result, pid=os.getpid(), interval=cfg.interval)
    finally:
        held.release()
    return SenseOutcome(result.summary(), record.read(paths) or {}, via_pulse=False)


def print_now(paths: Paths, cfg: Config, as_json: bool, verbose: bool) -> int:
    """``looop sense``: beat now and print its summary (``-v``: the sensor table first;
    ``--json``: the record); its exit code, a failure also said (raised) on stderr."""
    from looop.say import escaped, print_json
    from looop.style import waiting

    with waiting("the beat's sensors"):
        outcome = sense_now(paths, cfg)
    say_warnings(outcome.record)
    if as_json:
        print_json(outcome.record)
    elif verbose:
        sys.stdout.write(f"{sensor_table(outcome.record)}\n\n{escaped(outcome.summary)}\n")
    else:
        sys.stdout.write(escaped(outcome.summary) + "\n")
    if outcome.failure is not None:  # said on stderr too, as every failure is
        raise SenseError(outcome.failure, outcome.exit_code)
    return outcome.exit_code


def sensor_table(rec: dict[str, Any]) -> str:
    """The beat record's sensors as ``looop sense -v`` prints them: slowest first.

    Columns: name, ok or failed, duration, cadence (``every 1h``; ``every
    beat`` with a malformed declaration), reason (a failure's, on one line).
    The beat ``sense`` asks for runs every sensor, so none is shown cached.
    """
    rows = [r for r in rec.get("sensors") or [] if isinstance(r, dict)]
    rows.sort(key=lambda r: -float(r.get("duration") or 0))
    from looop import say

    header = ("sensor", "result", "duration", "cadence", "reason")
    return say.table(
        header,
        [
            (
                str(r.get("name")),
                ("ok", None) if r.get("ok") else ("failed", "bad"),
                f"{float(r.get('duration') or 0):.2f}s",
                cadence_cell(r),
                str(r.get("reason") or ""),
            )
            for r in rows
        ],
    )


def say_warnings(rec: dict[str, Any]) -> None:
    """Log each malformed cadence declaration of the beat (``sensors/x.sh:2: ...``)."""
    rows = [r for r in rec.get("sensors") or [] if isinstance(r, dict) and r.get("warning")]
    if rows:
        from looop.log import log

        for row in rows:
            log.warning(str(row["warning"]))


def cadence_cell(row: dict[str, Any]) -> str:
    """A sensor's cadence as ``sense -v`` says it; empty for one that runs every beat."""
    if row.get("warning"):
        return "every beat (declaration malformed)"
    every = row.get("every")
    return f"every {every_text(every)}" if isinstance(every, int) else ""


def _next_number(paths: Paths) -> int:
    number = (record.read(paths) or {}).get("number")
    return number + 1 if isinstance(number, int) else 1


def _ask_pulse(
    paths: Paths, cfg: Config, wait_limit: float | None, signals: SignalQueue
) -> SenseOutcome:
    asked_at = time.time()
    pid = lock.signal_pulse(paths, BEAT_NOW)
    if pid is None:
        raise SenseError("the pulse went away; try again")
    budget = wait_limit or longest_beat(paths, cfg) + cfg.interval
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        last = record.read(paths) or {}
        started = last.get("started")
        # Ours: begun after we asked, and fresh (a beat that began just as
        # the signal arrived may have kept the cadence; the next one will not).
        ours = isinstance(started, int | float) and started >= asked_at
        if last.get("pid") == pid and ours and last.get("fresh", True):
            return SenseOutcome(str(last.get("summary", "")), last, via_pulse=True)
        if lock.pulse_holder(paths) != pid:
            raise SenseError(f"the pulse (pid {pid}) stopped before beating")
        stop = signals.stop_requested()
        if stop is not None:
            raise SenseError(
                f"interrupted by {signal.Signals(stop).name} while the pulse beats",
                exit_code=128 + stop,
            )
        time.sleep(ASK_POLL)
    raise SenseError(f"the pulse (pid {pid}) did not beat within {budget:.0f}s")
