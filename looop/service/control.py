"""What ``looop up`` / ``looop down`` do: through the installed manager, else detached.

When looop's unit or plist is installed for this profile
(``units.installed_manager``), the service manager owns the pulse and these
commands only ask it: systemd's ``start`` returns once the pulse sent
READY=1, which it sends once it holds the lock with its first beat
published; launchd only launches, so its driver waits for that itself. So
"started" means the same under both, and the same as for a pulse started
without a manager (``detached``): holding the lock with its first beat
published, never merely "forked".

Without a manager, ``up`` detaches a pulse (``detached.start``) unless one
already runs, and ``down`` sends SIGTERM to the lock holder and waits for the
kernel to drop the lock. A one-off ``looop sense`` holding the lock is not a
pulse: ``down`` leaves it to end by itself.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

from looop.config import Config
from looop.paths import Paths
from looop.pulse import lock
from looop.pulse import loop as pulse
from looop.service import ServiceError, detached, launchd, systemd, units

STOP_TIMEOUT = 30.0


def _through_manager(paths: Paths, act: Callable[[Paths, str], None]) -> str | None:
    """Have the service manager act when looop is installed; its name, else None."""
    manager = units.installed_manager(paths)
    if manager is not None:
        act(paths, manager)
    return manager


def up(paths: Paths, cfg: Config) -> str:
    # Long enough for the first beat, however many sensors it has to run.
    ready_within = pulse.longest_beat(paths, cfg) + 30

    def start(p: Paths, manager: str) -> None:
        if manager == units.SYSTEMD:
            systemd.start(p)
        else:
            launchd.start(p, ready_within=ready_within)

    manager = _through_manager(paths, start)
    if manager is not None:
        return f"started through {manager}"
    holder = lock.pulse_holder(paths)
    if holder is not None:
        return f"already running (pid {holder})"
    pid = detached.start(paths, ready_within)
    return f"started (pid {pid}); log: {detached.log_file(paths)}"


def down(paths: Paths) -> str:
    def stop(p: Paths, manager: str) -> None:
        (systemd if manager == units.SYSTEMD else launchd).stop(p)

    manager = _through_manager(paths, stop)
    if manager is not None:
        return f"stopped through {manager}"
    pid = lock.holder_pid(paths)
    if pid is None:
        return "not running"
    if lock.holder_role(paths, pid) == "sense":
        return f"not running (a one-off beat holds the lock, pid {pid}; it ends by itself)"
    if not pid:
        raise ServiceError("the lock is held but its holder's pid is not known yet; try again")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    except PermissionError:
        raise ServiceError(f"cannot stop pid {pid}: not yours") from None
    deadline = time.monotonic() + STOP_TIMEOUT
    while lock.holder_pid(paths) is not None:
        if time.monotonic() > deadline:
            raise ServiceError(f"pid {pid} still holds the lock after {STOP_TIMEOUT:.0f}s")
        time.sleep(0.02)
    return f"stopped (pid {pid})"
