"""The world hash: one SHA-256 over what the root agent acts on.

In order, each behind a path marker and a length (so no two worlds hash the
same by shifting bytes between parts): ``PLAYBOOK.md``, the goals of
``looop.data.goals.listing`` (whole bytes, sorted), then every
``snapshots/*.json`` (sorted) reduced to its wake signal — ``.signal`` when
the reading is an object with that key, else the whole reading —
canonicalised (sorted keys, compact) so key order is not a change. A sensor
*script* is not part of the world; only what it prints is.

``measure`` also keeps a digest per part, so ``looop _ wait`` can say *what*
moved with the same single read that says *whether* it moved, and the
snapshots it read (``World.read``), so ``_ state`` shows the readings it
hashed without reading the generation a second time.

PLAYBOOK and goals are read by ``looop.fs.read_small`` with links followed
(the user's own), never blocking and capped at ``fs.SMALL``; one that cannot
be read counts as present-but-unreadable and is reported to the caller's
``problems``, never waited on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from looop import fs
from looop.data import goals, snapshots
from looop.data.layout import Problem, problem
from looop.digest import sha256
from looop.paths import Paths

TYPE_CHECKING = False  # not typing's: the probes' start-up should not pay for it
if TYPE_CHECKING:
    from typing import Any

PARTS = ("playbook", "goals", "snapshots")


class World:
    """The world hash, a digest per part, and the snapshots read (a plain class: see
    ``looop.digest``)."""

    __slots__ = ("hash", "parts", "problems", "read")

    def __init__(
        self,
        hash: str,
        parts: dict[str, str],
        read: list[tuple[str, bytes]] | None = None,
        problems: list[Problem] | None = None,
    ) -> None:
        self.hash, self.parts, self.read = hash, parts, read
        self.problems = problems or []


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


def _read(paths: Paths, path: Path, problems: list[Problem] | None) -> bytes | None:
    """The bytes of the user's file at ``path``; None when missing or unreadable (reported)."""
    try:
        # Followed: a PLAYBOOK.md or a goal linked into a notes repo is the
        # user's own link. Capped at fs.SMALL (1 MiB, a few hundred pages of
        # prose): an "instruction" bigger than that is not one, and a 100 MB
        # file there must cost every beat and wake nothing.
        return fs.read_small(path, follow=True)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if problems is not None:
            problems.append(problem(paths, path, exc))
        return None


def measure(
    paths: Paths,
    problems: list[Problem] | None = None,
    published: list[tuple[str, bytes]] | None = None,
) -> World:
    """The world; what could not be read goes to ``problems`` (``_ state`` lists them).

    ``published``: the ``*.json`` of the generation a beat has just published, as
    ``read_generation`` would read them back (the beat has their bytes already).
    """
    found: list[Problem] = []  # kept by the World too, for a reader of the same measure
    total = sha256()
    parts = {name: sha256() for name in PARTS}

    def feed(part: str, marker: str, data: bytes | None) -> None:
        # surrogateescape: a name is its bytes, whatever they are (never an error).
        size = -1 if data is None else len(data)
        head = f"{marker}\0{size}\0".encode("utf-8", "surrogateescape")
        for h in (total, parts[part]):
            h.update(head)
            if data is not None:
                h.update(data)

    feed("playbook", "PLAYBOOK.md", _read(paths, paths.playbook, found))
    for goal in goals.listing(paths, found):
        data = _read(paths, goal.path, found)
        if data is not None or os.path.lexists(goal.path):
            # An unreadable goal is still a goal (marked by length -1): its
            # appearing is a change, as the listing in ``_ state`` shows.
            feed("goals", f"goals/{goal.path.name}", data)
    read = read_generation(paths) if published is None else published
    for name, data in read:
        feed("snapshots", f"snapshots/{name}", _signal_bytes(data))
    if problems is not None:
        problems += found
    return World(total.hexdigest(), {k: h.hexdigest() for k, h in parts.items()}, read, found)


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
            found = []
            for name in names:
                try:
                    found.append((name, fs.read_small(gen / name, limit=snapshots.READ_LIMIT)))
                except (FileNotFoundError, NotADirectoryError):
                    raise
                except OSError:
                    continue  # not a reading looop wrote (a FIFO, a giant): not part of the world
            return found
        except (FileNotFoundError, NotADirectoryError):
            continue
    return []


def world_hash(paths: Paths, published: dict[str, bytes] | None = None) -> str:
    """The world hash; ``published``: the files of the generation just published, if it was."""
    if published is None:
        return measure(paths).hash
    readings = sorted(
        (name, data)
        for name, data in published.items()
        if name.endswith(".json") and len(data) <= snapshots.READ_LIMIT  # as read back
    )
    return measure(paths, published=readings).hash
