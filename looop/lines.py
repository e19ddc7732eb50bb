"""Append-only line files: the one appender and the readers of their lines and their end.

``journal.md``, ``events.jsonl`` and ``cost.jsonl`` only grow, a line at a
time, from several writers at once (the pulse, the agent's verbs, workers
recording their spend); log files and worker transcripts are read back from
their end. Each room had its own appender and its own end-reader, and they
disagreed, so the rules live here once:

* **An append is whole or absent.** ``append`` opens the file ``O_APPEND |
  O_NOFOLLOW | O_NONBLOCK`` (never through a link, never hanging on a FIFO),
  refuses anything but a regular file, takes an exclusive ``flock`` (so the
  appenders queue and a reader can take a shared one), and writes the lines
  in one ``write``. A write that stops part-way (``EFBIG`` under a file-size
  limit, ``ENOSPC``, a short count) is undone by truncating the file back to
  the length it had before; where even that fails, the file is left with a
  last line that has no ``"\\n"``, and the next append ends that torn line
  first, so it is never glued onto the next record. ``write_locked`` is the
  same write for a caller that holds the lock itself (``events`` rotates
  under it). Every error names the file.
* **Reading the end costs the end, not the file.** ``tail`` and ``tail_bytes``
  read backwards from the end in blocks until they have the lines asked for
  or ``max_bytes``, so ``looop logs -n 5`` on a 2 GB log reads a block, not
  2 GB. They open by ``fs.open_regular``'s rules.
* **Ledgers are read in bounded chunks.** ``whole_lines`` yields each line
  of a file without holding the file; the caller parses, and skips (and
  counts) a line that is not a record, whether a hand edit or torn.

Rejected: ``open(path, "a")`` (follows links, blocks on a FIFO, and Python's
buffer may split one line into several writes), appending without a lock
(``O_APPEND`` alone keeps whole writes apart, but gives no moment to check
and end a torn last line, nor to undo a short write), and ``readlines()`` or
``deque(file, n)`` for a tail (both read the whole file).
"""

from __future__ import annotations

import contextlib
import errno
import os

from looop import fs, lockfile

TYPE_CHECKING = False  # not typing's: every verb appends to the journal
if TYPE_CHECKING:
    from collections.abc import Iterator

BLOCK = 8192
TAIL_BYTES = 256 * 1024  # the most a tail reads: far more than a screenful, far less than a file
CHUNK = 1 << 16  # what ``whole_lines`` reads at a time
MAX_LINE = fs.SMALL  # a longer line is cut there (its parser then refuses it)

_APPEND = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY


