"""``looop _ state``: the one read the root agent makes of the world.

A pure read: nothing here writes, takes a lock or starts a beat, so the root
agent may call it as often as it likes, even while a beat is publishing (it
reads one generation, never a mix). ``pulse_alive`` comes from the lock probe,
the same answer ``looop status`` gives.

Each field comes from the data dir's own answer (``worldhash.measure``,
``mailbox.pending``, ``goals.listing``, ``journal.tail``, ``claims.listing``,
``sessions.scan``, each worker as ``sessions.rows`` gives every printer), and
every entry those readers could not read (a FIFO, a directory or a 100 MB file
where a small file belongs) is listed once in ``problems`` as ``{"path",
"why"}``, sorted by path: reported, never waited on.
A name that is not text (bytes that are not UTF-8, an ask's or a session's)
is shown by ``layout.shown``, so the JSON printed is text all the way.

Every output carries a ``cursor`` (``Cursor``): what that output showed, in
a form a later ``_ wait --since`` compares against, so nothing that changed
while the agent was acting is lost (SPEC §8). It holds the world's per-part
digests (``worldhash.measure``'s, cut to 64 bits: a comparison, not a
proof), the ids of the asks then pending and the ids of the live workers,
as base64url of a compact JSON list whose first item is the format version
(``1``). Opaque to the agent, and short: a few dozen bytes plus the ids.
Rejected: the world hash alone (it cannot say *what* moved, nor which asks
were already seen), and a sequence number kept by the pulse (the agent's
own writes, a goal between two waits, never pass through the pulse).
"""

from __future__ import annotations

import base64
import binascii
import json
import time

from looop.data import claims, goals, journal, mailbox, runs, sessions
from looop.data.layout import Problem, problem, shown
from looop.errors import UsageError
from looop.paths import Paths
from looop.pulse import lock, record, worldhash

TYPE_CHECKING = False  # not typing's: the probes' start-up should not pay for it
if TYPE_CHECKING:
    from typing import Any


CURSOR_VERSION = 1
DIGEST_CHARS = 16  # of each part's hex digest kept in a cursor (64 bits)


class Cursor:
    """What one output showed: world part digests, pending ask ids, live worker ids."""

    __slots__ = ("asks", "parts", "workers")

    def __init__(
        self, parts: dict[str, str], asks: frozenset[str], workers: frozenset[str]
    ) -> None:
        self.parts = {name: parts[name][:DIGEST_CHARS] for name in worldhash.PARTS}
        self.asks, self.workers = asks, workers

    def encode(self) -> str:
        payload = [
            CURSOR_VERSION,
            *(self.parts[name] for name in worldhash.PARTS),
            sorted(self.asks),
            sorted(self.workers),
        ]
        raw = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """The cursor ``text`` names; a UsageError (exit 2) for anything else."""
        bad = UsageError(f"--since: {text[:40]!r} is not a cursor from `looop _ state` or `_ wait`")
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            payload = json.loads(raw)
        except (ValueError, binascii.Error):
            raise bad from None
        if not isinstance(payload, list) or not payload or type(payload[0]) is not int:
            raise bad
        if payload[0] != CURSOR_VERSION:
            raise UsageError(f"--since: a cursor of format {payload[0]}, not {CURSOR_VERSION}")
        n = len(worldhash.PARTS)
        if len(payload) != n + 3:
            raise bad
        digests, asks, live = payload[1 : n + 1], payload[n + 1], payload[n + 2]
        if not all(isinstance(d, str) for d in digests):
            raise bad
        for ids in (asks, live):
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise bad
        return cls(
            dict(zip(worldhash.PARTS, digests, strict=True)), frozenset(asks), frozenset(live)
        )

    def changes_to(self, later: Cursor) -> set[str]:
        """What ``later`` shows that this did not: moved parts, new asks, other live workers."""
        changed = {name for name in worldhash.PARTS if later.parts[name] != self.parts[name]}
        if later.asks - self.asks:
            changed.add("asks")
        if later.workers != self.workers:
            changed.add("workers")
        return changed


def ask_ids(asks: list[dict[str, Any]]) -> frozenset[str]:
    """The ids of ``mailbox.pending``'s asks, as ``_ state`` shows them."""
    return frozenset(
        shown(ask["id"]) if isinstance(ask.get("id"), str) else str(ask.get("id")) for ask in asks
    )


def live_workers(paths: Paths) -> frozenset[str]:
    """The ids of the live workers (``sessions.live``), as ``_ state`` shows them."""
    return frozenset(shown(s.id) for s in sessions.live(paths.sessions))


def pulse_alive(paths: Paths) -> bool:
    """Is a pulse running? ``lock.pulse_holder``'s answer (a one-off beat is not one)."""
    return lock.pulse_holder(paths) is not None


