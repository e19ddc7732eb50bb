"""Walking and removing a directory tree through descriptors: no link followed, no mount left.

This module owns one question: how to empty a directory tree that somebody
else (a worker, a user) may still be changing, without ever touching
anything outside it. The reaper (``looop.workers.reap``) is its user; the
rules are the foundation's, not the reaper's, because they hold for any
tree looop removes, and a second walker would be a second set of answers.

* **Descriptors, not paths.** A tree is reached from an open directory
  descriptor, each subdirectory opened relative to its parent with
  ``O_NOFOLLOW | O_DIRECTORY`` (``open_dir``). A link is therefore only ever
  unlinked, never entered, even if a directory is swapped for a link
  mid-walk. (``shutil.rmtree`` protects itself by comparing ``stat``
  results after opening a subdirectory without ``O_NOFOLLOW``, which still
  opens the link's target - a FIFO there blocks the open - and it reports
  errors through a callback; a small walker of our own is simpler to reason
  about and lets each failure be pinned to its place.)
* **Never off its own mount** (``Home``). Whatever is mounted inside a tree
  (a worker's FUSE or bind mount that outlived it, a tmpfs) is the user's:
  every directory opened is compared with the tree's home directory, by
  device as ``rm --one-file-system`` does and, on Linux, by mount id (read
  from ``/proc/self/fdinfo``), since a bind mount of the same file system
  keeps its device; macOS has no same-device bind mounts, so the device is
  the whole answer there. A foreign directory is never entered. (Rejected:
  reading ``/proc/self/mountinfo`` once and matching paths; its paths are
  escaped, relative to the process root, and name what was mounted, not
  what a descriptor is on now. Rejected too: ``statx`` with
  ``STATX_ATTR_MOUNT_ROOT``, which Python 3.11 cannot call.)
* **Measure first, then remove.** ``survey`` walks a whole tree without
  touching it (``d_type`` only, no ``stat`` per entry, unless its age must
  be measured in the same walk) and says whether it holds a mount, lies
  deeper than ``MAX_DEPTH`` (deeper than a walker follows without
  exhausting descriptors) or has a corner that cannot be read, so the
  caller can keep it whole. ``clear`` then empties it, and still refuses a
  mount that appeared since (noted, never entered) and a file mounted over
  an entry (its unlink fails with ``EBUSY``; a survey would need a ``stat``
  per file to see it).
* **Failures are collected, not raised.** A walk reports each place it could
  not read or remove as ``<where>/<name>: <reason>`` (``where`` is the
  caller's name for the tree), so one stubborn file fails only its tree and
  the caller decides what that means.
* **Cheap.** Each directory is listed once per walk (plus, on Linux, one
  mount-id read per directory while a bind mount of the home's file system
  exists, see ``Home``); ``d_type`` saves a ``stat`` per entry. A caller
  that holds the directory's ``fstat`` hands it over rather than have it
  taken again, and ``clear`` may start from the survey's own listing of the
  top directory (``Survey.listing``) instead of listing it a second time:
  an entry made since is then not seen, so the caller's ``rmdir`` fails
  with ``ENOTEMPTY`` and it clears again with a fresh listing (rejected:
  trusting ``st_nlink`` to tell a directory without subdirectories, which
  btrfs, overlayfs and many FUSE file systems do not keep).

``still_named`` is the check a remover makes before and after renaming a
tree out of sight: does the name still hold the very directory it holds
open (given as that descriptor's ``fstat``)?
"""

from __future__ import annotations

import errno
import os
import stat
import sys

from looop import fs

# Deeper than this is not worker scratch; stop rather than exhaust descriptors.
MAX_DEPTH = 128
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# Linux tells a bind mount of the same file system by its mount id alone.
_MOUNT_IDS = sys.platform.startswith("linux")
# open_dir's refusals that mean "a link or a file now", not a failure.
NOT_A_DIR = (errno.ELOOP, errno.ENOTDIR)


def open_dir(parent_fd: int | None, name: str) -> int:
    """Open the directory ``name`` relative to ``parent_fd``, never through a link."""
    return os.open(name, DIR_FLAGS, dir_fd=parent_fd)


def mount_id(fd: int) -> int | None:
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


