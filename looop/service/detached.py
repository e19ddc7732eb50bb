"""``looop up`` / ``looop down``: start and stop the pulse, with or without a service manager.

When looop's unit or plist is installed, the service manager owns the pulse
and these commands only ask it (``looop.service``). Otherwise ``up`` detaches
a pulse itself with ``python-daemon`` and reports back only once that pulse is
*ready* — or why it died. Readiness travels the same way it does under
systemd: ``up`` binds a private notify socket and the detached pulse's own
``READY=1`` arrives there. So "started" always means "holding the lock with
its first beat published", never merely "forked".

The detached process sends its pid back through a close-on-exec pipe and then
becomes ``looop pulse`` (exec), so what runs is exactly the program the unit
runs. ``down`` without a manager sends SIGTERM to the lock holder and waits
for the kernel to drop the lock.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

from looop.config import Config
from looop.errors import LooopError
from looop.log import log_tail
from looop.paths import Paths, ensure_runtime_dir
from looop.pulse import lock
from looop.pulse import loop as pulse
from looop.service import manager as service
from looop.service import units

UMASK = 0o077  # python-daemon's default is 0; the pulse's files are private
STOP_TIMEOUT = 30.0
LOG_MAX_BYTES = 5 * 1024 * 1024


class StartError(LooopError):
    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def log_file(paths: Paths) -> Path:
    """Where a pulse started by ``looop up`` writes its log."""
    return paths.data_dir / "pulse.log"


def _through_manager(paths: Paths, act: Callable[[Paths, str], None]) -> str | None:
    """Have the service manager act when looop is installed; its name, else None."""
    manager = units.installed_manager(paths)
    if manager is None:
        return None
    try:
        act(paths, manager)
    except service.ServiceError as exc:
        raise StartError(str(exc)) from None
    return manager


def up(paths: Paths, cfg: Config) -> str:
    # Long enough for the first beat, however many sensors it has to run.
    ready_within = pulse.longest_beat(paths, cfg) + 30
    manager = _through_manager(
        paths, lambda p, m: service.manager_start(p, m, ready_within=ready_within)
    )
    if manager is not None:
        return f"started through {manager}"
    holder = lock.pulse_holder(paths)
    if holder is not None:
        return f"already running (pid {holder})"
    pid = _detach(paths, ready_within)
    return f"started (pid {pid}); log: {log_file(paths)}"


def down(paths: Paths) -> str:
    manager = _through_manager(paths, service.manager_stop)
    if manager is not None:
        return f"stopped through {manager}"
    pid = lock.holder_pid(paths)
    if pid is None:
        return "not running"
    if lock.holder_role(paths, pid) == "sense":
        return f"not running (a one-off beat holds the lock, pid {pid}; it ends by itself)"
    if not pid:
        raise StartError("the lock is held but its holder's pid is not known yet; try again")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    except PermissionError:
        raise StartError(f"cannot stop pid {pid}: not yours") from None
    deadline = time.monotonic() + STOP_TIMEOUT
    while lock.holder_pid(paths) is not None:
        if time.monotonic() > deadline:
            raise StartError(f"pid {pid} still holds the lock after {STOP_TIMEOUT:.0f}s")
        time.sleep(0.02)
    return f"stopped (pid {pid})"


def _detach(paths: Paths, ready_within: float) -> int:
    ensure_runtime_dir(paths)
    try:
        paths.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartError(f"cannot create the data dir {paths.data_dir}: {exc.strerror}") from exc
    address = paths.runtime_dir / f".{paths.profile}.up-{os.getpid()}.sock"
    with contextlib.suppress(FileNotFoundError):
        address.unlink()
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        notify.bind(str(address))
        pid_r, pid_w = os.pipe()  # close-on-exec: the exec itself closes it
        logpath = log_file(paths)
        _trim(logpath)
        since = logpath.stat().st_size if logpath.exists() else 0
        child = os.fork()
        if child == 0:  # pragma: no cover - runs in the child, which never returns
            _become_pulse(pid_w, address, logpath)
        os.close(pid_w)
        os.waitpid(child, 0)  # python-daemon's first fork exits at once
        pid = _read_pid(pid_r)
        os.close(pid_r)
        _wait_ready(notify, pid, logpath, since, ready_within)
        return pid
    finally:
        notify.close()
        with contextlib.suppress(FileNotFoundError):
            address.unlink()


def _become_pulse(pid_w: int, address: Path, logpath: Path) -> None:
    """In the forked child: detach with python-daemon, report our pid, exec the pulse."""
    try:
        import daemon

        log = open(logpath, "ab", buffering=0)  # noqa: SIM115 - becomes the daemon's stdout/stderr
        context = daemon.DaemonContext(
            umask=UMASK,
            working_directory="/",
            files_preserve=[pid_w, log],
            stdout=log,
            stderr=log,
            detach_process=True,
            signal_map={},  # keep default dispositions: exec resets handlers, not ignores
        )
        context.open()
        os.write(pid_w, f"{os.getpid()}\n".encode())
        os.environ["NOTIFY_SOCKET"] = str(address)
        for name in ("WATCHDOG_USEC", "WATCHDOG_PID"):
            os.environ.pop(name, None)
        # This interpreter and this package, whatever PATH holds.
        os.execv(sys.executable, [sys.executable, "-m", "looop", "pulse"])
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.write(2, f"looop: could not start the pulse: {exc!r}\n".encode())
    finally:
        os._exit(127)


def _read_pid(fd: int) -> int:
    data = b""
    while chunk := os.read(fd, 64):
        data += chunk
    try:
        return int(data.split()[0])
    except (ValueError, IndexError):
        raise StartError("the detached pulse did not start") from None


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_ready(
    notify: socket.socket, pid: int, logpath: Path, since: int, ready_within: float
) -> None:
    selector = selectors.DefaultSelector()
    selector.register(notify, selectors.EVENT_READ)
    deadline = time.monotonic() + ready_within
    try:
        while time.monotonic() < deadline:
            if selector.select(0.05):
                message = notify.recv(4096).decode(errors="replace")
                if "READY=1" in message.splitlines():
                    return
            elif not _alive(pid):
                said = log_tail(logpath, since) or "(nothing in the log)"
                raise StartError(f"the pulse exited before it was ready: {said}")
    finally:
        selector.close()
    raise StartError(f"the pulse (pid {pid}) was not ready after {ready_within:.0f}s")


def _trim(logpath: Path) -> None:
    """Keep the up-log bounded: start it afresh once it passes the cap."""
    with contextlib.suppress(OSError):
        if logpath.stat().st_size > LOG_MAX_BYTES:
            os.replace(logpath, logpath.with_name(logpath.name + ".1"))
