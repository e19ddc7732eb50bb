"""One answer to "is the pulse running?", and one way a one-off beat is stopped.

``status``, ``_ state``, ``_ wait`` and ``up`` must agree whether nothing
runs, a pulse runs, or a one-off ``looop sense`` holds the lock for its single
beat (no pulse runs then). A pulse started during such a beat waits for it
and then runs. A one-off beat stopped by a signal publishes nothing and leaves
no sensor behind, whether the signal comes during a sensor or a probe.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Processes, Profile, pid_alive, wait_for


def _answers(profile: Profile) -> dict[str, Any]:
    """What each command says about the pulse, right now."""
    status = profile.run("status", "--json")
    state = profile.state()
    waited = profile.run("_", "wait", "--json", "--timeout", "1")
    changed = json.loads(waited.stdout)["changed"] if waited.returncode != 124 else []
    return {
        "status": status.returncode == 0,
        "status_json": json.loads(status.stdout)["running"],
        "state": state["pulse_alive"],
        # A wait returns at once with pulse-down when no pulse runs, else it waits.
        "wait": "pulse-down" not in changed and waited.returncode == 124,
    }


def _slow_sense(profile: Profile, procs: Processes, seconds: float) -> subprocess.Popen[str]:
    started = profile.root / "slow-started"
    profile.sensor("slow", f"touch {started}\nsleep {seconds}\necho '{{}}'")
    sense = procs.add(profile.popen("sense"))
    wait_for(started.exists, timeout=30)
    return sense


def _beat_record(profile: Profile) -> dict[str, Any]:
    return next(iter(json.loads(p.read_text()) for p in profile.runtime.glob("*.beat.json")), {})


def test_every_command_agrees_when_nothing_runs(profile: Profile) -> None:
    assert _answers(profile) == dict.fromkeys(("status", "status_json", "state", "wait"), False)


def test_every_command_agrees_when_a_pulse_runs(profile: Profile, procs: Processes) -> None:
    profile.sensor("quick", "echo '{}'")
    pulse = procs.add(profile.popen("pulse"))
    wait_for(lambda: _beat_record(profile).get("pid") == pulse.pid, timeout=30)
    assert _answers(profile) == dict.fromkeys(("status", "status_json", "state", "wait"), True)
    up = profile.run("up")
    assert up.returncode == 0 and f"already running (pid {pulse.pid})" in up.stdout


def test_every_command_agrees_while_a_one_off_beat_holds_the_lock(
    profile: Profile, procs: Processes
) -> None:
    sense = _slow_sense(profile, procs, 6)
    assert _answers(profile) == dict.fromkeys(("status", "status_json", "state", "wait"), False)
    assert sense.poll() is None, "the one-off beat should still hold the lock"
    status = json.loads(profile.run("status", "--json").stdout)
    assert status["role"] == "sense" and status["pid"] == sense.pid
    # `up` now starts a pulse: it waits for the one-off beat, then runs.
    up = profile.run("up", timeout=90)
    assert up.returncode == 0, up.stderr
    assert sense.wait(timeout=30) == 0, "the one-off beat was not let finish"
    after = json.loads(profile.run("status", "--json").stdout)
    assert after["running"] and after["role"] == "pulse" and after["pid"] != sense.pid
    assert _answers(profile) == dict.fromkeys(("status", "status_json", "state", "wait"), True)
    assert profile.run("down").returncode == 0


def test_a_pulse_started_during_a_one_off_beat_waits_for_it_then_runs(
    profile: Profile, procs: Processes
) -> None:
    sense = _slow_sense(profile, procs, 3)
    pulse = procs.add(profile.popen("pulse"))
    assert sense.wait(timeout=30) == 0
    wait_for(lambda: _beat_record(profile).get("pid") == pulse.pid, timeout=30)
    assert pulse.poll() is None, pulse.stderr.read() if pulse.stderr else ""
    assert profile.run("status").returncode == 0
    pulse.send_signal(signal.SIGTERM)
    assert pulse.wait(timeout=15) == 0


def test_a_pulse_waiting_for_a_one_off_beat_still_stops_on_sigterm(
    profile: Profile, procs: Processes
) -> None:
    sense = _slow_sense(profile, procs, 8)
    pulse = procs.add(profile.popen("pulse"))
    time.sleep(1)  # let it find the lock held and start waiting
    pulse.send_signal(signal.SIGTERM)
    assert pulse.wait(timeout=5) == 0
    assert sense.poll() is None, "stopping the waiting pulse must not touch the one-off beat"


def _published(profile: Profile) -> str | None:
    link = profile.data / "snapshots"
    return os.readlink(link) if link.is_symlink() else None


def _events(profile: Profile) -> list[dict[str, Any]]:
    path = profile.data / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_sigterm_to_a_one_off_beat_during_a_sensor_publishes_nothing_and_leaves_no_sensor(
    profile: Profile, procs: Processes
) -> None:
    assert profile.run("sense").returncode == 0
    before, beat = _published(profile), _beat_record(profile)
    pids = profile.root / "pids"
    profile.sensor("slow", f"sleep 300 &\necho $$ $! > {pids}\nwait\necho '{{}}'")
    sense = procs.add(profile.popen("sense"))
    wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2, timeout=30)
    sense.send_signal(signal.SIGTERM)
    assert sense.wait(timeout=15) == 128 + signal.SIGTERM
    assert sense.stderr is not None and "nothing was published" in sense.stderr.read()
    for pid in map(int, pids.read_text().split()):
        assert not pid_alive(pid), f"sensor process {pid} outlived the stopped beat"
    assert _published(profile) == before
    assert _beat_record(profile) == beat
    assert _events(profile)[-1]["event"] == "beat_cancelled"


@pytest.fixture
def many_live_sessions(profile: Profile) -> Path:
    """Enough sessions with a live pid that the probes take a second or so."""
    sessions = profile.data / "sessions"
    sessions.mkdir(parents=True)
    now = time.time()
    meta = {"pid": os.getpid(), "started": now - 60, "cmd": "test"}
    for i in range(12000):
        (sessions / f"s{i}").mkdir()
        (sessions / f"s{i}" / "meta.json").write_text(json.dumps({"id": f"s{i}", **meta}))
    return sessions


def test_sigterm_to_a_one_off_beat_during_a_probe_publishes_nothing(
    profile: Profile, procs: Processes, many_live_sessions: Path
) -> None:
    assert profile.run("sense", timeout=120).returncode == 0
    (profile.data / "sensors" / "today.sh").unlink()  # no sensors: the beat goes to its probes
    before, beat = _published(profile), _beat_record(profile)
    seen = len(_events(profile))
    sense = procs.add(profile.popen("sense"))
    wait_for(lambda: any(e["event"] == "beat_start" for e in _events(profile)[seen:]))
    sense.send_signal(signal.SIGTERM)
    assert sense.wait(timeout=30) == 128 + signal.SIGTERM
    assert _published(profile) == before
    assert _beat_record(profile) == beat
    assert [e["event"] for e in _events(profile)[seen:]] == ["beat_start", "beat_cancelled"]
