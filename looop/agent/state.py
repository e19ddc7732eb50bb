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
proof), the pending asks as a digest of their ids with their count and the
moment they were listed, the workers as the session generation
(``sessions.generation``: it moves with every start and end, so a worker
that started and ended between two waits is news although the live set is
the same again) with a digest of the live ids, each marked when the
worker is stuck (``live_digest``: turning stuck is news, a move between
busy, quiet and waiting is not), and the latest schedule instant that had
come (``rang_us``, ``schedules.latest``: an instant after it is news; not
the clock, so one world still gives one cursor); as base64url of a compact
JSON list whose first item is the format version (``3``). Opaque to the
agent, and of one size, about 200 bytes, whatever the number of asks and
workers: a cursor carrying every id grew past the 128 KiB a single argument
may have at exec (``--since "$c"`` failed there at 10,000 asks). An ask is
news when the set differs and either the count grew or an ask's file is
younger than the newest the cursor saw (``Cursor.new_asks``; one renamed in
while the asks were listed counts as unseen): an answered ask alone never
wakes, a new one always does, and an ask raised within moments of the
cursor, in a wait that also sees an answer, may wake once more than
needed, never less.
Rejected: the world hash alone (it cannot say *what* moved, nor which asks
were already seen), a sequence number kept by the pulse (the agent's own
writes, a goal between two waits, never pass through the pulse), and every
ask and worker id (the size above).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time

from looop.data import claims, goals, health, journal, mailbox, runs, schedules, sensors, sessions
from looop.data.layout import Problem, problem, shown
from looop.digest import sha256
from looop.errors import UsageError
from looop.paths import Paths
from looop.pulse import lock, record, worldhash

TYPE_CHECKING = False  # not typing's: the probes' start-up should not pay for it
if TYPE_CHECKING:
    from typing import Any


CURSOR_VERSION = 3
DIGEST_CHARS = 16  # of each part's hex digest kept in a cursor (64 bits)
CURSOR_MAX = 400  # characters: looop's own cursors are about 200, whatever the world's size
# A file's change time comes from a coarse clock (a few ms behind the fine
# one): an ask renamed into asks/ this close to a listing's start may be
# missing from it.
COARSE_US = 20_000


def digest(ids: frozenset[str] | set[str]) -> str:
    """64 bits of SHA-256 over the sorted ``ids``: a set compared, not carried."""
    h = sha256()
    for ident in sorted(ids):
        h.update(ident.encode("utf-8", "surrogateescape") + b"\0")
    return h.hexdigest()[:DIGEST_CHARS]


