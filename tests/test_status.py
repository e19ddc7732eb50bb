"""``looop status`` (SPEC §6): answered from the lock, never in a pulse's way."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path

from conftest import LOOOP, Processes, Profile, wait_for
from test_pulse import NotifyPeer


def test_status_reports_a_running_pulse(profile: Profile, procs: Processes) -> None:
    assert profile.run("status").returncode == 3
    pulse = procs.add(profile.popen("pulse", env={**profile.env, "LOOOP_INTERVAL": "60"}))
    wait_for(lambda: profile.run("status").returncode == 0)
    report = json.loads(profile.run("status", "--json").stdout)
    assert report["pid"] == pulse.pid and report["role"] == "pulse"
    assert report["beats"] == 1 and report["uptime"] >= 0
    assert 0 < report["next_beat_in"] <= 60
    assert report["last_beat"].startswith("1 sensor ok")
    assert len(report["world_hash"]) == 64
    assert report["data_dir"] == str(profile.data)
    assert report["runtime_dir"] == str(profile.runtime)
    assert report["service"] is None
    human = profile.run("status").stdout
    assert f"running (pid {pulse.pid})" in human and "next beat" in human
    pulse.send_signal(signal.SIGTERM)
    assert pulse.wait(timeout=15) == 0
    assert profile.run("status").returncode == 3


def test_probes_never_make_a_start_fail(profile: Profile, tmp_path: Path) -> None:
    """500 probes while a pulse starts and stops 30 times."""
    assert profile.run("sense").returncode == 0
    env = {**profile.env, "LOOOP_INTERVAL": "60"}
    answers: list[tuple[float, float, int]] = []
    stable: list[tuple[float, float, int]] = []  # (from, to, expected exit code)
    done = threading.Event()

    def probe() -> None:
        while len(answers) < 500 and not done.is_set():
            began = time.monotonic()
            code = subprocess.run([LOOOP, "status"], env=env, capture_output=True).returncode
            answers.append((began, time.monotonic(), code))

    probers = [threading.Thread(target=probe) for _ in range(2)]
    for thread in probers:
        thread.start()
    cycles, failures = 0, []
    try:
        stopped_since = time.monotonic()
        while cycles < 30 or len(answers) < 500:
            peer = NotifyPeer(tmp_path / f"n{cycles}.sock")
            try:
                started = time.monotonic()
                stable.append((stopped_since, started, 3))
                pulse = subprocess.Popen(
                    [LOOOP, "pulse"],
                    env={**env, "NOTIFY_SOCKET": str(peer.path)},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                try:
                    ready = wait_for(lambda p=peer, q=pulse: p.first("READY=1") or q.poll(), 30)
                    if pulse.poll() is not None:
                        failures.append(pulse.stderr.read())
                        continue
                    up_since = ready[0]
                    time.sleep(0.3)  # let some probes land while it runs
                    stopping = time.monotonic()
                    stable.append((up_since, stopping, 0))
                finally:
                    if pulse.poll() is None:
                        pulse.send_signal(signal.SIGTERM)
                    pulse.wait(timeout=15)
                stopped_since = time.monotonic()
            finally:
                peer.close()
            cycles += 1
    finally:
        done.set()
        for thread in probers:
            thread.join()
    assert failures == [], f"a pulse failed to start while probed: {failures[:3]}"
    assert cycles >= 30 and len(answers) >= 500
    judged = 0
    for began, ended, code in answers:
        for since, until, expected in stable:
            if since <= began and ended <= until:
                assert code == expected, f"status said {code} while the state was {expected}"
                judged += 1
    assert judged >= 100, f"only {judged} probes fell inside a stable period"
