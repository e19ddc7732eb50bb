"""``looop status`` (SPEC §6): answered from the lock, never in a pulse's way."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from conftest import (
    LOOOP,
    NotifyPeer,
    Processes,
    Profile,
    make_session,
    start_sleeper,
    strace_prefix,
    wait_for,
)


def test_status_reports_a_running_pulse(profile: Profile, procs: Processes) -> None:
    assert profile.run("status").returncode == 3
    pulse = procs.add(profile.popen("pulse", env={**profile.env, "LOOOP_INTERVAL": "60"}))

    # Running from the moment it holds the lock, before its first beat is
    # recorded (``beats`` is None until then): wait for that record.
    def first_beat() -> dict[str, Any] | None:
        out = profile.run("status", "--json")
        report = json.loads(out.stdout)
        return report if out.returncode == 0 and report["beats"] is not None else None

    report = wait_for(first_beat)
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


def test_status_shows_the_live_workers_the_last_beat_counted_and_never_reads_a_session(
    profile: Profile, procs: Processes, tmp_path: Path
) -> None:
    """O(1) in sessions: the pulse counts the live workers each beat, status reads its record."""
    sleeper = start_sleeper(procs)
    wait_for(lambda: Path(f"/proc/{sleeper.pid}/stat").exists())
    for n in range(3):
        make_session(profile.data / "sessions", f"w{n}", pid=sleeper.pid, started=time.time())
    make_session(profile.data / "sessions", "done", ended=time.time())
    procs.add(profile.popen("pulse", env={**profile.env, "LOOOP_INTERVAL": "3600"}))
    wait_for(lambda: profile.run("status").returncode == 0)
    assert json.loads(profile.run("status", "--json").stdout)["workers"] == 3
    trace = tmp_path / "trace"
    traced = subprocess.run(
        [*strace_prefix("-f", "-e", "trace=%file", "-o", str(trace)), LOOOP, "status"],
        env=profile.env,
        capture_output=True,
        text=True,
    )
    assert traced.returncode == 0, traced.stderr
    assert "  workers     3 live at the last beat (looop workers lists them)" in traced.stdout
    assert "sessions" not in trace.read_text()


def test_probes_never_make_a_start_fail(profile: Profile, tmp_path: Path) -> None:
    """100 probes or more while a pulse starts and stops 8 times, four landing while it is up."""
    assert profile.run("sense").returncode == 0
    env = {**profile.env, "LOOOP_INTERVAL": "60"}
    answers: list[tuple[float, float, int]] = []
    stable: list[tuple[float, float, int]] = []  # (from, to, expected exit code)
    done = threading.Event()

    def probe() -> None:
        while not done.is_set():
            began = time.monotonic()
            code = subprocess.run([LOOOP, "status"], env=env, capture_output=True).returncode
            answers.append((began, time.monotonic(), code))

    probers = [threading.Thread(target=probe) for _ in range(2)]
    for thread in probers:
        thread.start()
    cycles, failures = 0, []
    try:
        stopped_since = time.monotonic()
        while cycles < 8 or len(answers) < 100:
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

                    # Let some probes land while it runs: four begun and ended since it was up.
                    def landed(since: float = up_since) -> bool:
                        inside = [a for a in answers if a[0] >= since]
                        return len(inside) >= 4

                    wait_for(landed, 60)
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
    assert cycles >= 8 and len(answers) >= 100
    judged_up = 0
    for began, ended, code in answers:
        for since, until, expected in stable:
            if since <= began and ended <= until:
                assert code == expected, f"status said {code} while the state was {expected}"
                judged_up += expected == 0
    # Four per start were made to land while it was up (however loaded the
    # machine); how many fall between a stop and the next start is luck.
    assert judged_up >= 4 * cycles, f"only {judged_up} probes judged over {cycles} starts"


# Every field `status --json` had before the human status: new ones may be
# added, none renamed or dropped.
JSON_FIELDS = {
    "state", "running", "pid", "role", "uptime", "beats", "last_beat_age", "last_beat",
    "last_beat_failed", "world_hash", "next_beat_in", "data_dir", "runtime_dir", "service",
    "error", "failing", "healthy", "workers",
}  # fmt: skip


def test_status_says_a_three_day_uptime_an_overdue_beat_and_the_failing_sensor_in_words(
    profile: Profile, procs: Processes
) -> None:
    profile.sensor("fine", "echo '{\"signal\": 1}'")
    profile.sensor("broken", "echo 'disk not mounted' >&2\nexit 2")
    pulse = procs.add(profile.popen("pulse", env={**profile.env, "LOOOP_INTERVAL": "3600"}))
    beat_file = wait_for(lambda: next(profile.runtime.glob("*.beat.json"), None))
    wait_for(lambda: json.loads(beat_file.read_text()).get("pid") == pulse.pid)
    # The pulse beats hourly, so it will not rewrite this before the test reads it:
    # make it a pulse that started three days ago and last beat ten intervals ago.
    record = json.loads(beat_file.read_text())
    now = time.time()
    ended = now - 10 * 3600
    record.update(pulse_started=now - 3 * 86400 - 5, ended=ended, next_beat=ended + 3600)
    beat_file.write_text(json.dumps(record))

    status = profile.run("status")
    assert status.returncode == 0, status.stderr
    human = status.stdout
    assert "up          3d 0h, since " in human
    assert time.strftime("%Y-%m-%d", time.localtime(now - 3 * 86400 - 5)) in human
    assert "10h 0m ago" in human and "278" not in human
    assert "next beat   OVERDUE: it was due 9h 0m ago (every 1h 0m)" in human
    assert "but its next beat is overdue" in human.splitlines()[0]
    assert "failed      broken" in human
    assert "looop logs" in human
    assert "service     not installed" in human

    report = json.loads(profile.run("status", "--json").stdout)
    assert set(report) >= JSON_FIELDS
    assert report["overdue"] is True and report["interval"] == 3600
    assert 3 * 86400 < report["uptime"] < 3 * 86400 + 60
    assert report["last_beat_failed"] == ["broken"]


def test_status_of_a_pulse_on_time_is_not_overdue(profile: Profile, procs: Processes) -> None:
    procs.add(profile.popen("pulse", env={**profile.env, "LOOOP_INTERVAL": "3600"}))
    wait_for(lambda: profile.run("status").returncode == 0)
    wait_for(lambda: json.loads(profile.run("status", "--json").stdout)["beats"] == 1)
    report = json.loads(profile.run("status", "--json").stdout)
    assert report["overdue"] is False
    human = profile.run("status").stdout
    assert "OVERDUE" not in human and "next beat   in 59m" in human


def test_status_after_a_kill_says_how_the_last_run_ended_not_how_the_new_one_runs(
    profile: Profile, procs: Processes
) -> None:
    def beat_pid() -> object:
        beat = next(profile.runtime.glob("*.beat.json"), None)
        try:
            return json.loads(beat.read_text()).get("pid") if beat else None
        except ValueError:
            return None  # being replaced

    def pulse() -> subprocess.Popen[str]:
        started = procs.add(profile.popen("pulse", env={**profile.env, "LOOOP_INTERVAL": "3600"}))
        wait_for(lambda: beat_pid() == started.pid)  # its first beat is out
        return started

    def last_run() -> tuple[int, str]:
        human = profile.run("status")
        line = [x for x in human.stdout.splitlines() if x.startswith("  last run ")]
        return human.returncode, (line or [""])[0]

    killed = pulse()
    assert last_run() == (0, "")  # nothing has ended yet
    killed.kill()
    killed.wait()
    unclean = "ended without a clean stop (killed or crashed); see looop logs"
    assert last_run() == (3, f"  last run    pid {killed.pid}: {unclean}")
    report = json.loads(profile.run("status", "--json").stdout)["last_run"]
    assert report == {"how": unclean, "pid": killed.pid, "at": None}

    # The next pulse runs; status still says how the one before it ended.
    second = pulse()
    code, line = last_run()
    assert code == 0 and line.startswith(f"  last run    pid {killed.pid}, ")
    assert line.endswith(f": {unclean}")

    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=15) == 0
    code, line = last_run()
    assert code == 3 and line.startswith(f"  last run    pid {second.pid}, ")
    assert line.endswith(": stopped cleanly")