class Cursor:
    """What one output showed, in constant size.

    The world's part digests; the pending asks as a digest of their ids,
    their count and the change time of the newest one's file (``seen_us``,
    ``asks_seen``: so one world gives one cursor); the workers as the
    session generation (``sessions.generation``) and a digest of the live
    ids, each marked when the worker is stuck (``live_digest``); and the
    latest schedule instant that had come (µs), which later instants are
    compared with. Every field is a few bytes whatever the number of asks,
    workers and schedules.
    """

    __slots__ = ("asks", "asks_n", "generation", "live", "parts", "rang_us", "seen_us")

    def __init__(
        self,
        parts: dict[str, str],
        asks: str,
        asks_n: int,
        seen_us: int,
        generation: str,
        live: str,
        rang_us: int,
    ) -> None:
        self.parts = {name: parts[name][:DIGEST_CHARS] for name in worldhash.PARTS}
        self.asks, self.asks_n, self.seen_us = asks, asks_n, seen_us
        self.generation, self.live, self.rang_us = generation, live, rang_us

    def encode(self) -> str:
        payload = [
            CURSOR_VERSION,
            *(self.parts[name] for name in worldhash.PARTS),
            self.asks,
            self.asks_n,
            self.seen_us,
            self.generation,
            self.live,
            self.rang_us,
        ]
        raw = json.dumps(payload, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """The cursor ``text`` names; a UsageError (exit 2) for anything else.

        Bounded before anything is decoded: a text longer than ``CURSOR_MAX``
        is no cursor, so no input can cost more than a few hundred bytes of
        parsing (nor nest deep enough to exhaust the stack).
        """
        bad = UsageError(f"--since: {text[:40]!r} is not a cursor from `looop _ state` or `_ wait`")
        if len(text) > CURSOR_MAX or not text.isascii():
            raise bad
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            payload = json.loads(raw)
        except (ValueError, binascii.Error, RecursionError):
            raise bad from None
        if not isinstance(payload, list) or not payload or type(payload[0]) is not int:
            raise bad
        if payload[0] != CURSOR_VERSION:
            raise UsageError(f"--since: a cursor of format {payload[0]}, not {CURSOR_VERSION}")
        n = len(worldhash.PARTS)
        if len(payload) != n + 7:
            raise bad
        texts = [*payload[1 : n + 2], payload[n + 4], payload[n + 5]]
        numbers = [*payload[n + 2 : n + 4], payload[n + 6]]
        if not all(isinstance(t, str) and len(t) <= 64 for t in texts):
            raise bad
        if not all(type(k) is int and 0 <= k < 1 << 62 for k in numbers):
            raise bad
        parts = dict(zip(worldhash.PARTS, payload[1 : n + 1], strict=True))
        asks, asks_n, seen_us, generation, live, rang_us = payload[n + 1 : n + 7]
        return cls(parts, asks, asks_n, seen_us, generation, live, rang_us)

    def moved(self, parts: dict[str, str]) -> set[str]:
        """The world parts whose digest differs from this cursor's."""
        return {name for name in worldhash.PARTS if parts[name][:DIGEST_CHARS] != self.parts[name]}

    def new_asks(self, paths: Paths, asks: list[dict[str, Any]]) -> bool:
        """Is one of ``asks`` (``mailbox.pending``'s) an ask this cursor had not seen?

        The same set: no. More asks than seen: yes. Otherwise some were
        answered, and an ask is new if its file changed after the newest one
        the cursor saw; one that cannot be looked at counts as new.
        """
        ids = ask_ids(asks)
        if digest(ids) == self.asks:
            return False
        if len(ids) > self.asks_n:
            return True
        return asks_seen(paths, ids, time.time_ns() // 1000) > self.seen_us

    def workers_moved(self, generation: str, live: str) -> bool:
        """Did a session start or end (the generation moved), or the live set change?"""
        return (generation, live) != (self.generation, self.live)

    def changes_to(self, paths: Paths, later: Cursor, state: dict[str, Any]) -> set[str]:
        """What ``later`` (the cursor of ``state``, ``observe``'s) shows that this did not."""
        changed = self.moved(later.parts)
        if self.new_asks(paths, state["asks"]):
            changed.add("asks")
        if self.workers_moved(later.generation, later.live):
            changed.add("workers")
        if any(self.sees_instant(s["due"]) for s in state["schedules"]):
            changed.add("schedules")
        return changed

    def sees_instant(self, instant: float) -> bool:
        """Is ``instant`` (a schedule's, Unix seconds) news to this cursor?"""
        return schedules.us(instant) > self.rang_us


def ask_ids(asks: list[dict[str, Any]]) -> frozenset[str]:
    """The ids of ``mailbox.pending``'s asks, as ``_ state`` shows them."""
    return frozenset(
        shown(ask["id"]) if isinstance(ask.get("id"), str) else str(ask.get("id")) for ask in asks
    )


def asks_seen(paths: Paths, ids: frozenset[str], now_us: int) -> int:
    """The change time (µs) of the newest of the asks ``ids``; one not looked at is ``now_us``."""
    newest = 0
    for ident in ids:
        try:
            newest = max(newest, os.lstat(paths.asks / f"{ident}.json").st_ctime_ns // 1000)
        except (OSError, ValueError):
            return now_us
    return newest


def live_digest(rows: list[dict[str, Any]]) -> str:
    """The live workers as a cursor holds them: each id, marked when it is stuck.

    So a worker turning stuck (or showing life again) is news to a wait,
    and its other moves between busy, quiet and waiting are not.
    """
    stuck = health.Health.STUCK
    return digest(
        {w["id"] + (" stuck" if w["health"] == stuck else "") for w in rows if w["alive"]}
    )


def workers_now(paths: Paths) -> tuple[str, str, float | None]:
    """The session generation, then (so a start in between is never missed) the live digest.

    And when (wall clock) the next live worker that is neither waiting nor
    stuck turns stuck unless it shows life first (None: none will), for a
    wait to wake at. The mailbox is read only when a worker is past that
    moment: only a pending ask can then keep it from being stuck.
    """
    generation = sessions.generation(paths.sessions)
    found = sessions.live(paths.sessions)
    now = time.time()
    due = [s.stuck_at() for s in found]
    asks = mailbox.pending(paths) if any(t is not None and t <= now for t in due) else []
    rows = sessions.rows(found, asks, now)
    calm = (health.Health.BUSY, health.Health.QUIET)
    ahead = [t for t, w in zip(due, rows, strict=True) if t is not None and w["health"] in calm]
    return generation, live_digest(rows), min(ahead, default=None)


def pulse_alive(paths: Paths) -> bool:
    """Is a pulse running? ``lock.pulse_holder``'s answer (a one-off beat is not one)."""
    return lock.pulse_holder(paths) is not None


def readings(read: list[tuple[str, bytes]]) -> dict[str, Any]:
    """Published snapshots by name (``sensor-x``), JSON ones only, from the generation
    the world was measured on (``World.read``).

    A republished reading gets its age as of now (``sensors.with_age``).
    """
    found: dict[str, Any] = {}
    now = time.time()
    for name, data in read:
        try:
            found[name.removesuffix(".json")] = sensors.with_age(json.loads(data), now)
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


def observe(
    paths: Paths, alive: bool | None = None, world: worldhash.World | None = None
) -> tuple[dict[str, Any], Cursor]:
    """``collect``'s state and its cursor (also in the state, encoded, as ``cursor``).

    ``world`` is a measure the caller has just taken (``_ wait``, at the
    wake that ends it), so the world is read once per call, not twice.
    """
    problems: list[Problem] = []
    now = time.time()  # the schedules' clock: due is judged at this
    timers = schedules.listing(paths, problems)
    generation = sessions.generation(paths.sessions)  # before the sessions are judged
    if world is None or world.read is None:
        world = worldhash.measure(paths, problems)
    else:
        problems += world.problems
    listed_us = time.time_ns() // 1000  # what is renamed in from here may be missed
    asks = mailbox.pending(paths, problems)
    for ask in asks:
        ask["stranded"] = mailbox.stranded(paths, ask)  # nobody waits for that answer
        if isinstance(ask.get("id"), str):
            ask["id"] = shown(ask["id"])
    claims.listing(paths, problems)
    tail = journal_tail(paths, problems)
    alive = pulse_alive(paths) if alive is None else alive
    found = sessions.rows(sessions.scan(paths.sessions), asks)
    ids = ask_ids(asks)
    live = live_digest(found)
    # An ask younger than the listing's start (by the coarse clock) may have
    # been missed: the cursor says it saw only what is older.
    seen_us = min(asks_seen(paths, ids, listed_us), listed_us - COARSE_US) if ids else 0
    rang = schedules.latest(timers, now)
    cursor = Cursor(world.parts, digest(ids), len(ids), seen_us, generation, live, rang)
    data = {
        "world_hash": world.hash,
        "pulse_alive": alive,
        "beats_failing": beats_failing(paths) if alive else None,
        "snapshots": readings(world.read or []),
        "asks": asks,
        "workers": found,
        "goals": goals.ids(paths),
        "schedules": schedules.due(timers, now),
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
        f"schedules   {len(state.get('schedules', []))} due",
        f"workers     {len(state['workers'])} ({live} alive)",
    ]
    now = time.time()
    for ask in state["asks"]:
        ts = ask.get("ts")
        age = f"{max(0, now - ts):.0f}s" if isinstance(ts, int | float) and ts == ts else "?"
        mark = ", stranded" if ask.get("stranded") else ""
        prompt = " ".join(str(ask.get("prompt", ask.get("error", ""))).split())
        lines.append(f"  ask {ask['id']} ({ask.get('worker', '?')}, {age}{mark}): {prompt}")
    lines += _schedule_lines(state.get("schedules", []))
    for worker in state["workers"]:
        failed = worker.get("verify") == "failed"
        if worker["alive"]:
            said = health.text(worker)
            lines.append(f"  worker {worker['id']} ({worker['state']}, {said})")
        elif failed:
            code = worker["exit_code"]
            lines.append(f"  worker {worker['id']} ({worker['state']}, exit {code}, verify failed)")
    lines.append(f"cursor      {state['cursor']}")
    lines += [f"problem     {p['path']} {p['why']}" for p in state.get("problems", [])]
    if state.get("changed"):
        lines.insert(0, f"changed     {', '.join(state['changed'])}")
    if state["journal_tail"]:
        lines.append("journal     " + state["journal_tail"][-1])
    return "\n".join(map(escaped, lines))


def _schedule_lines(due: list[dict[str, Any]]) -> list[str]:
    """``schedule NAME (due 12-08 09:00, every 1d 0h, new): note`` per due schedule."""
    from looop.say import duration

    lines = []
    for s in due:
        said = [time.strftime("due %m-%d %H:%M", time.localtime(s["due"]))]
        if s["every"]:
            said.append(f"every {duration(s['every'])}")
        if s.get("new"):
            said.append("new")
        note = " ".join(str(s["note"] or "").split())
        lines.append(f"  schedule {s['name']} ({', '.join(said)})" + (f": {note}" if note else ""))
    return lines


def formatted(state: dict[str, Any], as_json: bool) -> str:
    """The agent's format of ``collect``'s result: one JSON object, or ``render``'s summary."""
    return json.dumps(state, indent=2, default=str) if as_json else render(state)