class Home:
    """The one file system a walk may delete on: the mount its home directory is on.

    A directory is foreign when its device differs from the home's (another
    file system: a tmpfs, a FUSE mount, a bind mount from another disk), as
    ``rm --one-file-system`` sees it, or, on Linux, when its mount differs (a
    bind mount of the same file system keeps the device, so only the mount
    id tells it apart). Reading a mount id costs a read of
    ``/proc/self/fdinfo`` per directory, so it is read only while a bind
    mount is possible: ``/proc/self/mountinfo`` is read once, and when it
    holds no other mount of the home's device, the device is the whole
    answer for as long as the mount table stays unchanged, which the kernel
    signals on that open file (``POLLPRI``); one change, any change, and
    every later directory has its mount id read. (Rejected: trusting that
    list for the whole walk; a bind mount made during the walk would go
    unseen.)
    """

    __slots__ = ("dev", "fd", "mount", "mount_read", "table")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.dev = os.fstat(fd).st_dev
        self.mount: int | None = None
        self.mount_read = False
        # /proc/self/mountinfo, open while it shows the home's device mounted once.
        self.table = _lone_mount_table(self.dev)

    def close(self) -> None:
        if self.table is not None:
            self.table.close()
            self.table = None

    def foreign(self, fd: int, st: os.stat_result) -> bool:
        """Whether the open directory ``fd`` (whose ``fstat`` is ``st``) is off this mount."""
        if st.st_dev != self.dev:
            return True
        if self.table is not None:
            if not self.table.changed():
                return False  # no other mount of this device, then or now
            self.close()
        if not self.mount_read:
            self.mount, self.mount_read = mount_id(self.fd), True
        if self.mount is None:
            return False
        mine = mount_id(fd)
        return mine is not None and mine != self.mount


class _MountTable:
    """An open ``/proc/self/mountinfo``: has the mount table changed since it was opened?"""

    __slots__ = ("fd", "poller")

    def __init__(self, fd: int) -> None:
        import select

        self.fd = fd
        self.poller = select.poll()
        self.poller.register(fd, select.POLLPRI | select.POLLERR)

    def changed(self) -> bool:
        return bool(self.poller.poll(0))

    def close(self) -> None:
        os.close(self.fd)


