"""``goals/*.md``: the one answer to "which goals exist?".

A goal is a file ``goals/<id>.md`` that is not a dot-file and not a
directory (``goals/archive/`` holds finished goals; a directory that happens
to be named ``x.md`` is not a goal either). A symlink to a file counts: a
goal kept in a notes repo is the user's, and its readers follow it. Anything
else with a goal's name (a FIFO, a device node) *is* listed, because it is
named as a goal, and its reader reports it as unreadable; so the world hash,
``_ state``, ``sys-goals`` and ``_ wait`` see the same goals.

Only names and ``d_type`` are looked at (one ``scandir``); reading a goal is
its reader's business, through ``looop.fs.read_small``.

A name that is not valid UTF-8 is no goal either: a goal's id is text the
root agent and the journal name it by, and such a name cannot be named back.
It goes to ``problems`` (shown with ``\\xNN`` escapes) and counts nowhere,
so it never moves the world hash. A long name is a goal like any other.

Rejected: ``Path.glob("*.md")`` at each caller. It lists directories, and
the callers disagreed on what to do with one (``_ state`` listed it as a
goal, the world hash silently dropped it).
"""

from __future__ import annotations

import os
from pathlib import Path

from looop.data.layout import Problem, problem, shown, unlisted
from looop.paths import Paths

SUFFIX = ".md"


class Goal:
    """One goal: its id (the file name without ``.md``) and its file."""

    __slots__ = ("id", "path")

    def __init__(self, id: str, path: Path) -> None:
        self.id, self.path = id, path


def named(name: str) -> bool:
    """Does ``name`` look like a goal's file? ``<id>.md``, never a dot-file."""
    return name.endswith(SUFFIX) and not name.startswith(".")


def listing(paths: Paths, problems: list[Problem] | None = None) -> list[Goal]:
    """Every goal, sorted by id.

    A directory named like a goal, or a name that is not text, is not one;
    it goes to ``problems``.
    """
    found: list[Goal] = []
    try:
        with os.scandir(paths.goals) as it:
            for entry in it:
                name = entry.name
                if not named(name):
                    continue
                path = paths.goals / name
                if shown(name) != name:
                    if problems is not None:
                        why = "is not a goal: its name is not valid UTF-8; rename it"
                        problems.append(problem(paths, path, why))
                    continue
                try:
                    is_dir = entry.is_dir()  # follows a link: a link to a directory is one too
                except OSError:
                    is_dir = False
                if is_dir:
                    if problems is not None:
                        problems.append(problem(paths, path, "is a directory, not a goal file"))
                    continue
                found.append(Goal(name[: -len(SUFFIX)], path))
    except OSError as exc:
        unlisted(paths, paths.goals, exc, problems)
        return []
    return sorted(found, key=lambda goal: goal.id)


def ids(paths: Paths) -> list[str]:
    """The ids of ``listing``, sorted."""
    return [goal.id for goal in listing(paths)]
