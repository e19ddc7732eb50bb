"""What ``looop up`` / ``looop down`` do: through the installed manager, else detached.

When looop's unit or plist is installed for this profile
(``units.installed_driver``), the service manager owns the pulse and these
commands only ask its driver: systemd's ``start`` returns once the pulse sent
READY=1, which it sends once it holds the lock with its first beat
published; launchd only launches, so its driver waits for that itself. So
"started" means the same under both, and the same as for a pulse started
without a manager (``detached``): holding the lock with its first beat
published, never merely "forked".

Without a manager, ``up`` detaches a pulse (``detached.start``) unless one
already runs; either way it returns once a pulse is ready, and when that pulse
is not the one it started (one already ran, or another ``up`` won the race)
it says "already running" with that pulse's pid and exits 0.

``restart`` is the driver's (``systemctl --user restart``), and ``down``
then ``up`` of the pulse alone where it has none (launchd has no restart
that waits for readiness; the workers are not the pulse's and stay).
Concurrent restarts coalesce, as concurrent ``up``s do: each takes the
profile's restart lock (``<profile>.restart.lock`` in the runtime dir, an
``flock``, so a killed restart leaves nothing held) for its stop and start,
and one that finds, once it holds the lock, a ready pulse started after it
was asked (the beat record's ``pulse_started``) is done: that pulse is the
restart it asked for. Without the lock a second restart stopped the pulse
the first had just started before it was ready, and the first failed;
under systemd a second ``systemctl restart`` may cancel the first's job.
``reload`` is the driver's (``systemctl --user reload``: the unit's
ExecReload sends SIGHUP) or SIGHUP to the lock's holder, and returns once
the pulse beat again.

``down`` stops the pulse first (so nothing senses a half-stopped fleet),
then every live worker of the profile (``workers.fleet.stop_all``), unless
``--keep-workers``. For the pulse it succeeds only once no pulse holds the
lock. With a manager it first asks the manager to stop its pulse, then,
like ``down`` without one, sends SIGTERM to any pulse still holding the
lock (one started by hand, or by ``up`` before the unit was installed) and
waits for the kernel to drop the lock, naming that pulse. Stopping it,
rather than refusing with exit 1, is what "down" asks for: the user wants
no pulse on this profile, and the lock says exactly which process that is.
When it cannot be stopped (not the user's, or it does not let go in time)
``down`` exits 1 naming it. A one-off ``looop sense`` holding the lock is
not a pulse: ``down`` leaves it to end by itself.
"""

from __future__ import annotations

import os
import signal
import time

from looop import lockfile, say
from looop.config import Config
from looop.paths import Paths, ensure_runtime_dir
from looop.pulse import lock
from looop.pulse import loop as pulse
from looop.service import ServiceError, detached, units
from looop.service.driver import foreign_pulse, ready_pulse

TYPE_CHECKING = False
if TYPE_CHECKING:
    from looop.service.driver import Driver

STOP_TIMEOUT = 30.0


def up(paths: Paths, cfg: Config) -> str:
    # Long enough for the first beat, however many sensors it has to run.
    ready_within = pulse.longest_beat(paths, cfg) + 30
    driver = units.installed_driver(paths)
    if driver is not None:
        driver.start(paths, ready_within)
        return f"started through {driver.NAME}"
    deadline = time.monotonic() + ready_within
    holder = lock.pulse_holder(paths)
    if holder is not None:
        gone = f"the running pulse (pid {holder or '?'}) stopped before it was ready; try again"
        return f"already running (pid {detached.await_running(paths, deadline, gone)})"
    ready = detached.start(paths, ready_within)
    if not ready.ours:  # another `up` started one meanwhile
        return f"already running (pid {ready.pid})"
    return f"started (pid {ready.pid}); log: {detached.log_file(paths)}"


def down(paths: Paths, keep_workers: bool = False) -> list[str]:
    """Stop the pulse, then (unless ``keep_workers``) every live worker of the profile."""
    lines = [_down_pulse(paths)]
    if not keep_workers:
        from looop.workers import fleet

        stopped = fleet.stop_all(paths)
        if stopped:
            lines.append(f"stopped {say.count(len(stopped), 'worker')}: {', '.join(stopped)}")
    return lines