def open_append(path: str | os.PathLike[str], *, mode: int = 0o644, truncate: bool = False) -> int:
    """Open ``path`` to append to it (made if missing), by the rules above; the caller closes it.

    Read-write, so an appender can look at the last byte. ``truncate``
    empties it (a new transcript).
    """
    flags = _APPEND | os.O_CLOEXEC | (os.O_TRUNC if truncate else 0)
    try:
        fd = os.open(path, flags, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise fs.BadFile(path, "is a symlink; not followed") from None
        raise fs.named(exc, path) from None
    try:
        fs.regular(fd, path)
    except BaseException:
        os.close(fd)
        raise
    return fd


def append(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o644) -> None:
    """Append ``data`` (whole lines, each ending in ``"\\n"``) to ``path``, whole or not at all."""
    fd = open_append(path, mode=mode)
    try:
        lockfile.lock(fd, block=True, path=path)
        write_locked(fd, data, path=path)
    finally:
        os.close(fd)


def write_locked(fd: int, data: bytes, *, path: str | os.PathLike[str] = "<fd>") -> None:
    """``append``'s write, for a file opened by ``open_append`` whose lock the caller holds.

    A torn last line is ended first; a write that fails part-way is undone.
    """
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data  # a writer died mid-line: end its line, keep ours whole
        view = memoryview(data)
        written = 0
        while written < len(data):
            try:
                count = os.write(fd, view[written:])
            except OSError:
                _undo(fd, size, written)
                raise
            written += count
    except OSError as exc:
        raise fs.named(exc, path) from None


def _undo(fd: int, size: int, written: int) -> None:
    """Take back the part of a failed append that reached the file (best effort)."""
    if written:
        with contextlib.suppress(OSError):  # else the next append ends the torn line
            os.ftruncate(fd, size)


def tail(
    path: str | os.PathLike[str], lines: int | None, *, max_bytes: int = TAIL_BYTES
) -> list[str]:
    """The last ``lines`` lines of ``path`` as text (None: all whole ones in ``max_bytes``).

    Raises OSError (``fs.BadFile`` for a FIFO, a directory...); a missing file
    is FileNotFoundError, which a caller may treat as empty.
    """
    fd, st = fs.open_regular(path)
    try:
        data = tail_bytes(fd, st.st_size, lines, max_bytes=max_bytes, path=path)
    finally:
        os.close(fd)
    found = data.decode("utf-8", errors="replace").split("\n")
    if found and found[-1] == "":
        found.pop()  # the newline ending the last line starts no line
    return found


def tail_bytes(
    fd: int,
    end: int,
    lines: int | None,
    *,
    start: int = 0,
    max_bytes: int = TAIL_BYTES,
    path: str | os.PathLike[str] = "<fd>",
) -> bytes:
    """The last ``lines`` lines (newlines kept) of the open file between ``start`` and ``end``.

    ``lines`` None: every whole line in the last ``max_bytes``. A line cut
    by ``max_bytes`` is dropped; ``start`` is taken as a line's beginning.
    Reads backwards in blocks, ``pread`` only.
    """
    if lines is not None and lines <= 0:
        return b""
    pos = end
    blocks: list[bytes] = []  # newest first; joined once (prepending is quadratic)
    newlines = 0
    try:
        while pos > start and end - pos < max_bytes:
            if lines is not None and newlines > lines:
                break
            # Every line wanted: the whole bounded tail in one read.
            whole = BLOCK if lines is not None else max_bytes
            step = min(whole, pos - start, max_bytes - (end - pos))
            block = os.pread(fd, step, pos - step)
            if not block:
                break  # shrunk under us: what was read stands
            pos -= len(block)
            blocks.append(block)
            newlines += block.count(b"\n")
    except OSError as exc:
        raise fs.named(exc, path) from None
    data = b"".join(reversed(blocks))
    if pos > start:
        data = data.partition(b"\n")[2]  # the first line is cut: drop it
    if lines is None:
        return data
    # The last ``lines`` lines: a last line without its newline counts as one.
    cut = len(data) - 1 if data.endswith(b"\n") else len(data)
    for _ in range(lines):
        cut = data.rfind(b"\n", 0, cut)
        if cut < 0:
            return data
    return data[cut + 1 :]


def whole_lines(
    path: str | os.PathLike[str], *, chunk: int = CHUNK, max_line: int = MAX_LINE, start: int = 0
) -> Iterator[bytes]:
    """Each line of ``path`` without its newline, read in chunks; the file is never held whole.

    From offset ``start`` on (taken as a line's beginning), 0 by default.

    A line longer than ``max_line`` is yielded cut there (and the rest of it
    skipped); a last line without a newline (torn) is yielded as it is.
    Opens by ``fs.open_regular``'s rules; FileNotFoundError as is.
    """
    fd, _ = fs.open_regular(path)
    try:
        if start:
            os.lseek(fd, start, os.SEEK_SET)
        pending = b""
        skipping = False
        while True:
            try:
                block = os.read(fd, chunk)
            except OSError as exc:
                raise fs.named(exc, path) from None
            if not block:
                break
            *done, pending = (pending + block).split(b"\n")
            for line in done:
                if skipping:
                    skipping = False
                    continue
                yield line[:max_line]
            if len(pending) > max_line:
                if not skipping:
                    yield pending[:max_line]
                pending, skipping = b"", True
        if pending and not skipping:
            yield pending
    finally:
        os.close(fd)
