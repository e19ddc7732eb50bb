"""``claims/*.json``: the leases workers hold, as readers see them.

A claim is ``claims/<name>.json`` holding ``{"session": "<id>", ...}``; the
names that count are ``*.json`` that are not dot-files (a worker's temp file
is one until it is renamed into place). ``listing`` is what ``sys-claims``
publishes and what ``_ state`` checks for problems; each file is read by
``looop.fs.read_small`` (no link followed, never blocking, capped), and one
that cannot be read is listed with ``claim: null`` and an ``error`` saying
why, so a FIFO named like a claim is reported, never waited on.

Judging whether a claim may be removed is the reaper's
(``looop.workers.reap``), which reads the claim it holds open with
``looop.data.sessions.read_json_fd``.
"""

from __future__ import annotations

import json
import os

from looop import fs
from looop.data.layout import Problem, problem, shown
from looop.paths import Paths

TYPE_CHECKING = False  # not typing's: the probes' start-up should not pay for it
if TYPE_CHECKING:
    from typing import Any

SUFFIX = ".json"


def listing(paths: Paths, problems: list[Problem] | None = None) -> list[dict[str, Any]]:
    """``{"name", "claim"}`` per claim, sorted by name; an unreadable one adds ``error``."""
    try:
        with os.scandir(paths.claims) as it:
            names = sorted(
                e.name for e in it if e.name.endswith(SUFFIX) and not e.name.startswith(".")
            )
    except OSError:
        return []
    leases: list[dict[str, Any]] = []
    for name in names:
        path = paths.claims / name
        # Shown as text (``\\xNN`` for bytes that are not UTF-8): the listing is published.
        entry: dict[str, Any] = {"name": shown(name[: -len(SUFFIX)]), "claim": None}
        try:
            entry["claim"] = json.loads(fs.read_small(path))
        except ValueError:
            entry["error"] = "is not valid JSON"
        except FileNotFoundError:
            continue  # released while being listed
        except OSError as exc:
            entry["error"] = problem(paths, path, exc)["why"]
        if "error" in entry and problems is not None:
            problems.append(problem(paths, path, entry["error"]))
        leases.append(entry)
    return leases
