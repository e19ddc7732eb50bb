"""The pulse as a process (SPEC §5): readiness, watchdog, signals, single instance.

sd_notify is tested with a real datagram socket: the test binds it, the pulse
sends to it, and the test reads exactly what arrived and when.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import LOOOP, NotifyPeer, Processes, Profile, pid_alive, wait_for


def _beat_number(profile: Profile) -> int:
    record = next(profile.runtime.glob("*.beat.json"), None)
    if record is None:
        return 0
    try:
        return int(json.loads(record.read_text())["number"])
    except (ValueError, KeyError, OSError):
        return 0


def _start(profile: Profile, procs: Processes, **env: str) -> subprocess.Popen[str]:
    return procs.add(profile.popen("pulse", env={**profile.env, **env}))


def test_ready_only_after_the_first_beat_and_watchdog_at_half_period(
    profile: Profile, procs: Processes, peer: NotifyPeer
) -> None:
    # A sensor that tries to speak for the pulse: it must reach nothing.
    profile.sensor(
        "impostor",
        'if [ -n "$NOTIFY_SOCKET" ]; then systemd-notify --ready 2>/dev/null; '
        "python3 -c 'import os,socket; s=socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); "
        's.sendto(b"READY=1", os.environ["NOTIFY_SOCKET"])\'; fi\n'
        "sleep 1\n"
        'printf \'{"signal": {"socket": "%s", "watchdog": "%s"}}\' '
        '"${NOTIFY_SOCKET:-}" "${WATCHDOG_USEC:-}"',
    )
    pulse = _start(
        profile, procs, NOTIFY_SOCKET=str(peer.path), WATCHDOG_USEC="2000000", LOOOP_INTERVAL="60"
    )
    ready = wait_for(lambda: peer.first("READY=1"), timeout=30)
    # READY=1 was sent after the first beat had been published and recorded.
    ready_wall = peer.wall[[m[0] for m in peer.messages].index(ready[0])]
    first = json.loads(next(profile.runtime.glob("*.beat.json")).read_text())
    assert first["number"] == 1 and first["ended"] <= ready_wall
    snapshot = profile.data / "snapshots" / "sensor-impostor.json"
    assert snapshot.stat().st_mtime <= ready_wall
    assert json.loads(snapshot.read_text())["signal"] == {"socket": "", "watchdog": ""}
    assert any(f.startswith("STATUS=beat 1 · 2/2 sensors ok · next in ") for f in ready[1])

    # The watchdog goes on pinging after READY=1 (its cadence, half the
    # period, is measured by bench/bench_pulse.py, not asserted here).
    wait_for(lambda: len([t for t in peer.times("WATCHDOG=1") if t > ready[0]]) >= 3, timeout=30)
    assert len(peer.times("READY=1")) == 1, "someone else sent READY=1"

    pulse.send_signal(signal.SIGTERM)
    assert pulse.wait(timeout=15) == 0
    wait_for(lambda: peer.first("STOPPING=1"), timeout=5)


def test_status_text_each_beat(profile: Profile, procs: Processes, peer: NotifyPeer) -> None:
    profile.sensor("bad", "exit 2")
    _start(profile, procs, NOTIFY_SOCKET=str(peer.path), LOOOP_INTERVAL="1")
    wait_for(lambda: len([m for m in peer.messages if any("beat 3 ·" in f for f in m[1])]))
    statuses = [f for _, fields in peer.messages for f in fields if f.startswith("STATUS=")]
    assert any(s.startswith("STATUS=beat 2 · 1/2 sensors ok · next in ") for s in statuses)


def test_without_notify_socket_nothing_is_sent_and_nothing_fails(
    profile: Profile, procs: Processes
) -> None:
    pulse = _start(profile, procs, LOOOP_INTERVAL="1")
    wait_for(lambda: _beat_number(profile) >= 2)
    pulse.send_signal(signal.SIGTERM)
    assert pulse.wait(timeout=15) == 0
    assert "Traceback" not in pulse.stderr.read()


def test_fifty_pulses_at_once_exactly_one_runs(profile: Profile, procs: Processes) -> None:
    assert profile.run("sense").returncode == 0  # seed once so all race for the lock alone
    env = {**profile.env, "LOOOP_INTERVAL": "60"}
    started = [procs.add(profile.popen("pulse", env=env)) for _ in range(50)]
    wait_for(lambda: sum(p.poll() is not None for p in started) >= 49, timeout=60)
    losers = [p for p in started if p.poll() is not None]
    winners = [p for p in started if p.poll() is None]
    assert len(winners) == 1, f"{len(winners)} pulses running"
    assert len(losers) == 49
    for proc in losers:
        assert proc.returncode == 1
        assert f"looop: already running (pid {winners[0].pid})" in proc.stderr.read()


def test_signals_reload_beat_now_and_stop(
    profile: Profile, procs: Processes, peer: NotifyPeer
) -> None:
    profile.write_config("interval = 60\n")
    pulse = _start(profile, procs, NOTIFY_SOCKET=str(peer.path))
    wait_for(lambda: peer.first("READY=1"), timeout=30)
    assert _beat_number(profile) == 1

    pulse.send_signal(signal.SIGUSR1)
    wait_for(lambda: _beat_number(profile) == 2)

    profile.write_config("interval = 1\n")
    pulse.send_signal(signal.SIGHUP)
    reloading = wait_for(lambda: peer.first("RELOADING=1"))
    assert any(f.startswith("MONOTONIC_USEC=") for f in reloading[1])
    wait_for(lambda: len(peer.times("READY=1")) == 2)
    assert peer.times("READY=1")[1] >= reloading[0]
    wait_for(lambda: _beat_number(profile) >= 6, timeout=20)  # 1 s beats now, not 60 s

    pulse.send_signal(signal.SIGTERM)
    assert pulse.wait(timeout=15) == 0


def test_stop_in_the_middle_of_a_beat_ends_every_sensor(profile: Profile, procs: Processes) -> None:
    pids = profile.root / "pids"
    pids.mkdir()
    for i in range(3):
        profile.sensor(
            f"slow{i}", f"sleep 300 &\necho $! > {pids}/bg{i}\necho $$ > {pids}/fg{i}\nwait"
        )
    pulse = _start(profile, procs)
    wait_for(lambda: len(list(pids.iterdir())) == 6)
    pulse.send_signal(signal.SIGTERM)
    assert pulse.wait(timeout=15) == 0
    for pidfile in pids.iterdir():
        assert not pid_alive(int(pidfile.read_text())), f"{pidfile.name} survived the stop"
    status = profile.run("status")
    assert status.returncode == 3, status.stdout


def test_sense_asks_the_running_pulse(profile: Profile, procs: Processes) -> None:
    pulse = _start(profile, procs, LOOOP_INTERVAL="60")
    wait_for(lambda: _beat_number(profile) == 1)
    out = profile.run("sense", "--json")
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record["pid"] == pulse.pid and record["number"] == 2
    assert pulse.poll() is None


def test_fixed_rate_cadence(profile: Profile, procs: Processes) -> None:
    profile.sensor("slowish", "sleep 1.5\necho '{}'")
    _start(profile, procs, LOOOP_INTERVAL="2")
    wait_for(lambda: _beat_number(profile) >= 2, timeout=30)
    record = json.loads(next(profile.runtime.glob("*.beat.json")).read_text())
    # Fixed rate: the next beat is planned `interval` after this one started,
    # so before `interval` after it ended (where a fixed delay would put it).
    assert record["started"] < record["ended"]
    assert record["next_beat"] < record["ended"] + record["interval"], record
    # The cadence itself (2 s from start to start) is bench/bench_pulse.py's.


class StuckLog:
    """A stderr for the pulse that a test can stop reading: a pipe it fills up.

    This is how a loop really stalls on a user's machine: the log reader
    stops reading, the pipe fills, and the next log line blocks the loop in
    write(2). No fault switch in the pulse is needed to reach it.
    """

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)

    def jam(self) -> None:
        """Fill the pipe: the pulse's next log line blocks.

        Filled through a second, non-blocking open of the same pipe: making
        the pulse's own descriptor non-blocking would turn its write into an
        error instead of a wait.
        """
        fill = os.open(f"/proc/self/fd/{self.write_fd}", os.O_WRONLY | os.O_NONBLOCK)
        try:
            with contextlib.suppress(BlockingIOError):
                while True:
                    os.write(fill, b"x" * 4096)
        finally:
            os.close(fill)

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


def _start_stuck(profile: Profile, procs: Processes, log: StuckLog, **env: str) -> Any:
    """A pulse on a log pipe the test can jam, with something new to log every beat.

    The pulse logs a failure when it starts and when its reason changes, so
    a sensor failing with a fresh reason each beat keeps the log writing.
    """
    profile.sensor("restless", "date +%s%N >&2\nexit 1")
    return procs.add(
        subprocess.Popen(
            [LOOOP, "pulse"],
            env={**profile.env, **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log.write_fd,
        )
    )


def test_internal_watchdog_aborts_a_loop_stalled_on_a_full_log_pipe(
    profile: Profile, procs: Processes
) -> None:
    log = StuckLog()
    try:
        pulse = _start_stuck(profile, procs, log, LOOOP_INTERVAL="1", LOOOP_WATCHDOG_SEC="2")
        wait_for(lambda: _beat_number(profile) >= 1, timeout=30)
        log.jam()
        assert pulse.wait(timeout=30) == -signal.SIGABRT
    finally:
        log.close()
    events = [json.loads(line) for line in (profile.data / "events.jsonl").read_text().splitlines()]
    aborts = [e for e in events if e["event"] == "watchdog_abort"]
    assert aborts and "stalled" in aborts[-1]["message"]
    assert profile.run("status").returncode == 3, "the lock outlived the aborted pulse"


@pytest.mark.parametrize("fmt", ["journal", "json"])
def test_log_formats(profile: Profile, procs: Processes, fmt: str, tmp_path: Path) -> None:
    logfile = tmp_path / "stderr.log"
    env = {**profile.env, "LOOOP_INTERVAL": "1"}
    args = [LOOOP, "pulse"]
    with open(logfile, "w") as err:
        if fmt == "journal":
            st = os.fstat(err.fileno())
            env["JOURNAL_STREAM"] = f"{st.st_dev}:{st.st_ino}"
        else:
            args = [LOOOP, "--log-format", "json", "pulse"]
        pulse = procs.add(subprocess.Popen(args, env=env, stderr=err, stdout=subprocess.DEVNULL))
        wait_for(lambda: _beat_number(profile) >= 2)
        pulse.send_signal(signal.SIGTERM)
        assert pulse.wait(timeout=15) == 0
    lines = logfile.read_text().splitlines()
    assert len(lines) >= 3
    for line in lines:
        if fmt == "journal":
            assert line[:3] in ("<6>", "<4>", "<3>"), line
        else:
            record = json.loads(line)
            assert {"ts", "level", "msg"} <= set(record)


def _blocked_in_pipe_write(pid: int) -> bool:
    """True while the main thread of ``pid`` sleeps in a write to a full pipe."""
    try:
        return Path(f"/proc/{pid}/wchan").read_text().endswith("pipe_write")  # anon_pipe_write
    except OSError:
        return False


def test_watchdog_pings_stop_when_the_loop_stalls(
    profile: Profile, procs: Processes, peer: NotifyPeer
) -> None:
    log = StuckLog()
    try:
        pulse = _start_stuck(
            profile,
            procs,
            log,
            NOTIFY_SOCKET=str(peer.path),
            WATCHDOG_USEC="1000000",
            LOOOP_INTERVAL="1",
        )
        wait_for(lambda: peer.first("READY=1"), timeout=30)
        log.jam()
        # Within a beat of the jam the loop blocks on its next log line: no
        # progress from then on, so no ping. The state waited for: the pulse's
        # main thread asleep in a pipe write.
        wait_for(lambda: _blocked_in_pipe_write(pulse.pid), timeout=30)
        # Absence needs a window: after a second for a ping already on its way
        # to be collected, three watchdog periods with no ping.
        blocked = time.monotonic()
        assert not peer.wait_for("WATCHDOG=1", after=blocked + 1.0, within=4.0)
        # Under a service manager's watchdog the internal one stands aside: the
        # manager does the killing.
        assert pulse.poll() is None
    finally:
        log.close()


def test_watchdog_pings_go_on_through_a_slow_sensor(
    profile: Profile, procs: Processes, peer: NotifyPeer
) -> None:
    marker, release = profile.root / "slow-started", profile.root / "release"
    profile.sensor(
        "slow", f"touch {marker}\nwhile [ ! -e {release} ]; do sleep 0.05; done\necho '{{}}'"
    )
    _start(profile, procs, NOTIFY_SOCKET=str(peer.path), WATCHDOG_USEC="1000000")
    wait_for(marker.exists, timeout=30)
    began = time.monotonic()
    # The first beat runs until the sensor is released: pings come meanwhile.
    wait_for(lambda: len([t for t in peer.times("WATCHDOG=1") if t > began]) >= 2, timeout=30)
    assert peer.first("READY=1") is None, "the first beat should still be running"
    release.touch()
    wait_for(lambda: peer.first("READY=1"), timeout=30)


def test_signals_right_after_the_lock_is_taken_do_not_kill_the_pulse(
    profile: Profile, procs: Processes, peer: NotifyPeer
) -> None:
    assert profile.run("sense").returncode == 0
    pulse = _start(profile, procs, NOTIFY_SOCKET=str(peer.path))
    pid_file = wait_for(lambda: next(profile.runtime.glob("*.pid"), None), interval=0.001)
    assert pid_file.read_text().split()[0] == str(pulse.pid)
    pulse.send_signal(signal.SIGUSR1)
    pulse.send_signal(signal.SIGHUP)
    wait_for(lambda: peer.first("READY=1") or pulse.poll() is not None, timeout=30)
    assert pulse.poll() is None, f"the pulse died with {pulse.returncode}"


def test_a_removed_lock_file_is_taken_again(profile: Profile, procs: Processes) -> None:
    pulse = _start(profile, procs, LOOOP_INTERVAL="1")
    wait_for(lambda: _beat_number(profile) >= 1)
    lock_file = next(profile.runtime.glob("*.lock"))
    lock_file.unlink()
    wait_for(lock_file.exists, timeout=10)
    second = profile.run("pulse", timeout=30)
    assert second.returncode == 1
    assert f"already running (pid {pulse.pid})" in second.stderr
    assert profile.run("status").returncode == 0


def test_one_data_dir_through_a_symlink_is_one_profile(profile: Profile, procs: Processes) -> None:
    pulse = _start(profile, procs, LOOOP_INTERVAL="1")
    wait_for(lambda: _beat_number(profile) >= 1)
    link = profile.root / "data-link"
    link.symlink_to(profile.data)
    second = profile.run("pulse", env={**profile.env, "LOOOP_DATA_DIR": str(link)})
    assert second.returncode == 1
    assert f"already running (pid {pulse.pid})" in second.stderr


def test_the_previous_generation_is_kept_through_a_symlinked_path(
    profile: Profile, procs: Processes
) -> None:
    link = profile.root / "data-link"
    profile.data.mkdir()
    link.symlink_to(profile.data)
    _start(profile, procs, LOOOP_INTERVAL="1", LOOOP_DATA_DIR=str(link))
    wait_for(lambda: _beat_number(profile) >= 4, timeout=30)
    generations = [p.name for p in (profile.data / ".snapshots").iterdir()]
    kept = [name for name in generations if name.startswith("gen-")]
    assert len(kept) == 2, generations  # the current one and the one before it
