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
import os
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

    def wait(
        self, since: str, timeout: float = 20, meanwhile: str = "", kinds: str = "schedules"
    ) -> tuple[int, Any]:
        """``_ wait --json --since SINCE --for KINDS``; once it is blocked, the tool runs
        ``meanwhile``."""
        text = f"looop _ wait --json --since {since} --timeout {timeout:g} --for {kinds}"
        if meanwhile:
            ready = self.profile.root / f"ready-{time.monotonic_ns()}"
            text = (
                f"LOOOP_TEST_WAIT_READY={ready} {text} & "
                f"until [ -e {ready} ]; do sleep 0.01; done; {{ {meanwhile}; }} >&2 || exit 99; "
                "wait $!"
            )
        call = self.tool.call(text)
        assert not call.killed and call.returncode != 99, call.err
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


def test_a_schedule_wakes_a_blocked_wait_at_its_instant_only_survives_a_restart_and_re_arms(
    agent: Agent,
) -> None:
    cursor = agent.profile.state()["cursor"]
    write = "looop _ schedule write ci --in 2s --note 'is main green?' --journal 'after merge'"
    code, state = agent.wait(cursor, meanwhile=write)
    returned = time.time()
    # Woken at the instant (not before it, and long before its 20 s timeout), with the note.
    assert (code, state["changed"]) == (0, ["schedules"]), state
    assert agent.at("ci") <= returned < agent.at("ci") + 10
    assert due(state)["ci"] | {"due": 0} == {
        "name": "ci",
        "due": 0,
        "next": None,
        "every": None,
        "note": "is main green?",
        "new": True,
    }
    # A one-shot stays listed until removed, and a cursor that saw it is not woken
    # again; one removed while the wait is blocked, before its instant, wakes nothing.
    agent.ok("looop _ schedule write gone --in 1.5s")
    code, later = agent.wait(state["cursor"], 2, meanwhile="looop _ schedule remove gone")
    assert (code, later) == (124, None)
    text = agent.ok("looop _ state")
    assert "  schedule ci (due " in text and "): is main green?" in text
    # An instant that came while the agent acted wakes its next wait at once.
    agent.ok("looop _ schedule write soon --in 0.1s")
    wait_for(lambda: "soon" in due(agent.profile.state()))
    code, later = agent.wait(state["cursor"], timeout=0.01)
    assert (code, later["changed"], due(later)["soon"]["new"]) == (0, ["schedules"], True)
    assert due(later)["ci"]["new"] is False
    agent.ok("looop _ schedule remove soon && looop _ schedule remove ci --journal done")
    assert agent.profile.state()["schedules"] == []
    journal = [line[19:] for line in (agent.profile.data / "journal.md").read_text().splitlines()]
    assert journal[-6].startswith("schedule write ci (due ")
    assert journal[-6].endswith(": after merge")
    assert [line.split(" (")[0] for line in journal[-5:]] == [
        "schedule write gone",
        "schedule remove gone",
        "schedule write soon",
        "schedule remove soon",
        "schedule remove ci: done",
    ]
    kinds = [(e["event"], e["schedule"]) for e in events(agent.profile) if "schedule" in e]
    assert kinds == [
        ("schedule_written", "ci"),
        ("schedule_written", "gone"),
        ("schedule_removed", "gone"),
        ("schedule_written", "soon"),
        ("schedule_removed", "soon"),
        ("schedule_removed", "ci"),
    ]
    # Schedules survive a pulse restart (nothing of them lives in the pulse), and an
    # --every one re-arms at each instant.
    cursor = agent.profile.state()["cursor"]
    agent.ok("looop _ schedule write later --in 1s && looop _ schedule write tick --every 1s")
    agent.stop_pulse()
    agent.start_pulse()
    # Each wait wakes at the first instant after its cursor, whichever schedule's it is.
    seen: dict[str, list[float]] = {"later": [], "tick": []}
    while not seen["later"] or len(seen["tick"]) < 2:
        code, state = agent.wait(cursor)
        assert (code, state["changed"]) == (0, ["schedules"]), state
        new = [s for s in state["schedules"] if s["new"]]
        assert new, state
        for s in new:
            seen[s["name"]].append(s["due"])
        cursor = state["cursor"]
    assert seen["later"] == [agent.at("later")]
    # Instants missed in a row are one wake, listed as the latest: whole periods apart.
    ticks = seen["tick"]
    gaps = [b - a for a, b in itertools.pairwise([agent.at("tick"), *ticks])]
    assert all(abs(gap - round(gap)) < 1e-6 for gap in gaps) and min(gaps[1:]) >= 1, ticks


BAD = {
    "name": (["../x", "--in", "1h"], 2, "invalid schedule id"),
    "both": (["x", "--in", "1h", "--at", "09:00"], 2, "not both"),
    "past": (["x", "--at", "2020-01-01T00:00"], 2, "has passed"),
    "too-fast": (["x", "--every", "0.5s"], 2, "--every must be 1 s"),
    "unit": (["x", "--in", "2 fortnights"], 2, "is not a duration"),
}


@pytest.mark.parametrize("case", BAD)
def test_a_schedule_out_of_bounds_is_refused_and_nothing_is_written(
    profile: Profile, case: str
) -> None:
    args, code, said = BAD[case]
    out = profile.run("_", "schedule", "write", *args)
    assert out.returncode == code and said in out.stderr, out.stderr
    folder = profile.data / "schedules"
    assert not folder.exists() or not any(folder.iterdir())


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
    os.mkfifo(folder / "fifo.json")  # never waited on
    (folder / "dir.json").mkdir()
    state = profile.state()
    assert state["schedules"] == []
    assert [p["path"] for p in state["problems"]] == [
        f"schedules/{name}.json" for name in ("deep", "dir", "fifo", "junk")
    ]
    out = profile.run("_", "wait", "--json", "--timeout", "5")  # no pulse: at once, exit 3
    assert out.returncode == 3 and json.loads(out.stdout)["changed"] == ["pulse-down"], out.stderr
