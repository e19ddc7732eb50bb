"""``looop _ wait``: block until there is something to act on, then say what.

This module owns the root agent's blocking read. A wait returns the state (as
``looop _ state``) plus ``changed`` when a pending ask exists, the world hash
differs from its value when the wait began, or the pulse is not running; each
of those is checked once at the start, so a wait never sleeps on a world that
already needs attention or that nothing will update.

Why it is shaped this way:

* **Events, not a poll.** Every millisecond a wait oversleeps is the agent
  reacting late, so it sleeps on file-system notifications for exactly what
  feeds the hash and the mailbox: the data dir itself (``PLAYBOOK.md`` and the
  ``snapshots`` symlink, whose atomic swap is a rename *in the data dir*),
  ``goals/``, ``asks/`` and ``answers/``. Events are filtered by name (a beat
  also appends to ``events.jsonl``; that must cost a read, never a hash), a
  burst is let settle for a couple of milliseconds (and until a file being
  written is closed, so an edit is not read half-written), and only then is
  the hash recomputed. A wake whose hash equals the starting one (a file
  rewritten with the same bytes, a ``detail``-only beat) goes back to sleep.
* **inotify through ctypes.** The standard library has no inotify. Three libc
  calls (``inotify_init1``, ``inotify_add_watch``, ``inotify_rm_watch``) and a
  16-byte event header are all that is needed, so a small binding here beats a
  dependency: ``watchdog`` runs observer threads and emitter queues that add
  latency and start-up cost to a process whose whole job is to wake fast, and
  ``inotify_simple`` is itself exactly this ctypes binding. Symbols come from
  the running process (``CDLL(None)``), not ``ctypes.util.find_library``,
  which spawns ``ldconfig`` and would cost more than the wait's own start-up.
  On macOS and the BSDs ``select.kqueue`` (standard library) watches the same
  directories and files.
* **Pulse death by process handle, not by lock.** The lock holder's pid comes
  from ``lock.pulse_holder`` (which never stands in a starting pulse's way, and
  counts a one-off ``looop sense`` as no pulse); the wait then holds
  a pidfd (Linux) or an ``EVFILT_PROC`` event (kqueue) on that process and is
  woken the instant it exits, then asks the lock again: only a free lock is
  ``pulse-down``. It never blocks on the lock: a shared ``flock`` would be
  granted the instant the pulse dies, but a waiter still holding it when a
  pulse restarts (a stopped or starved agent process) would make that pulse
  fail to start. Arming re-reads the holder
  after opening the handle, so a reused pid cannot be watched by mistake.
  Where no handle can be had, the lock is probed every 500 ms. While the
  handle is quiet the holder is known to live, so the returned state takes
  ``pulse_alive`` from it rather than reading ``/proc/locks`` again, which
  can cost an RCU grace period (about 10 ms) on the wake path.
* **Leaving fast.** Latency is measured to the waiter's exit. Releasing an
  inotify instance waits for the kernel to retire its watches (another grace
  period); the watches are dropped the moment the wait decides to return and
  the descriptor is closed on a thread, so that wait overlaps reading and
  printing the state instead of following it.
* **A polling fallback** (``LOOOP_WAIT_POLL=1``, or wherever notifications
  cannot be set up) compares a cheap stat signature every 100 ms and the full
  hash once a second (timestamps can be too coarse to see two quick
  same-size edits), so the same tests run on it and it stays cheap. A watch
  that fails for want of the path is fine (its parent's watch sees the path
  appear); one that fails for any other reason (the inotify watch limit
  reached, no memory, no access, out of descriptors) would leave changes
  unseen, so the wait keeps its other notifications and polls as well.

Blocked, a wait sleeps in the kernel: no timer ticks unless it polls the lock
or runs the fallback (or, under a timeout longer than an hour, once an hour:
one kernel sleep cannot take weeks, so a long timeout is slept in turns).
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import select
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any

from looop.agent import state
from looop.data import mailbox
from looop.paths import Paths
from looop.pulse import lock, worldhash

POLL_ENV = "LOOOP_WAIT_POLL"  # set (not "0") to force the polling fallback
READY_ENV = "LOOOP_TEST_WAIT_READY"  # a file written once the wait is armed (tests, bench)

POLL_INTERVAL = 0.1  # fallback: stat signature this often
POLL_FULL = 1.0  # fallback: full hash this often, whatever the signature says
PULSE_POLL = 0.5  # lock probe period when the holder cannot be watched directly
QUIET = 0.002  # a burst of events has settled after this long without another
SETTLE_CAP = 0.05  # never settle longer than this, even if a writer keeps a file open
MAX_NAP = 3600.0  # one sleep in the kernel at most this long (poll(2) takes an int of ms)
MISSING = (errno.ENOENT, errno.ENOTDIR)  # a watch failing so is fine: nothing there yet

ORDER = ("asks", "goals", "playbook", "snapshots", "pulse-down")

# What a wake may have moved, so only the needed reads are done.
WORLD, ASKS, PULSE = "world", "asks", "pulse"


# --- the wait ----------------------------------------------------------------
def wait(paths: Paths, timeout: float | None = None) -> dict[str, Any] | None:
    """The state plus ``changed`` once there is something to act on; None on timeout.

    ``timeout`` is in seconds; None or infinity waits for as long as it takes.
    """
    if timeout is not None and math.isnan(timeout):
        raise ValueError("timeout must be a number of seconds, not NaN")
    deadline = None if timeout is None or timeout == math.inf else time.monotonic() + timeout
    backend = open_backend(paths)
    try:
        # Watches first, then the starting reads: a change after this point
        # is seen either by the reads or by an event, never by neither.
        start = worldhash.measure(paths)
        pulse = _PulseWatch(paths, backend)
        changed: set[str] = set()
        if _has_pending_ask(paths):
            changed.add("asks")
        if not pulse.arm():
            changed.add("pulse-down")
        _announce_ready(backend.name, start.hash)
        while not changed:
            now = time.monotonic()
            remaining = None if deadline is None else deadline - now
            if remaining is not None and remaining <= 0:
                return None
            # A long timeout is slept in turns: one kernel sleep cannot take it.
            naps = [t for t in (remaining, pulse.probe_in(now)) if t is not None]
            hints = backend.wait(min(*naps, MAX_NAP) if naps else None)
            if pulse.next_probe is not None and time.monotonic() >= pulse.next_probe:
                hints.add(PULSE)
            changed = _what_changed(paths, start, hints, pulse)
        alive = False if "pulse-down" in changed else backend.pid_alive()
    finally:
        backend.close()
    return _result(paths, changed, alive)


def _what_changed(
    paths: Paths, start: worldhash.World, hints: set[str], pulse: _PulseWatch
) -> set[str]:
    changed: set[str] = set()
    if ASKS in hints and _has_pending_ask(paths):
        changed.add("asks")
    if WORLD in hints:
        now = worldhash.measure(paths)
        if now.hash != start.hash:
            changed.update(part for part in worldhash.PARTS if now.parts[part] != start.parts[part])
    if PULSE in hints and not pulse.arm():
        changed.add("pulse-down")
    return changed


def _result(paths: Paths, changed: set[str], alive: bool | None) -> dict[str, Any]:
    # ``alive`` is known when the lock holder is watched (asking the lock
    # again reads /proc/locks, which can wait a whole RCU grace period).
    data = state.collect(paths, alive=alive)
    # The state is read after the wake; report what it shows, too. No ask was
    # pending when the wait began (it would have returned at once), so any
    # pending now is news.
    if data["asks"]:
        changed.add("asks")
    if not data["pulse_alive"]:
        changed.add("pulse-down")
    data["changed"] = [name for name in ORDER if name in changed]
    return data


def _has_pending_ask(paths: Paths) -> bool:
    """Is any ask pending? ``mailbox.has_pending``: names only, no parsing."""
    return mailbox.has_pending(paths)


def _announce_ready(backend: str, world_hash: str) -> None:
    target = os.environ.get(READY_ENV)
    if not target:
        return
    tmp = f"{target}.{os.getpid()}.tmp"
    with contextlib.suppress(OSError):
        Path(tmp).write_text(f"{backend} {world_hash}\n")
        os.replace(tmp, target)


# --- the pulse ---------------------------------------------------------------
class _PulseWatch:
    """Is the pulse (the lock holder) still there? Woken by its exit where possible."""

    def __init__(self, paths: Paths, backend: Backend) -> None:
        self.paths, self.backend = paths, backend
        self.next_probe: float | None = None  # set while the lock must be probed

    def _holder(self) -> int | None:
        return lock.pulse_holder(self.paths)  # a one-off beat is no pulse: pulse-down

    def probe_in(self, now: float) -> float | None:
        return None if self.next_probe is None else max(0.0, self.next_probe - now)

    def arm(self) -> bool:
        """False when no pulse holds the lock; else watch the holder and return True."""
        self.backend.unwatch_pid()
        self.next_probe = None
        for _ in range(3):
            pid = self._holder()
            if pid is None:
                return False
            if pid <= 0:
                break
            try:
                if not self.backend.watch_pid(pid):
                    break  # this backend cannot: probe the lock instead
            except ProcessLookupError:
                continue  # it went away while being armed: ask the lock again
            # The handle names whichever process had this pid when it was
            # opened; if the lock still names that pid now, it is the holder.
            # (Had it exited in between, the handle is already signalled and
            # the next wake re-arms.)
            if self._holder() == pid:
                return True
            self.backend.unwatch_pid()
        self.next_probe = time.monotonic() + PULSE_POLL
        return True


# --- backends ----------------------------------------------------------------
class Backend:
    """Sleeps until something that may matter happens; says what it may have moved."""

    name = "none"
    paths: Paths
    fallback: _Polling | None = None  # polls what some watch could not be set up on

    def _watch_failed(self, exc: OSError) -> None:
        """A watch could not be set up: poll as well, unless there was nothing to watch.

        A missing path is seen appearing by its parent's watch; any other
        failure (no watches left, no memory, no access) would leave its
        changes unseen.
        """
        if exc.errno in MISSING or self.fallback is not None:
            return
        self.fallback = _Polling(self.paths, full_first=True)
        self.name = f"{type(self).name}+poll"

    def _nap(self, timeout: float | None) -> float | None:
        """How long the notifications may be slept on: no longer than a poll while polling."""
        if self.fallback is None:
            return timeout
        return POLL_INTERVAL if timeout is None else min(timeout, POLL_INTERVAL)

    def _polled(self) -> set[str]:
        return set() if self.fallback is None else self.fallback.check()

    def wait(self, timeout: float | None) -> set[str]:
        """Block up to ``timeout`` (None: forever); return hints, empty on nothing."""
        raise NotImplementedError

    def watch_pid(self, pid: int) -> bool:
        """Wake on ``pid``'s exit; False if that cannot be done here.

        Raises ProcessLookupError when ``pid`` is already gone.
        """
        return False

    def unwatch_pid(self) -> None:
        pass

    def pid_alive(self) -> bool | None:
        """True while the watched holder is known to live; None when unknown."""
        return None

    def close(self) -> None:
        pass


def open_backend(paths: Paths) -> Backend:
    """inotify on Linux, kqueue on macOS/BSD, else (or when forced) polling."""
    if os.environ.get(POLL_ENV, "") in ("", "0"):
        try:
            if sys.platform.startswith("linux"):
                return _Inotify(paths)
            if hasattr(select, "kqueue"):
                return _Kqueue(paths)
        except (OSError, AttributeError):
            pass  # no watches to be had (limits, a missing data dir): poll instead
    return _Polling(paths)


class _Polling(Backend):
    """Stat what feeds the hash and the mailbox every POLL_INTERVAL; hash on a difference.

    A directory's own stat moves when an entry is added, removed or renamed,
    so goals/ is listed again only then, and asks/ and answers/ never are. A
    change that a coarse timestamp hides is caught by the full read every
    POLL_FULL.
    """

    name = "poll"

    def __init__(self, paths: Paths, full_first: bool = False) -> None:
        self.paths = paths
        self.goals_dir: tuple[int, ...] | None = None
        self.goal_files: list[Path] = []
        self.signature = self._signature()
        # Started late (a watch failed mid-wait), the first check reads everything:
        # a change made before the signature above was taken is seen so.
        self.next_full = time.monotonic() + (0.0 if full_first else POLL_FULL)

    def _signature(self) -> tuple[Any, ...]:
        p = self.paths
        goals_dir = _stat(p.goals)
        if goals_dir != self.goals_dir:
            self.goals_dir = goals_dir
            try:
                self.goal_files = sorted(p.goals.glob("*.md"))
            except OSError:
                self.goal_files = []
        try:
            link: str | None = os.readlink(p.snapshots)
        except OSError:
            link = None
        return (
            _stat(p.playbook),
            link,
            _stat(p.snapshots),
            goals_dir,
            [_stat(goal) for goal in self.goal_files],
            _stat(p.asks),
            _stat(p.answers),
        )

    def wait(self, timeout: float | None) -> set[str]:
        time.sleep(POLL_INTERVAL if timeout is None else min(timeout, POLL_INTERVAL))
        return self.check()

    def check(self) -> set[str]:
        """Hints if the signature moved since the last check, or a full read is due."""
        hints: set[str] = set()
        signature = self._signature()
        now = time.monotonic()
        if signature != self.signature or now >= self.next_full:
            self.signature = signature
            self.next_full = now + POLL_FULL
            hints.update((WORLD, ASKS))
        return hints


def _ms(seconds: float | None) -> int | None:
    """A poll(2) timeout: whole milliseconds, rounded up so a wait is never cut short."""
    return None if seconds is None else max(0, math.ceil(seconds * 1000))


def _stat(path: Path) -> tuple[int, ...] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


# inotify(7) constants (the same on every Linux architecture).
IN_MODIFY = 0x2
IN_ATTRIB = 0x4
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000
IN_EXCL_UNLINK = 0x04000000
IN_ISDIR = 0x40000000

DIR_MASK = (
    IN_MODIFY
    | IN_CLOSE_WRITE
    | IN_CREATE
    | IN_DELETE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_ONLYDIR
    | IN_EXCL_UNLINK
)
FILE_MASK = IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF
EVENT_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len; then the name
SUBDIRS = {"goals": WORLD, "asks": ASKS, "answers": ASKS}


class _Inotify(Backend):
    """Watches the data dir, goals/, asks/, answers/ and any symlinked hashed file."""

    name = "inotify"

    def __init__(self, paths: Paths) -> None:
        import ctypes  # only here: the polling and kqueue paths never pay for it

        self.paths = paths
        libc = ctypes.CDLL(None, use_errno=True)
        self._init1 = libc.inotify_init1
        self._add = libc.inotify_add_watch
        self._add.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        self._rm = libc.inotify_rm_watch
        self._rm.argtypes = (ctypes.c_int, ctypes.c_int)
        self._errno = ctypes.get_errno
        fd = self._init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            err = self._errno()
            raise OSError(err, os.strerror(err))
        self.fd = fd
        self.pidfd: int | None = None
        self.roles: dict[int, str] = {}  # wd -> "data", a SUBDIRS key, or "file"
        self.file_wds: set[int] = set()
        self.writing: set[tuple[int, bytes]] = set()  # modified, not yet closed
        self.rearm_needed = False
        self.poller = select.poll()  # the inotify fd and the pidfd
        self.poller.register(fd, select.POLLIN)
        self.events = select.poll()  # the inotify fd alone, while a burst settles
        self.events.register(fd, select.POLLIN)
        try:
            self._watch(paths.data_dir, "data", DIR_MASK)
            self._rearm()
        except OSError:
            self.close()
            raise

    def _watch(self, path: Path, role: str, mask: int) -> int:
        wd = self._add(self.fd, os.fsencode(path), mask)
        if wd < 0:
            err = self._errno()
            raise OSError(err, os.strerror(err), str(path))
        self.roles[wd] = role
        return wd

    def _watch_or_poll(self, path: Path, role: str, mask: int) -> int | None:
        try:
            return self._watch(path, role, mask)
        except OSError as exc:
            self._watch_failed(exc)
            return None

    def _rearm(self) -> None:
        """(Re)watch the subdirs and the targets of symlinked hashed files."""
        self.rearm_needed = False
        for name in SUBDIRS:
            self._watch_or_poll(self.paths.data_dir / name, name, DIR_MASK)
        # A PLAYBOOK.md or goal that is a symlink to elsewhere (a notes repo)
        # changes where no directory watch above can see it.
        links = [self.paths.playbook]
        try:
            links += [self.paths.goals / e.name for e in os.scandir(self.paths.goals)]
        except OSError as exc:
            self._watch_failed(exc)
        wanted: set[int] = set()
        for path in links:
            if path.name.endswith(".md") and path.is_symlink():
                wd = self._watch_or_poll(path, "file", FILE_MASK)
                if wd is not None:
                    wanted.add(wd)
        for wd in self.file_wds - wanted:
            self._rm(self.fd, wd)
            self.roles.pop(wd, None)
        self.file_wds = wanted

    def _events(self) -> list[tuple[int, int, bytes]]:
        try:
            buf = os.read(self.fd, 65536)
        except BlockingIOError:
            return []
        found = []
        offset = 0
        while offset + EVENT_HEADER.size <= len(buf):
            wd, mask, _cookie, length = EVENT_HEADER.unpack_from(buf, offset)
            offset += EVENT_HEADER.size
            found.append((wd, mask, buf[offset : offset + length].rstrip(b"\0")))
            offset += length
        return found

    def _classify(self, wd: int, mask: int, name: bytes) -> set[str]:
        if mask & IN_Q_OVERFLOW:
            self.rearm_needed = True
            return {WORLD, ASKS}
        role = self.roles.get(wd)
        if mask & IN_IGNORED:  # the watched thing is gone
            self.roles.pop(wd, None)
            self.file_wds.discard(wd)
            return set() if role is None else {SUBDIRS.get(role, WORLD)}
        hints: set[str] = set()
        if role == "data":
            text = name.decode(errors="surrogateescape")
            if text in ("PLAYBOOK.md", "snapshots"):
                hints.add(WORLD)
                self.rearm_needed |= text == "PLAYBOOK.md" and not mask & (
                    IN_MODIFY | IN_CLOSE_WRITE
                )
            elif text in SUBDIRS:
                hints.add(SUBDIRS[text])
                self.rearm_needed = True
        elif role == "goals":
            if name.endswith(b".md"):
                hints.add(WORLD)
                self.rearm_needed |= not mask & (IN_MODIFY | IN_CLOSE_WRITE)
        elif role in ("asks", "answers"):
            if name.endswith(b".json"):
                hints.add(ASKS)
        elif role == "file":
            hints.add(WORLD)
            self.rearm_needed = True
        if hints:
            key = (wd, name)
            if mask & IN_MODIFY:
                self.writing.add(key)
            elif mask & (IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM | IN_DELETE_SELF):
                self.writing.discard(key)
        return hints

    def _drain(self) -> set[str]:
        hints: set[str] = set()
        for wd, mask, name in self._events():
            hints |= self._classify(wd, mask, name)
        return hints

    def wait(self, timeout: float | None) -> set[str]:
        ready = self.poller.poll(_ms(self._nap(timeout)))
        hints = self._polled()
        if not ready:
            return hints
        if self.pidfd is not None and any(fd == self.pidfd for fd, _ in ready):
            hints.add(PULSE)
        found = self._drain()
        if found:
            # Let the burst settle: a beat's swap, an editor's write-and-rename,
            # a truncate-then-write. Wait for a quiet gap, and for files being
            # written to be closed, but never past SETTLE_CAP.
            hints |= found
            began = last = time.monotonic()
            while True:
                now = time.monotonic()
                until = (
                    began + SETTLE_CAP if self.writing else min(began + SETTLE_CAP, last + QUIET)
                )
                if now >= until:
                    break
                more = self.events.poll(_ms(until - now))
                if more:
                    extra = self._drain()
                    if extra:
                        hints |= extra
                        last = time.monotonic()
            self.writing.clear()
        if self.rearm_needed:
            self._rearm()
        return hints

    def watch_pid(self, pid: int) -> bool:
        self.unwatch_pid()
        try:
            self.pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            raise
        except (OSError, AttributeError):
            return False  # an old kernel, or not allowed
        self.poller.register(self.pidfd, select.POLLIN)
        return True

    def pid_alive(self) -> bool | None:
        if self.pidfd is None:
            return None
        exited = select.poll()
        exited.register(self.pidfd, select.POLLIN)
        return None if exited.poll(0) else True

    def unwatch_pid(self) -> None:
        if self.pidfd is not None:
            self.poller.unregister(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = None

    def close(self) -> None:
        self.unwatch_pid()
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            # Releasing an inotify instance waits for the kernel to retire its
            # watches (an SRCU grace period, about 10 ms), and so would exit if
            # it were left open. Removing the watches now starts that clock at
            # once; a thread pays for the rest while the state is read and
            # printed, instead of the agent waiting on it.
            for wd in self.roles:
                self._rm(fd, wd)
            self.roles.clear()
            threading.Thread(target=os.close, args=(fd,), daemon=True).start()


class _Kqueue(Backend):
    """kqueue(2): vnode events on the same directories and on each hashed file.

    kqueue reports *that* a directory changed, not which entry, so a directory
    event hints at everything and re-opens the file watches (a new goal, a
    playbook replaced by rename).
    """

    name = "kqueue"

    DIR_FLAGS = getattr(select, "KQ_NOTE_WRITE", 0x2)
    FILE_FLAGS = (
        getattr(select, "KQ_NOTE_WRITE", 0x2)
        | getattr(select, "KQ_NOTE_EXTEND", 0x4)
        | getattr(select, "KQ_NOTE_ATTRIB", 0x8)
        | getattr(select, "KQ_NOTE_DELETE", 0x1)
        | getattr(select, "KQ_NOTE_RENAME", 0x20)
    )

    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self.kq = select.kqueue()
        self.fds: dict[int, str] = {}  # open fd -> role
        self.pid: int | None = None
        try:
            self._open(paths.data_dir, "data", self.DIR_FLAGS)
            self._rearm()
        except OSError:
            self.close()
            raise

    def _open(self, path: Path, role: str, fflags: int) -> None:
        flags = getattr(os, "O_EVTONLY", os.O_RDONLY) | os.O_CLOEXEC
        fd = os.open(path, flags)
        try:
            ev = select.kevent(
                fd,
                filter=select.KQ_FILTER_VNODE,
                flags=select.KQ_EV_ADD | select.KQ_EV_CLEAR,
                fflags=fflags,
            )
            self.kq.control([ev], 0, 0)
        except OSError:
            os.close(fd)
            raise
        self.fds[fd] = role

    def _open_or_poll(self, path: Path, role: str, fflags: int) -> None:
        try:
            self._open(path, role, fflags)
        except OSError as exc:
            self._watch_failed(exc)

    def _rearm(self) -> None:
        for fd, role in list(self.fds.items()):
            if role != "data":
                os.close(fd)  # closing a descriptor drops its events
                del self.fds[fd]
        for name in SUBDIRS:
            self._open_or_poll(self.paths.data_dir / name, name, self.DIR_FLAGS)
        files = [self.paths.playbook]
        try:
            files += [
                self.paths.goals / e.name
                for e in os.scandir(self.paths.goals)
                if e.name.endswith(".md")
            ]
        except OSError as exc:
            self._watch_failed(exc)
        for path in files:
            self._open_or_poll(path, "file", self.FILE_FLAGS)

    def _collect(self, timeout: float | None) -> tuple[set[str], bool]:
        hints: set[str] = set()
        rearm = False
        for ev in self.kq.control(None, 64, timeout):
            if ev.filter == select.KQ_FILTER_PROC:
                hints.add(PULSE)
                continue
            role = self.fds.get(ev.ident)
            if role in ("data", "goals", "file"):
                hints.update((WORLD, ASKS) if role == "data" else (WORLD,))
                rearm = True
            elif role in ("asks", "answers"):
                hints.add(ASKS)
        return hints, rearm

    def wait(self, timeout: float | None) -> set[str]:
        hints, rearm = self._collect(self._nap(timeout))
        hints |= self._polled()
        if hints - {PULSE}:
            deadline = time.monotonic() + SETTLE_CAP
            while time.monotonic() < deadline:
                more, again = self._collect(QUIET)
                if not more:
                    break
                hints |= more
                rearm |= again
        if rearm:
            self._rearm()
        return hints

    def watch_pid(self, pid: int) -> bool:
        self.unwatch_pid()
        ev = select.kevent(
            pid,
            filter=select.KQ_FILTER_PROC,
            flags=select.KQ_EV_ADD | select.KQ_EV_ONESHOT,
            fflags=select.KQ_NOTE_EXIT,
        )
        try:
            self.kq.control([ev], 0, 0)
        except ProcessLookupError:
            raise
        except OSError:
            return False
        self.pid = pid
        return True

    def unwatch_pid(self) -> None:
        if self.pid is None:
            return
        ev = select.kevent(self.pid, filter=select.KQ_FILTER_PROC, flags=select.KQ_EV_DELETE)
        with contextlib.suppress(OSError):
            self.kq.control([ev], 0, 0)
        self.pid = None

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()
        self.kq.close()