def readings(paths: Paths) -> dict[str, Any]:
    """Published snapshots by name (``sensor-x``), JSON ones only."""
    found: dict[str, Any] = {}
    for name, data in worldhash.read_generation(paths):
        try:
            found[name.removesuffix(".json")] = json.loads(data)
        except ValueError:
            continue
    return found


def journal_tail(paths: Paths, problems: list[Problem] | None = None) -> list[str]:
    try:
        return journal.tail(paths)
    except FileNotFoundError:
        return []
    except OSError as exc:
        if problems is not None:
            problems.append(problem(paths, paths.journal, exc))
        return []


def beats_failing(paths: Paths) -> dict[str, Any] | None:
    """The running pulse's streak of failing beats (count, since, why), from its beat record."""
    failing = (record.read(paths) or {}).get("failing")
    return failing if isinstance(failing, dict) else None


def collect(paths: Paths, alive: bool | None = None) -> dict[str, Any]:
    """The state; ``alive`` is a liveness the caller already knows (``_ wait`` does)."""
    return observe(paths, alive)[0]


def observe(paths: Paths, alive: bool | None = None) -> tuple[dict[str, Any], Cursor]:
    """``collect``'s state and its cursor (also in the state, encoded, as ``cursor``)."""
    problems: list[Problem] = []
    world = worldhash.measure(paths, problems)
    asks = mailbox.pending(paths, problems)
    for ask in asks:
        ask["stranded"] = mailbox.stranded(paths, ask)  # nobody waits for that answer
        if isinstance(ask.get("id"), str):
            ask["id"] = shown(ask["id"])
    claims.listing(paths, problems)
    tail = journal_tail(paths, problems)
    alive = pulse_alive(paths) if alive is None else alive
    found = sessions.rows(sessions.scan(paths.sessions), asks)
    cursor = Cursor(world.parts, ask_ids(asks), frozenset(w["id"] for w in found if w["alive"]))
    data = {
        "world_hash": world.hash,
        "pulse_alive": alive,
        "beats_failing": beats_failing(paths) if alive else None,
        "snapshots": readings(paths),
        "asks": asks,
        "workers": found,
        "goals": goals.ids(paths),
        "journal_tail": tail,
        "runs": runs.recent(paths),
        "problems": sorted(problems, key=lambda p: (p["path"], p["why"])),
        "data_dir": str(paths.data_dir),
        "cursor": cursor.encode(),
    }
    return data, cursor


def render(state: dict[str, Any]) -> str:
    """A short human summary of ``collect``'s result, each line ``say.escaped``."""
    from looop.say import escaped

    failing = [
        name
        for name, value in state["snapshots"].items()
        if isinstance(value, dict)
        and isinstance(value.get("signal"), dict)
        and value["signal"].get("error")
    ]
    live = sum(1 for w in state["workers"] if w["alive"])
    pulse = "running" if state["pulse_alive"] else "not running"
    streak = state.get("beats_failing")
    if streak:
        pulse += f", but {streak.get('count')} beats in a row failed: {streak.get('why')}"
    lines = [
        f"data dir    {state['data_dir']}",
        f"pulse       {pulse}",
        f"world hash  {state['world_hash'][:16]}",
        f"snapshots   {len(state['snapshots'])}"
        + (f" (failing: {', '.join(failing)})" if failing else ""),
        f"goals       {', '.join(state['goals']) or '-'}",
        f"asks        {len(state['asks'])} pending",
        f"workers     {len(state['workers'])} ({live} alive)",
    ]
    now = time.time()
    for ask in state["asks"]:
        ts = ask.get("ts")
        age = f"{max(0, now - ts):.0f}s" if isinstance(ts, int | float) and ts == ts else "?"
        mark = ", stranded" if ask.get("stranded") else ""
        prompt = " ".join(str(ask.get("prompt", ask.get("error", ""))).split())
        lines.append(f"  ask {ask['id']} ({ask.get('worker', '?')}, {age}{mark}): {prompt}")
    for worker in state["workers"]:
        if worker["alive"]:
            lines.append(f"  worker {worker['id']} ({worker['state']})")
    lines.append(f"cursor      {state['cursor']}")
    lines += [f"problem     {p['path']} {p['why']}" for p in state.get("problems", [])]
    if state.get("changed"):
        lines.insert(0, f"changed     {', '.join(state['changed'])}")
    if state["journal_tail"]:
        lines.append("journal     " + state["journal_tail"][-1])
    return "\n".join(map(escaped, lines))


def formatted(state: dict[str, Any], as_json: bool) -> str:
    """The agent's format of ``collect``'s result: one JSON object, or ``render``'s summary."""
    return json.dumps(state, indent=2, default=str) if as_json else render(state)
