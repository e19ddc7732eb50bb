"""File watching: sleep until something a caller declared may have moved.

This module owns looop's file-system notifications. A caller declares what it
watches, as directories (each with a *role*, a filter on the entry names that
matter, and optionally which of those entries to watch in their own right),
opens a ``Watch`` on them, and calls ``Watch.wait(timeout)``: one blocking call
that returns the roles that may have moved, and whether a watched process
exited. It says *may*: the caller reads what it cares about and decides; a
wake is a hint, never a verdict. ``looop _ wait`` uses it for what feeds the
world hash and the mailbox; ``looop _ ask`` waits on one answer the same way::

    name = f"{ask_id}.json"  # the answer to come, and the ask that must stay
    dirs = [watch.Dir(paths.answers, "answer", name.__eq__),
            watch.Dir(paths.asks, "ask", name.__eq__)]  # both seeded with the data dir
    with watch.open_watch(dirs) as w:
        # Watch first, then look: a change after this is seen by one or the other.
        while not (paths.answers / name).exists():
            if not (paths.asks / name).exists():
                raise AskGone(ask_id)
            if deadline is not None and time.monotonic() >= deadline:
                raise AskTimeout(ask_id)
            w.wait(None if deadline is None else deadline - time.monotonic())

Why it is shaped this way:

* **Events, filtered by name, let settle.** Every millisecond a waiter
  oversleeps is a reaction come late, so it sleeps on notifications for
  exactly the declared directories. Events are filtered by name (a beat also
  appends to ``events.jsonl`` in the data dir; that must cost a read, never a
  wake), and a burst is let settle for a couple of milliseconds (and until a
  file being written is closed, so an edit is not read half-written) before
  the roles are returned. A directory whose parent is declared too is watched
  again when its name comes or goes in the parent. An entry may be watched in
  its own right (``Dir.follow``): a symlinked ``PLAYBOOK.md`` or goal whose
  target lives elsewhere (a notes repo) changes where no directory watch can
  see it. A single file is declared so, as an entry of its directory, never
  alone: one replaced by rename (editors, atomic writers) is seen only by its
  directory's watch.
* **inotify through ctypes.** The standard library has no inotify. Three libc
  calls (``inotify_init1``, ``inotify_add_watch``, ``inotify_rm_watch``) and a
  16-byte event header are all that is needed, so a small binding here beats a
  dependency: ``watchdog`` runs observer threads and emitter queues that add
  latency and start-up cost to a process whose whole job is to wake fast, and
  ``inotify_simple`` is itself exactly this ctypes binding. Symbols come from
  the running process (``CDLL(None)``), not ``ctypes.util.find_library``,
  which spawns ``ldconfig`` and would cost more than the wait's own start-up.
  On macOS and the BSDs ``select.kqueue`` (standard library) watches the same
  directories and files; it reports *that* a directory changed, not which
  entry, so there every followed entry is watched in its own right.
* **A process by its handle.** ``Watch.watch_pid`` holds a pidfd (Linux) or an
  ``EVFILT_PROC`` event (kqueue) on a process, so ``wait`` returns the instant
  it exits (``Wake.pid_exited``), and ``pid_alive`` answers from the handle
  without asking the system again. The handle names whichever process had the
  pid when it was opened: the caller checks afterwards that the pid is still
  the one it meant (``looop.agent.wait`` does, against the lock).
* **Leaving fast.** Latency is measured to the waiter's exit. Releasing an
  inotify instance waits for the kernel to retire its watches (an RCU grace
  period, about 10 ms); ``close`` drops the watches at once and closes the
  descriptor on a thread, so that wait overlaps the caller's reading and
  printing instead of following it.
* **A polling fallback** (``open_watch(..., poll=True)``, or wherever
  notifications cannot be set up) compares a cheap stat signature of what was
  declared (each directory, and each followed entry, listed again only when
  its directory's own stat moves) every 100 ms, and returns every role once a
  second whatever the signature says (timestamps can be too coarse to see two
  quick same-size edits), so the same tests run on it and it stays cheap. A
  watch that fails for want of the path is fine (its parent's watch sees the
  path appear); one that fails for any other reason (the inotify watch limit
  reached, no memory, no access, out of descriptors) would leave changes
  unseen, so the watch keeps its other notifications and polls as well. A
  directory whose parent is not declared (a *root*) that cannot be watched
  at all makes the whole watch poll: nothing else would see it.

Blocked, a watch sleeps in the kernel: no timer ticks unless it polls (or,
under a timeout longer than an hour, once an hour: one kernel sleep cannot
take weeks, so a long timeout is slept in turns and ``wait`` may return
with nothing moved; callers loop on their own deadline).
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

TYPE_CHECKING = False  # not typing's: `_ wait` and `_ ask` sleep through this module
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path
    from types import TracebackType

POLL_INTERVAL = 0.1  # fallback: stat signature this often
POLL_FULL = 1.0  # fallback: every role this often, whatever the signature says
QUIET = 0.002  # a burst of events has settled after this long without another
SETTLE_CAP = 0.05  # never settle longer than this, even if a writer keeps a file open
MAX_NAP = 3600.0  # one sleep in the kernel at most this long (poll(2) takes an int of ms)
MISSING = (errno.ENOENT, errno.ENOTDIR)  # a watch failing so is fine: nothing there yet


def _any_name(name: str) -> bool:
    return True


class Dir:
    """A directory to watch: events on entries whose names pass ``names`` wake ``role``.

    ``follow`` picks, among those, the entries also watched in their own right
    (where one may be a symlink whose target the directory's watch cannot see).
    A plain slotted class, not a ``NamedTuple``: ``typing`` costs a wait more
    than its whole arming.
    """

    __slots__ = ("follow", "names", "path", "role")

    def __init__(
        self,
        path: Path,
        role: str,
        names: Callable[[str], bool] = _any_name,
        follow: Callable[[str], bool] | None = None,
    ) -> None:
        self.path, self.role, self.names, self.follow = path, role, names, follow

    def followed(self, name: str) -> bool:
        return self.follow is not None and self.names(name) and self.follow(name)

    def entries(self) -> list[Path]:
        """The followed entries there now; raises OSError when the directory cannot be listed."""
        if self.follow is None:
            return []
        return sorted(self.path / e.name for e in os.scandir(self.path) if self.followed(e.name))


class Wake:
    """What one ``Watch.wait`` saw: the roles that may have moved, and the process's exit."""

    __slots__ = ("pid_exited", "roles")

    def __init__(self, roles: frozenset[str], pid_exited: bool = False) -> None:
        self.roles, self.pid_exited = roles, pid_exited


class Watch:
    """Sleeps until something declared may have moved; says which roles."""

    name = "none"
    fallback: _Polling | None = None  # polls what some watch could not be set up on

    def __init__(self, dirs: Sequence[Dir]) -> None:
        self.dirs = list(dirs)
        self.roles = frozenset(d.role for d in self.dirs)
        index = {d.path: i for i, d in enumerate(self.dirs)}
        # The declared directories declared inside another, by parent and name.
        self.children: dict[int, dict[str, int]] = {i: {} for i in range(len(self.dirs))}
        self.roots: list[int] = []
        for i, d in enumerate(self.dirs):
            parent = index.get(d.path.parent)
            if parent is None or parent == i:
                self.roots.append(i)
            else:
                self.children[parent][d.path.name] = i

    def __enter__(self) -> Watch:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _watch_failed(self, exc: OSError) -> None:
        """A watch could not be set up: poll as well, unless there was nothing to watch.

        A missing path is seen appearing by its parent's watch; any other
        failure (no watches left, no memory, no access) would leave its
        changes unseen.
        """
        if exc.errno in MISSING or self.fallback is not None:
            return
        self.fallback = _Polling(self.dirs, full_first=True)
        self.name = f"{type(self).name}+poll"

    def _nap(self, timeout: float | None) -> float:
        """How long one kernel sleep may last: capped, and no longer than a poll while polling."""
        cap = MAX_NAP if self.fallback is None else POLL_INTERVAL
        return cap if timeout is None else max(0.0, min(timeout, cap))

    def _polled(self) -> set[str]:
        return set() if self.fallback is None else self.fallback.check()

    def wait(self, timeout: float | None) -> Wake:
        """Block up to ``timeout`` seconds (None: as long as it takes, in turns of MAX_NAP)."""
        raise NotImplementedError

    def watch_pid(self, pid: int) -> bool:
        """Wake on ``pid``'s exit; False if that cannot be done here.

        Raises ProcessLookupError when ``pid`` is already gone.
        """
        return False

    def unwatch_pid(self) -> None:
        pass

    def pid_alive(self) -> bool | None:
        """True while the watched process is known to live; None when unknown."""
        return None

    def fileno(self) -> int | None:
        """A descriptor readable when ``wait(0)`` has something to say; None when polling.

        For a caller that sleeps on other descriptors too (a terminal's
        keys, in ``looop.screen.live``): it adds this one to its own
        ``select`` and calls ``wait(0)`` when it is readable. A watch that
        polls (all of it, or a part it could not set up) has none to give:
        such a caller must call ``wait`` every ``POLL_INTERVAL``.
        """
        return None

    def close(self) -> None:
        pass


def open_watch(dirs: Sequence[Dir], poll: bool = False) -> Watch:
    """inotify on Linux, kqueue on macOS/BSD, else (or with ``poll``) polling."""
    if not poll:
        try:
            if sys.platform == "linux":
                return _Inotify(dirs)
            else:
                if hasattr(select, "kqueue"):
                    return _Kqueue(dirs)
        except (OSError, AttributeError):
            pass  # no watches to be had (limits, a missing root): poll instead
    return _Polling(dirs)


class _Polling(Watch):
    """Stat what was declared every POLL_INTERVAL; every role on a difference.

    A directory's own stat moves when an entry is added, removed or renamed,
    so a directory's followed entries are listed again only then, and a
    directory without any never is. A change that a coarse timestamp hides is
    caught by returning every role each POLL_FULL.
    """

    name = "poll"

    def __init__(self, dirs: Sequence[Dir], full_first: bool = False) -> None:
        super().__init__(dirs)
        self.listed: list[tuple[int, ...] | None] = [None] * len(self.dirs)
        self.entries: list[list[Path]] = [[] for _ in self.dirs]
        self.signature = self._signature()
        # Started late (a watch failed mid-wait), the first check returns every
        # role: a change made before the signature above was taken is seen so.
        self.next_full = time.monotonic() + (0.0 if full_first else POLL_FULL)

    def _signature(self) -> list[object]:
        signature: list[object] = []
        for i, d in enumerate(self.dirs):
            own = _stat(d.path)
            if d.follow is not None and own != self.listed[i]:
                self.listed[i] = own
                try:
                    self.entries[i] = d.entries()
                except OSError:
                    self.entries[i] = []
            signature.append(own)
            signature.append([_stat(entry) for entry in self.entries[i]])
        return signature

    def wait(self, timeout: float | None) -> Wake:
        time.sleep(self._nap(timeout))
        return Wake(frozenset(self.check()))

    def _nap(self, timeout: float | None) -> float:
        return POLL_INTERVAL if timeout is None else max(0.0, min(timeout, POLL_INTERVAL))

    def check(self) -> set[str]:
        """Every role if the signature moved since the last check, or one is due anyway."""
        signature = self._signature()
        now = time.monotonic()
        if signature != self.signature or now >= self.next_full:
            self.signature = signature
            self.next_full = now + POLL_FULL
            return set(self.roles)
        return set()


def _ms(seconds: float) -> int:
    """A poll(2) timeout: whole milliseconds, rounded up so a wait is never cut short."""
    return max(0, math.ceil(seconds * 1000))


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
FILE = -1  # in _Inotify.wds: a followed entry rather than a declared directory


class _Inotify(Watch):
    """inotify(7): a watch per declared directory, and per followed entry that is a symlink.

    An entry that is a plain file is seen by its directory's watch; only a
    symlink's target changes unseen, so only symlinks get a watch of their own.
    """

    name = "inotify"

    def __init__(self, dirs: Sequence[Dir]) -> None:
        import ctypes  # only here: the polling and kqueue paths never pay for it

        super().__init__(dirs)
        libc = ctypes.CDLL(None, use_errno=True)
        self._init1 = libc.inotify_init1
        self._add = libc.inotify_add_watch
        self._add.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)
        self._rm = libc.inotify_rm_watch
        self._rm.argtypes = (ctypes.c_int, ctypes.c_int)
        self._errno = ctypes.get_errno
        fd: int = self._init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            err = self._errno()
            raise OSError(err, os.strerror(err))
        self.fd = fd
        self.pidfd: int | None = None
        self.wds: dict[int, tuple[int, str]] = {}  # wd -> (index in dirs, or FILE; role)
        self.file_wds: set[int] = set()
        self.writing: set[tuple[int, bytes]] = set()  # modified, not yet closed
        self.rearm_needed = False
        self.poller = select.poll()  # the inotify fd and the pidfd
        self.poller.register(fd, select.POLLIN)
        self.events = select.poll()  # the inotify fd alone, while a burst settles
        self.events.register(fd, select.POLLIN)
        try:
            for i in self.roots:
                self._watch(self.dirs[i].path, (i, self.dirs[i].role), DIR_MASK)
            self._rearm()
        except OSError:
            self.close()
            raise

    def _watch(self, path: Path, what: tuple[int, str], mask: int) -> int:
        wd: int = self._add(self.fd, os.fsencode(path), mask)
        if wd < 0:
            err = self._errno()
            raise OSError(err, os.strerror(err), str(path))
        self.wds[wd] = what
        return wd

    def _watch_or_poll(self, path: Path, what: tuple[int, str], mask: int) -> int | None:
        try:
            return self._watch(path, what, mask)
        except OSError as exc:
            self._watch_failed(exc)
            return None

    def _rearm(self) -> None:
        """(Re)watch the declared directories inside another, and the followed symlinks."""
        self.rearm_needed = False
        for i, d in enumerate(self.dirs):
            if i not in self.roots:
                self._watch_or_poll(d.path, (i, d.role), DIR_MASK)
        wanted: set[int] = set()
        for d in self.dirs:
            try:
                entries = d.entries()
            except OSError as exc:
                self._watch_failed(exc)
                continue
            for path in entries:
                if path.is_symlink():
                    wd = self._watch_or_poll(path, (FILE, d.role), FILE_MASK)
                    if wd is not None:
                        wanted.add(wd)
        for wd in self.file_wds - wanted:
            self._rm(self.fd, wd)
            self.wds.pop(wd, None)
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
            return set(self.roles)
        what = self.wds.get(wd)
        if mask & IN_IGNORED:  # the watched thing is gone
            self.wds.pop(wd, None)
            self.file_wds.discard(wd)
            return set() if what is None else {what[1]}
        if what is None:
            return set()
        index, role = what
        hints: set[str] = set()
        if index == FILE:
            hints.add(role)
            self.rearm_needed = True
        else:
            text = name.decode(errors="surrogateescape")
            child = self.children[index].get(text)
            d = self.dirs[index]
            if child is not None:
                hints.add(self.dirs[child].role)
                self.rearm_needed = True
            elif d.names(text):
                hints.add(role)
                # Created, removed or renamed: it may be a new symlink to follow.
                self.rearm_needed |= d.followed(text) and not mask & (IN_MODIFY | IN_CLOSE_WRITE)
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

    def wait(self, timeout: float | None) -> Wake:
        ready = self.poller.poll(_ms(self._nap(timeout)))
        hints = self._polled()
        if not ready:
            return Wake(frozenset(hints))
        exited = self.pidfd is not None and any(fd == self.pidfd for fd, _ in ready)
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
        return Wake(frozenset(hints), exited)

    def watch_pid(self, pid: int) -> bool:
        self.unwatch_pid()
        if sys.platform != "linux":
            return False  # pidfds are Linux's (and this backend is only used there)
        try:
            self.pidfd = os.pidfd_open(pid)
        except ProcessLookupError:
            raise
        except (OSError, AttributeError):
            return False  # an old kernel, or not allowed
        self.poller.register(self.pidfd, select.POLLIN)
        return True

    def fileno(self) -> int | None:
        return None if self.fallback is not None or self.fd < 0 else self.fd

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
            # once; a thread pays for the rest while the caller reads and
            # prints, instead of waiting on it.
            for wd in self.wds:
                self._rm(fd, wd)
            self.wds.clear()
            threading.Thread(target=os.close, args=(fd,), daemon=True).start()


