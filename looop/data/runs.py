"""``runs/``: one record per ``looop _ run`` (SPEC §11), and whether it was interrupted.

A record is ``runs/<id>.json``: ``id``, ``cmd``, ``reason``, ``started``,
``pid`` (the ``looop _ run`` that ran it), ``pgid`` (the command's process
group), then, once it is over, ``ended``, ``exit_code``, ``output`` (the last
64 KiB), ``truncated``, ``timed_out`` and ``signal``. It is written before the
command starts, so a run whose ``looop _ run`` was killed outright (SIGKILL,
a crash, a reboot) is still on record: a record without ``ended`` whose
runner no longer runs (``proc.runs_since``, pids being reused) is
*interrupted*. ``state_of`` is that one judgment; ``_ state`` shows it
(``recent``: the newest records, and the interrupted ones among the newest
``WINDOW``, so its cost does not grow with ``runs/``).

Ids sort by time (``<UTC stamp to the microsecond>-<pid>``) and are created
exclusively, so two runs never share a record; they match SPEC §9's rule.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from looop import fs, jsonfile, proc
from looop.paths import Paths

TYPE_CHECKING = False  # not typing's: `_ state` reads the runs through here
if TYPE_CHECKING:
    from typing import Any

RUNNING, ENDED, INTERRUPTED = "running", "ended", "interrupted"
RECENT = 5
# How many of the newest records ``recent`` reads to find the interrupted
# ones: ``_ state`` costs the same whatever runs/ holds (the reaper judges
# every record, on its own time).
WINDOW = 100


def create(paths: Paths, record: dict[str, Any]) -> tuple[str, Path]:
    """Write a new record (exclusively); returns its id and path."""
    paths.runs.mkdir(parents=True, exist_ok=True)
    while True:
        now = time.time()
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}"
        run_id = f"{stamp}-{os.getpid()}"
        body = {"id": run_id, **record}
        try:
            path = fs.write_whole(paths.runs / f"{run_id}.json", _encode(body), exclusive=True)
        except FileExistsError:
            continue
        return run_id, path


def update(path: Path, record: dict[str, Any]) -> None:
    fs.write_whole(path, _encode(record))


def _encode(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, indent=2, ensure_ascii=False) + "\n").encode()


def state_of(record: dict[str, Any]) -> str:
    """ended, running, or interrupted (no end, and its runner is gone)."""
    if record.get("ended") is not None:
        return ENDED
    pid, started = record.get("pid"), record.get("started")
    if isinstance(pid, int) and isinstance(started, int | float) and proc.runs_since(pid, started):
        return RUNNING
    return INTERRUPTED


def named(name: str) -> bool:
    """Does ``name`` count as a record? ``<id>.json``, never a dot-file (a writer's temp)."""
    return name.endswith(".json") and not name.startswith(".")


def over_since(record: dict[str, Any]) -> tuple[str, float | None]:
    """The record's state and since when the run is over (None: running, or no finite time).

    An ended run is over since its ``ended``; an interrupted one (no end, its
    runner gone) since its ``started``, the last time it is known to have run.
    """
    state = state_of(record)
    if state == RUNNING:
        return state, None
    return state, jsonfile.finite(record.get("ended" if state == ENDED else "started"))


def recent(paths: Paths, limit: int = RECENT) -> list[dict[str, Any]]:
    """The newest ``limit`` records and the interrupted ones among the newest ``WINDOW``.

    Newest first, output left out. Only names are listed beyond the window;
    no record past it is read.
    """
    try:
        names = sorted(
            (e.name for e in os.scandir(paths.runs) if named(e.name)),
            reverse=True,
        )
    except OSError:
        return []
    found: list[dict[str, Any]] = []
    for name in names[: max(limit, WINDOW)]:
        try:
            record = jsonfile.read_object(paths.runs / name)
        except OSError:
            continue
        state = state_of(record)
        if len(found) < limit or state == INTERRUPTED:
            record.pop("output", None)
            found.append({**record, "state": state})
    return found
