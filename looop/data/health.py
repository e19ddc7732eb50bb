"""A live worker's health: the four words (``Health``), the two knobs a session's
meta keeps for it (``knobs``), and how a listing says it (``text``).

The judgment is one, ``data.sessions.Verdict.health`` (and ``stuck_at``),
from what is already on disk: its pending ask, and its last sign of life,
which ``sessions.judge_at`` takes with one ``fstatat`` of ``output.log``
(the supervisor, or systemd under a unit that supervises the worker alone,
writes every chunk of the worker's output there, so its mtime is the last
output; an answer to the worker's ask moves it too,
``sessions.stir``, so a worker just answered after a long wait is not judged
stuck before it has had a moment). Its knobs, ``worker.quiet_after`` and
``worker.stuck_after``, are kept in the meta as the worker started (as
``timeout`` is), so ``_ state`` judges health without loading the config.
Rejected: a progress file the worker writes (a worker that forgets it would
look stuck), a stamp the supervisor rewrites per chunk (a write per chunk
for what the mtime already says), and the health in ``sys-sessions``' signal
(a worker turning stuck would wake the agent a beat late, and then once more
by the world hash: ``_ wait`` computes the moment instead, ``stuck_at``).
"""

from __future__ import annotations

from looop import jsonfile

TYPE_CHECKING = False  # not typing's: ``status`` and ``_ state`` load this through sessions
if TYPE_CHECKING:
    from typing import Any


class Health:
    """A live worker's health, as ``Verdict.health`` judges it from its output and mailbox.

    ``waiting``: it has a pending ask (however long: it is the asked's turn);
    else ``busy``: it showed life within ``worker.quiet_after``; ``stuck``:
    not for ``worker.stuck_after``; ``quiet`` in between.
    """

    BUSY, WAITING, QUIET, STUCK = "busy", "waiting", "quiet", "stuck"
    ALL = (BUSY, WAITING, QUIET, STUCK)


def knobs(meta: dict[str, Any] | None) -> tuple[float, float]:
    """``worker.quiet_after`` and ``worker.stuck_after`` as a session's meta keeps them."""
    found = []
    for key in ("quiet_after", "stuck_after"):
        value = jsonfile.finite((meta or {}).get(key))
        if value is None or value < 0:  # a meta from before health: the defaults
            from looop import config

            value = float(config.KNOBS[f"worker.{key}"].default)  # type: ignore[arg-type]
        found.append(value)
    return found[0], found[1]


def text(row: dict[str, Any]) -> str:
    """A live worker's health in ``rows``' row, for people: ``stuck, idle 16m 2s``."""
    from looop.say import duration

    said = [str(row.get("health"))]
    for key, word in (("idle", "idle"), ("ask_age", "ask")):
        value = row.get(key)
        if isinstance(value, int | float):
            said.append(f"{word} {duration(value)}")
    return ", ".join(said)
