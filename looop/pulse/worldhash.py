"""The world hash: one SHA-256 over what the root agent acts on.

In order, each behind a path marker and a length (so no two worlds hash the
same by shifting bytes between parts): ``PLAYBOOK.md``, ``goals/*.md`` (whole
bytes, sorted), then every ``snapshots/*.json`` (sorted) reduced to its wake
signal — ``.signal`` when the reading is an object with that key, else the
whole reading — canonicalised (sorted keys, compact) so key order is not a
change. A sensor *script* is not part of the world; only what it prints is.

``measure`` also keeps a digest per part, so ``looop _ wait`` can say *what*
moved with the same single read that says *whether* it moved.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from looop.data import snapshots
from looop.paths import Paths

PARTS = ("playbook", "goals", "snapshots")


@dataclass(frozen=True)
class World:
    hash: str
    parts: dict[str, str]


def wake_signal(reading: Any) -> Any:
    if isinstance(reading, dict) and "signal" in reading:
        return reading["signal"]
    return reading


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _signal_bytes(raw: bytes) -> bytes:
    try:
        return canonical(wake_signal(json.loads(raw)))
    except ValueError:
        return raw  # not JSON (a hand-written file): it counts whole


def _read(path: Path) -> bytes | None:
    """The bytes of a regular file; None for anything else or unreadable.

    Opened non-blocking and checked with fstat, so a FIFO named like a goal
    cannot hang a beat or a wait, and a file we may not read counts as absent
    instead of failing every reader.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read()
    except OSError:
        return None
    finally:
        os.close(fd)


def measure(paths: Paths) -> World:
    total = hashlib.sha256()
    parts = {name: hashlib.sha256() for name in PARTS}

    def feed(part: str, marker: str, data: bytes | None) -> None:
        head = f"{marker}\0{-1 if data is None else len(data)}\0".encode()
        for h in (total, parts[part]):
            h.update(head)
            if data is not None:
                h.update(data)

    feed("playbook", "PLAYBOOK.md", _read(paths.playbook))
    for goal in sorted(paths.goals.glob("*.md")):
        data = _read(goal)
        if data is not None:
            feed("goals", f"goals/{goal.name}", data)
    for name, data in read_generation(paths):
        feed("snapshots", f"snapshots/{name}", _signal_bytes(data))
    return World(total.hexdigest(), {k: h.hexdigest() for k, h in parts.items()})


def read_generation(paths: Paths, attempts: int = 5) -> list[tuple[str, bytes]]:
    """(name, bytes) of every ``*.json`` in one published generation, sorted.

    If the generation is pruned while being read (a reader slower than a whole
    beat), it starts again on the newer one rather than mixing the two.
    """
    for _ in range(attempts):
        gen = snapshots.current(paths)
        if gen is None:
            return []
        try:
            names = sorted(p.name for p in gen.iterdir() if p.name.endswith(".json"))
            return [(name, (gen / name).read_bytes()) for name in names]
        except (FileNotFoundError, NotADirectoryError):
            continue
    return []


def world_hash(paths: Paths) -> str:
    return measure(paths).hash
