"""Publishing a beat's readings as one generation, swapped in atomically.

``snapshots`` is a symlink to ``.snapshots/<generation>``. A beat writes a
complete new generation beside the current one and then replaces the link with
one ``rename(2)``, so a reader sees the old set or the new set, never an empty
or half-written one, and the world hash never moves mid-beat. The previous
generation is kept (a reader that resolved the link just before the swap can
finish); older ones are renamed away, then removed. If the new generation
cannot be written (disk full, read-only), it is discarded and the current one
stays in place.

Readers resolve the link once (``current``) and read inside that generation,
each file by ``looop.fs.read_small`` (capped at ``READ_LIMIT``).

The generation, not the file, is the unit of atomicity: files are written
straight into a brand-new directory nobody reads until the link swap, so
they do not go through ``looop.fs.write_whole`` (a temp file and rename per
file would buy nothing and cost a beat of many sensors). Nor are they
fsync-ed: snapshots are scratch, and a restarted pulse senses again.

**Publishing never touches anything looop did not make.** The writer opens
the data dir, then ``.snapshots`` with ``O_NOFOLLOW | O_DIRECTORY``, and does
every mkdir, write, link, rename and removal relative to those descriptors,
so a ``.snapshots`` that is a symlink is never followed (a linked one used to
make every beat rename and delete the link target's contents). Only looop's
own names are ever removed (``OURS``: ``gen-<ns>-<pid>``, ``legacy-<ns>`` and
their ``trash-`` forms, of whatever type a crash left them; a stale
``.snapshots.link-<pid>`` beside the link): anything else inside
``.snapshots/`` is the user's and stays.

A ``.snapshots`` that is not a real directory (a symlink, a file) or a
``snapshots`` that is neither looop's link nor looop's old plain directory (a
file, a link pointing elsewhere) is *repaired*: moved aside to
``<name>.not-looop-<ns>`` beside it (renamed, never deleted, never followed),
with a warning naming both, and the layout is made afresh. Rejected: refusing
to publish until the user acts. Both keep the user's data, but refusing would
stop the pulse sensing for good over a stray name, while moving it aside costs
one rename and leaves everything where the user can find it. A plain
``snapshots/`` directory is looop's own old layout and is moved into
``.snapshots/legacy-<ns>`` (then pruned) as before.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
from pathlib import Path

from looop import fs
from looop.paths import Paths

# Readers read a generation's files through fs.read_small with this cap: far
# above any reading (sensor output is capped at 8 KiB by default), low enough
# that a stray giant in a generation costs nothing.
READ_LIMIT = 64 << 20

# The names looop makes inside `.snapshots/`: the only ones it ever removes.
OURS = re.compile(r"(?:trash-)?(?:gen-\d+-\d+|legacy-\d+)")
# The temporary link made beside `snapshots` while swapping it.
LINK_TMP = re.compile(r"\.snapshots\.link-\d+")

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class PublishError(Exception):
    """The new generation could not be written; the old one is still published."""


def _generation_of(target: str, gens_name: str) -> str | None:
    """The generation a ``snapshots`` link target names, if it is looop's form."""
    head, sep, name = target.partition("/")
    if sep and head == gens_name and OURS.fullmatch(name) and not name.startswith("trash-"):
        return name
    return None


def current(paths: Paths) -> Path | None:
    """The directory of the published generation, resolved once."""
    link = paths.snapshots
    try:
        target = os.readlink(link)
    except FileNotFoundError:
        return None
    except OSError:
        # Not a link: a plain directory from before generations existed.
        return link if link.is_dir() else None
    if _generation_of(target, paths.generations.name) is None:
        return None  # not a link looop made: nothing looop published
    # Not resolved: the generation is compared by name with the entries of
    # `.snapshots/` when pruning, and a resolved path would never match.
    return link.parent / target


def publish(paths: Paths, files: dict[str, bytes]) -> Path:
    """Write ``files`` as a new generation and make it the published one."""
    gen_name = f"gen-{time.time_ns()}-{os.getpid()}"
    data_fd = gens_fd = gen_fd = prev_fd = -1
    made = False
    try:
        data_fd = os.open(paths.data_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        gens_fd = _open_generations(paths, data_fd)
        previous = _published(paths, data_fd, gens_fd)
        if previous is not None:
            with contextlib.suppress(OSError):
                prev_fd = os.open(previous, _DIR, dir_fd=gens_fd)
        os.mkdir(gen_name, 0o700, dir_fd=gens_fd)
        made = True
        gen_fd = os.open(gen_name, _DIR, dir_fd=gens_fd)
        for name, data in files.items():
            if not _link_unchanged(prev_fd, gen_fd, name, data):
                _write_new(gen_fd, name, data)
        os.fchmod(gen_fd, 0o755)
        _swap_link(paths, data_fd, gens_fd, gen_name)
    except OSError as exc:
        if made:
            _remove(gens_fd, gen_name)
        # Calls relative to a directory fd name no path (or a bare name): say where.
        named = os.fsdecode(exc.filename) if exc.filename is not None else ""
        where = named if os.path.isabs(named) else paths.generations / gen_name
        raise PublishError(f"could not publish snapshots: {where}: {exc.strerror or exc}") from exc
    else:
        _prune(gens_fd, keep={gen_name, previous})
        _clean_link_leftovers(data_fd)
    finally:
        for fd in (prev_fd, gen_fd, gens_fd, data_fd):
            if fd >= 0:
                os.close(fd)
    return paths.generations / gen_name


def _move_aside(paths: Paths, data_fd: int, name: str, what: str) -> None:
    """Rename the user's ``name`` out of looop's way (never deleted, never followed)."""
    from looop.log import log  # writers only: readers of the snapshots never load it

    aside = f"{name}.not-looop-{time.time_ns()}"
    os.rename(name, aside, src_dir_fd=data_fd, dst_dir_fd=data_fd)
    log.warning(
        f"{paths.data_dir / name} was {what}, not looop's; moved aside to "
        f"{paths.data_dir / aside} (nothing in it was touched)"
    )


def _open_generations(paths: Paths, data_fd: int) -> int:
    """``.snapshots`` opened as looop's own real directory, repaired if it is not one."""
    name = paths.generations.name
    for _ in range(3):
        try:
            return os.open(name, _DIR, dir_fd=data_fd)
        except FileNotFoundError:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o755, dir_fd=data_fd)
            continue
        except OSError:
            try:
                st = os.stat(name, dir_fd=data_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):
                raise  # a real directory we may not open: say so, touch nothing
            _move_aside(paths, data_fd, name, fs.kind(st.st_mode))
    return os.open(name, _DIR, dir_fd=data_fd)


