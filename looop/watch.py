"""File watching for the wait: sleep until what feeds the hash or the mailbox may have moved."""

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

from looop.paths import Paths

POLL_ENV = "LOOOP_WAIT_POLL"  # set (not "0") to force the polling fallback
POLL_INTERVAL = 0.1  # fallback: stat signature this often
POLL_FULL = 1.0  # fallback: full hash this often, whatever the signature says
QUIET = 0.002  # a burst of events has settled after this long without another
SETTLE_CAP = 0.05  # never settle longer than this, even if a writer keeps a file open
MISSING = (errno.ENOENT, errno.ENOTDIR)  # a watch failing so is fine: nothing there yet

# What a wake may have moved, so only the needed reads are done.
WORLD, ASKS, PULSE = "world", "asks", "pulse"


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
