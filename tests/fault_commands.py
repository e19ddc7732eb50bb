"""The commands the fault sweep drives, and what each leaves when it has settled.

Each ``Command`` of ``tests/faults.py`` names its command line, the looop
commands that prepare its sandbox, and ``settled``: the command's own end
state, checked after the retry that follows every case (the goal written
and journaled, one pending ask of the question, the answer given and
journaled, no run recorded as failing, the dead session reaped, no worker
left starting with its environment on disk).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

from faults import Command, Sandbox


def _read(box: Sandbox, rel: str) -> str:
    try:
        return (box.data / rel).read_text()
    except OSError:
        return ""


def _journal_has(text: str) -> Callable[[Sandbox], str | None]:
    def check(box: Sandbox) -> str | None:
        if text not in _read(box, "journal.md"):
            return f"journal.md has no line {text!r}"
        return None

    return check


def _goal_settled(box: Sandbox) -> str | None:
    if _read(box, "goals/g1.md") != "text\n":
        return "goals/g1.md is not the goal written"
    return _journal_has("goal write g1: why")(box)


def _playbook_settled(box: Sandbox) -> str | None:
    if _read(box, "PLAYBOOK.md") != "the new playbook\n":
        return "PLAYBOOK.md is not the playbook written"
    return _journal_has("playbook write")(box)


def _answer_settled(box: Sandbox) -> str | None:
    try:
        record = json.loads(_read(box, "answers/w1-1.json"))
    except ValueError:
        return "answers/w1-1.json is not a JSON answer"
    if record.get("answer") != "yes":
        return "answers/w1-1.json does not hold the answer given"
    return _journal_has("answer w1-1: yes")(box)


def _ask_settled(box: Sandbox) -> str | None:
    asks = [n for n in os.listdir(box.data / "asks") if n.endswith(".json") and n[0] != "."]
    mine = [n for n in asks if json.loads(_read(box, f"asks/{n}")).get("prompt") == "which?"]
    if len(mine) != 1:
        return f"{len(mine)} pending asks of the one question: {sorted(mine)}"
    return None


def _cost_settled(box: Sandbox) -> str | None:
    if not any('"kind": "ask"' in line for line in _read(box, "cost.jsonl").splitlines()):
        return "cost.jsonl has no line of the spend recorded"
    return None


def _run_settled(box: Sandbox) -> str | None:
    for name in sorted(os.listdir(box.data / "runs")):
        if name.startswith("."):
            continue
        try:
            record = json.loads(_read(box, f"runs/{name}"))
        except ValueError:
            return f"runs/{name} is not a JSON record"
        if record.get("ended") is not None and record.get("exit_code") != 0:
            return f"runs/{name} records exit {record.get('exit_code')} for `true`"
    return None


def _config_settled(box: Sandbox) -> str | None:
    out = box.run(["config", "get", "interval"])
    if out.code != 0 or out.stdout.strip() != "42":
        return f"config get interval says {out.stdout.strip() or out.stderr.strip()!r}"
    return None


def _reap_settled(box: Sandbox) -> str | None:
    if os.path.lexists(box.data / "sessions" / "w9"):
        return "sessions/w9 (dead) is still there"
    return None


def _sense_settled(box: Sandbox) -> str | None:
    for name in ("sensor-today", "sensor-two"):
        try:
            json.loads(_read(box, f"snapshots/{name}.json"))
        except ValueError:
            return f"snapshots/{name}.json is not the sensor's reading"
    return None


def _worker_settled(box: Sandbox) -> str | None:
    session = box.data / "sessions" / "w1"
    if (session / "env.json").exists():
        return "sessions/w1/env.json (the caller's environment) is left behind"
    out = box.run(["_", "worker", "list", "--json"])
    if out.code != 0:
        return f"_ worker list failed: {out.stderr.strip()}"
    for row in json.loads(out.stdout or "[]"):
        if row.get("id") == "w1" and row.get("state") in ("starting", "running"):
            return f"worker w1 is left {row.get('state')}"
    return None


COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("sense", ("sense",), settled=_sense_settled),
        Command(
            "goal-write",
            ("_", "goal", "write", "g1", "text", "--journal", "why"),
            settled=_goal_settled,
        ),
        Command(
            "playbook-write",
            ("_", "playbook", "write", "the new playbook"),
            settled=_playbook_settled,
        ),
        Command(
            "sensor-write",
            ("_", "sensor", "write", "s2", "#!/bin/sh\necho '{}'", "--journal", "why"),
            settled=_journal_has("sensor write s2: why"),
        ),
        Command(
            "ask",
            ("_", "ask", "w1", "--prompt", "which?", "--timeout", "0"),
            settled=_ask_settled,
        ),
        Command(
            "answer",
            ("_", "answer", "w1-1", "yes"),
            prepare=(("_", "ask", "w1", "--prompt", "ok?", "--timeout", "0"),),
            settled=_answer_settled,
        ),
        Command("claim", ("_", "claim", "c1", "--session", "w1")),
        Command("cost", ("_", "cost", "ask", "w1", "claude", "0.25"), settled=_cost_settled),
        Command("run", ("_", "run", "--", "true"), settled=_run_settled),
        Command("config-set", ("config", "set", "interval", "42"), settled=_config_settled),
        Command(
            "reap",
            ("reap", "--ttl", "0"),
            prepare=(
                ("_", "worker", "start", "w9", "old", "work"),
                ("_", "ask", "w9", "--prompt", "old?", "--timeout", "0"),
                ("_", "answer", "w9-1", "fine"),
            ),
            settled=_reap_settled,
            worker=True,
        ),
        Command(
            "worker-start",
            ("_", "worker", "start", "w1", "do", "it"),
            settled=_worker_settled,
            worker=True,
        ),
    )
}
