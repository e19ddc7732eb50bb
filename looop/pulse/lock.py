"""Single instance: an exclusive ``flock(2)`` on the profile's lock file.

Why flock and not a pid file: the kernel drops the lock when the holder dies
for any reason (exit, crash, ``kill -9``), so there is never a stale lock to
reclaim and no pid-liveness guess that a reused pid can fool. The pid file
beside the lock is written for messages ("already running (pid N)") only,
so it is not ``fsync``-ed (``looop.fs.write_whole``'s ``durable=False``).

The lock in the runtime dir says who *runs*; a second lock, on
``<data dir>/.looop-beat.lock``, is held for the length of each beat
(``beat_lock``), so that no two beats are ever in flight on one data dir even
when the runtime-dir lock cannot tell: the runtime dir was wiped under a
running pulse (a temp cleaner, a logout removing ``/run/user/<uid>``) and a
second pulse started, or the same data dir is reached by a second path (a
bind mount: another path, so another profile name, but the same inode to
lock). It lives in the data dir because only the data dir is shared by
everything that beats on it.

Two questions are answered here, once each: *who holds the lock* (``holder``:
a pid and a role) and *is a pulse running* (``pulse_holder``); and so the one
way to signal the pulse lives here too (``signal_pulse``). They differ
while a one-off ``looop sense`` holds the lock for its single beat: nobody
runs then, and ``status``, ``_ state``, ``_ wait``, ``up`` and ``down`` all say
so because they all ask ``pulse_holder``. A pulse that starts meanwhile waits
for that beat to end (``acquire(..., outwait_sense=...)``) instead of failing.

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
outlived the pulse would otherwise keep the lock held). The lock file and
the pid file are opened without following links and without blocking, and
must be regular files: a FIFO or a device node at either name is reported
(``fs.BadFile``, naming the fix), never waited on.
"""

from __future__ import annotations

import contextlib
import os
import time

from looop import fs, lockfile
from looop.errors import LooopError
from looop.paths import Paths, ensure_runtime_dir

TYPE_CHECKING = False  # not typing's: see Holder
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

# How long acquire keeps trying before it believes the lock is really held:
# long enough to outlast any probe's momentary shared lock.
ACQUIRE_PATIENCE = 0.25


PULSE, SENSE, UNKNOWN = "pulse", "sense", "unknown"
# How often a pulse that waits for a one-off beat looks again.
OUTWAIT_POLL = 0.05
# How long a holder whose pid is not known may stay unknown to a waiting pulse.
UNKNOWN_PATIENCE = 2.0
FIX = "remove it and looop makes a new one"
# In the data dir: held by whoever beats, for the length of the beat.
BEAT_LOCK = ".looop-beat.lock"
# How long a process that just released the beat lock leaves it to the others
# before it takes it again: more than one OUTWAIT_POLL, so a waiting pulse
# polls inside the gap. Without it a pulse whose beats overrun its interval
# takes the lock back microseconds after letting it go, every time, and a
# second pulse on the same data dir (a bind mount) never beats at all.
HANDOFF = 2 * OUTWAIT_POLL
_released_at = -HANDOFF  # this process's last release of a beat lock (monotonic)


class Holder:
    """Who holds the lock: a pid (0 while it is not known yet) and a role.

    A plain slotted class, not a NamedTuple: ``looop status`` comes here, and
    importing ``typing`` would cost it more than the whole lock probe.
    """

    __slots__ = ("pid", "role")

    def __init__(self, pid: int, role: str) -> None:
        self.pid = pid
        self.role = role  # PULSE, SENSE (a one-off `looop sense`) or UNKNOWN

    def __repr__(self) -> str:
        return f"Holder(pid={self.pid}, role={self.role!r})"

    @property
    def is_pulse(self) -> bool:
        """Anything but a one-off beat counts as a pulse: a holder whose pid
        file is not written yet is a pulse starting up."""
        return self.role != SENSE


