"""``looop up`` / ``looop down`` without a service manager (SPEC §6)."""

from __future__ import annotations

import json
import os
import resource
import signal
from pathlib import Path

from conftest import Processes, Profile, live_with_env, pid_alive, wait_for

from looop.pulse import lock, record


def test_up_status_down_status(profile: Profile) -> None:
    profile.sensor("bin", 'printf \'{"signal": {"bin": "%s"}}\' "$LOOOP_BIN"')
    up = profile.run("up", timeout=120)
    assert up.returncode == 0, up.stderr
    assert "started (pid" in up.stdout
    try:
        status = profile.run("status", "--json")
        assert status.returncode == 0, status.stdout + status.stderr
        report = json.loads(status.stdout)
        assert report["running"] is True and report["beats"] >= 1
        pid = report["pid"]
        assert pid_alive(pid)
        assert os.getsid(pid) != os.getsid(0), "the pulse was not detached from our session"
        # Sensors of a detached pulse can call this installation's looop back.
        looop_bin = profile.snapshot("sensor-bin")["signal"]["bin"]
        assert os.path.basename(looop_bin) == "looop" and os.access(looop_bin, os.X_OK)
        assert profile.run("up").stdout.strip() == f"already running (pid {pid})"
    finally:
        down = profile.run("down", timeout=60)
    assert down.returncode == 0, down.stderr
    assert profile.run("status").returncode == 3
    wait_for(lambda: not pid_alive(pid))
    log = (profile.data / "pulse.log").read_text()
    assert "pulse started" in log and "pulse stopped" in log


def core_limit(pid: int) -> str:
    """The soft core-file limit of ``pid`` as /proc/<pid>/limits words it."""
    with open(f"/proc/{pid}/limits") as fh:
        (line,) = [line for line in fh if line.startswith("Max core file size")]
    return line.split()[4]


def test_a_detached_pulse_keeps_the_core_limit_it_was_started_with(profile: Profile) -> None:
    # python-daemon sets the limit to 0 unless told not to: a pulse that
    # crashes would then leave no core for its user to look at.
    _, hard = resource.getrlimit(resource.RLIMIT_CORE)
    wanted = 4096 * 1024 if hard == resource.RLIM_INFINITY else hard
    assert wanted > 0, "this machine allows no core files at all"

    def raise_limit() -> None:
        resource.setrlimit(resource.RLIMIT_CORE, (wanted, hard))

    up = profile.run("up", timeout=120, preexec_fn=raise_limit)
    assert up.returncode == 0, up.stderr
    try:
        pid = json.loads(profile.run("status", "--json").stdout)["pid"]
        assert core_limit(pid) == str(wanted)
    finally:
        assert profile.run("down", timeout=60).returncode == 0


def test_up_with_a_broken_config_reports_it_and_starts_nothing(profile: Profile) -> None:
    profile.write_config('interval = "abc"\n')
    up = profile.run("up", timeout=60)
    assert up.returncode == 78
    assert f"{profile.config}:1: interval:" in up.stderr
    assert profile.run("status").returncode == 3


def test_up_reports_a_pulse_that_dies_before_ready(profile: Profile) -> None:
    # A directory where the lock file belongs: the detached pulse cannot
    # lock it and exits at once. `up` must say why instead of claiming it started.
    profile.runtime.mkdir(mode=0o700)
    lock_file = Path(profile.paths.lock_file)
    lock_file.mkdir()
    up = profile.run("up", timeout=60)
    assert up.returncode != 0
    assert "exited before it was ready" in up.stderr
    assert str(lock_file) in up.stderr and "is a directory, not a lock file" in up.stderr
    assert "started (pid" not in up.stdout


def test_down_when_nothing_runs(profile: Profile) -> None:
    down = profile.run("down")
    assert down.returncode == 0
    assert down.stdout.strip() == "not running"


def pulses_of(profile: Profile) -> list[int]:
    """Pids of every live ``looop pulse`` serving this profile's data dir."""
    found = []
    for pid in live_with_env(f"LOOOP_DATA_DIR={profile.data}"):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            continue
        if argv[-2:] == [b"pulse", b""]:
            found.append(pid)
    return found


def test_twenty_concurrent_ups_all_succeed_and_leave_one_pulse(
    profile: Profile, procs: Processes
) -> None:
    profile.sensor("slow", "sleep 0.5; echo '{\"signal\": 1}'")
    ups = [procs.add(profile.popen("up")) for _ in range(20)]
    try:
        results = [(up.wait(timeout=180), *up.communicate()) for up in ups]
        held = lock.holder(profile.paths)
        assert held is not None and held.role == "pulse", held
        for code, out, err in results:
            assert code == 0, err
            assert f"(pid {held.pid})" in out, out
        assert sum("started (pid" in out for _, out, _ in results) == 1
        # Every other detached pulse found the lock held and is gone.
        assert pulses_of(profile) == [held.pid]
        beat = record.read(profile.paths)
        assert beat is not None and beat["pid"] == held.pid
    finally:
        down = profile.run("down", timeout=60)
        for pid in pulses_of(profile):
            os.kill(pid, signal.SIGKILL)
    assert down.returncode == 0, down.stderr


def test_up_under_a_runtime_dir_too_deep_for_a_socket_path_still_waits_for_ready(
    profile: Profile,
) -> None:
    # A socket's path holds about 107 bytes; this runtime dir alone is longer.
    deep = profile.root / ("r" * 60) / ("u" * 60)
    env = {**profile.env, "LOOOP_RUNTIME_DIR": str(deep)}
    up = profile.run("up", timeout=120, env=env)
    try:
        assert up.returncode == 0, up.stderr
        assert "started (pid" in up.stdout
        assert profile.run("status", env=env).returncode == 0
    finally:
        down = profile.run("down", timeout=60, env=env)
    assert down.returncode == 0, down.stderr
