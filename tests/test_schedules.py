"""Schedules (``looop _ schedule``): a wake at a time, through the agent's shell tool.

A pulse beats once a minute (nothing but a schedule moves in these tests),
and every ``_ wait`` is called as an agent's tool calls it, with a time
limit above its ``--timeout``. How fast a wait leaves after the instant is
the bench's (``bench/bench_schedules.py``); here it is only asserted that
it returned after the instant and before its timeout.
"""

from __future__ import annotations

import itertools
import json
import signal
import subprocess
import time
from typing import Any

import pytest
from conftest import Processes, Profile, events, wait_for
from shell_tool import ShellTool


class Agent:
    """The root agent: a shell tool over a profile with a live pulse."""

    def __init__(self, profile: Profile, procs: Processes) -> None:
        self.profile, self.procs = profile, procs
        self.tool = ShellTool(profile.env, limit=30)
        self.pulse: subprocess.Popen[str] | None = None

    def start_pulse(self) -> None:
        self.pulse = self.procs.add(
            self.profile.popen("pulse", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
        wait_for(lambda: self.profile.run("status").returncode == 0)

    def stop_pulse(self) -> None:
        assert self.pulse is not None
        self.pulse.send_signal(signal.SIGTERM)
        self.pulse.wait(timeout=10)

    def ok(self, text: str) -> str:
        call = self.tool.call(text)
        assert call.returncode == 0, (text, call.out, call.err)
        return call.out

    def wait(self, since: str, timeout: float = 20) -> tuple[int, Any]:
        call = self.tool.call(f"looop _ wait --json --since {since} --timeout {timeout:g}")
        assert not call.killed, call.err
        return call.returncode, (json.loads(call.out) if call.out.strip() else None)

    def at(self, name: str) -> float:
        record = json.loads((self.profile.data / "schedules" / f"{name}.json").read_text())
        return float(record["at"])


@pytest.fixture
def agent(profile: Profile, procs: Processes) -> Agent:
    profile.env["LOOOP_INTERVAL"] = "60"
    found = Agent(profile, procs)
    found.start_pulse()
    return found


def due(state: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in state["schedules"]}


def test_a_schedule_wakes_a_blocked_wait_at_its_instant_and_only_then(agent: Agent) -> None:
    cursor = agent.profile.state()["cursor"]
    agent.ok("looop _ schedule write ci --in 2s --note 'is main green?' --journal 'after merge'")
    code, state = agent.wait(cursor)
    returned = time.time()
    # Woken at the instant (not before it, and long before the timeout), with the note.
    assert (code, state["changed"]) == (0, ["schedules"]), state
    assert returned >= agent.at("ci")
    assert due(state)["ci"] | {"due": 0} == {
        "name": "ci",
        "due": 0,
        "next": None,
        "every": None,
        "note": "is main green?",
        "new": True,
    }
    # A one-shot stays listed until removed, and a cursor that saw it is not woken
    # again; one removed before its instant wakes nothing.
    agent.ok("looop _ schedule write gone --in 0.5s && looop _ schedule remove gone")
    code, later = agent.wait(state["cursor"], timeout=1.5)
    assert (code, later) == (124, None)
    text = agent.ok("looop _ state")
    assert "  schedule ci (due " in text and "): is main green?" in text
    agent.ok("looop _ schedule remove ci --journal done")
    assert agent.profile.state()["schedules"] == []
    journal = [line[19:] for line in (agent.profile.data / "journal.md").read_text().splitlines()]
    assert journal[-4].startswith("schedule write ci (due ") and journal[-4].endswith(
        ": after merge"
    )
    assert journal[-3].startswith("schedule write gone (due ")
    assert journal[-2:] == ["schedule remove gone", "schedule remove ci: done"]
    kinds = [(e["event"], e["schedule"]) for e in events(agent.profile) if "schedule" in e]
    assert kinds == [
        ("schedule_written", "ci"),
        ("schedule_written", "gone"),
        ("schedule_removed", "gone"),
        ("schedule_removed", "ci"),
    ]


def test_a_schedule_survives_a_pulse_restart_and_an_every_one_re_arms(agent: Agent) -> None:
    cursor = agent.profile.state()["cursor"]
    agent.ok("looop _ schedule write later --in 2s && looop _ schedule write tick --every 1s")
    agent.stop_pulse()
    agent.start_pulse()
    # The first instant after the cursor wakes the wait, whichever schedule it is.
    seen: dict[str, list[float]] = {"later": [], "tick": []}
    while not seen["later"] or len(seen["tick"]) < 3:
        code, state = agent.wait(cursor)
        assert (code, state["changed"]) == (0, ["schedules"]), state
        new = [s for s in state["schedules"] if s["new"]]
        assert new, state
        for s in new:
            seen[s["name"]].append(s["due"])
        cursor = state["cursor"]
    assert seen["later"] == [agent.at("later")]
    ticks = seen["tick"]
    assert ticks == sorted(set(ticks)) and ticks[0] == agent.at("tick"), ticks
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert all(round(gap) >= 1 and abs(gap - round(gap)) < 1e-6 for gap in gaps), ticks


def test_an_instant_that_came_while_the_agent_acted_wakes_its_next_wait_at_once(
    agent: Agent,
) -> None:
    cursor = agent.profile.state()["cursor"]
    agent.ok("looop _ schedule write soon --in 0.3s")
    wait_for(lambda: agent.profile.state()["schedules"])  # the agent was busy meanwhile
    code, state = agent.wait(cursor, timeout=0.01)
    assert (code, state["changed"], due(state)["soon"]["new"]) == (0, ["schedules"], True)


BAD = {
    "name": (["../x", "--in", "1h"], 2, "invalid schedule id"),
    "none": (["x"], 2, "give --in DURATION, --at TIME or --every DURATION"),
    "both": (["x", "--in", "1h", "--at", "09:00"], 2, "not both"),
    "past": (["x", "--at", "2020-01-01T00:00"], 2, "has passed"),
    "garbled": (["x", "--at", "tomorrowish"], 2, "is not a time"),
    "zero": (["x", "--in", "0s"], 2, "more than 0 s"),
    "too-fast": (["x", "--every", "0.5s"], 2, "--every must be 1 s"),
    "far": (["x", "--in", "4000d"], 2, "at most ten years"),
    "unit": (["x", "--in", "2 fortnights"], 2, "is not a duration"),
}


@pytest.mark.parametrize("case", BAD)
def test_a_schedule_out_of_bounds_is_refused_and_nothing_is_written(
    profile: Profile, case: str
) -> None:
    args, code, said = BAD[case]
    out = profile.run("_", "schedule", "write", *args)
    assert out.returncode == code and said in out.stderr, out.stderr
    assert not list((profile.data / "schedules").glob("*")) if profile.data.exists() else True


def test_at_is_local_time_unless_it_carries_an_offset_and_every_keeps_its_phase(
    profile: Profile,
) -> None:
    profile.env["TZ"] = "XST-5:30"  # +05:30, no summer time
    writes = [
        ("local", "--at", "2030-01-02T09:00"),
        ("utc", "--at", "2030-01-02T09:00Z"),
        ("daily", "--at", "2020-01-01T09:00", "--every", "1d"),
    ]
    for name, *options in writes:
        out = profile.run("_", "schedule", "write", name, *options)
        assert out.returncode == 0, out.stderr
    out = profile.run("_", "schedule", "list", "--json")
    listed = {s["name"]: s for s in json.loads(out.stdout)}
    assert listed["utc"]["next"] - listed["local"]["next"] == 5.5 * 3600
    # A past --at is an --every one's phase: each day at 09:00 local (03:30 UTC), from the next.
    daily = listed["daily"]
    assert time.time() < daily["next"] <= time.time() + 86400 and daily["due"] is None
    assert (daily["next"] - 1577849400.0) % 86400 == 0  # 2020-01-01T09:00+05:30
    assert profile.state()["schedules"] == []
    assert len(profile.run("_", "schedule", "list").stdout.splitlines()) == 3


def test_a_file_that_is_no_schedule_is_a_problem_and_wakes_nothing(profile: Profile) -> None:
    folder = profile.data / "schedules"
    folder.mkdir(parents=True)
    (folder / "junk.json").write_text('{"at": "soon"}')
    (folder / "deep.json").write_text('{"at": 1, "every": 0.001}')
    state = profile.state()
    assert state["schedules"] == []
    assert [p["path"] for p in state["problems"]] == ["schedules/deep.json", "schedules/junk.json"]