def _lone_mount_table(dev: int) -> _MountTable | None:
    """The open mount table when it lists ``dev`` exactly once (Linux), else None."""
    if not _MOUNT_IDS:
        return None
    try:
        fd = os.open("/proc/self/mountinfo", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        table = _MountTable(fd)  # opened first: a change from here on is signalled
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except OSError:
        os.close(fd)
        return None
    wanted = f"{os.major(dev)}:{os.minor(dev)}".encode()
    mounted = sum(
        1 for line in b"".join(chunks).splitlines() if line.split(b" ", 3)[2:3] == [wanted]
    )
    if mounted != 1 or table.changed():
        table.close()
        return None
    return table


class Survey:
    """What a walk of a tree found before anything in it was touched."""

    __slots__ = ("dirs", "listing", "mount", "newest", "too_deep", "unreadable")

    def __init__(self) -> None:
        self.newest = 0.0  # newest lstat mtime, when measuring its age
        self.mount: str | None = None  # the first foreign directory found (never entered)
        self.too_deep = False  # something lies deeper than MAX_DEPTH
        self.unreadable: str | None = None  # the first corner that could not be read
        self.dirs = 0  # directories listed
        # The top directory's entries as the walk listed them, for ``clear``.
        self.listing: list[os.DirEntry[str]] | None = None

    def note(self, where: str, exc: OSError) -> None:
        self.unreadable = self.unreadable or f"{where}: {exc.strerror}"


def survey(
    fd: int, home: Home, where: str, cutoff: float | None, st: os.stat_result | None = None
) -> Survey:
    """Walk the tree open as ``fd`` (named ``where`` in reports) without touching it.

    The directory itself counts: on another mount than ``home``, it is the
    mount found and nothing is listed. With a ``cutoff`` the walk also
    measures the newest ``lstat`` mtime and stops once something is newer
    (the tree is young whatever else it holds). ``st`` is ``fd``'s ``fstat``
    when the caller has it.
    """
    found = Survey()
    try:
        if st is None:
            st = os.fstat(fd)
        found.newest = st.st_mtime
        if cutoff is not None and found.newest > cutoff:
            return found
        if home.foreign(fd, st):
            found.mount = where  # the directory itself is a mount point
        else:
            walk(fd, home, where, cutoff, found)
    except OSError as exc:
        found.note(where, exc)
    return found


def walk(
    fd: int, home: Home, where: str, cutoff: float | None, found: Survey, depth: int = 0
) -> None:
    """``survey``'s walk below the open directory ``fd``, into ``found``.

    Without a ``cutoff`` it needs no ``stat`` per entry, only ``d_type``.
    Nothing deeper than ``MAX_DEPTH`` is opened, and no foreign directory.
    """
    found.dirs += 1
    try:
        with os.scandir(fd) as it:
            entries = list(it)
    except OSError as exc:
        found.note(where, exc)
        return
    if depth == 0:
        found.listing = entries
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
            found.note(f"{where}/{entry.name}", exc)
            continue
        if is_dir:
            subdirs.append(entry.name)
    if subdirs and depth >= MAX_DEPTH:
        found.too_deep = True
        return
    for name in subdirs:
        inner = f"{where}/{name}"
        try:
            sub = open_dir(fd, name)
        except FileNotFoundError:
            continue
        except OSError as exc:
            if exc.errno not in NOT_A_DIR:  # else a link or file by now
                found.note(inner, exc)
            continue
        try:
            if home.foreign(sub, os.fstat(sub)):
                found.mount = found.mount or inner
            else:
                walk(sub, home, inner, cutoff, found, depth=depth + 1)
        except OSError as exc:
            found.note(inner, exc)
        finally:
            os.close(sub)
        if cutoff is not None and found.newest > cutoff:
            return


class Removal:
    """What emptying a tree could not remove: failures, and mounts left unentered."""

    __slots__ = ("mounts", "problems")

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.mounts: list[str] = []

    def __len__(self) -> int:
        return len(self.problems) + len(self.mounts)


def clear(
    fd: int, home: Home, where: str, listing: list[os.DirEntry[str]] | None = None
) -> Removal:
    """Remove everything inside the open directory ``fd`` (not the directory itself).

    Never follows a link; a directory on another mount than ``home`` (one
    that appeared since a survey) is neither entered nor removed, and neither
    is a file mounted over an entry; both are noted in ``mounts``. With a
    ``listing`` (``Survey.listing``) the top directory is not listed again:
    what was made in it since is left, for the caller's ``rmdir`` to find.
    """
    left = Removal()
    _clear(fd, home, where, left, 0, listing)
    return left


def _clear(
    fd: int,
    home: Home,
    where: str,
    left: Removal,
    depth: int = 0,
    entries: list[os.DirEntry[str]] | None = None,
) -> None:
    if depth > MAX_DEPTH:
        left.problems.append(f"{where}: nested too deep")
        return
    if entries is None:
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
        if not is_dir and not _unlinked_or_a_dir(fd, name, where, left):
            continue
        try:
            sub = open_dir(fd, name)
        except FileNotFoundError:
            continue
        except OSError as exc:
            if exc.errno in NOT_A_DIR:
                # Swapped for a link or a file after the scan: remove the entry
                # itself, which never touches what a link points to.
                _unlink(fd, name, where, left)
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


def _unlinked_or_a_dir(fd: int, name: str, where: str, left: Removal) -> bool:
    """Unlink the non-directory ``name``: True when it has become a directory meanwhile."""
    try:
        os.unlink(name, dir_fd=fd)
        return False
    except FileNotFoundError:
        return False
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            left.mounts.append(f"{where}/{name}")  # a file mounted over the entry
            return False
        # Became a directory since the scan? Then it is removed as one.
        try:
            now_dir = stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode)
        except OSError:
            now_dir = False
        if not now_dir:
            left.problems.append(f"{where}/{name}: {exc.strerror}")
        return now_dir


def _unlink(fd: int, name: str, where: str, left: Removal) -> None:
    try:
        os.unlink(name, dir_fd=fd)
    except FileNotFoundError:
        pass
    except OSError as exc:
        left.problems.append(f"{where}/{name}: {exc.strerror}")


def still_named(parent_fd: int | None, name: str, held: os.stat_result) -> bool:
    """Does ``name`` (relative to ``parent_fd``, not followed) still hold the open directory?

    ``held`` is the ``fstat`` of the descriptor the caller holds it open by.
    """
    try:
        return os.path.samestat(os.stat(name, dir_fd=parent_fd, follow_symlinks=False), held)
    except OSError:
        return False
