"""``looop reap``: bound ``sessions/``, ``claims/`` and ``runs/`` without ever deleting blind.

What it removes: dead sessions older than ``session_ttl`` (age from ``ended``
in the status, else from the newest modification anywhere inside, measured
with ``lstat``) and with each its asks and answers (exactly
``asks/<id>-<digits>.json`` and ``answers/<id>-<digits>.json``, regular files
only), claims whose session is dead or missing (``claims.standing``, the
judgment ``_ claim`` takes a claim over by), and ``_ run`` records ended (or
interrupted, counted from their start) longer than ``session_ttl`` ago; a
running one is never removed. What it keeps: live sessions, young dead ones,
every session whose meta cannot be read (unknown), and, whole, every dead
session that holds a mount or is nested deeper than ``MAX_DEPTH`` (reported,
exit 1); a claim whose session is unknown is kept too, and so is a run record
that cannot be read. Liveness comes from ``looop.data.sessions.judge_at``, the same
judgment ``sys-sessions`` and ``looop _ state`` show.

Why it is shaped this way:

* **Descriptors, not paths.** ``sessions/`` and ``claims/`` are opened with
  ``O_NOFOLLOW | O_DIRECTORY`` and everything below is reached relative to an
  open directory descriptor, each subdirectory again with ``O_NOFOLLOW``. A
  link is therefore only ever unlinked, never entered, even if a directory is
  swapped for a link mid-walk. (``shutil.rmtree`` protects itself by comparing
  ``stat`` results after opening a subdirectory without ``O_NOFOLLOW``, which
  still opens the link's target - a FIFO there blocks the open - and it reports
  errors through a callback; a small walker of our own is simpler to reason
  about and lets each failure be pinned to its session.) An entry directly
  under ``sessions/`` that is a link or not a directory is not a session and
  is left alone; so is a linked ``sessions/`` or ``claims/`` itself.
* **Never off its own mount.** Whatever is mounted inside a session (a
  worker's FUSE or bind mount that outlived it, a tmpfs) is the user's, not
  the session's: every directory opened is compared with ``sessions/``
  itself, by device as ``rm --one-file-system`` does and, on Linux, by mount
  id (read from ``/proc/self/fdinfo``), since a bind mount of the same file
  system keeps its device; macOS has no same-device bind mounts, so the
  device is the whole answer there. A foreign directory is never entered.
  (Rejected: reading ``/proc/self/mountinfo`` once and matching paths; its
  paths are escaped, relative to the process root, and name what was
  mounted, not what a descriptor is on now. Rejected too: ``statx`` with
  ``STATX_ATTR_MOUNT_ROOT``, which Python 3.11 cannot call.)
* **Measure first, then decide.** A dead session that is due is first
  surveyed, its whole tree walked through descriptors (``d_type`` only, no
  ``stat`` per entry, unless its age must be measured in the same walk):
  a mount anywhere inside (the session directory itself included), or a
  tree deeper than ``MAX_DEPTH`` (deeper than the walker follows without
  exhausting descriptors), keeps the session whole under its own name,
  reported under ``kept.mounted`` or ``kept.too_deep`` and in the summary,
  and the run exits 1; after the user unmounts, the next run removes it.
  A mount that appears *during* removal (after the survey) is found as the
  emptying reaches it and is not entered either; the session has then
  already been renamed and partly emptied, so it stays a ``.reaping-*``
  leftover, reported as mounted with where it was left. Every later run
  surveys a leftover before finishing it, so it keeps the leftover (and
  says so) while the mount is there and finishes it once it is gone.
  (Rejected: renaming such a session back; its name may be a new session's
  by then, and what was removed cannot be restored anyway.) A single *file*
  bind-mounted over an entry is not seen by the survey (that would cost a
  ``stat`` per file); the kernel refuses to unlink it (``EBUSY``), so it is
  never touched, and it is reported the same way as a mount found during
  removal.
* **Judge the descriptor, then rename, then delete.** A session is judged on
  the open descriptor of exactly the directory that will be deleted, right
  before it is removed (and judged again when its survey took more than one
  directory listing, since a session may have come alive meanwhile). The
  directory is then renamed to ``.reaping-<token>-<id>`` (dot names are not
  sessions, so readers see it vanish at once instead of watching a
  half-deleted session turn "unknown"). Right before the rename the name is
  checked to still hold the judged directory, and after it the new name is
  checked again; a session replaced meanwhile is its owner's, left alone
  (put back, if the rename moved it) and reported as skipped, not as an
  error. Only then is the directory emptied through the descriptor. A
  removal that fails part way leaves a ``.reaping-*`` directory that the
  next run finishes (and reports until it can).
* **Two reapers at once.** A real run holds an exclusive ``flock`` on
  ``sessions/.reap.lock`` (in the directory it guards, so every context of the
  user maps to the same lock): the second reaper waits, then finds nothing
  left to do; both exit 0. Without that lock (it cannot be created, or is
  not a plain file) the work is still safe to share: each victim directory is
  ``flock``-ed by the one reaper removing it, the rename lets only one reaper
  claim a session, and a vanished entry is somebody else's success, not an
  error. The kernel drops every one of these locks when a reaper dies.
* **Failures are per item.** A session or claim that cannot be removed is
  reported and the rest are still reaped; the exit status is 1 only when
  something due could not be removed (or could not be measured: a dead
  session with an unreadable corner is kept, and said so).
* **A claim of a missing session** (judged by ``claims.standing``, removed
  under the ``flock`` on ``claims/`` that ``_ claim`` takes over with) is
  removed once the claim file is older
  than ``CLAIM_GRACE`` seconds, so a lease written a moment before its
  session directory appears is not taken away; a claim of a *dead* session
  goes at once. Missing means that ``sessions/<id>`` does not exist, or that
  ``sessions/`` itself does not; a ``sessions/`` that exists but cannot be
  opened (a link, no permission) says nothing about any session, so every
  claim is then kept as unknown. A claim is judged from a descriptor opened
  without following a link, and unlinked only when, right before, its name
  still holds that very file unchanged (device, inode, size, mtime, ctime): a
  lease a worker renamed into the name or rewrote meanwhile is kept. No call
  removes a name only if it is a given file, so the few instructions between
  that check and the unlink are the window left.
* **Only finite numbers.** An ``ended`` that is not a finite number (NaN or
  an infinity, which Python's ``json`` reads though JSON has neither) is no
  time at all: the session is aged by its contents, as if it had none, so
  no age, report or event ever holds NaN or Infinity. Every number the
  reaper prints is made finite where it enters (``ttl`` is finite by the
  CLI and the config; ages are ``now`` minus a finite ``ended`` or an
  mtime), rather than by ``allow_nan=False`` at the printers, which are
  shared with every other command and would turn a bad file into a crash
  instead of a kept or measured session. Whether such a status says
  anything about liveness is ``looop.data.sessions``'s judgment.
* **Cheap for the common case.** A session whose status says it exited with an
  ``ended`` time is judged from its status and meta: no process-table lookup,
  no ``stat`` per entry. Each directory is listed twice, once by the survey
  and once by the removal (plus, on Linux, one mount-id read per directory);
  ``d_type`` saves a ``stat`` per entry; sessions are taken in inode order
  and removed as they are found, and each victim's descriptor is closed
  before its final ``rmdir``.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import math
import os
import secrets
import stat
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from looop import fs, say
from looop.data import claims, events, runs, sessions
from looop.data.claims import MISSING
from looop.data.sessions import ALIVE, DEAD, DIR_FLAGS, UNKNOWN
from looop.paths import Paths

REAPING_PREFIX = ".reaping-"
LOCK_NAME = ".reap.lock"
# Deeper than this is not worker scratch; stop rather than exhaust descriptors.
MAX_DEPTH = 128
NAME_MAX = 255
# Linux tells a bind mount of the same file system by its mount id alone.
_MOUNT_IDS = sys.platform.startswith("linux")


@dataclass
class ReapResult:
    """What one run removed (or, in a dry run, would remove) and what it kept."""

    dry_run: bool
    ttl: float
    sessions: list[dict[str, Any]] = field(default_factory=list)
    claims: list[dict[str, Any]] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)
    live: list[str] = field(default_factory=list)
    young: list[dict[str, Any]] = field(default_factory=list)
    unknown: list[dict[str, Any]] = field(default_factory=list)
    kept_claims: list[dict[str, Any]] = field(default_factory=list)
    # Dead and due, but kept whole: a mount inside, or a tree deeper than MAX_DEPTH.
    mounted: list[dict[str, Any]] = field(default_factory=list)
    too_deep: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 1 if self.errors or self.mounted or self.too_deep else 0

    def mail(self, box: str) -> int:
        """How many of the reaped sessions' ``asks`` (or ``answers``) went with them."""
        return sum(s.get(box, 0) for s in self.sessions)

    def summary(self) -> str:
        verb = "would reap" if self.dry_run else "reaped"
        lines = []
        for s in self.sessions:
            lines.append(f"{verb} session {s['id']} ({s['why']})")
        for c in self.claims:
            lines.append(f"{verb} claim {c['name']} (session {c['session']} {c['why']})")
        for r in self.runs:
            lines.append(f"{verb} run {r['id']} ({r['why']})")
        for u in self.unknown:
            lines.append(f"kept session {u['id']}: unknown ({u['why']}); never deleted blind")
        for item in (*self.mounted, *self.too_deep):
            where = f"{item['at']} " if "at" in item else ""
            if "left" in item:  # found only once its removal had begun
                how, left = "", f"; its removal is left as {item['left']}"
            else:
                how, left = " whole", ""
            lines.append(f"kept session {item['id']}{how}: {where}{item['why']}{left}")
        for c in self.kept_claims:
            if c["why"] != "live":
                lines.append(f"kept claim {c['name']}: {c['why']}")
        for s in self.skipped:
            lines.append(f"left {s['name']} alone: {s['why']}")
        for e in self.errors:
            lines.append(f"error: {e['what']} {e['name']}: {e['error']}")
        kept = [f"{len(self.live)} live"]
        if self.young:
            kept.append(f"{len(self.young)} young")
        if self.unknown:
            kept.append(f"{len(self.unknown)} unknown")
        if self.mounted:
            kept.append(f"{len(self.mounted)} mounted")
        if self.too_deep:
            kept.append(f"{len(self.too_deep)} too deep")
        asks, answers = self.mail("asks"), self.mail("answers")
        mail = (
            f" ({say.count(asks, 'ask')}, {say.count(answers, 'answer')})"
            if asks or answers
            else ""
        )
        runs = f", {say.count(len(self.runs), 'run')}" if self.runs else ""
        line = (
            f"{verb} {say.count(len(self.sessions), 'session')}{mail}, "
            f"{say.count(len(self.claims), 'claim')}{runs}; kept {', '.join(kept)}"
        )
        if self.errors:
            line += f"; {say.count(len(self.errors), 'error')}"
        if self.dry_run:
            line += " (dry run: nothing removed)"
        lines.append(line)
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "ttl": self.ttl,
            "reaped": {"sessions": self.sessions, "claims": self.claims, "runs": self.runs},
            "kept": {
                "live": self.live,
                "young": self.young,
                "unknown": self.unknown,
                "mounted": self.mounted,
                "too_deep": self.too_deep,
                "claims": self.kept_claims,
            },
            "skipped": self.skipped,
            "errors": self.errors,
            "counts": {
                "sessions": len(self.sessions),
                "claims": len(self.claims),
                "asks": self.mail("asks"),
                "answers": self.mail("answers"),
                "runs": len(self.runs),
                "live": len(self.live),
                "young": len(self.young),
                "unknown": len(self.unknown),
                "mounted": len(self.mounted),
                "too_deep": len(self.too_deep),
                "errors": len(self.errors),
            },
            "exit_code": self.exit_code,
        }


