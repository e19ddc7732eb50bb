"""System sensors: in-process probes published beside the user's readings.

``sys-sessions``, ``sys-claims`` and ``sys-goals`` follow the same wake-signal
rule as user sensors: what should wake the root agent goes in ``signal``,
anything that changes on its own (counts, ages) goes in ``detail`` so it never
moves the world hash. Each reads through the data dir's own modules (the
sessions judgment, the claims and goals listings, the journal's reader), so a
probe never has a reader of its own.
"""

from __future__ import annotations

import re
import time

from looop.data import claims, goals, journal, sessions
from looop.data.layout import Problem
from looop.paths import Paths

TYPE_CHECKING = False  # not typing's: the probes' start-up should not pay for it
if TYPE_CHECKING:
    from typing import Any


SESSIONS = "sys-sessions"


def sys_sessions(paths: Paths) -> dict[str, Any]:
    found = [s.summary() for s in sessions.scan(paths.sessions)]
    live = sum(1 for s in found if s["state"] in sessions.State.LIVE)
    return {"signal": found, "detail": {"count": len(found), "live": live}}


def sys_claims(paths: Paths) -> dict[str, Any]:
    leases = claims.listing(paths)
    return {"signal": leases, "detail": {"count": len(leases)}}


JOURNAL_SCAN_BYTES = 256 * 1024
ID_MAX = 64  # SPEC §9: an id is at most 64 characters
_RUN = re.compile(r"[\w.-]+")
_WORD = re.compile(r"\w+")


def mentions(text: str, wanted: dict[str, Any], longest: int = ID_MAX) -> set[str]:
    """The keys of ``wanted`` that ``text`` names as whole words.

    ``text`` is tokenised once: every run of id characters (word characters,
    ``.``, ``-``) and, inside it, every span from a word's start to a word's
    end (at most ``longest`` long, the caller's longest id) is looked up, so
    ``goals/setup.md`` names ``setup`` and ``setup.md``, and ``my-goal`` names
    ``my-goal``, as the ``\\b<id>\\b`` match it replaces did. The cost is
    linear in the line and independent of the number of goals: each word
    start tries only the word ends within ``longest`` characters of it
    (a run of a hundred thousand joined ids is a hundred thousand short
    looks, never a quadratic walk of the run).
    """
    found: set[str] = set()
    for run in _RUN.finditer(text):
        chunk = run.group()
        if _WORD.fullmatch(chunk):  # the common case: one word, one look
            if chunk in wanted:
                found.add(chunk)
            continue
        starts, ends = [], []
        for word in _WORD.finditer(chunk):
            starts.append(word.start())
            ends.append(word.end())
        count = len(ends)
        for i, start in enumerate(starts):
            j = i
            while j < count and ends[j] - start <= longest:
                span = chunk[start : ends[j]]
                if span in wanted:
                    found.add(span)
                j += 1
    return found


def last_acted(paths: Paths, goal_ids: list[str]) -> dict[str, float | None]:
    """Seconds since the newest journal line naming each goal, or None.

    A journal line counts when ``journal.parse`` finds its stamp (SPEC §1's
    ``- YYYY-MM-DD HH:MM``, local time, or a full ISO-8601 stamp) and its text
    names the goal id; only the journal's last ``JOURNAL_SCAN_BYTES`` are read.
    """
    latest: dict[str, float | None] = dict.fromkeys(goal_ids)
    try:
        # Only the recent past matters for "since last acted", and the journal
        # only grows: its tail, not all of it every beat.
        lines = journal.tail(paths, None, max_bytes=JOURNAL_SCAN_BYTES)
    except OSError:
        lines = []
    now = time.time()
    longest = min(ID_MAX, max(map(len, latest), default=0))
    for line in lines:
        parsed = journal.parse(line)
        if parsed is None:
            continue
        stamp, text = parsed
        age = max(0.0, now - stamp)
        for gid in mentions(text, latest, longest):
            current = latest[gid]
            latest[gid] = age if current is None else min(current, age)
    return latest


def sys_goals(paths: Paths) -> dict[str, Any]:
    """Each goal's age since the journal last named it; what kept goals unlisted, said.

    A ``goals/`` that cannot be listed (a link to a missing directory, a
    file) has no goals, and ``goals.listing``'s problems say why, in
    ``detail`` as ``_ state`` shows them: never a silent empty map.
    """
    problems: list[Problem] = []
    found = goals.listing(paths, problems)
    detail: dict[str, Any] = {"since_acted": last_acted(paths, [goal.id for goal in found])}
    if problems:
        detail["problems"] = problems
    return {"signal": {}, "detail": detail}


PROBES = {
    SESSIONS: sys_sessions,
    "sys-claims": sys_claims,
    "sys-goals": sys_goals,
}