class AlreadyRunning(LooopError):
    def __init__(self, holder: Holder | None):
        self.holder = holder
        self.pid = holder.pid if holder else None
        what = "a one-off beat is running" if holder and not holder.is_pulse else "already running"
        super().__init__(f"{what} (pid {self.pid or '?'})")


class PulseLock:
    """The held lock; ``release`` (or process death) frees it."""

    def __init__(self, paths: Paths, fd: int) -> None:
        self.paths, self.fd = paths, fd

    def release(self) -> None:
        if self.fd < 0:
            return
        try:
            if _read_pid(self.paths.pid_file) == os.getpid():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.paths.pid_file)
        finally:
            os.close(self.fd)
            self.fd = -1

    def abandon(self) -> None:
        """Let go of this lock without touching the pid file: a newer lock of ours wrote it."""
        if self.fd >= 0:
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


def _read_pid_file(path: str) -> tuple[int | None, str, int | None]:
    """(pid, role, fd) from the pid file: "<pid> <pulse|sense> <lock fd>"."""
    try:
        fields = fs.read_small(path, limit=256).split()
        pid = int(fields[0])
    except (OSError, ValueError, IndexError):
        return None, "", None
    role = fields[1].decode(errors="replace") if len(fields) > 1 else PULSE
    fd = int(fields[2]) if len(fields) > 2 and fields[2].isdigit() else None
    return pid, role, fd


def _read_pid(path: str) -> int | None:
    return _read_pid_file(path)[0]


def _holder_role(paths: Paths, pid: int) -> str:
    """What lock holder ``pid`` is: PULSE, SENSE (one beat) or UNKNOWN.

    The pid file only counts when it names that same pid: a file left by an
    earlier holder that was killed says nothing about the current one.
    """
    file_pid, role, _ = _read_pid_file(paths.pid_file)
    return role if file_pid == pid and pid else UNKNOWN


def holder(paths: Paths) -> Holder | None:
    """Who holds the lock, or None when it is free. Raises OSError when it cannot be examined."""
    pid = holder_pid(paths)
    if pid is None:
        return None
    return Holder(pid, _holder_role(paths, pid) if pid else UNKNOWN)


def pulse_holder(paths: Paths) -> int | None:
    """Is a pulse running? Its pid, else None: the one answer every command gives.

    The lock holder counts unless it is a one-off ``looop sense``; 0 means a
    pulse holds the lock but its pid is not known yet. None also when the
    lock cannot be examined (``looop status`` says why; see ``holder``).
    """
    try:
        held = holder(paths)
    except OSError:
        return None
    return held.pid if held is not None and held.is_pulse else None


def signal_pulse(paths: Paths, sig: int) -> int | None:
    """Send ``sig`` to the running pulse; its pid, or None when no pulse holds the lock.

    The one way anything signals the pulse: ``looop sense`` asks it to beat,
    ``reload`` to re-read its config, ``down`` to stop. The pulse is the
    lock's holder unless that is a one-off ``looop sense`` (``holder``), which
    is never signalled. A pulse that ended between the lookup and the signal
    still gives its pid: each caller waits for what the signal should bring
    and sees the lock let go instead. Raises LooopError when the pulse's pid
    is not known yet or the pulse is not this user's, OSError when the lock
    cannot be examined.
    """
    held = holder(paths)
    if held is None or not held.is_pulse:
        return None
    if not held.pid:
        raise LooopError("a pulse holds the lock but its pid is not known yet; try again")
    try:
        os.kill(held.pid, sig)
    except ProcessLookupError:
        pass  # it is ending: the caller's wait for the lock says so
    except PermissionError:
        raise LooopError(f"cannot signal the pulse (pid {held.pid}): not yours") from None
    return held.pid


def _open_lock_file(path: str, create: bool) -> int:
    """``lockfile.open_lock``, its refusal saying how to fix it."""
    try:
        return lockfile.open_lock(path, create=create)
    except fs.BadFile as exc:
        raise fs.BadFile(path, f"{exc.strerror}; {FIX}") from None


