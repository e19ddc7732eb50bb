"""Lock files: the one way looop opens a file to ``flock`` it, and takes the lock.

The pulse's lock and beat lock, the config's edit lock, the worker start lock,
the reaper's run lock and the append-only files (``lines``) all hold an
``flock(2)`` on a file, because the kernel lets go of it when the holder dies
(a pid file would need judging). Opening that file is where they went wrong
separately, so it is done here once:

* **Never through a link, never blocking, only a regular file.** ``open_lock``
  opens ``O_NOFOLLOW | O_NONBLOCK | O_NOCTTY`` (a FIFO named like a lock file
  would otherwise hang the opener, a link would lock some other file), then
  checks with ``fstat``: a FIFO, directory, device or socket at the name is
  refused with ``fs.BadFile`` naming the path ("is a FIFO, not a lock file"),
  the same words whichever room asked.
* **Never blocking unless asked.** ``lock`` is non-blocking by default and
  answers False only when another holder has it; every other failure
  (``ENOLCK`` on a network file system...) raises ``OSError`` with the file
  named, so the top-level handler prints ``looop: <file>: <reason>``. A caller
  that can go on without a lock (the reaper, the claims) catches it.
* ``held`` is the two together as a context manager that closes the file
  (closing lets go of the lock).
* ``directory`` holds the lock on a directory the caller has open (the
  claims' ``claims/``, the mailbox's ``asks/``): a lock that leaves no file
  behind, whoever is killed holding it. Each process opens the directory on
  its own, so each holds its own lock. Where ``flock`` is not to be had
  (some network file systems) the block runs unlocked, and the caller's own
  checks (an exclusive create, a judged file still in place) are what holds.

Rejected: ``fcntl.lockf`` (POSIX record locks belong to the process, so a
second open of the same file in the same process silently drops them), and
lock directories made with ``mkdir`` (a crashed holder leaves one behind).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat

from looop import fs

TYPE_CHECKING = False  # not typing's: `looop status` takes its lock through this module
if TYPE_CHECKING:
    from collections.abc import Iterator

_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def open_lock(
    path: str | os.PathLike[str],
    *,
    dir_fd: int | None = None,
    mode: int = 0o600,
    create: bool = True,
) -> int:
    """Open (``create``: and make) the lock file ``path``; the caller closes the fd.

    Without ``create`` it is opened read-only, which is enough to ``flock``
    and works on a file system mounted read-only; a missing file is then
    FileNotFoundError. Anything but a regular file raises ``fs.BadFile``.
    """
    flags = (os.O_RDWR | os.O_CREAT if create else os.O_RDONLY) | _FLAGS
    try:
        fd = os.open(path, flags, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise fs.BadFile(path, "is a symlink, not a lock file") from None
        if exc.errno == errno.EISDIR:
            raise fs.BadFile(path, "is a directory, not a lock file") from None
        raise fs.named(exc, path) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise fs.BadFile(path, f"is {fs.kind(st.st_mode)}, not a lock file")
    except BaseException:
        os.close(fd)
        raise
    return fd


def lock(
    fd: int,
    *,
    shared: bool = False,
    block: bool = False,
    path: str | os.PathLike[str] = "<fd>",
) -> bool:
    """``flock`` the open file: True when taken, False only when ``block`` is off and it is held.

    Any other failure raises OSError naming ``path``.
    """
    operation = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if block else fcntl.LOCK_NB)
    try:
        fcntl.flock(fd, operation)
    except OSError as exc:
        if not block and exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            return False
        raise fs.named(exc, path) from None
    return True


def unlock(fd: int) -> None:
    """Let go of the lock on ``fd`` while keeping it open (a directory's own lock)."""
    fcntl.flock(fd, fcntl.LOCK_UN)


@contextlib.contextmanager
def directory(fd: int) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the open directory ``fd`` for the block (unlocked without)."""
    try:
        lock(fd, block=True)
    except OSError:
        yield
        return
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # a failed unlock is undone by the caller's close
            unlock(fd)


@contextlib.contextmanager
def held(
    path: str | os.PathLike[str],
    *,
    shared: bool = False,
    block: bool = True,
    dir_fd: int | None = None,
    mode: int = 0o600,
) -> Iterator[bool]:
    """Open ``path`` as a lock file and lock it for the ``with`` block; yields whether it is held.

    With ``block`` (the default) it is always held once the block runs.
    """
    fd = open_lock(path, dir_fd=dir_fd, mode=mode)
    try:
        yield lock(fd, shared=shared, block=block, path=path)
    finally:
        os.close(fd)  # closing lets go of the lock
