"""``PLAYBOOK.md`` and ``playbook.d/``: the user's judgment guide and its earlier versions.

``replace`` is the one writer (``looop _ playbook write``): the version being
replaced is first copied into ``playbook.d/`` under a name that sorts by time
(``PLAYBOOK-<UTC stamp to the microsecond>.md``, created exclusively, so two
writers never share one), then the new text is written whole. Only the
newest ``KEEP`` earlier versions are kept. Keeping the old text before
writing the new means a failure between the two loses nothing: the old text
is in ``playbook.d/`` and still in place.

Rejected: renaming the old file into ``playbook.d/`` and then writing the
new one, which leaves a moment with no ``PLAYBOOK.md`` for a beat or a
reader to see; and git, which is the user's to run on the data dir.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from looop import fs
from looop.paths import Paths

KEEP = 20
PREFIX = "PLAYBOOK-"


def history(paths: Paths) -> list[Path]:
    """The kept earlier versions, oldest first."""
    try:
        names = sorted(
            e.name
            for e in os.scandir(paths.playbook_history)
            if e.name.startswith(PREFIX) and e.name.endswith(".md")
        )
    except FileNotFoundError:
        return []
    return [paths.playbook_history / name for name in names]


def _keep(paths: Paths, text: bytes) -> Path:
    paths.playbook_history.mkdir(exist_ok=True)
    while True:
        now = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
        try:
            return fs.write_whole(
                paths.playbook_history / f"{PREFIX}{stamp}.md", text, exclusive=True
            )
        except FileExistsError:
            continue  # the same microsecond as another writer: take the next


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
