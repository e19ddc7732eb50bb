"""Single instance: an exclusive ``flock(2)`` on the profile's lock file.

Why flock and not a pid file: the kernel drops the lock when the holder dies
for any reason (exit, crash, ``kill -9``), so there is never a stale lock to
reclaim and no pid-liveness guess that a reused pid can fool. The pid file
beside the lock is written for messages ("already running (pid N)") only.

Why the probe reads ``/proc/locks`` first: a probe that takes the lock, even
for a moment, can make a pulse that starts in that moment believe another one
runs. On Linux the kernel names the holder without anyone touching the lock.
Where it cannot (macOS), the probe takes a *shared* lock for a few
microseconds, and ``acquire`` retries briefly so such a probe never makes a
start fail. The lock fd is close-on-exec, so sensors never inherit it (a
sensor that outlived the pulse would otherwise keep the lock held).
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from pathlib import Path

from looop.paths import Paths, ensure_runtime_dir

# How long acquire keeps trying before it believes the lock is really held:
# long enough to outlast any probe's momentary shared lock.
ACQUIRE_PATIENCE = 0.25


class AlreadyRunning(Exception):
    def __init__(self, pid: int | None):
        self.pid = pid
        super().__init__(f"already running (pid {pid if pid is not None else '?'})")


class PulseLock:
    """The held lock; ``release`` (or process death) frees it."""

    def __init__(self, paths: Paths, fd: int) -> None:
        self.paths, self.fd = paths, fd

    def release(self) -> None:
        if self.fd < 0:
            return
        try:
            if _read_pid(self.paths.pid_file) == os.getpid():
                self.paths.pid_file.unlink(missing_ok=True)
        finally:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> PulseLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid_file(path: Path) -> tuple[int | None, str]:
    """(pid, role) from the pid file, where role is "pulse" or "sense"."""
    try:
        fields = path.read_text().split()
        return int(fields[0]), (fields[1] if len(fields) > 1 else "pulse")
    except (OSError, ValueError, IndexError):
        return None, ""


def _read_pid(path: Path) -> int | None:
    return _read_pid_file(path)[0]


def holder_role(paths: Paths, pid: int) -> str:
    """What lock holder ``pid`` is: "pulse", "sense" (one beat) or "unknown".

    The pid file only counts when it names that same pid: a file left by an
    earlier holder that was killed says nothing about the current one.
    """
    file_pid, role = _read_pid_file(paths.pid_file)
    return role if file_pid == pid and pid else "unknown"


def acquire(paths: Paths, role: str = "pulse") -> PulseLock:
    """Take the profile's lock or raise AlreadyRunning(pid of the holder).

    ``role`` goes into the pid file so others can tell a pulse, which answers
    SIGUSR1 with a beat, from a one-off ``looop sense``, which does not.
    """
    ensure_runtime_dir(paths)
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(paths.lock_file, flags, 0o600)
    try:
        os.fchmod(fd, 0o600)
        deadline = time.monotonic() + ACQUIRE_PATIENCE
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise
            if time.monotonic() >= deadline:
                raise AlreadyRunning(holder_pid(paths))
            time.sleep(0.005)
    except BaseException:
        os.close(fd)
        raise
    tmp = paths.pid_file.with_name(f".{paths.pid_file.name}.{os.getpid()}")
    tmp.write_text(f"{os.getpid()} {role}\n")
    os.replace(tmp, paths.pid_file)
    return PulseLock(paths, fd)


def _proc_locks_holder(dev: int, ino: int) -> int | None:
    """The pid holding an exclusive flock on (dev, ino) per /proc/locks, if listed."""
    try:
        with open("/proc/locks", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    want_dev = f"{os.major(dev):02x}:{os.minor(dev):02x}:{ino}".encode()
    want_ino = f":{ino}".encode()
    fallback: int | None = None
    for line in data.splitlines():
        fields = line.split()
        if len(fields) < 6 or fields[1] == b"->" or fields[1] != b"FLOCK" or fields[3] != b"WRITE":
            continue
        ident = fields[5]
        if ident == want_dev:
            return int(fields[4])
        # Stacked filesystems (overlayfs) can report another device number.
        if ident.endswith(want_ino) and fallback is None:
            fallback = int(fields[4])
    return fallback


def holder_pid(paths: Paths) -> int | None:
    """Pid of the process holding the lock, or None if nobody holds it.

    0 means held by a process whose pid is not known yet (it has not written
    the pid file). Never takes the lock exclusively; see the module
    docstring. Raises OSError when the lock file cannot be examined.
    """
    try:
        fd = os.open(paths.lock_file, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
        pid = _proc_locks_holder(st.st_dev, st.st_ino)
        if pid is not None:
            return pid
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return _read_pid(paths.pid_file) or 0
            raise
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
