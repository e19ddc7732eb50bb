"""``looop _ state``: the one read the root agent makes of the world.

A pure read: nothing here writes, takes a lock or starts a beat, so the root
agent may call it as often as it likes, even while a beat is publishing (it
reads one generation, never a mix). ``pulse_alive`` comes from the lock probe,
the same answer ``looop status`` gives.

Each field comes from the data dir's own answer (``worldhash.measure``,
``mailbox.pending``, ``goals.listing``, ``journal.tail``, ``claims.listing``,
``sessions.scan``), and every entry those readers could not read (a FIFO, a
directory or a 100 MB file where a small file belongs) is listed once in
``problems`` as ``{"path", "why"}``, sorted by path: reported, never waited on.
A name that is not text (bytes that are not UTF-8, an ask's or a session's)
is shown by ``layout.shown``, so the JSON printed is text all the way.
"""

from __future__ import annotations

import json

from looop.data import claims, goals, journal, mailbox, sessions
from looop.data.layout import Problem, problem, shown
from looop.paths import Paths
from looop.pulse import lock, record, worldhash

TYPE_CHECKING = False  # not typing's: the probes' start-up should not pay for it
if TYPE_CHECKING:
    from typing import Any


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


def workers(paths: Paths) -> list[dict[str, Any]]:
    return [
        {
            "id": shown(s.id),
            "state": s.state,
            "alive": s.liveness == sessions.ALIVE,
            "exit_code": s.exit_code,
        }
        for s in sessions.scan(paths.sessions)
    ]


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
    problems: list[Problem] = []
    world = worldhash.measure(paths, problems)
    asks = mailbox.pending(paths, problems)
    for ask in asks:
        if isinstance(ask.get("id"), str):
            ask["id"] = shown(ask["id"])
    claims.listing(paths, problems)
    tail = journal_tail(paths, problems)
    alive = pulse_alive(paths) if alive is None else alive
    return {
        "world_hash": world.hash,
        "pulse_alive": alive,
        "beats_failing": beats_failing(paths) if alive else None,
        "snapshots": readings(paths),
        "asks": asks,
        "workers": workers(paths),
        "goals": goals.ids(paths),
        "journal_tail": tail,
        "problems": sorted(problems, key=lambda p: (p["path"], p["why"])),
        "data_dir": str(paths.data_dir),
    }


def render(state: dict[str, Any]) -> str:
    """A short human summary of ``collect``'s result."""
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
    lines += [f"problem     {p['path']} {p['why']}" for p in state.get("problems", [])]
    if state.get("changed"):
        lines.insert(0, f"changed     {', '.join(state['changed'])}")
    if state["journal_tail"]:
        lines.append("journal     " + state["journal_tail"][-1])
    return "\n".join(lines)


def formatted(state: dict[str, Any], as_json: bool) -> str:
    """The agent's format of ``collect``'s result: one JSON object, or ``render``'s summary."""
    return json.dumps(state, indent=2, default=str) if as_json else render(state)
