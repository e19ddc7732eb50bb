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
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

from looop import fs
from looop.paths import Paths

# Readers read a generation's files through fs.read_small with this cap: far
# above any reading (sensor output is capped at 8 KiB by default), low enough
# that a stray giant in a generation costs nothing.
READ_LIMIT = 64 << 20


class PublishError(Exception):
    """The new generation could not be written; the old one is still published."""


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
    # Not resolved: the generation is compared by name with the entries of
    # `.snapshots/` when pruning, and a resolved path would never match.
    return link.parent / target


def publish(paths: Paths, files: dict[str, bytes]) -> Path:
    """Write ``files`` as a new generation and make it the published one."""
    gens = paths.generations
    previous = current(paths)
    gen: Path | None = None
    try:
        gens.mkdir(exist_ok=True)
        gen = gens / f"gen-{time.time_ns()}-{os.getpid()}"
        os.mkdir(gen, 0o700)
        for name, data in files.items():
            if not _link_unchanged(previous, gen, name, data):
                _write_new(gen / name, data)
        os.chmod(gen, 0o755)
        _swap_link(paths, gen, previous)
    except OSError as exc:
        if gen is not None:
            import shutil  # writers only: readers of the snapshots never load it

            shutil.rmtree(gen, ignore_errors=True)
        raise PublishError(f"could not publish snapshots: {exc.strerror or exc}") from exc
    _prune(paths, keep={gen, previous})
    return gen


def _link_unchanged(previous: Path | None, gen: Path, name: str, data: bytes) -> bool:
    """Hard-link ``name`` from the previous generation when its bytes are the same.

    Most readings do not change from beat to beat, and creating a file costs
    far more than linking one that exists; files are never written in place,
    so sharing them between generations is safe.
    """
    if previous is None:
        return False
    old = previous / name
    try:
        if fs.read_small(old, limit=len(data)) != data:
            return False
        os.link(old, gen / name, follow_symlinks=False)
    except OSError:
        return False
    return True


def _write_new(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _swap_link(paths: Paths, gen: Path, previous: Path | None) -> None:
    link = paths.snapshots
    if previous is not None and not link.is_symlink():
        # One-time move of a plain snapshots/ directory out of the way.
        os.rename(link, paths.generations / f"legacy-{time.time_ns()}")
    tmp = link.with_name(f".snapshots.link-{os.getpid()}")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    os.symlink(os.path.relpath(gen, link.parent), tmp)
    os.replace(tmp, link)


def _prune(paths: Paths, keep: set[Path | None]) -> None:
    """Remove generations other than ``keep``, each renamed away first.

    The rename makes a reader still inside an old generation fail loudly (and
    start again on the current one) instead of listing a half-deleted set.
    """
    import shutil  # writers only: readers of the snapshots never load it

    try:
        entries = list(paths.generations.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry in keep:
            continue
        doomed = entry
        if not entry.name.startswith("trash-"):
            doomed = entry.with_name(f"trash-{entry.name}")
            try:
                os.rename(entry, doomed)
            except OSError:
                continue
        shutil.rmtree(doomed, ignore_errors=True)
