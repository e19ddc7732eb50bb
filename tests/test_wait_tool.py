"""``_ wait`` as a root agent's shell tool calls it: one call per turn, a limit on each.

The agent is ``shell_tool.ShellTool`` with a 5 s limit and ``[wait] timeout
= 3``, so a wait with nothing to report ends by itself (exit 124: call again
with the same cursor) before the tool would kill it. Its workers are small
scripts that ask and end, one after another, so nearly every turn has something
to report and returns at once; one planned idle turn shows the 124. What
the tests hold a turn to: every ask and every worker end shows up in a
returned state, and the turn that first shows it names it in ``changed``.
"""

from __future__ import annotations

import json
import threading
from itertools import cycle
from typing import Any

from conftest import Processes, Profile, wait_for
from shell_tool import Call, ShellTool
from workers_kit import worker_script

ROUNDS = 30
# A stand-in worker: its brief's ASKS=N says how many questions it asks before it ends.
ASKER = """\
n=$(sed -n 's/.*ASKS=\\([0-9]*\\).*/\\1/p' "$1" | tail -1)
i=0
while [ "$i" -lt "${n:-0}" ]; do
    i=$((i + 1))
    "$LOOOP_BIN" _ ask --prompt "question $i" > /dev/null || exit 1
done
"""


def _seen(state: dict[str, Any]) -> tuple[set[str], dict[str, bool]]:
    """The pending asks and each worker's liveness that a state shows."""
    return {a["id"] for a in state["asks"]}, {w["id"]: w["alive"] for w in state["workers"]}


class Agent:
    """What the agent has seen, and the check that each turn says what it shows."""

    def __init__(self, tool: ShellTool, first: dict[str, Any]) -> None:
        self.tool, self.last, self.cursor = tool, first, str(first["cursor"])
        self.asks_seen: set[str] = set()
        self.ends_seen: set[str] = set()
        self.answered: set[str] = set()
        self.timeouts = 0

    def turn(self, extra: str = "") -> dict[str, Any] | None:
        call = self.tool.call(f"looop _ wait --json --since '{self.cursor}'{extra}")
        assert not call.killed and call.returncode in (0, 124), (call.returncode, call.err)
        if call.returncode == 124:  # nothing yet: the same cursor next time
            assert call.stdout == b""
            self.timeouts += 1
            return None
        state = json.loads(call.stdout)
        asks, workers = _seen(state)
        old_asks, old_workers = _seen(self.last)
        if asks - old_asks - self.answered:
            assert "asks" in state["changed"], (state["changed"], asks, old_asks)
        if workers != old_workers:
            assert "workers" in state["changed"], (state["changed"], workers, old_workers)
        self.asks_seen |= asks
        self.ends_seen |= {wid for wid, alive in workers.items() if not alive}
        self.last, self.cursor = state, str(state["cursor"])
        return state

    def act(self, *commands: str) -> None:
        """One call for the turn's moves (an agent's tool runs a whole command line)."""
        if commands:
            done = self.tool.call(" && ".join(commands))
            assert done.returncode == 0 and not done.killed, (commands, done.err)

    def answers(self) -> list[str]:
        """The answers to every ask the last state shows and the agent has not answered."""
        pending = sorted({a["id"] for a in self.last["asks"]} - self.answered)
        self.answered |= set(pending)
        return [f"looop _ answer {ask} yes" for ask in pending]

    def live(self) -> list[str]:
        return [w["id"] for w in self.last["workers"] if w["alive"]]