def _published(paths: Paths, data_fd: int, gens_fd: int) -> str | None:
    """The name of the published generation; puts anything not looop's out of the way.

    A plain ``snapshots/`` directory (looop's own layout before generations)
    goes into ``.snapshots/legacy-<ns>``, to be pruned; a file, or a link that
    does not point into ``.snapshots/`` the way looop makes it, is moved aside.
    """
    link = paths.snapshots.name
    try:
        st = os.stat(link, dir_fd=data_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        found = _generation_of(os.readlink(link, dir_fd=data_fd), paths.generations.name)
        if found is None:
            _move_aside(paths, data_fd, link, "a symlink to somewhere else")
        return found
    if stat.S_ISDIR(st.st_mode):
        legacy = f"legacy-{time.time_ns()}"
        os.rename(link, legacy, src_dir_fd=data_fd, dst_dir_fd=gens_fd)
        return legacy  # kept for this beat: a reader may still be inside it
    _move_aside(paths, data_fd, link, fs.kind(st.st_mode))
    return None


def _link_unchanged(prev_fd: int, gen_fd: int, name: str, data: bytes) -> bool:
    """Hard-link ``name`` from the previous generation when its bytes are the same.

    Most readings do not change from beat to beat, and creating a file costs
    far more than linking one that exists; files are never written in place,
    so sharing them between generations is safe.
    """
    if prev_fd < 0:
        return False
    try:
        if fs.read_small(name, limit=len(data), dir_fd=prev_fd) != data:
            return False
        os.link(name, name, src_dir_fd=prev_fd, dst_dir_fd=gen_fd, follow_symlinks=False)
    except OSError:
        return False
    return True


def _write_new(gen_fd: int, name: str, data: bytes) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(name, flags, 0o644, dir_fd=gen_fd)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _swap_link(paths: Paths, data_fd: int, gens_fd: int, gen_name: str) -> None:
    link = paths.snapshots.name
    tmp = f".snapshots.link-{os.getpid()}"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp, dir_fd=data_fd)
    os.symlink(os.path.join(paths.generations.name, gen_name), tmp, dir_fd=data_fd)
    os.replace(tmp, link, src_dir_fd=data_fd, dst_dir_fd=data_fd)


def _remove(dir_fd: int, name: str) -> None:
    """Remove looop's entry ``name`` of whatever type, never following a link."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return
    if stat.S_ISDIR(st.st_mode):
        if _remove_flat(dir_fd, name):
            return
        import shutil  # a directory inside (a crash's odd leftover): rare, and it costs imports

        # Descriptor-based on Linux and macOS: a link inside is unlinked, never entered.
        shutil.rmtree(name, dir_fd=dir_fd, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            os.unlink(name, dir_fd=dir_fd)


def _remove_flat(dir_fd: int, name: str) -> bool:
    """Remove directory ``name`` holding only files (a generation); False if it holds more."""
    try:
        fd = os.open(name, _DIR, dir_fd=dir_fd)
    except OSError:
        return False
    try:
        for entry in os.listdir(fd):
            os.unlink(entry, dir_fd=fd)
    except OSError:
        return False  # a directory inside, or a name that would not go
    finally:
        os.close(fd)
    with contextlib.suppress(OSError):
        os.rmdir(name, dir_fd=dir_fd)
    return True


def _prune(gens_fd: int, keep: set[str | None]) -> None:
    """Remove looop's generations other than ``keep``, each renamed away first.

    The rename makes a reader still inside an old generation fail loudly (and
    start again on the current one) instead of listing a half-deleted set.
    Entries not named by ``OURS`` are the user's and are never touched.
    """
    try:
        names = os.listdir(gens_fd)
    except OSError:
        return
    for name in names:
        if name in keep or not OURS.fullmatch(name):
            continue
        doomed = name
        if not name.startswith("trash-"):
            doomed = f"trash-{name}"
            try:
                os.rename(name, doomed, src_dir_fd=gens_fd, dst_dir_fd=gens_fd)
            except OSError:
                continue
        _remove(gens_fd, doomed)


def _clean_link_leftovers(data_fd: int) -> None:
    """Unlink temporary links a killed swap left beside ``snapshots`` (links only)."""
    try:
        names = [n for n in os.listdir(data_fd) if LINK_TMP.fullmatch(n)]
    except OSError:
        return
    for name in names:
        with contextlib.suppress(OSError):
            if stat.S_ISLNK(os.stat(name, dir_fd=data_fd, follow_symlinks=False).st_mode):
                os.unlink(name, dir_fd=data_fd)
