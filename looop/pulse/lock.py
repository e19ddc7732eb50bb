"""Single instance: an exclusive ``flock(2)`` on the profile's lock file.

Why flock and not a pid file: the kernel drops the lock when the holder dies
for any reason (exit, crash, ``kill -9``), so there is never a stale lock to
reclaim and no pid-liveness guess that a reused pid can fool. The pid file
beside the lock is written for messages ("already running (pid N)") only.

How the probe asks without getting in the way: it tries a *shared* lock for
a few microseconds (free means nobody runs) and ``acquire`` keeps trying for
a quarter of a second before it believes the lock is held, so a probe can
never make a starting pulse fail. When the lock is held, the holder's pid
comes from the kernel where it says so: the holder's own
``/proc/<pid>/fdinfo/<fd>`` lists the lock it holds (the pid file names that
fd), else ``/proc/locks``. ``/proc/locks`` is the fallback, not the first
choice, because reading it waits for a kernel grace period (tens of
milliseconds), and ``looop status`` should answer faster than that.

The lock fd is close-on-exec, so sensors never inherit it (a sensor that
outlived the pulse would otherwise keep the lock held).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from pathlib import Path

from looop.errors import LooopError
from looop.paths import Paths, ensure_runtime_dir

# How long acquire keeps trying before it believes the lock is really held:
# long enough to outlast any probe's momentary shared lock.
ACQUIRE_PATIENCE = 0.25


class AlreadyRunning(LooopError):
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

    def still_ours(self) -> bool:
        """Does the lock file's path still name the file we hold locked?"""
        try:
            held, named = os.fstat(self.fd), os.stat(self.paths.lock_file, follow_symlinks=False)
        except OSError:
            return False
        return (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino)

    def touch(self) -> None:
        """Keep the lock file young for cleaners that go by age."""
        with contextlib.suppress(OSError):
            os.utime(self.fd)

    def __enter__(self) -> PulseLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _read_pid_file(path: Path) -> tuple[int | None, str, int | None]:
    """(pid, role, fd) from the pid file: "<pid> <pulse|sense> <lock fd>"."""
    try:
        fields = path.read_text().split()
        pid = int(fields[0])
    except (OSError, ValueError, IndexError):
        return None, "", None
    role = fields[1] if len(fields) > 1 else "pulse"
    fd = int(fields[2]) if len(fields) > 2 and fields[2].isdigit() else None
    return pid, role, fd


def _read_pid(path: Path) -> int | None:
    return _read_pid_file(path)[0]


def holder_role(paths: Paths, pid: int) -> str:
    """What lock holder ``pid`` is: "pulse", "sense" (one beat) or "unknown".

    The pid file only counts when it names that same pid: a file left by an
    earlier holder that was killed says nothing about the current one.
    """
    file_pid, role, _ = _read_pid_file(paths.pid_file)
    return role if file_pid == pid and pid else "unknown"


def pulse_holder(paths: Paths) -> int | None:
    """Pid of a running *pulse*: the lock holder unless it is a one-off ``looop sense``.

    None when no pulse runs (or the lock cannot be examined); 0 when the lock
    is held by a process whose pid is not known yet.
    """
    try:
        pid = holder_pid(paths)
    except OSError:
        return None
    if pid is None or (pid and holder_role(paths, pid) == "sense"):
        return None
    return pid


def _try_flock(fd: int, operation: int) -> bool:
    """A non-blocking flock: True if taken, False if someone else holds it."""
    try:
        fcntl.flock(fd, operation | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise
    return True


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
            if _try_flock(fd, fcntl.LOCK_EX):
                held = PulseLock(paths, fd)
                if held.still_ours():
                    break
                # The file was removed (or replaced) after we opened it: a
                # lock on it excludes nobody. Lock what the path names now.
                os.close(fd)
                fd = -1
                fd = os.open(paths.lock_file, flags, 0o600)
                os.fchmod(fd, 0o600)
                continue
            if time.monotonic() >= deadline:
                raise AlreadyRunning(holder_pid(paths))
            time.sleep(0.005)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        raise
    tmp = paths.pid_file.with_name(f".{paths.pid_file.name}.{os.getpid()}")
    tmp.write_text(f"{os.getpid()} {role} {fd}\n")
    os.replace(tmp, paths.pid_file)
    return held


def _flock_line_matches(line: bytes, ino: int) -> int | None:
    """The pid of an exclusive flock on inode ``ino`` in a /proc locks line."""
    fields = line.split()
    if fields[:1] == [b"lock:"]:
        fields = fields[1:]
    if len(fields) < 6 or fields[1] != b"FLOCK" or fields[3] != b"WRITE":
        return None
    # The device part can differ on stacked filesystems (overlayfs): match the inode.
    if not fields[5].endswith(f":{ino}".encode()):
        return None
    return int(fields[4])


def _fdinfo_holder(pid: int, fd: int, ino: int) -> bool:
    """Does the kernel say process ``pid`` holds our lock through its ``fd``?"""
    try:
        with open(f"/proc/{pid}/fdinfo/{fd}", "rb") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return False
    return any(_flock_line_matches(line, ino) == pid for line in lines)


def _proc_locks_holder(dev: int, ino: int) -> int | None:
    """The pid holding an exclusive flock on (dev, ino) per /proc/locks, if listed.

    An exact device match wins; an inode-only match is the fallback for
    stacked filesystems (overlayfs), which can report another device number.
    """
    try:
        with open("/proc/locks", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    exact = f"{os.major(dev):02x}:{os.minor(dev):02x}:{ino}".encode()
    fallback = None
    for line in data.splitlines():
        if b"->" in line:
            continue  # a waiter, not a holder
        pid = _flock_line_matches(line, ino)
        if pid is None:
            continue
        if line.split()[5] == exact:
            return pid
        fallback = fallback or pid
    return fallback


def holder_pid(paths: Paths) -> int | None:
    """Pid of the process holding the lock, or None if nobody holds it.

    0 means held by a process whose pid is not known (not yet written, and
    the kernel does not say). Raises OSError when the lock file cannot be
    examined. See the module docstring for why this never gets in the way of
    a starting pulse.
    """
    try:
        fd = os.open(paths.lock_file, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        if _try_flock(fd, fcntl.LOCK_SH):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        st = os.fstat(fd)
    finally:
        os.close(fd)
    pid, _, holder_fd = _read_pid_file(paths.pid_file)
    if pid and holder_fd is not None and _fdinfo_holder(pid, holder_fd, st.st_ino):
        return pid
    return _proc_locks_holder(st.st_dev, st.st_ino) or pid or 0