def acquire(
    paths: Paths, role: str = PULSE, *, outwait_sense: Callable[[], bool] | None = None
) -> PulseLock:
    """Take the profile's lock or raise AlreadyRunning(the holder).

    ``role`` goes into the pid file so others can tell a pulse, which answers
    SIGUSR1 with a beat, from a one-off ``looop sense``, which does not. With
    ``outwait_sense``, a lock held by a one-off beat is waited for (a beat
    ends by itself) for as long as ``outwait_sense()`` says to go on.
    """
    ensure_runtime_dir(paths)
    fd = _open_lock_file(paths.lock_file, create=True)
    try:
        os.fchmod(fd, 0o600)
        deadline = time.monotonic() + ACQUIRE_PATIENCE
        unknown_until: float | None = None
        while True:
            if lockfile.lock(fd, path=paths.lock_file):
                held = PulseLock(paths, fd)
                if held.still_ours():
                    break
                # The file was removed (or replaced) after we opened it: a
                # lock on it excludes nobody. Lock what the path names now.
                os.close(fd)
                fd = -1
                fd = _open_lock_file(paths.lock_file, create=True)
                os.fchmod(fd, 0o600)
                continue
            if time.monotonic() >= deadline:
                other = holder(paths)
                if other is None:
                    time.sleep(0.005)  # let go of just now (or a probe's shared lock): again
                    continue
                if other.pid == 0 and outwait_sense is not None:
                    # A holder between its pid file and its lock: one starting,
                    # or a one-off beat letting go. Either settles at once.
                    unknown_until = unknown_until or time.monotonic() + UNKNOWN_PATIENCE
                    if time.monotonic() < unknown_until and outwait_sense():
                        time.sleep(OUTWAIT_POLL)
                        continue
                if other.is_pulse or outwait_sense is None or not outwait_sense():
                    raise AlreadyRunning(other)
                time.sleep(OUTWAIT_POLL)
                continue
            time.sleep(0.005)
        # Written while the lock is held; if it cannot be (a full runtime
        # dir), the lock is let go here rather than kept by a descriptor
        # nobody will close.
        data = f"{os.getpid()} {role} {fd}\n".encode()
        fs.write_whole(paths.pid_file, data, mode=0o644, durable=False)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        raise
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
        fd = _open_lock_file(paths.lock_file, create=False)
    except FileNotFoundError:
        return None
    try:
        if lockfile.lock(fd, shared=True, path=paths.lock_file):
            lockfile.unlock(fd)
            return None
        st = os.fstat(fd)
    finally:
        os.close(fd)
    pid, _, holder_fd = _read_pid_file(paths.pid_file)
    if pid and holder_fd is not None and _fdinfo_holder(pid, holder_fd, st.st_ino):
        return pid
    return _proc_locks_holder(st.st_dev, st.st_ino) or pid or 0


@contextlib.contextmanager
def beat_lock(paths: Paths, cancelled: Callable[[], bool]) -> Iterator[bool]:
    """Hold the data dir's beat lock for one beat; yields False if stopped while waiting.

    A beat already in flight on this data dir (another pulse through a bind
    mount, or one that lost its runtime dir) is waited for: beats are
    bounded, so the wait is too. Taken again by the process that last let
    it go only after ``HANDOFF``, so two pulses take turns. Raises OSError
    when the lock file cannot be opened or made (a read-only data dir that
    never had one).
    """
    global _released_at
    path = os.path.join(paths.root, BEAT_LOCK)
    try:
        # Read-only is enough to flock, and works on a data dir remounted read-only.
        fd = _open_lock_file(path, create=False)
    except FileNotFoundError:
        fd = _open_lock_file(path, create=True)
    try:
        if (gap := _released_at + HANDOFF - time.monotonic()) > 0:
            time.sleep(gap)
        while not lockfile.lock(fd, path=path):
            if cancelled():
                yield False
                return
            time.sleep(OUTWAIT_POLL)
        try:
            yield True
        finally:
            _released_at = time.monotonic()
    finally:
        os.close(fd)
