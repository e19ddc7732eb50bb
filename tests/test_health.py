"""A live worker's health (SPEC §12): busy, waiting, quiet, stuck, and the stuck kill.

Three stand-in workers (``workers_kit.HEALTH``) under a real pulse, with
small knobs (quiet after 1 s, stuck after 3 s, the stuck kill on): one
prints four times a second, one asks and waits, then goes silent once
answered, and one is silent from the start (started with the kill off).
Every call is the root agent's, through ``shell_tool.ShellTool``.
"""

from __future__ import annotations

import json
from typing import Any

from conftest import Profile, configure_workers, detached_pulse, events, wait_for
from shell_tool import ShellTool
from workers_kit import HEALTH, session_file, worker_script

SETTLED = {"wtick": "busy", "wask": "waiting", "wsilent": "quiet"}


def _state(tool: ShellTool) -> dict[str, Any]:
    done = tool.retry("looop _ state --json")
    assert done.returncode == 0, done.err
    return json.loads(done.stdout)


def _rows(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {w["id"]: w for w in state["workers"]}


def _line(text: str, start: str) -> str:
    return next(line for line in text.splitlines() if line.strip().startswith(start))


def _woken(tool: ShellTool, cursor: str) -> dict[str, Any]:
    """A wait blocked on ``cursor`` (a tool's call of 20 s: not woken, it is killed)."""
    woke = tool.call(f"looop _ wait --json --since '{cursor}'", limit=20)
    assert woke.returncode == 0 and not woke.killed, woke.err
    state = json.loads(woke.stdout)
    assert "workers" in state["changed"], state["changed"]
    return state


def test_every_listing_shows_each_workers_health_and_a_silent_one_turns_stuck_wakes_and_ends(
    fleet: Profile,
) -> None:
    worker = worker_script(fleet.root / "w", HEALTH)
    configure_workers(
        fleet, [str(worker), "{prompt}"], quiet_after=1, stuck_after=3, stuck_kill=True
    )
    with detached_pulse(fleet, "3600"):
        tool = ShellTool(fleet.env)
        started = tool.call(
            "looop _ worker start wtick ROLE=tick && looop _ worker start wask ROLE=ask"
            " && LOOOP_WORKER_STUCK_KILL=0 looop _ worker start wsilent ROLE=silent"
        )
        assert started.returncode == 0, started.err

        # Each shows its state: the silent one is quiet once quiet_after has passed.
        def settled() -> dict[str, Any] | None:
            state = _state(tool)
            health = {w["id"]: w["health"] for w in state["workers"]}
            return state if health == SETTLED else None

        state = wait_for(settled)
        rows = _rows(state)
        assert rows["wask"]["pending_ask"] and rows["wask"]["ask_age"] >= 0
        assert rows["wsilent"]["idle"] >= 1 and rows["wsilent"]["ask_age"] is None
        assert all(w["alive"] for w in rows.values())
        said = tool.call(
            "looop _ worker list --json; echo @; looop workers; echo @; looop _ state"
        ).out.split("@\n")
        assert {w["id"]: w["health"] for w in json.loads(said[0])}["wtick"] == "busy"
        assert "busy, idle " in _line(said[1], "wtick")
        assert "waiting, idle " in _line(said[1], "wask") and ", ask " in _line(said[1], "wask")
        assert "(running, busy, idle " in _line(said[2], "worker wtick")

        # The silent one turns stuck and wakes a blocked wait; the kill was
        # off when it started, so it lives on. The asker, as long unheard,
        # is waiting, never stuck.
        state = _woken(tool, state["cursor"])
        rows = _rows(state)
        assert (rows["wsilent"]["health"], rows["wsilent"]["alive"]) == ("stuck", True)
        assert rows["wsilent"]["idle"] >= 3
        assert (rows["wask"]["health"], rows["wask"]["alive"]) == ("waiting", True)
        assert rows["wtick"]["health"] == "busy"
        assert "stuck, idle " in _line(tool.call("looop workers").out, "wsilent")

        # Answered, the asker shows life (it was silent all along) ...
        answer = tool.call(f"looop _ answer {rows['wask']['pending_ask']} yes")
        assert answer.returncode == 0, answer.err
        assert _rows(_state(tool))["wask"]["health"] in ("busy", "quiet")

        # ... then, silent since, it turns stuck and its supervisor ends it;
        # a blocked wait wakes.
        _woken(tool, _state(tool)["cursor"])
        ended = wait_for(lambda: session_file(fleet.data, "wask", "status.json"))
        assert (ended["state"], ended["exit_code"], ended["reason"]) == ("killed", 124, "stuck")
        assert ended["idle"] >= 3
        killed = wait_for(lambda: events(fleet, "worker_killed"))  # written after the status
        assert [(e["id"], e["reason"]) for e in killed] == [("wask", "stuck")]
        journal = (fleet.data / "journal.md").read_text()
        assert "worker kill wask: stuck, no output for " in journal
        last = _rows(_state(tool))
        assert (last["wask"]["health"], last["wask"]["alive"]) == (None, False)
        assert (last["wsilent"]["health"], last["wtick"]["health"]) == ("stuck", "busy")