# --- walking and removing through descriptors ---------------------------------
def _open_dir(parent_fd: int | None, name: str) -> int:
    return os.open(name, DIR_FLAGS, dir_fd=parent_fd)


def _mount_id(fd: int) -> int | None:
    """The id of the mount the open directory ``fd`` is on (Linux), else None."""
    if not _MOUNT_IDS:
        return None
    try:
        text = fs.read_small(f"/proc/self/fdinfo/{fd}")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(b"mnt_id:"):
            try:
                return int(line[len(b"mnt_id:") :])
            except ValueError:
                return None
    return None


class _Home:
    """The one file system a run may delete on: the mount ``sessions/`` itself is on.

    A directory is foreign when its device differs from that of ``sessions/``
    (another file system: a tmpfs, a FUSE mount, a bind mount from another
    disk), as ``rm --one-file-system`` sees it, or, on Linux, when its mount
    differs (a bind mount of the same file system keeps the device, so only
    the mount id tells it apart; that costs one read of
    ``/proc/self/fdinfo`` per directory, and the bare session directory of a
    worker that made no subdirectory costs none beyond its own).
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.dev = os.fstat(fd).st_dev
        self.mount: int | None = None
        self.mount_read = False

    def foreign(self, fd: int, st: os.stat_result) -> bool:
        """Whether the open directory ``fd`` (whose ``fstat`` is ``st``) is off this mount."""
        if st.st_dev != self.dev:
            return True
        if not self.mount_read:
            self.mount, self.mount_read = _mount_id(self.fd), True
        if self.mount is None:
            return False
        mine = _mount_id(fd)
        return mine is not None and mine != self.mount


@dataclass
class _Survey:
    """What a walk of a session found before anything in it was touched."""

    newest: float = 0.0  # newest lstat mtime, when measuring its age
    mount: str | None = None  # the first foreign directory found (never entered)
    too_deep: bool = False  # something lies deeper than MAX_DEPTH
    unreadable: str | None = None  # the first corner that could not be read
    dirs: int = 0  # directories listed


def _survey(
    fd: int, home: _Home, where: str, cutoff: float | None, found: _Survey, depth: int = 0
) -> None:
    """Walk the open directory ``fd`` into ``found``, without entering a foreign directory.

    With a ``cutoff`` the walk also measures the newest ``lstat`` mtime and
    stops once something is newer (the session is young whatever else it
    holds); without one it needs no ``stat`` per entry, only ``d_type``.
    Nothing deeper than ``MAX_DEPTH`` is opened.
    """
    found.dirs += 1
    try:
        with os.scandir(fd) as it:
            entries = list(it)
    except OSError as exc:
        found.unreadable = found.unreadable or f"{where}: {exc.strerror}"
        return
    subdirs = []
    for entry in entries:
        try:
            if cutoff is None:
                is_dir = entry.is_dir(follow_symlinks=False)
            else:
                st = entry.stat(follow_symlinks=False)
                found.newest = max(found.newest, st.st_mtime)
                if found.newest > cutoff:
                    return
                is_dir = stat.S_ISDIR(st.st_mode)
        except FileNotFoundError:
            continue
        except OSError as exc:
            found.unreadable = found.unreadable or f"{where}/{entry.name}: {exc.strerror}"
            continue
        if is_dir:
            subdirs.append(entry.name)
    if subdirs and depth >= MAX_DEPTH:
        found.too_deep = True
        return
    for name in subdirs:
        inner = f"{where}/{name}"
        try:
            sub = _open_dir(fd, name)
        except FileNotFoundError:
            continue
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):  # else a link or file by now
                found.unreadable = found.unreadable or f"{inner}: {exc.strerror}"
            continue
        try:
            if home.foreign(sub, os.fstat(sub)):
                found.mount = found.mount or inner
            else:
                _survey(sub, home, inner, cutoff, found, depth=depth + 1)
        except OSError as exc:
            found.unreadable = found.unreadable or f"{inner}: {exc.strerror}"
        finally:
            os.close(sub)
        if cutoff is not None and found.newest > cutoff:
            return


@dataclass
class _Removal:
    """What emptying a victim could not remove: failures, and mounts left unentered."""

    problems: list[str] = field(default_factory=list)
    mounts: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.problems) + len(self.mounts)


def _clear(fd: int, home: _Home, where: str, left: _Removal, depth: int = 0) -> None:
    """Remove everything inside the open directory ``fd``; never follow a link.

    A directory on another mount (one that appeared since the survey) is
    neither entered nor removed, and neither is a file mounted over an entry
    (its unlink fails with ``EBUSY``); both are noted in ``left.mounts``.
    """
    if depth > MAX_DEPTH:
        left.problems.append(f"{where}: nested too deep")
        return
    try:
        with os.scandir(fd) as it:
            entries = list(it)
    except OSError as exc:
        left.problems.append(f"{where}: {exc.strerror}")
        return
    for entry in entries:
        name = entry.name
        try:
            is_dir = entry.is_dir(follow_symlinks=False)
        except OSError:
            is_dir = False
        if not is_dir:
            try:
                os.unlink(name, dir_fd=fd)
                continue
            except FileNotFoundError:
                continue
            except OSError as exc:
                # Became a directory since the scan? Then remove it as one below.
                try:
                    now_dir = stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode)
                except OSError:
                    now_dir = False
                if exc.errno == errno.EBUSY:
                    left.mounts.append(f"{where}/{name}")  # a file mounted over the entry
                    continue
                if not now_dir:
                    left.problems.append(f"{where}/{name}: {exc.strerror}")
                    continue
        try:
            sub = _open_dir(fd, name)
        except FileNotFoundError:
            continue
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                # Swapped for a link or a file after the scan: remove the entry
                # itself, which never touches what a link points to.
                try:
                    os.unlink(name, dir_fd=fd)
                except FileNotFoundError:
                    pass
                except OSError as exc2:
                    left.problems.append(f"{where}/{name}: {exc2.strerror}")
            else:
                left.problems.append(f"{where}/{name}: {exc.strerror}")
            continue
        failed = len(left)
        try:
            if home.foreign(sub, os.fstat(sub)):
                left.mounts.append(f"{where}/{name}")
            else:
                _clear(sub, home, f"{where}/{name}", left, depth + 1)
        except OSError as exc:
            left.problems.append(f"{where}/{name}: {exc.strerror}")
        finally:
            os.close(sub)
        if len(left) > failed:
            continue  # what is left inside is already reported
        try:
            os.rmdir(name, dir_fd=fd)
        except FileNotFoundError:
            pass
        except OSError as exc:
            left.problems.append(f"{where}/{name}: {exc.strerror}")


# --- the run -------------------------------------------------------------------
@contextmanager
def _reap_lock(sessions_fd: int | None) -> Iterator[bool]:
    """Hold ``sessions/.reap.lock`` exclusively; wait for another reaper if need be.

    Yields whether the lock is held. Without a usable lock (no ``sessions/``, a
    read-only disk, a link in its place, a file system without ``flock``) the
    run goes ahead unlocked: each victim is then locked on its own.
    """
    fd = -1
    if sessions_fd is not None:
        try:
            fd = os.open(
                LOCK_NAME,
                os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
                dir_fd=sessions_fd,
            )
        except OSError:
            fd = -1
    held = False
    try:
        if fd >= 0:
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    print("looop: another reap is running; waiting for it", file=sys.stderr)
                    fcntl.flock(fd, fcntl.LOCK_EX)
                held = True
            except OSError:
                held = False
        yield held
    finally:
        if fd >= 0:
            os.close(fd)


@dataclass
class _Emptied:
    """A victim renamed out of sight and emptied through its descriptor."""

    doomed: str  # its ``.reaping-*`` name under sessions/
    sid: str
    record: dict[str, Any]
    left: _Removal


def _empty(doomed: str, fd: int, home: _Home, sid: str, record: dict[str, Any]) -> _Emptied:
    left = _Removal()
    _clear(fd, home, f"sessions/{doomed}", left)
    return _Emptied(doomed, sid, record, left)


def _claim_victim(fd: int) -> bool:
    """Take the directory's own ``flock``: False when another reaper holds it.

    The reaper holds it from judging a session until the directory is gone, so
    two reapers never work on one victim, even where the run lock is missing.
    """
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        pass  # a file system without flock: the rename below still arbitrates
    return True


def _still_named(parent_fd: int | None, name: str, fd: int) -> bool:
    try:
        return os.path.samestat(
            os.stat(name, dir_fd=parent_fd, follow_symlinks=False), os.fstat(fd)
        )
    except OSError:
        return False


def _finite(value: float | None) -> float | None:
    """``value`` if it is a finite number: NaN and the infinities are no time at all."""
    return value if value is not None and math.isfinite(value) else None


def _mail_of(name: str, sid: str) -> bool:
    """Is ``name`` an ask (or answer) of session ``sid``: ``<sid>-<digits>.json``?"""
    number = name[len(sid) + 1 : -len(".json")] if name.endswith(".json") else ""
    return name.startswith(f"{sid}-") and number.isascii() and number.isdigit()


def _reaping_name(token: str, sid: str) -> str:
    name = f"{REAPING_PREFIX}{token}-{sid}"
    if len(os.fsencode(name)) > NAME_MAX:
        digest = hashlib.sha256(os.fsencode(sid)).hexdigest()[:32]
        name = f"{REAPING_PREFIX}{token}-{digest}"
    return name


class _Reaper:
    def __init__(self, paths: Paths, ttl: float, dry_run: bool, now: float) -> None:
        self.paths = paths
        self.events = paths.events
        # Written together at the end of the run: one lock and one write, not one per removal.
        self.pending_events: list[tuple[str, dict[str, Any]]] = []
        self.ttl = ttl
        self.dry_run = dry_run
        self.now = now
        self.cutoff = now - ttl
        self.result = ReapResult(dry_run=dry_run, ttl=ttl)
        self.sessions_fd: int | None = None
        self.home: _Home | None = None  # the mount sessions/ is on, while it is open
        # Why sessions/ is not open: None while it is (or before the run opens
        # it), "missing" when it does not exist, else what stopped the open.
        # Only a missing sessions/ says a claim's session is missing.
        self.sessions_closed: str | None = None
        # Liveness each session id was found in by the session pass; claims use it
        # so a dry run and a real run judge a claim the same way.
        self.seen: dict[str, str] = {}
        # True while this run holds the run lock: no other reaper is at work, so
        # the per-victim locks can be skipped.
        self.locked = False
        # Names for victims: unique per run (random) and per victim (a counter).
        self.token = secrets.token_hex(4)
        self.renamed = 0

    # -- sessions --
    def open_area(self, name: str) -> tuple[int | None, str | None]:
        """(descriptor, None), or (None, why not): ``MISSING`` or what stopped the open."""
        path = self.paths.data_dir / name
        try:
            return os.open(path, DIR_FLAGS), None
        except FileNotFoundError:
            return None, MISSING
        except OSError as exc:
            why = str(
                "is a symlink or not a directory; never followed"
                if exc.errno in (errno.ELOOP, errno.ENOTDIR)
                else exc.strerror
            )
            self.error("directory", f"{name}/", why)
            return None, why

    def error(self, what: str, name: str, message: str, **extra: Any) -> None:
        self.result.errors.append({"what": what, "name": name, "error": message, **extra})

    def skip(self, sid: str, why: str) -> None:
        self.result.skipped.append({"name": f"sessions/{sid}", "why": why})

    def survey(self, fd: int, where: str, cutoff: float | None) -> _Survey:
        """Survey the session open as ``fd`` (named ``where``); see ``_survey``."""
        assert self.home is not None
        found = _Survey()
        try:
            st = os.fstat(fd)
            found.newest = st.st_mtime
            if cutoff is not None and found.newest > cutoff:
                return found
            if self.home.foreign(fd, st):
                found.mount = where  # the session directory itself is a mount point
            else:
                _survey(fd, self.home, where, cutoff, found)
        except OSError as exc:
            found.unreadable = found.unreadable or f"{where}: {exc.strerror}"
        return found

    def kept_whole(self, sid: str, found: _Survey, left: str | None = None) -> bool:
        """Keep (and report) a session the survey found a mount in, or too deep to follow."""
        if found.mount is not None:
            self.mounted(sid, found.mount, left)
        elif found.too_deep:
            why = f"nested deeper than {MAX_DEPTH} directories; never half-emptied"
            entry: dict[str, Any] = {"id": sid, "why": why}
            if left is not None:
                entry["left"] = left
            self.result.too_deep.append(entry)
        else:
            return False
        return True

    def mounted(self, sid: str, at: str, left: str | None) -> None:
        why = "is a mount point (another file system); unmount it, then reap again"
        entry: dict[str, Any] = {"id": sid, "at": at, "why": why}
        if left is not None:
            entry["left"] = left
        self.result.mounted.append(entry)

    def sessions_pass(self) -> None:
        fd = self.sessions_fd
        if fd is None:
            return
        try:
            self.home = _Home(fd)
            with os.scandir(fd) as it:
                # Inode order: a file system frees neighbouring inodes far more
                # cheaply than ones scattered by name. The report is sorted after.
                entries = sorted(it, key=lambda e: e.inode())
        except OSError as exc:
            self.error("directory", "sessions/", str(exc.strerror))
            return
        for entry in entries:
            name = entry.name
            if name == LOCK_NAME:
                continue
            try:
                is_link = entry.is_symlink()
                is_dir = not is_link and entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if name.startswith(REAPING_PREFIX) and is_dir:
                self.finish_leftover(name)
            elif name.startswith("."):
                continue  # dot names are not sessions
            elif is_link:
                self.skip(name, "a symlink")
            elif not is_dir:
                self.skip(name, "not a directory")
            else:
                self.session(name)

    def session(self, sid: str) -> None:
        assert self.sessions_fd is not None
        try:
            fd = _open_dir(self.sessions_fd, sid)
        except FileNotFoundError:
            return  # removed by somebody else since the scan
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                return  # swapped for a link or a file since the scan: not a session
            self.result.unknown.append({"id": sid, "why": f"cannot open: {exc.strerror}"})
            self.seen[sid] = UNKNOWN
            return
        emptied = None
        try:
            if self.dry_run or self.locked or _claim_victim(fd):
                emptied = self.session_fd(sid, fd)
            # else another reaper is removing this very directory right now
        finally:
            os.close(fd)
        if emptied is not None:
            self.conclude(emptied)

    def session_fd(self, sid: str, fd: int) -> _Emptied | None:
        verdict = sessions.judge_at(fd)
        self.seen[sid] = verdict.liveness
        if verdict.liveness == ALIVE:
            self.result.live.append(sid)
            return None
        if verdict.liveness == UNKNOWN:
            if _still_named(self.sessions_fd, sid, fd):  # not emptied by a reaper just now
                self.result.unknown.append({"id": sid, "why": verdict.why})
            return None
        ended = _finite(verdict.ended)
        measure = ended is None and self.ttl > 0
        age: float | None = None  # unmeasured: --ttl 0 takes every dead session
        if ended is not None:
            age = self.now - ended
            if self.ttl > 0 and age < self.ttl:
                self.result.young.append({"id": sid, "age": round(age, 1)})
                return None
        # Measure first, then decide: nothing is renamed or removed before the
        # whole tree is known to lie on this mount and within MAX_DEPTH.
        found = self.survey(fd, f"sessions/{sid}", self.cutoff if measure else None)
        if measure:
            age = self.now - found.newest
            if age < self.ttl:
                self.result.young.append({"id": sid, "age": round(age, 1)})
                return None
            if found.unreadable is not None:
                self.error("session", sid, f"cannot measure its age, kept: {found.unreadable}")
                return None
        if measure or found.dirs > 1:
            # The walk took a while: judge again right before removing.
            verdict = sessions.judge_at(fd)
            self.seen[sid] = verdict.liveness
            if verdict.liveness == ALIVE:
                self.result.live.append(sid)
                return None
            if verdict.liveness == UNKNOWN:
                self.result.unknown.append({"id": sid, "why": verdict.why})
                return None
        if self.kept_whole(sid, found):
            return None
        if age is None:  # --ttl 0 takes every dead session without measuring it
            why = verdict.why
        elif verdict.state == "exited":
            why = f"exited {say.duration(age)} ago"
        else:
            why = f"{verdict.why}, idle {say.duration(age)}"
        record: dict[str, Any] = {
            "id": sid,
            "state": verdict.state,
            "exit_code": verdict.exit_code,
            "age": None if age is None else round(age, 1),
            "why": why,
        }
        if self.dry_run:
            self.mail_of(sid, record)
            self.result.sessions.append(record)
            return None
        return self.remove_session(sid, fd, record)

    def remove_session(self, sid: str, fd: int, record: dict[str, Any]) -> _Emptied | None:
        """Check the name still holds the judged directory, rename it out of sight, empty it.

        A name that no longer holds it (the session was replaced, or removed by
        someone else, while it was judged) is a race lost to its owner, not a
        failure: it is left alone and reported as skipped.
        """
        assert self.sessions_fd is not None
        sfd = self.sessions_fd
        if not _still_named(sfd, sid, fd):
            self.skip(sid, "gone or replaced while being judged; left alone")
            return None
        before = os.fstat(fd)
        self.renamed += 1
        doomed = _reaping_name(f"{self.token}{self.renamed:x}", sid)
        try:
            os.rename(sid, doomed, src_dir_fd=sfd, dst_dir_fd=sfd)
        except FileNotFoundError:
            return None  # another remover took it first
        except OSError as exc:
            self.error("session", sid, f"cannot remove: {exc.strerror}")
            return None
        try:
            after = os.stat(doomed, dir_fd=sfd, follow_symlinks=False)
        except FileNotFoundError:
            return None  # removed by someone else since the rename
        except OSError:
            after = None
        if after is not None and os.path.samestat(before, after):
            assert self.home is not None
            return _empty(doomed, fd, self.home, sid, record)
        # Replaced in the instant between the check and the rename: the rename
        # moved somebody else's directory, so put it back where it was.
        try:
            os.rename(doomed, sid, src_dir_fd=sfd, dst_dir_fd=sfd)
        except OSError as exc:
            self.error(
                "session",
                sid,
                f"replaced while being reaped, and cannot be put back: {exc.strerror}",
                left=f"sessions/{doomed}",
            )
            return None
        self.skip(sid, "replaced while being reaped; put back and left alone")
        return None

    def conclude(self, emptied: _Emptied) -> None:
        """Remove the emptied victim (its descriptor already closed) and report it.

        The descriptor is closed first because removing a directory that is
        still open costs the file system an orphan entry to write and clear;
        ``rmdir`` by name is safe on its own, as it removes only an empty
        directory and never goes through a link.
        """
        assert self.sessions_fd is not None
        problems, mounts = emptied.left.problems, emptied.left.mounts
        left = f"sessions/{emptied.doomed}"
        if not problems and not mounts:
            try:
                os.rmdir(emptied.doomed, dir_fd=self.sessions_fd)
            except FileNotFoundError:
                return  # another reaper finished it (and reports it)
            except OSError as exc:
                problems.append(f"{left}: {exc.strerror}")
        if mounts:
            self.mounted(emptied.sid, mounts[0], left)
        if problems:
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            self.error(
                "session",
                emptied.sid,
                f"cannot remove {'; '.join(problems[:3])}{more}",
                left=left,
            )
        if problems or mounts:
            return
        record = emptied.record
        self.mail_of(emptied.sid, record)
        self.result.sessions.append(record)
        self.pending_events.append(
            (
                "session_reaped",
                {
                    "id": emptied.sid,
                    "state": record["state"],
                    "exit_code": record["exit_code"],
                    "age": record["age"],
                    "asks": record["asks"],
                    "answers": record["answers"],
                },
            )
        )

    def finish_leftover(self, name: str) -> None:
        """A ``.reaping-*`` directory: a removal already decided, not yet finished."""
        assert self.sessions_fd is not None
        rest = name[len(REAPING_PREFIX) :]
        sid = rest.split("-", 1)[1] if "-" in rest else rest
        record = {"id": sid, "state": "dead", "exit_code": None, "age": None}
        record["why"] = f"finishing an earlier removal ({name})"
        try:
            fd = _open_dir(self.sessions_fd, name)
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                self.error("session", sid, f"cannot remove sessions/{name}: {exc.strerror}")
            return
        emptied = None
        try:
            if not self.dry_run and not (
                (self.locked or _claim_victim(fd)) and _still_named(self.sessions_fd, name, fd)
            ):
                return  # another reaper is finishing it
            found = self.survey(fd, f"sessions/{name}", None)
            if self.kept_whole(sid, found, left=f"sessions/{name}"):
                pass
            elif self.dry_run:
                self.mail_of(sid, record)
                self.result.sessions.append(record)
            else:
                assert self.home is not None
                emptied = _empty(name, fd, self.home, sid, record)
        finally:
            os.close(fd)
        if emptied is not None:
            self.conclude(emptied)

    # -- a reaped session's asks and answers --
    def mail_of(self, sid: str, record: dict[str, Any]) -> None:
        """Remove (in a dry run, count) the reaped ``sid``'s asks and answers into ``record``.

        Exactly ``<sid>-<digits>.json`` (the mailbox's ids): ``w-2-1.json`` is
        session ``w-2``'s, never ``w``'s. Only regular files are unlinked, each
        relative to the open directory; a link named like an ask is left alone.
        """
        for box in ("asks", "answers"):
            record[box] = 0
            fd, _ = self.open_area(box)
            if fd is None:
                continue
            try:
                with os.scandir(fd) as it:
                    names = [
                        e.name
                        for e in it
                        if _mail_of(e.name, sid) and e.is_file(follow_symlinks=False)
                    ]
                for name in sorted(names):
                    if not self.dry_run:
                        try:
                            os.unlink(name, dir_fd=fd)
                        except FileNotFoundError:
                            continue
                        except OSError as exc:
                            self.error(box[:-1], f"{box}/{name}", f"cannot remove: {exc.strerror}")
                            continue
                    record[box] += 1
            except OSError as exc:
                self.error("directory", f"{box}/", str(exc.strerror))
            finally:
                os.close(fd)

    # -- _ run records --
    def runs_pass(self) -> None:
        """Remove ``runs/<id>.json`` records over, or interrupted, longer than the ttl ago.

        An ended run ages from its ``ended``, an interrupted one (no end, its
        runner gone: ``runs.state_of``) from its ``started``; a running one,
        or a record that cannot be read or holds no finite time, is kept. The
        name is unlinked only while it still holds the very file judged.
        """
        rfd, _ = self.open_area("runs")
        if rfd is None:
            return
        try:
            with os.scandir(rfd) as it:
                names = sorted(
                    e.name
                    for e in it
                    if e.name.endswith(".json")
                    and not e.name.startswith(".")
                    and e.is_file(follow_symlinks=False)
                )
            for name in names:
                self.run_record(rfd, name)
        except OSError as exc:
            self.error("directory", "runs/", str(exc.strerror))
        finally:
            os.close(rfd)

    def run_record(self, rfd: int, name: str) -> None:
        try:
            fd = os.open(name, sessions.FILE_FLAGS, dir_fd=rfd)
        except OSError:
            return  # gone, or a link since the scan: not a record to remove
        try:
            record, st = sessions.read_json_fd(fd)
        finally:
            os.close(fd)
        if record is None or st is None:
            return
        state = runs.state_of(record)
        if state == runs.RUNNING:
            return
        since = sessions.finite_number(record.get("ended" if state == runs.ENDED else "started"))
        if since is None:
            return
        age = self.now - since
        if self.ttl > 0 and age < self.ttl:
            return
        how = "ended" if state == runs.ENDED else "interrupted, started"
        entry = {"id": name[: -len(".json")], "state": state, "age": round(age, 1)}
        entry["why"] = f"{how} {say.duration(age)} ago"
        if not self.dry_run:
            if not claims.still_named(rfd, name, st):
                return  # rewritten (or gone) since it was read
            try:
                os.unlink(name, dir_fd=rfd)
            except FileNotFoundError:
                return
            except OSError as exc:
                self.error("run", f"runs/{name}", f"cannot remove: {exc.strerror}")
                return
            self.pending_events.append(("run_reaped", dict(entry)))
        self.result.runs.append(entry)

    # -- claims --
    def liveness_of(self, sid: str, fresh: bool) -> str:
        """A claim's session as this run sees it: the session pass's look unless ``fresh``.

        A session the pass found dead is dead still when it is missing now:
        the pass has just removed it, so its claims go without the grace.
        """
        if not fresh and sid in self.seen:
            return self.seen[sid]
        live = claims.session_liveness(self.sessions_fd, self.sessions_closed == MISSING, sid)
        return DEAD if live == MISSING and self.seen.get(sid) == DEAD else live

    def claim_verdict(self, fd: int, fresh: bool) -> tuple[str | None, str, bool, Any]:
        """(session id, why, due, fstat) for the claim file open as ``fd``."""
        claim, st = sessions.read_json_fd(fd)
        if claim is None or st is None:
            return None, "unreadable, never deleted blind", False, st
        sid, why, due = self.claim_of(claim, st.st_mtime, fresh)
        return sid, why, due, st

    def claim_of(
        self, claim: dict[str, Any], mtime: float, fresh: bool
    ) -> tuple[str | None, str, bool]:
        """(session id, why, due): ``claims.standing``, with liveness as this run sees it."""
        note = " (sessions/ cannot be opened)" if self.sessions_fd is None else ""
        return claims.standing(
            claim, mtime, self.now, lambda sid: self.liveness_of(sid, fresh), note
        )

    def claims_pass(self) -> None:
        cfd, _ = self.open_area("claims")
        if cfd is None:
            return
        try:
            with os.scandir(cfd) as it:
                entries = sorted(it, key=lambda e: e.name)
            for entry in entries:
                name = entry.name
                if name.startswith(".") or not name.endswith(".json"):
                    continue
                try:
                    if entry.is_symlink():
                        self.result.skipped.append({"name": f"claims/{name}", "why": "a symlink"})
                        continue
                    if not entry.is_file(follow_symlinks=False):
                        continue
                except OSError:
                    continue
                self.claim(cfd, name)
        except OSError as exc:
            self.error("directory", "claims/", str(exc.strerror))
        finally:
            os.close(cfd)

    def claim(self, cfd: int, name: str) -> None:
        try:
            fd = os.open(name, sessions.FILE_FLAGS, dir_fd=cfd)
        except FileNotFoundError:
            return  # removed (or renamed away) since the scan
        except OSError as exc:
            if exc.errno != errno.ELOOP:  # a link since the scan: not a claim
                why = f"cannot open: {exc.strerror}, never deleted blind"
                self.result.kept_claims.append({"name": name, "session": None, "why": why})
            return
        try:
            self.claim_fd(cfd, name, fd)
        finally:
            os.close(fd)

    def claim_fd(self, cfd: int, name: str, fd: int) -> None:
        """Judge the claim open as ``fd``; remove ``name`` only while it is still that file."""
        sid, why, due, _ = self.claim_verdict(fd, fresh=False)
        if not due:
            self.result.kept_claims.append({"name": name, "session": sid, "why": why})
            return
        record = {"name": name, "session": sid, "why": why}
        if self.dry_run:
            self.result.claims.append(record)
            return
        # Judged again right before removing (the lease may have been
        # rewritten), under the lock ``_ claim`` takes over a claim with.
        with claims.locked(cfd):
            sid, why, due, judged = self.claim_verdict(fd, fresh=True)
            if not due:
                self.result.kept_claims.append({"name": name, "session": sid, "why": why})
                return
            # The name must still be the very file just judged, unchanged since: a
            # worker may have renamed a fresh lease into it, or rewritten it in place.
            same = claims.still_named(cfd, name, judged)
            if same is None:
                return
            if not same:
                why = "changed while being judged, kept"
                self.result.kept_claims.append({"name": name, "session": sid, "why": why})
                return
            try:
                os.unlink(name, dir_fd=cfd)
            except FileNotFoundError:
                return
            except OSError as exc:
                self.error("claim", name, f"cannot remove: {exc.strerror}")
                return
        self.result.claims.append({"name": name, "session": sid, "why": why})
        self.pending_events.append(("claim_reaped", {"name": name, "session": sid, "why": why}))

    def run(self) -> ReapResult:
        self.sessions_fd, self.sessions_closed = self.open_area("sessions")
        try:
            if self.dry_run:
                self.sessions_pass()
                self.claims_pass()
                self.runs_pass()
            else:
                with _reap_lock(self.sessions_fd) as self.locked:
                    self.sessions_pass()
                    self.claims_pass()
                    self.runs_pass()
        finally:
            if self.sessions_fd is not None:
                os.close(self.sessions_fd)
            events.record_many(self.events, self.pending_events)
        r = self.result
        for found in (r.sessions, r.young, r.unknown, r.mounted, r.too_deep):
            found.sort(key=lambda item: item["id"])
        r.live.sort()
        r.skipped.sort(key=lambda item: item["name"])
        return r


def reap(paths: Paths, ttl: float, dry_run: bool = False, now: float | None = None) -> ReapResult:
    """Remove dead sessions older than ``ttl`` seconds and claims of dead sessions."""
    return _Reaper(paths, ttl, dry_run, time.time() if now is None else now).run()
