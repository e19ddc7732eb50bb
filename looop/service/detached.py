"""Without a service manager: a pulse (or a worker's supervisor) detached with python-daemon.

``looop up`` comes here (``control``) when no unit or plist is installed.
It reports back only once the detached pulse is *ready*, or why it died.
Readiness travels the same way it does under systemd: ``start`` binds a
private notify socket and the detached pulse's own ``READY=1`` arrives
there. So "started" always means "holding the lock with its first beat
published", never merely "forked".

The detached process sends its pid back through a close-on-exec pipe and then
becomes ``looop pulse`` (exec of ``paths.looop_command``), so what runs is
exactly the program a unit runs. ``spawn`` is that detach alone; a worker's
supervisor is started through it where no user manager answers. It keeps
what the caller's shell set, the core-file limit included (python-daemon
would set it to 0), as a unit keeps what its manager sets.

Two ``looop up`` at once both find no pulse and both detach one; the kernel
lock lets one of them hold it, and the other exits ("already running"). That
is not a failure of the ``up`` that lost: a pulse runs, which is what it was
asked for. So a detached pulse that dies while another pulse holds the lock
hands over to ``await_running``, which reports that pulse once it is ready
(``driver.ready_pulse``); only a death with nobody holding the lock is an
error, with the tail of the log saying why. Rejected: a lock around ``up``
itself, which would serialise every ``up`` behind a first beat and still
not cover a pulse started by hand.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import struct
import sys
import time
from pathlib import Path
from typing import NamedTuple

from looop import lines
from looop.errors import os_error_line
from looop.log import log, log_tail
from looop.paths import Paths, ensure_runtime_dir, looop_command
from looop.proc import alive
from looop.pulse import lock
from looop.service import ServiceError
from looop.service.driver import ready_pulse

UMASK = 0o077  # python-daemon's default is 0; the pulse's files are private
LOG_MAX_BYTES = 5 * 1024 * 1024


POLL = 0.05


class Ready(NamedTuple):
    """The pulse that is ready, and whether this ``up`` started it."""

    pid: int
    ours: bool


def log_file(paths: Paths) -> Path:
    """Where a pulse started by ``looop up`` writes its log."""
    return paths.data_dir / "pulse.log"


def await_running(paths: Paths, deadline: float, gone: str) -> int:
    """The pid of the pulse that runs, once it is ready; ServiceError ``gone`` if none does.

    Waits until ``deadline`` (``time.monotonic``) for the pulse holding the
    lock to publish its first beat.
    """
    while True:
        pid = ready_pulse(paths)
        if pid:
            return pid
        holder = lock.pulse_holder(paths)
        if holder is None:
            raise ServiceError(gone)
        if time.monotonic() >= deadline:
            raise ServiceError(f"the running pulse (pid {holder or '?'}) is not ready yet")
        time.sleep(POLL)


def start(paths: Paths, ready_within: float) -> Ready:
    """Detach a pulse and return once a pulse is ready; ServiceError saying why not.

    Usually the pulse is ours; when another pulse took the lock first (another
    ``up`` at the same time), that one is reported once it is ready.
    """
    ensure_runtime_dir(paths)
    try:
        paths.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ServiceError(f"cannot create the data dir {paths.data_dir}: {exc.strerror}") from exc
    address = Path(paths.runtime_dir) / f".{paths.profile}.up-{os.getpid()}.sock"
    with contextlib.suppress(FileNotFoundError):
        address.unlink()
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        if PASSCRED:  # each datagram carries its sender's pid, checked by _receive
            notify.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        name = _bind(notify, address)
        logpath = log_file(paths)
        _trim(logpath)
        since = logpath.stat().st_size if logpath.exists() else 0
        env = {k: v for k, v in os.environ.items() if k not in ("WATCHDOG_USEC", "WATCHDOG_PID")}
        env["NOTIFY_SOCKET"] = name
        # What a unit runs: this installation's looop, whatever PATH holds, with
        # the log format `up` was given (auto: the pulse's stderr is this file).
        argv = [*looop_command(), "--log-format", log.chosen, "pulse"]
        pid = spawn(argv, logpath, env, "/")
        return _wait_ready(paths, notify, pid, (logpath, since), ready_within)
    finally:
        notify.close()
        with contextlib.suppress(FileNotFoundError):
            address.unlink()


PASSCRED = hasattr(socket, "SO_PASSCRED") and hasattr(socket, "SCM_CREDENTIALS")
CREDENTIALS = struct.Struct("iII")  # struct ucred: pid, uid, gid


def _bind(notify: socket.socket, address: Path) -> str:
    """Bind the readiness socket at ``address``; the ``NOTIFY_SOCKET`` that reaches it.

    A socket's path holds at most about 107 bytes. Under a runtime dir deeper
    than that, Linux binds a name in the abstract namespace instead (``@...``,
    as systemd's own ``NOTIFY_SOCKET`` may be), gone with the socket; it has
    no permission bits, which is why ``_receive`` takes READY=1 only from the
    pulse's own pid. Elsewhere the failure names the path.
    """
    try:
        notify.bind(str(address))
        return str(address)
    except OSError as exc:
        too_long = "too long" in str(exc)
        if not (too_long and sys.platform.startswith("linux")):
            raise OSError(exc.errno, exc.strerror or str(exc), str(address)) from None
    name = f"looop-up-{os.getpid()}-{os.urandom(8).hex()}"  # secrets' token, without hmac
    notify.bind("\0" + name)
    return "@" + name


def spawn(argv: list[str], logpath: Path, env: dict[str, str], cwd: str) -> int:
    """Run ``argv`` detached with python-daemon; its pid, once it has detached.

    The detached process sends its pid back through a pipe and then execs
    ``argv`` with stdout and stderr appended to ``logpath``: nothing of the
    caller's (its terminal, a ``$(...)`` pipe) is held by what runs.
    """
    pid_r, pid_w = os.pipe()  # close-on-exec: the exec itself closes it
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child, which never returns
        _become(pid_w, argv, logpath, env, cwd)
    os.close(pid_w)
    os.waitpid(child, 0)  # python-daemon's first fork exits at once
    try:
        return _read_pid(pid_r)
    finally:
        os.close(pid_r)


def _become(pid_w: int, argv: list[str], logpath: Path, env: dict[str, str], cwd: str) -> None:
    """In the forked child: detach with python-daemon, report our pid, exec ``argv``."""
    try:
        import daemon

        # The daemon's stdout and stderr: appended to, by ``lines``' rules (no link, no FIFO).
        log = os.fdopen(lines.open_append(logpath), "ab", buffering=0)
        context = daemon.DaemonContext(
            umask=UMASK,
            working_directory=cwd,
            files_preserve=[pid_w, log],
            stdout=log,
            stderr=log,
            detach_process=True,
            prevent_core=False,  # the user's core limit stands: a crash leaves its core
            signal_map={},  # keep default dispositions: exec resets handlers, not ignores
        )
        context.open()
        os.write(pid_w, f"{os.getpid()}\n".encode())
        os.execve(argv[0], argv, env)
    except BaseException as exc:
        # Said once, by the caller (``_read_pid``): this stderr may still be the caller's.
        why = os_error_line(exc) if isinstance(exc, OSError) else repr(exc)
        with contextlib.suppress(OSError):
            os.write(pid_w, f"!could not start {argv[-1]}: {why}\n".encode())
    finally:
        os._exit(127)


def _read_pid(fd: int) -> int:
    """The detached process's pid; ServiceError with its own reason when it did not start."""
    data = b""
    while chunk := os.read(fd, 64):
        data += chunk
    said = data.decode(errors="replace").splitlines()
    failed = [line[1:] for line in said if line.startswith("!")]
    if failed:
        raise ServiceError(failed[0])
    try:
        return int(said[0])
    except (ValueError, IndexError):
        raise ServiceError("the detached process did not start") from None


def _wait_ready(
    paths: Paths, notify: socket.socket, pid: int, log: tuple[Path, int], ready_within: float
) -> Ready:
    """Our pulse's READY=1; or, once it has died, the pulse that holds the lock instead."""
    selector = selectors.DefaultSelector()
    selector.register(notify, selectors.EVENT_READ)
    deadline = time.monotonic() + ready_within
    try:
        while time.monotonic() < deadline:
            if selector.select(POLL):
                message = _receive(notify, pid)
                if "READY=1" in message.splitlines():
                    return Ready(pid, True)
            elif not alive(pid):
                said = log_tail(*log) or "(nothing in the log)"
                gone = f"the pulse exited before it was ready: {said}"
                return Ready(await_running(paths, deadline, gone), False)
    finally:
        selector.close()
    raise ServiceError(f"the pulse (pid {pid}) was not ready after {ready_within:.0f}s")


def _receive(notify: socket.socket, pid: int) -> str:
    """One datagram's text, if the pulse ``pid`` sent it (Linux checks the sender); else ""."""
    if not PASSCRED:
        return notify.recv(4096).decode(errors="replace")
    data, ancillary, _, _ = notify.recvmsg(4096, socket.CMSG_SPACE(CREDENTIALS.size))
    for level, kind, value in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            sender = CREDENTIALS.unpack_from(value)[0]
            return data.decode(errors="replace") if sender == pid else ""
    return ""


def _trim(logpath: Path) -> None:
    """Keep the up-log bounded: start it afresh once it passes the cap."""
    with contextlib.suppress(OSError):
        if logpath.stat().st_size > LOG_MAX_BYTES:
            os.replace(logpath, logpath.with_name(logpath.name + ".1"))
