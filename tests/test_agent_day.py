"""A root agent's session as its shell tool runs it, against a real pulse and real workers.

Every call goes through ``shell_tool.ShellTool``: its own process group, a
10 s limit after which the group is killed, output cut, and now and then a
call that outlives its limit (a ``_ wait`` with no timeout, a ``_ run`` of
a long command) and is killed, then retried as an agent retries. The three
workers are ``tests/agent-cli`` stand-ins: one stuck with no output, one
flooding then asking, one SIGKILLed while its ask is blocked; detached,
then as units of a real user manager (where the tool's calls run as that
manager's user, in its world).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
from conftest import Processes, Profile, wait_for
from shell_tool import Call, ShellTool, survivors
from systemd_harness import Manager

AGENT_CLI = Path(__file__).resolve().parent / "agent-cli"
ROUNDS = 10  # each kind of call every fifth round: twice each
WORKERS = {"wstuck": "ROLE=stuck", "wflood": "ROLE=flood", "wdies": "ROLE=dies"}


def _state(tool: ShellTool) -> dict[str, Any]:
    done = tool.retry("looop _ state --json")
    assert done.returncode == 0, done.err
    return json.loads(done.stdout)


def _round(tool: ShellTool, cursor: str, n: int) -> str:
    """One turn of the agent: wait, answer what is asked, run a command into head."""
    since = f" --since '{cursor}'" if cursor else ""
    if n % 5 == 4:
        # An agent that forgot --timeout: its tool kills the wait at the limit.
        lost = tool.call(f"looop _ wait --json{since}", limit=0.5)
        assert lost.killed or lost.returncode in (0, 3), lost.err
    woke = tool.retry(f"looop _ wait --json --timeout 0.5{since}")
    assert woke.returncode in (0, 124), woke.err
    if woke.returncode == 0:  # 124: nothing yet, the same cursor next time
        state = json.loads(woke.stdout)
        cursor = str(state["cursor"])
        for ask in state["asks"]:
            if not ask.get("stranded"):
                answered = tool.retry(f"looop _ answer {ask['id']} yes")
                assert answered.returncode == 0, answered.err
    head = tool.call("looop _ run --timeout 5 -- yes | head -1")
    assert head.out == "y\n", head.err
    if n % 5 == 2:
        cut = tool.call("looop _ run --timeout 600 -- sleep 600", limit=1)
        assert cut.killed
    if n % 5 == 3:
        # A tool with no grace at all: SIGTERM and SIGKILL at once to the group.
        hard = ShellTool(tool.env, grace=0, calls=tool.calls)
        assert hard.call("looop _ run --timeout 600 -- sleep 600", limit=1).killed
    return cursor


def _left_behind(calls: list[Call]) -> dict[str, list[int]]:
    """What each call left running, by its command."""
    return {c.text: pids for c in calls if (pids := survivors(c.marker))}


def _end_all(calls: list[Call]) -> None:
    for pids in _left_behind(calls).values():
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _config(supervisor: str) -> str:
    command = [str(AGENT_CLI), "-p", "{prompt}"]
    return f"interval = 1\n[worker]\ncommand = {json.dumps(command)}\nsupervisor = {supervisor!r}\n"


def test_a_root_agent_whose_calls_are_killed_and_cut_keeps_the_loop_whole(
    profile: Profile, procs: Processes
) -> None:
    profile.write_config(_config("detached"))
    pulse = procs.add(profile.popen("pulse"))
    tool = ShellTool(profile.env, limit=10, grace=0.5)
    try:
        _day(tool, profile.data)
        assert pulse.poll() is None
    finally:
        _end_all(tool.calls)
    pulse.send_signal(signal.SIGTERM)
    assert pulse.wait(timeout=30) == 0


@pytest.mark.systemd
def test_the_same_day_with_workers_as_units_of_a_user_manager(user_manager: Manager) -> None:
    m = user_manager
    m.write(m.data_dir / "config.toml", _config("auto"))
    assert m.looop_cmd("up").returncode == 0
    tool = ShellTool(m.env, limit=10, grace=0.5, wrap=m.command)
    try:
        _day(tool, m.data_dir)
        units = m.systemctl("list-units", "--no-legend", "--state=active", "looop-worker-*")
        assert units.stdout.strip() == ""
        assert m.looop_cmd("status").returncode == 0
    finally:
        _end_all(tool.calls)
        m.looop_cmd("down")


def _day(tool: ShellTool, data: Path) -> None:
    """The day itself: start three workers, ten rounds, then check what is left."""
    wait_for(lambda: tool.call("looop status").returncode == 0)
    for wid, role in WORKERS.items():
        started = tool.call(f"looop _ worker start {wid} '{role}: do the task, report, end'")
        assert started.returncode == 0, started.err
    cursor = ""
    for n in range(ROUNDS):
        cursor = _round(tool, cursor, n)
        if n == ROUNDS // 2:
            assert tool.retry("looop _ worker kill wstuck").returncode == 0

    def settled() -> dict[str, Any] | None:
        state = _state(tool)
        live = [w for w in state["workers"] if w["state"] in ("starting", "running")]
        return None if live else state

    state = wait_for(settled, timeout=60)
    assert not [w for w in state["workers"] if w["state"] == "unknown"], state["workers"]
    assert [a for a in state["asks"] if not a.get("stranded")] == [], state["asks"]
    assert {a["worker"] for a in state["asks"]} <= {"wdies"}, state["asks"]
    assert not [c.text for c in tool.calls if b"Traceback" in c.stderr]
    with contextlib.suppress(AssertionError):
        wait_for(lambda: not _left_behind(tool.calls), timeout=30)
    assert _left_behind(tool.calls) == {}
    reaped = tool.call("looop reap --ttl 0")
    assert reaped.returncode == 0, reaped.err
    # Only looop's own markers stay (the wait's ``.changed``, the reaper's lock).
    left = sorted(p.name for p in (data / "sessions").iterdir())
    assert [name for name in left if not name.startswith(".")] == [], reaped.out
