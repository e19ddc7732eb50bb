"""``looop logs``, ``restart`` and ``reload`` for a pulse ``looop up`` detached (SPEC §6).

The systemd side (the unit's log, restart and reload through the manager)
is in test_systemd.py; a worker's transcript (``looop logs ID``) in
test_workers.py.
"""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator

import pytest
from conftest import Profile, detached_pulse, wait_for

FILE_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d{4} looop: ")


@pytest.fixture
def detached(profile: Profile) -> Iterator[Profile]:
    """A pulse beating every second, detached by ``looop up``, with a new failure each beat."""
    profile.sensor("restless", "date +%s%N >&2\nexit 1")
    with detached_pulse(profile, "1"):
        yield profile


def _beats(profile: Profile) -> int:
    return int(json.loads(profile.run("status", "--json").stdout)["beats"] or 0)


def test_logs_n_shows_the_detached_pulses_last_lines_with_full_timestamps(
    detached: Profile,
) -> None:
    wait_for(lambda: len((detached.data / "pulse.log").read_text().splitlines()) >= 8, timeout=30)
    out = detached.run("logs", "-n", "5")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert len(lines) == 5, out.stdout
    assert all(FILE_LINE.match(line) for line in lines), out.stdout
    # The pulse goes on logging: the five are the log's last as the command read it.
    later = (detached.data / "pulse.log").read_text().splitlines()
    assert any(later[i : i + 5] == lines for i in range(len(later) - 4)), out.stdout


def test_logs_f_follows_the_pulse_until_sigint(detached: Profile) -> None:
    follower = detached.popen("logs", "-f", "-n", "1")
    assert follower.stdout is not None
    first = follower.stdout.readline()
    assert FILE_LINE.match(first), first
    second = follower.stdout.readline()  # written by a later beat: the follow goes on
    assert FILE_LINE.match(second) and second != first, second
    follower.send_signal(signal.SIGINT)
    assert follower.wait(timeout=15) == 0
    assert follower.stderr is not None and follower.stderr.read() == ""


def test_up_hands_its_log_format_to_the_detached_pulse(profile: Profile) -> None:
    up = profile.run("--log-format", "json", "up", timeout=120)
    assert up.returncode == 0, up.stderr
    try:
        lines = profile.run("logs").stdout.splitlines()
    finally:
        profile.run("down", timeout=60)
    assert lines and all({"ts", "level", "msg"} <= set(json.loads(line)) for line in lines)


def test_logs_before_any_pulse_ran_says_where_the_log_will_be(profile: Profile) -> None:
    out = profile.run("logs")
    assert out.returncode == 1
    assert out.stderr == f"looop: no pulse log yet at {profile.data / 'pulse.log'}\n"


def test_restart_starts_a_new_pulse_and_leaves_the_profile_running(detached: Profile) -> None:
    before = json.loads(detached.run("status", "--json").stdout)["pid"]
    out = detached.run("restart", timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == f"stopped (pid {before})"
    after = json.loads(detached.run("status", "--json").stdout)["pid"]
    assert after != before and f"started (pid {after})" in out.stdout


def test_reload_applies_a_new_interval_without_a_new_pulse(profile: Profile) -> None:
    profile.write_config("interval = 1\n")
    assert profile.run("up", timeout=120).returncode == 0
    try:
        pid = json.loads(profile.run("status", "--json").stdout)["pid"]
        profile.write_config("interval = 3600\n")
        out = profile.run("reload", timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == f"reloaded (pid {pid}): it beat on the new config"
        report = json.loads(profile.run("status", "--json").stdout)  # at once: no waiting
        assert report["pid"] == pid and report["interval"] == 3600
    finally:
        profile.run("down", timeout=60)
    assert "config reloaded · interval 3600s" in (profile.data / "pulse.log").read_text()


def test_reload_of_a_broken_config_exits_78_and_signals_nothing(detached: Profile) -> None:
    wait_for(lambda: _beats(detached) >= 1)
    detached.write_config('interval = "often"\n')
    out = detached.run("reload")
    assert out.returncode == 78 and f"{detached.config}:1: interval:" in out.stderr
    assert "config" not in (detached.data / "pulse.log").read_text()


def test_reload_without_a_pulse_says_so(profile: Profile) -> None:
    out = profile.run("reload")
    assert out.returncode == 1
    assert out.stderr == "looop: no pulse runs on this profile; start it with looop up\n"