def test_a_root_agent_whose_tool_kills_every_call_at_5_s_misses_no_ask_and_no_worker_end(
    profile: Profile, procs: Processes, fleet: Profile
) -> None:
    asker = worker_script(profile.root / "asker", ASKER)
    profile.write_config(
        f'[worker]\ncommand = ["{asker}", "{{prompt_file}}"]\nsupervisor = "detached"\n'
        "[wait]\ntimeout = 3\n"
    )
    profile.env["LOOOP_INTERVAL"] = "3600"  # the world stands still: only the workers move
    procs.add(profile.popen("pulse"))
    wait_for(lambda: (profile.data / "snapshots").exists(), timeout=30)  # its first beat
    tool = ShellTool(profile.env, limit=5, grace=0.5)
    agent = Agent(tool, json.loads(agent_state(tool)))
    roles, idle = cycle(["ASKS=2", "ASKS=0", "ASKS=1"]), "ahead"
    agent.act(f"looop _ worker start w0 '{next(roles)}: ask, then end'")
    started = 1
    for n in range(ROUNDS):
        state = agent.turn()
        moves = [] if state is None else agent.answers()
        if idle == "draining" and state is not None and not agent.live() and not moves:
            idle = "done"  # nothing runs, nothing is asked: this turn starts nothing
        elif idle != "draining" and (not agent.live() or state is None):
            moves.append(f"looop _ worker start w{started} '{next(roles)}: ask, then end'")
            started += 1
        agent.act(*moves)
        if n == ROUNDS // 3 and idle == "ahead":
            idle = "draining"  # let the workers run out, then one idle turn
    assert idle == "done" and agent.timeouts >= 1 and started > 5
    # The day ends: the workers still running are ended, and a last look says
    # everything since the last turn; then nothing was ever missed.
    running = [w["id"] for w in json.loads(agent_state(tool))["workers"] if w["alive"]]
    agent.act(*(f"looop _ worker kill {wid}" for wid in running))
    agent.turn(" --timeout 0")
    raised = {p.stem for p in (profile.data / "asks").glob("*.json")}
    assert raised and raised == agent.asks_seen
    assert agent.ends_seen == {f"w{i}" for i in range(started)}


def agent_state(tool: ShellTool) -> str:
    done = tool.call("looop _ state --json")
    assert done.returncode == 0, done.err
    return done.out


def test_a_wait_for_asks_sleeps_through_a_snapshot_change_and_wakes_on_an_ask(
    profile: Profile, procs: Processes
) -> None:
    profile.env["LOOOP_INTERVAL"] = "3600"  # a beat only when `looop sense` asks
    profile.sensor("clock", """echo "{\\"signal\\": {\\"ns\\": \\"$(date +%s%N)\\"}}" """)
    procs.add(profile.popen("pulse"))
    wait_for(lambda: (profile.data / "snapshots" / "sensor-clock.json").exists(), timeout=30)
    tool = ShellTool(profile.env, limit=5)
    cursor = json.loads(agent_state(tool))["cursor"]
    ready = profile.root / "ready"
    woke: list[Call] = []
    waiting = threading.Thread(
        target=lambda: woke.append(
            tool.call(
                f"LOOOP_TEST_WAIT_READY={ready} looop _ wait --json --for asks --since '{cursor}'"
            )
        )
    )
    waiting.start()
    try:
        wait_for(lambda: ready.exists() or woke, timeout=30)
        before = profile.snapshot("sensor-clock")
        assert profile.run("sense").returncode == 0
        assert profile.snapshot("sensor-clock") != before  # the world moved: no wake
        raised = profile.run("_", "ask", "w1", "--prompt", "q", "--timeout", "0")
        assert raised.returncode == 124, raised.stderr
    finally:
        waiting.join(timeout=30)
    [call] = woke
    assert call.returncode == 0 and not call.killed, call.err
    state = json.loads(call.stdout)
    # It returned after the ask, not at the snapshot change: the state shows the ask.
    assert [a["id"] for a in state["asks"]] == ["w1-1"]
    assert state["changed"] == ["asks", "snapshots"]
    # Its cursor covers the change it slept through: a wait since it has nothing new.
    again = tool.call(f"looop _ wait --json --since '{state['cursor']}' --timeout 0")
    assert again.returncode == 124, again.err
    later = tool.call(f"looop _ wait --json --for asks,nope --since '{state['cursor']}'")
    assert later.returncode == 2 and "unknown 'nope'" in later.err