def _down_pulse(paths: Paths) -> str:
    driver = units.installed_driver(paths)
    if driver is not None:
        driver.stop(paths)
    pulse_pid = _end_pulse(paths)
    if driver is not None:
        manager = driver.NAME
        if pulse_pid:
            return f"stopped through {manager}, and a pulse started outside it (pid {pulse_pid})"
        return f"stopped through {manager}"
    if pulse_pid:
        return f"stopped (pid {pulse_pid})"
    held = lock.holder(paths)  # what holds it now, only to say so: nobody, or a one-off beat
    if held is not None:
        return f"not running (a one-off beat holds the lock, pid {held.pid}; it ends by itself)"
    return "not running"


def restart(paths: Paths, cfg: Config) -> list[str]:
    """Stop the pulse and start it again; workers keep running (they are not the pulse's).

    A pulse started by a concurrent restart after this one was asked is this one's answer.
    """
    asked = time.time()
    ensure_runtime_dir(paths)
    with lockfile.held(os.path.join(paths.runtime_dir, f"{paths.profile}.restart.lock")):
        pid = _started_since(paths, asked)
        if pid is not None:
            return [f"restarted by a concurrent restart (pid {pid})"]
        driver = units.installed_driver(paths)
        if driver is not None and driver.restart(paths):
            return [f"restarted through {driver.NAME}"]
        return [_down_pulse(paths), up(paths, cfg)]


def _started_since(paths: Paths, asked: float) -> int | None:
    """The ready pulse's pid if it started at ``asked`` (Unix time) or later, else None."""
    from looop.pulse import record

    pid = ready_pulse(paths)
    started = (record.read(paths) or {}).get("pulse_started") if pid else None
    return pid if isinstance(started, int | float) and started >= asked else None


def reload(paths: Paths, cfg: Config) -> str:
    """Have the running pulse re-read its config (SIGHUP), and return once it beat on it.

    Through systemd (``systemctl --user reload``, whose ExecReload sends the
    signal and waits for READY=1 again) when installed; otherwise SIGHUP to
    the pulse holding the lock, then wait for a beat record whose
    ``config_loaded`` is later than the signal (the pulse beats at once after
    a reload), so "reloaded" means the pulse is beating on the new config. The caller has
    loaded the config first (``looop reload`` exits 78 on a broken one and
    signals nothing); a config broken in between is refused by the pulse,
    which logs why and keeps the old one.
    """
    driver = units.installed_driver(paths)
    if driver is not None and driver.reload(paths):
        return f"reloaded through {driver.NAME}"
    from looop.pulse import record

    def reloaded() -> bool:
        loaded = (record.read(paths) or {}).get("config_loaded")
        return isinstance(loaded, int | float) and loaded >= sent

    sent = time.time()
    pid = lock.signal_pulse(paths, pulse.RELOAD)
    if pid is None:
        raise ServiceError("no pulse runs on this profile; start it with looop up")
    deadline = time.monotonic() + pulse.longest_beat(paths, cfg) + 30
    while not reloaded():
        if time.monotonic() > deadline or lock.holder_pid(paths) != pid:
            raise ServiceError(
                f"sent SIGHUP to the pulse (pid {pid}), but it has not beaten since; see looop logs"
            )
        time.sleep(0.05)
    return f"reloaded (pid {pid}): it beat on the new config"


def hand_over(paths: Paths, driver: Driver) -> int | None:
    """Stop a pulse running outside ``driver``'s manager, so that the manager can run its own.

    What ``looop install`` does with the pulse ``looop up`` detached before
    there was a unit (the README's order): the user asked for the pulse to
    run under the manager, and the lock says which process is in the way.
    Returns that pulse's pid once the lock is free, None when there was none.
    """
    managed = (driver.state(paths) or {}).get("pid")
    if foreign_pulse(paths, managed) is None:
        return None
    return _end_pulse(paths)


def _end_pulse(paths: Paths) -> int | None:
    """SIGTERM the pulse holding the lock, and return once the kernel has freed it.

    Returns the pulse's pid (None: no pulse held the lock). A one-off ``looop
    sense`` is left to end by itself. ServiceError when the pulse does not let go.
    """
    pid = lock.signal_pulse(paths, signal.SIGTERM)
    if pid is None:
        return None
    deadline = time.monotonic() + STOP_TIMEOUT
    while lock.holder_pid(paths) is not None:
        if time.monotonic() > deadline:
            raise ServiceError(
                f"the pulse (pid {pid}) still holds the lock after {STOP_TIMEOUT:.0f}s"
            )
        time.sleep(0.02)
    return pid
