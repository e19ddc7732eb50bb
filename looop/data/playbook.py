"""``PLAYBOOK.md`` and ``playbook.d/``: the user's judgment guide and its earlier versions.

``replace`` is the one writer (``looop _ playbook write``): the version being
replaced is first copied into ``playbook.d/`` as ``PLAYBOOK-<n>.md`` (``n`` zero-padded),
one past the highest kept (created exclusively: of two writers at once, the
second takes the next ``n``), then the new text is written whole. Only the
newest ``KEEP`` earlier versions are kept, "newest" meaning the highest
``n`` (``history``), so the version just saved is never the one pruned.
Keeping the old text before writing the new means a failure between the two
loses nothing: the old text is in ``playbook.d/`` and still in place.

Rejected: naming versions by the clock (``PLAYBOOK-<UTC stamp>.md``, the
earlier scheme): a clock stepped back (NTP, a VM resumed) sorts the version
just saved before older ones, and pruning removed it at once. Names of that
scheme still present are older than every numbered one and pruned first.
Also rejected: renaming the old file into ``playbook.d/`` and then writing
the new one, which leaves a moment with no ``PLAYBOOK.md`` for a beat or a
reader to see; and git, which is the user's to run on the data dir.
"""

from __future__ import annotations

import os
from pathlib import Path

from looop import fs
from looop.paths import Paths

KEEP = 20
PREFIX = "PLAYBOOK-"
SUFFIX = ".md"


def _order(name: str) -> tuple[int, int, str]:
    """Where a kept version sorts: numbered ones by ``n``, after any of the clock-named scheme."""
    n = name[len(PREFIX) : -len(SUFFIX)]
    if n.isascii() and n.isdigit():
        return (1, int(n), "")
    return (0, 0, name)


def history(paths: Paths) -> list[Path]:
    """The kept earlier versions, oldest first."""
    try:
        with os.scandir(paths.playbook_history) as it:
            names = [e.name for e in it if e.name.startswith(PREFIX) and e.name.endswith(SUFFIX)]
    except FileNotFoundError:
        return []
    return [paths.playbook_history / name for name in sorted(names, key=_order)]


def _keep(paths: Paths, text: bytes) -> Path:
    paths.playbook_history.mkdir(exist_ok=True)
    last = history(paths)
    n = _order(last[-1].name)[1] + 1 if last else 1
    while True:
        try:
            return fs.write_whole(
                paths.playbook_history / f"{PREFIX}{n:06d}{SUFFIX}", text, exclusive=True
            )
        except FileExistsError:
            n += 1  # another writer took this one meanwhile: the next


def replace(paths: Paths, text: str) -> Path | None:
    """Write ``text`` as the playbook; returns where the previous version was kept, if any."""
    try:
        previous = fs.read_small(paths.playbook)
    except FileNotFoundError:
        previous = None
    kept = None if previous is None else _keep(paths, previous)
    fs.write_whole(paths.playbook, text.encode("utf-8"))
    for old in history(paths)[:-KEEP]:
        old.unlink(missing_ok=True)
    return kept
