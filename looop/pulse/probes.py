"""System sensors: in-process probes published beside the user's readings.

``sys-sessions``, ``sys-claims`` and ``sys-goals`` follow the same wake-signal
rule as user sensors: what should wake the root agent goes in ``signal``,
anything that changes on its own (counts, ages) goes in ``detail`` so it never
moves the world hash.
"""

from __future__ import annotations

import json
import os
import re
import time
from datetime import datetime
from typing import Any

from looop.data import sessions
from looop.paths import Paths


def sys_sessions(paths: Paths) -> dict[str, Any]:
    found = [s.summary() for s in sessions.scan(paths.sessions)]
    return {"signal": found, "detail": {"count": len(found)}}


def sys_claims(paths: Paths) -> dict[str, Any]:
    leases = []
    for path in sorted(paths.claims.glob("*.json")):
        try:
            claim: Any = json.loads(path.read_bytes())
        except (OSError, ValueError):
            claim = None
        leases.append({"name": path.stem, "claim": claim})
    return {"signal": leases, "detail": {"count": len(leases)}}


JOURNAL_SCAN_BYTES = 256 * 1024
_JOURNAL_STAMP = re.compile(r"^\s*(?:[-*]\s*)?(\S+)\s+(.*)$")


def last_acted(paths: Paths, goal_ids: list[str]) -> dict[str, float | None]:
    """Seconds since the newest journal line naming each goal, or None.

    A journal line counts when it starts (after an optional list marker) with
    an ISO-8601 timestamp and names the goal id later on the line; only the
    journal's last ``JOURNAL_SCAN_BYTES`` are read.
    """
    latest: dict[str, float | None] = dict.fromkeys(goal_ids)
    try:
        with open(paths.journal, "rb") as fh:
            # Only the recent past matters for "since last acted", and the
            # journal only grows: read its tail, not all of it every beat.
            fh.seek(max(0, os.fstat(fh.fileno()).st_size - JOURNAL_SCAN_BYTES))
            lines = fh.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    now = time.time()
    for line in lines:
        match = _JOURNAL_STAMP.match(line)
        if not match:
            continue
        try:
            stamp = datetime.fromisoformat(match.group(1).replace("Z", "+00:00")).timestamp()
        except ValueError:
            continue
        rest = match.group(2)
        for gid in goal_ids:
            if re.search(rf"\b{re.escape(gid)}\b", rest):
                age = max(0.0, now - stamp)
                current = latest[gid]
                latest[gid] = age if current is None else min(current, age)
    return latest


def goal_ids(paths: Paths) -> list[str]:
    return sorted(p.stem for p in paths.goals.glob("*.md"))


def sys_goals(paths: Paths) -> dict[str, Any]:
    return {"signal": {}, "detail": {"since_acted": last_acted(paths, goal_ids(paths))}}


PROBES = {
    "sys-sessions": sys_sessions,
    "sys-claims": sys_claims,
    "sys-goals": sys_goals,
}
