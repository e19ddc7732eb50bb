"""One answer to "is the pulse running?", and one way a one-off beat is stopped.

``status``, ``_ state``, ``_ wait`` and ``up`` must agree whether nothing
runs, a pulse runs, or a one-off ``looop sense`` holds the lock for its single
beat (no pulse runs then). A pulse started during such a beat waits for it
and then runs. A one-off beat stopped by a signal publishes nothing and leaves
no sensor behind, whether the signal comes during a sensor or a probe.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Processes, Profile, events, pid_alive, session_files, wait_for


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


def _catches(pid: int, signum: int) -> bool:
    """True once ``pid`` has a handler of its own for ``signum`` (``SigCgt``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


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
    wait_for(lambda: _catches(pulse.pid, signal.SIGTERM))  # its handlers come before the lock
    pulse.send_signal(signal.SIGTERM)
    assert pulse.wait(timeout=5) == 0
    assert sense.poll() is None, "stopping the waiting pulse must not touch the one-off beat"


def _published(profile: Profile) -> str | None:
    link = profile.data / "snapshots"
    return os.readlink(link) if link.is_symlink() else None


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
    assert events(profile)[-1]["event"] == "beat_cancelled"


@pytest.fixture
def many_live_sessions(profile: Profile) -> Path:
    """Enough sessions with a live pid that the probes take a second or so."""
    sessions = profile.data / "sessions"
    sessions.mkdir(parents=True)
    now = time.time()
    meta = {"pid": os.getpid(), "started": now - 60, "cmd": "test"}
    for i in range(12000):
        session_files(sessions / f"s{i}", {"id": f"s{i}", **meta})
    return sessions


def test_sigterm_to_a_one_off_beat_during_a_probe_publishes_nothing(
    profile: Profile, procs: Processes, many_live_sessions: Path
) -> None:
    assert profile.run("sense", timeout=120).returncode == 0
    (profile.data / "sensors" / "today.sh").unlink()  # no sensors: the beat goes to its probes
    before, beat = _published(profile), _beat_record(profile)
    seen = len(events(profile))
    sense = procs.add(profile.popen("sense"))
    wait_for(lambda: any(e["event"] == "beat_start" for e in events(profile)[seen:]))
    sense.send_signal(signal.SIGTERM)
    assert sense.wait(timeout=30) == 128 + signal.SIGTERM
    assert _published(profile) == before
    assert _beat_record(profile) == beat
    assert [e["event"] for e in events(profile)[seen:]] == ["beat_start", "beat_cancelled"]


# --- a pulse that cannot beat says so; never two beats at once -------------------------
def _beat_spans(profile: Profile) -> list[tuple[float, float, int]]:
    """(start, end, pid) of every beat in events.jsonl, in order."""
    open_beats: dict[int, float] = {}
    spans = []
    for event in events(profile):
        pid = event.get("pid")
        if event["event"] == "beat_start":
            assert pid not in open_beats, f"pid {pid} started a beat inside its own"
            open_beats[pid] = event["ts"]
        elif event["event"] in ("sense_done", "beat_cancelled") and pid in open_beats:
            spans.append((open_beats.pop(pid), event["ts"], pid))
    return spans


def _assert_no_two_beats_at_once(spans: list[tuple[float, float, int]]) -> None:
    ordered = sorted(spans)
    for (_, end, pid), (start, _, other) in itertools.pairwise(ordered):
        assert start >= end, f"beats of pids {pid} and {other} overlapped"


def test_a_data_dir_removed_under_a_running_pulse_is_laid_out_again_within_two_beats(
    profile: Profile, procs: Processes
) -> None:
    import shutil

    profile.sensor("quick", "echo '{\"signal\": 1}'")
    pulse = procs.add(profile.popen("pulse", env={**profile.env, "LOOOP_INTERVAL": "1"}))
    wait_for(lambda: _beat_record(profile).get("number", 0) >= 1, timeout=30)
    shutil.rmtree(profile.data)
    before = _beat_record(profile)["number"]
    wait_for(lambda: (profile.data / "snapshots").is_symlink(), timeout=10)
    record = wait_for(lambda: (r := _beat_record(profile))["number"] > before and r, timeout=10)
    assert record["number"] <= before + 2 and not record.get("failing")
    assert pulse.poll() is None
    assert json.loads(profile.run("status", "--json").stdout)["healthy"]


def test_a_data_dir_replaced_by_a_file_is_reported_then_the_pulse_exits_non_zero(
    profile: Profile, procs: Processes
) -> None:
    import shutil

    pulse = procs.add(profile.popen("pulse", env={**profile.env, "LOOOP_INTERVAL": "1"}))
    wait_for(lambda: _beat_record(profile).get("number", 0) >= 1, timeout=30)
    shutil.rmtree(profile.data)
    profile.data.write_text("not a directory\n")
    failing = wait_for(lambda: _beat_record(profile).get("failing"), timeout=10)
    assert failing["count"] >= 1 and str(profile.data) in failing["why"]
    state = profile.state()
    if state["pulse_alive"]:  # still running: the agent is told too
        assert state["beats_failing"]["count"] >= 1, state
    status = profile.run("status", "--json")
    if status.returncode == 0:  # still running: it must not look healthy
        report = json.loads(status.stdout)
        assert report["failing"] and not report["healthy"]
        assert "but its beats fail" in profile.run("status").stdout
    assert pulse.wait(timeout=15) == 1
    assert pulse.stderr is not None and "beats in a row could not run" in pulse.stderr.read()


def test_a_sense_asking_a_pulse_whose_beats_fail_says_why_at_once(
    profile: Profile, procs: Processes
) -> None:
    import shutil

    # The config lives elsewhere, so the sense gets as far as asking the pulse.
    profile.env["LOOOP_CONFIG"] = str(profile.root / "config.toml")
    procs.add(profile.popen("pulse", env={**profile.env, "LOOOP_INTERVAL": "30"}))
    wait_for(lambda: _beat_record(profile).get("number", 0) >= 1, timeout=30)
    shutil.rmtree(profile.data)
    profile.data.write_text("not a directory\n")
    sense = profile.run("sense", timeout=20)
    assert sense.returncode == 1
    assert "failed" in sense.stdout + sense.stderr


def test_no_two_beats_at_once_when_the_runtime_dir_is_wiped_mid_beat_and_a_second_pulse_starts(
    profile: Profile, procs: Processes
) -> None:
    import shutil

    started = profile.root / "started"
    profile.sensor("slow", f"touch {started}\nsleep 2\necho '{{}}'")
    env = {**profile.env, "LOOOP_INTERVAL": "1"}
    first = procs.add(profile.popen("pulse", env=env))
    wait_for(lambda: _beat_record(profile).get("number", 0) >= 1, timeout=30)
    started.unlink()
    wait_for(started.exists, timeout=10)  # the first pulse is mid-beat
    shutil.rmtree(profile.runtime)
    second = procs.add(profile.popen("pulse", env=env))
    wait_for(lambda: any(s[2] == second.pid for s in _beat_spans(profile)), timeout=30)
    assert first.wait(timeout=30) == 1, "the first pulse should stop once it lost its lock"
    wait_for(lambda: len([s for s in _beat_spans(profile) if s[2] == second.pid]) >= 2, timeout=30)
    _assert_no_two_beats_at_once(_beat_spans(profile))
    assert second.poll() is None


@pytest.mark.root("bind-mounts the data dir")
def test_no_two_beats_at_once_on_a_data_dir_reached_through_a_bind_mount(
    profile: Profile, procs: Processes
) -> None:
    profile.sensor("slow", "sleep 1.5\necho '{}'")
    assert profile.run("sense").returncode == 0
    other = profile.root / "other-path"
    other.mkdir()
    subprocess.run(["mount", "--bind", str(profile.data), str(other)], check=True)
    try:
        env = {**profile.env, "LOOOP_INTERVAL": "1"}
        first = procs.add(profile.popen("pulse", env=env))
        second = procs.add(
            profile.popen(
                "pulse",
                env={
                    **env,
                    "LOOOP_DATA_DIR": str(other),
                    "LOOOP_RUNTIME_DIR": str(profile.root / "run2"),
                },
            )
        )

        def beats_of_each() -> bool:
            spans = _beat_spans(profile)
            return all(len([s for s in spans if s[2] == p.pid]) >= 2 for p in (first, second))

        wait_for(beats_of_each, timeout=60)
        for pulse in (first, second):
            pulse.send_signal(signal.SIGTERM)
            assert pulse.wait(timeout=15) == 0
        spans = _beat_spans(profile)
        assert len(spans) >= 4
        _assert_no_two_beats_at_once(spans)
    finally:
        subprocess.run(["umount", "-l", str(other)], check=False)


def test_a_lock_file_that_is_a_symlink_is_named_with_its_fix(profile: Profile) -> None:
    profile.runtime.mkdir(mode=0o700)
    target = profile.root / "elsewhere"
    target.write_text("")
    Path(profile.paths.lock_file).symlink_to(target)
    pulse = profile.run("pulse", timeout=30)
    assert pulse.returncode == 1
    assert str(profile.paths.lock_file) in pulse.stderr
    assert "is a symlink, not a lock file; remove it" in pulse.stderr
    assert "Traceback" not in pulse.stderr and target.read_text() == ""
