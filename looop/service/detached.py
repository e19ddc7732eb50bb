"""A pulse started without a service manager: detached with python-daemon, then ready.

``looop up`` comes here (``control``) when no unit or plist is installed.
It reports back only once the detached pulse is *ready*, or why it died.
Readiness travels the same way it does under systemd: ``start`` binds a
private notify socket and the detached pulse's own ``READY=1`` arrives
there. So "started" always means "holding the lock with its first beat
published", never merely "forked".

The detached process sends its pid back through a close-on-exec pipe and then
becomes ``looop pulse`` (exec of ``paths.looop_command``), so what runs is
exactly the program a unit runs.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import time
from pathlib import Path

from looop.log import log_tail
from looop.paths import Paths, ensure_runtime_dir, looop_command
from looop.proc import alive
from looop.service import ServiceError

UMASK = 0o077  # python-daemon's default is 0; the pulse's files are private
LOG_MAX_BYTES = 5 * 1024 * 1024


def log_file(paths: Paths) -> Path:
    """Where a pulse started by ``looop up`` writes its log."""
    return paths.data_dir / "pulse.log"


def start(paths: Paths, ready_within: float) -> int:
    """Detach a pulse and return its pid once it is ready; ServiceError saying why not."""
    ensure_runtime_dir(paths)
    try:
        paths.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ServiceError(f"cannot create the data dir {paths.data_dir}: {exc.strerror}") from exc
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
        # What a unit runs: this installation's looop, whatever PATH holds.
        command = [*looop_command(), "pulse"]
        os.execv(command[0], command)
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
        raise ServiceError("the detached pulse did not start") from None


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
            elif not alive(pid):
                said = log_tail(logpath, since) or "(nothing in the log)"
                raise ServiceError(f"the pulse exited before it was ready: {said}")
    finally:
        selector.close()
    raise ServiceError(f"the pulse (pid {pid}) was not ready after {ready_within:.0f}s")


def _trim(logpath: Path) -> None:
    """Keep the up-log bounded: start it afresh once it passes the cap."""
    with contextlib.suppress(OSError):
        if logpath.stat().st_size > LOG_MAX_BYTES:
            os.replace(logpath, logpath.with_name(logpath.name + ".1"))