# Defined only off Linux, so that type checkers there (whose ``select`` has no
# kqueue) need not know its names.
if sys.platform != "linux":

    class _Kqueue(Watch):
        """kqueue(2): vnode events on the declared directories and on every followed entry.

        kqueue reports *that* a directory changed, not which entry, so a
        directory event wakes its own role and its declared children's, and
        (where it holds children or followed entries) re-opens the watches
        below it: a new goal, a playbook replaced by rename. Writes to a file
        do not show on its directory, so every followed entry is watched.
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

        def __init__(self, dirs: Sequence[Dir]) -> None:
            super().__init__(dirs)
            self.kq = select.kqueue()
            self.fds: dict[int, tuple[int, str]] = {}  # open fd -> (index in dirs, or FILE; role)
            self.pid: int | None = None
            try:
                for i in self.roots:
                    self._open(self.dirs[i].path, (i, self.dirs[i].role), self.DIR_FLAGS)
                self._rearm()
            except OSError:
                self.close()
                raise

        def _open(self, path: Path, what: tuple[int, str], fflags: int) -> None:
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
            self.fds[fd] = what

        def _open_or_poll(self, path: Path, what: tuple[int, str], fflags: int) -> None:
            try:
                self._open(path, what, fflags)
            except OSError as exc:
                self._watch_failed(exc)

        def _rearm(self) -> None:
            for fd, (index, _role) in list(self.fds.items()):
                if index not in self.roots:
                    os.close(fd)  # closing a descriptor drops its events
                    del self.fds[fd]
            for i, d in enumerate(self.dirs):
                if i not in self.roots:
                    self._open_or_poll(d.path, (i, d.role), self.DIR_FLAGS)
            for d in self.dirs:
                try:
                    entries = d.entries()
                except OSError as exc:
                    self._watch_failed(exc)
                    continue
                for path in entries:
                    self._open_or_poll(path, (FILE, d.role), self.FILE_FLAGS)

        def _collect(self, timeout: float | None) -> tuple[set[str], bool, bool]:
            hints: set[str] = set()
            exited = rearm = False
            for ev in self.kq.control(None, 64, timeout):
                if ev.filter == select.KQ_FILTER_PROC:
                    exited = True
                    continue
                what = self.fds.get(ev.ident)
                if what is None:
                    continue
                index, role = what
                hints.add(role)
                if index == FILE:
                    rearm = True
                else:
                    children = self.children[index].values()
                    hints.update(self.dirs[child].role for child in children)
                    rearm |= bool(children) or self.dirs[index].follow is not None
            return hints, exited, rearm

        def wait(self, timeout: float | None) -> Wake:
            hints, exited, rearm = self._collect(self._nap(timeout))
            hints |= self._polled()
            if hints:
                deadline = time.monotonic() + SETTLE_CAP
                while time.monotonic() < deadline:
                    more, gone, again = self._collect(QUIET)
                    exited |= gone
                    if not more:
                        break
                    hints |= more
                    rearm |= again
            if rearm:
                self._rearm()
            return Wake(frozenset(hints), exited)

        def fileno(self) -> int | None:
            return None if self.fallback is not None else self.kq.fileno()

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
