"""Safe file access: the one small-file reader and the one whole-file writer.

Everything looop reads from the data dir, the runtime dir or the config goes
through ``read_small``; everything it writes whole goes through
``write_whole``. Both exist because the obvious ``open(path).read()`` and
``path.write_text`` are each wrong in a way that has bitten looop:

* **Reading never blocks, never follows a link unasked, never eats memory.**
  The file is opened ``O_NONBLOCK`` (a FIFO named like a claim or an ask
  would otherwise hang the pulse until its watchdog kills it, and ``_ wait``
  past its ``--timeout``), ``O_NOFOLLOW`` unless the caller says links are
  the user's business (a ``PLAYBOOK.md`` kept in a notes repo, a config in a
  dotfiles checkout), then checked with ``fstat``: only a regular file is
  read, and only up to a cap (``LOOOP_CONFIG=/dev/zero`` or a 100 MB "goal"
  costs the cap, not the machine). What is refused raises ``BadFile``, an
  ``OSError`` whose message says what was found instead ("a FIFO", "larger
  than 1 MiB"), so a caller that treats any unreadable file alike needs one
  ``except OSError`` and a caller that reports problems has the words.
  ``open_regular`` (for a reader that reads only a tail: the journal) and
  ``read_small_fd`` (for a file already open: the reaper's claim) are the
  same rules, not a second reader.
* **Writing is whole or not at all.** A temp file in the same directory
  (``O_EXCL | O_NOFOLLOW``: nobody else's file is ever opened), written,
  ``fsync``-ed, given the caller's mode, then renamed over the name (or, for
  ``exclusive``, hard-linked to it, which fails if the name exists: two
  writers racing for a name, one wins). A reader or a beat sees the old file
  or the new one, never half. A name that holds something other than a
  regular file or a link (a FIFO, a device node) is refused, never replaced.
* **An exclusive create has no temp name** where the system allows
  (Linux's ``O_TMPFILE``, then ``linkat``, which fails if the name exists):
  killed at any instruction, it leaves nothing behind. Elsewhere it is a
  temp file hard-linked to the name, as below.
* **A dead writer's temp file is swept.** A writer killed between its
  write and its rename leaves ``.<name>.<pid>-<hex>.tmp``; the first
  ``write_whole`` of a process into a directory removes those whose pid is
  gone (``sweep_temps``), so they never pile up. Once per process and
  directory, not per write: a listing per write would cost the pulse a
  ``getdents`` of ``sessions/`` each beat, while every verb and worker start
  is a new process, so a directory written to is swept soon after a crash.
  The reaper sweeps the areas it walks with the same judgment
  (``temp_writer_gone``). A writer in another pid namespace sharing the data
  dir looks gone: its temp may go before its rename, which then fails and
  says so (nothing is torn). Rejected: sweeping by age alone (a slow writer's
  live temp would go), a grace period (the very next call would still find a
  crashed writer's temp), and sweeping only in the reaper (a goal or config
  directory is never reaped).

* **Every error names its file.** ``os.write``, ``fsync`` and ``pread``
  raise without a file name, so the top-level handler could only print
  ``looop: No space left on device``; ``named`` attaches the path, and the
  writer's errors name the file meant, not its temp name. The foundation
  pieces built on these (``looop.lines``, ``looop.lockfile``,
  ``looop.jsonfile``) do the same.

Rejected: a reader per module (``probes``, ``state`` and ``config`` each had
one, and each missed a different case), and ``tempfile.NamedTemporaryFile``
for the writer (it cannot promise the directory, the mode or ``O_NOFOLLOW``
in one call, and its import costs every command).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from looop import proc

TYPE_CHECKING = False  # not typing's: the probes read through this module
if TYPE_CHECKING:
    from pathlib import Path

SMALL = 1 << 20  # 1 MiB: every file looop reads whole is far smaller than this
_swept: set[str] = set()  # directories this process has swept

_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFDIR: "a directory",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFLNK: "a symlink",
}


class BadFile(OSError):
    """Not read (or not written): the name holds something other than a small regular file."""

    def __init__(self, path: str | os.PathLike[str], why: str) -> None:
        super().__init__(errno.EINVAL, why, os.fspath(path))


def kind(mode: int) -> str:
    """What a ``st_mode`` is, in words: "a FIFO", "a directory", "a regular file"..."""
    return _KINDS.get(stat.S_IFMT(mode), "a regular file" if stat.S_ISREG(mode) else "not a file")


def why(exc: OSError) -> str:
    """What a reader says about a file it could not read: "is a FIFO, not a regular file"."""
    if isinstance(exc, BadFile):
        return str(exc.strerror)
    return f"cannot be read: {exc.strerror or exc}"


def _size_words(limit: int) -> str:
    return f"{limit >> 20} MiB" if limit >= 1 << 20 and not limit % (1 << 20) else f"{limit} bytes"


def _open(path: str | os.PathLike[str], dir_fd: int | None, follow: bool) -> int:
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        return os.open(path, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow:
            raise BadFile(path, "is a symlink; not followed") from None
        raise


def named(exc: OSError, path: str | os.PathLike[str]) -> OSError:
    """``exc`` naming ``path`` when it names no file (``write``, ``flock``, ``fsync`` don't).

    So the top-level handler prints ``looop: <file>: <reason>``, never a bare
    ``No space left on device``. The exception keeps its type.
    """
    if exc.filename is None:
        exc.filename = os.fspath(path)
    return exc


def regular(fd: int, path: str | os.PathLike[str]) -> os.stat_result:
    """The ``fstat`` of the open ``fd``; ``BadFile`` naming ``path`` unless it is a regular file."""
    try:
        st = os.fstat(fd)
    except OSError as exc:
        raise named(exc, path) from None
    if not stat.S_ISREG(st.st_mode):
        raise BadFile(path, f"is {kind(st.st_mode)}, not a regular file")
    return st


def open_regular(
    path: str | os.PathLike[str], *, dir_fd: int | None = None, follow: bool = False
) -> tuple[int, os.stat_result]:
    """Open a regular file for reading, by ``read_small``'s rules; the fd and its ``fstat``.

    For a reader that must not read the file whole (the journal's tail): the
    caller closes the fd. Raises OSError (``BadFile``) like ``read_small``.
    """
    fd = _open(path, dir_fd, follow)
    try:
        return fd, regular(fd, path)
    except BaseException:
        os.close(fd)
        raise


def read_small(
    path: str | os.PathLike[str],
    *,
    limit: int = SMALL,
    dir_fd: int | None = None,
    follow: bool = False,
) -> bytes:
    """The whole content of a small regular file; raises OSError (``BadFile``) otherwise.

    ``follow`` lets the last component be a symlink (the user's own link);
    without it a link is refused like any other non-file.
    """
    fd = _open(path, dir_fd, follow)
    try:
        return read_small_fd(fd, limit=limit, path=path)[0]
    finally:
        os.close(fd)


def read_small_fd(
    fd: int, *, limit: int = SMALL, path: str | os.PathLike[str] = "<fd>"
) -> tuple[bytes, os.stat_result]:
    """``read_small`` for a file the caller already holds open: its content and its ``fstat``.

    Read from the start whatever the fd's offset (``pread``), so a caller that
    judges one open file twice (the reaper, before and right before deleting)
    reads it whole both times. ``path`` only names the file in an error.
    """
    st = regular(fd, path)
    if st.st_size > limit:
        raise BadFile(path, f"is larger than {_size_words(limit)}")
    try:
        # What fstat promised and one byte more, to notice a file still growing;
        # a fixed buffer of the cap's size would cost that allocation per file.
        asked = st.st_size + 1 if st.st_size else limit + 1
        data = os.pread(fd, asked, 0)
        # Less than asked is the end of a regular file: no second read to hear it.
        while asked <= len(data) <= limit:
            more = os.pread(fd, limit + 1 - len(data), len(data))
            if not more:
                break
            data += more
    except OSError as exc:
        raise named(exc, path) from None
    if len(data) > limit:
        raise BadFile(path, f"is larger than {_size_words(limit)}")
    return data, st


def write_whole(
    path: str | os.PathLike[str],
    data: bytes,
    *,
    mode: int = 0o644,
    exclusive: bool = False,
    follow: bool = False,
    durable: bool = True,
) -> Path:
    """Write ``data`` as the whole content of ``path``, atomically; returns the path written.

    ``exclusive``: only if the name is free (FileExistsError otherwise).
    ``durable=False``: not ``fsync``-ed, nor its directory, for a record in the
    runtime dir that a reboot clears anyway (still whole or not at all).
    ``follow``: a symlink at ``path`` is written through (its target
    replaced), as for a config kept in a dotfiles checkout; without it the
    link itself is replaced. A FIFO, device node or directory at the name
    raises ``BadFile`` and is left untouched.
    """
    from pathlib import Path  # a writer's answer; the readers never load pathlib

    target = os.path.realpath(path) if follow else os.path.abspath(path)
    parent, name = os.path.split(target)
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        pass
    else:
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            raise BadFile(target, f"is {kind(st.st_mode)}; refusing to replace it")
        if exclusive:
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(target))
    if parent not in _swept:  # once per directory a process writes into
        _swept.add(parent)
        sweep_temps(parent)
    if exclusive and _create_unnamed(target, data, mode, durable):
        if durable:
            sync_dir(parent)
        return Path(target)
    tmp = os.path.join(parent, f".{name}.{os.getpid()}-{os.urandom(3).hex()}.tmp")
    try:
        _write_via(tmp, target, data, mode, exclusive, durable)
    except OSError as exc:
        if exc.filename in (None, tmp):  # the temp name is gone: name the file meant
            exc.filename, exc.filename2 = target, None
        raise
    if durable:
        sync_dir(parent)
    return Path(target)


def temp_pid(name: str) -> int | None:
    """The writer's pid in a ``write_whole`` temp name ``.<name>.<pid>-<6 hex>.tmp``; else None."""
    if not (name.startswith(".") and name.endswith(".tmp")):
        return None  # what nearly every name is: looked at before any splitting
    head, _, tail = name.removesuffix(".tmp").rpartition(".")
    pid, _, tag = tail.partition("-")
    if not (name.endswith(".tmp") and head.startswith(".") and len(head) > 1 and len(tag) == 6):
        return None
    if not (pid.isascii() and pid.isdigit() and all(c in "0123456789abcdef" for c in tag)):
        return None
    return int(pid) if 0 < len(pid) <= 10 else None


def sweep_temps(directory: str | os.PathLike[str]) -> int:
    """Remove the temp files of ``write_whole`` writers that are gone; how many went.

    A temp is ``.<name>.<pid>-<6 hex>.tmp``, a regular file; it goes when no
    process has that pid, or it is a zombie (``temp_writer_gone``, the
    reaper's judgment too). Never raises: a temp that stays is only untidy.
    """
    gone = 0
    try:
        with os.scandir(directory) as entries:
            temps = [e for e in entries if temp_pid(e.name)]
    except OSError:
        return 0
    for entry in temps:
        try:
            st = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                continue
            if not temp_writer_gone(entry.name):
                continue
            os.unlink(entry.path)
            gone += 1
        except (OSError, ValueError):
            continue
    return gone


_UNNAMED = getattr(os, "O_TMPFILE", 0)  # Linux: a file with no name until it is linked


def _create_unnamed(target: str, data: bytes, mode: int, durable: bool = True) -> bool:
    """An exclusive create with no temp name at all; False where the system cannot.

    ``O_TMPFILE`` opens a file that has no name; written and synced, it is
    given ``target`` by ``linkat`` (``AT_SYMLINK_FOLLOW`` through
    ``/proc/self/fd``), which fails if the name exists. A writer killed at
    any instruction leaves nothing: no temp file for a sweeper to find, and
    the name either holds the whole file or nothing. Raises OSError naming
    ``target`` (``FileExistsError`` when the name is taken); False where
    ``O_TMPFILE``, its link or ``/proc`` is missing (macOS, an old kernel, a
    file system without it), so the caller takes the temp-name way.
    """
    if not _UNNAMED:
        return False
    try:
        parent = os.open(os.path.dirname(target), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise named(exc, target) from None
    try:
        try:
            fd = os.open(".", _UNNAMED | os.O_WRONLY | os.O_CLOEXEC, mode, dir_fd=parent)
        except OSError as exc:
            if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
                return False  # no O_TMPFILE on this file system or kernel
            raise
        try:
            os.fchmod(fd, mode)  # the umask does not decide a file's mode; the caller does
            _write_all(fd, data, durable)
            # A dir_fd makes this linkat(2), which can follow the /proc link.
            os.link(
                f"/proc/self/fd/{fd}",
                os.path.basename(target),
                dst_dir_fd=parent,
                follow_symlinks=True,
            )
        except OSError as exc:
            if exc.errno == errno.EXDEV or not os.path.isdir("/proc/self/fd"):
                return False  # the link cannot be made here: the temp-name way
            raise
        finally:
            os.close(fd)
    except OSError as exc:
        raise type(exc)(exc.errno, exc.strerror, str(target)) from None
    finally:
        os.close(parent)
    return True


def _write_via(
    tmp: str, target: str, data: bytes, mode: int, exclusive: bool, durable: bool = True
) -> None:
    """Write ``data`` to the new file ``tmp``, then give it the name ``target``."""
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        try:
            os.fchmod(fd, mode)  # the umask does not decide a file's mode; the caller does
            _write_all(fd, data, durable)
        finally:
            os.close(fd)
        if exclusive:
            _link_exclusive(tmp, target, data, mode, durable)
            # The temp name goes at once, before the slow directory sync: a
            # writer killed while syncing (an ``_ ask`` killed as it starts
            # waiting) left it behind beside the ask it had named.
            os.unlink(tmp)
        else:
            os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def temp_writer_gone(name: str) -> bool:
    """Is ``name`` a ``write_whole`` temp file (``temp_pid``) whose writer no longer runs?

    A pid reused since is taken for the writer, so such a file is kept until
    that process ends too: sweeping errs on the side of leaving a file, never
    of pulling one from under a writer still at work.
    """
    pid = temp_pid(name)
    return pid is not None and pid != os.getpid() and not proc.alive(pid)


def _link_exclusive(tmp: str, target: str, data: bytes, mode: int, durable: bool = True) -> None:
    """Give the written temp file the name ``target`` only if that name is free."""
    try:
        os.link(tmp, target, follow_symlinks=False)
        return
    except FileExistsError:
        raise
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK):
            raise
    # No hard links here (vfat, some network mounts): an exclusive create is
    # still exclusive, though a crash mid-write could leave it short.
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        _write_all(fd, data, durable)
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes, durable: bool = True) -> None:
    """Every byte of ``data`` to ``fd`` (a write may take less), then to the disk if durable."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    if durable:
        os.fsync(fd)


def sync_dir(directory: str | os.PathLike[str]) -> None:
    """Make the rename itself durable; a file system that cannot is not an error."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
