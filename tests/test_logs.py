"""``looop logs``, ``restart`` and ``reload`` for a pulse ``looop up`` detached (SPEC §6).

The systemd side (the unit's log, restart and reload through the manager)
is in test_systemd.py; a worker's transcript (``looop logs ID``) in
test_workers.py.
"""

from __future__ import annotations

import json
import os
import platform
import pwd
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Profile, configure_workers, detached_pulse, wait_for
from workers_kit import worker_script

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
    where = f"looop: reading the detached pulse's log, {detached.data / 'pulse.log'}\n"
    assert follower.stderr is not None and follower.stderr.read() == where


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


# --- --since, -o json, -f by notifications (issue 26) ------------------------------
def stamped(when: float, text: str) -> str:
    """A line as a pulse writes it into a file (``log.Logger``'s file clock)."""
    return f"{time.strftime('%Y-%m-%d %H:%M:%S%z', time.localtime(when))} looop: {text}\n"


def test_logs_since_keeps_the_lines_from_a_time_on_in_journalctls_forms_and_o_json(
    profile: Profile,
) -> None:
    now = time.time()
    log = profile.data / "pulse.log"  # where a pulse `looop up` detached writes
    log.parent.mkdir(parents=True)
    log.write_text(
        stamped(now - 3 * 86400, "three days ago")
        + stamped(now - 3600, "an hour ago")
        + "  a line without a stamp goes with the one before\n"
        + stamped(now - 300, "five minutes ago")
        + '{"ts": %f, "level": "info", "msg": "a json line"}\n' % (now - 60)
    )
    source = f"the detached pulse's log, {log}"

    def logs(*args: str) -> list[str]:
        out = profile.run("logs", *args)
        assert out.returncode == 0 and out.stderr == f"looop: reading {source}\n", out.stderr
        return out.stdout.splitlines()

    day = time.strftime("%Y-%m-%d", time.localtime(now - 2 * 86400))
    since_day = logs("--since", day)
    assert since_day[0].endswith("looop: an hour ago") and len(since_day) == 4
    assert since_day[1] == "  a line without a stamp goes with the one before"
    assert len(logs("--since", "2h ago")) == 4
    ten_minutes = logs("--since", "-10m")
    assert len(ten_minutes) == 2 and ten_minutes[-1].endswith('"msg": "a json line"}')
    assert logs("--since", "-10m", "-n", "1") == ten_minutes[-1:]
    assert logs("--since", "now") == []

    objects = [json.loads(x) for x in logs("--since", "-2h", "-o", "json")]
    assert [o["message"] for o in objects] == [
        "looop: an hour ago",
        "  a line without a stamp goes with the one before",
        "looop: five minutes ago",
        "a json line",
    ]
    assert {o["source"] for o in objects} == {source}
    assert objects[1]["timestamp"] is None and abs(objects[3]["timestamp"] - (now - 60)) < 1
    assert abs(objects[0]["timestamp"] - (now - 3600)) < 1.5

    bad = profile.run("logs", "--since", "last tuesday")
    assert bad.returncode == 2 and "--since 'last tuesday'" in bad.stderr


def _blocked_in(pid: int) -> tuple[int, int]:
    """(syscall number, its third argument) the process's main thread sleeps in; (-1, 0) running."""
    fields = Path(f"/proc/{pid}/syscall").read_text().split()
    return (int(fields[0]), int(fields[3], 16)) if fields[0].isdigit() else (-1, 0)


@pytest.mark.skipif(platform.machine() != "x86_64", reason="reads x86_64 syscall numbers")
def test_logs_f_sleeps_on_file_notifications_and_wakes_for_a_new_line(
    profile: Profile, procs: object
) -> None:
    log = profile.data / "pulse.log"
    log.parent.mkdir(parents=True)
    log.write_text(stamped(time.time(), "first"))
    follower = profile.popen("logs", "-f", "-n", "1")
    try:
        assert follower.stdout is not None
        assert follower.stdout.readline().endswith("looop: first\n")
        # Idle, it sleeps in poll(2) on the notification fd for an hour at a
        # time, not for a 0.2 s poll interval: nothing wakes it but the file.
        poll, ppoll = 7, 271
        wait_for(lambda: _blocked_in(follower.pid)[0] in (poll, ppoll))
        number, timeout = _blocked_in(follower.pid)
        assert number == poll and timeout >= 3_600_000, (number, timeout)
        with open(log, "a") as fh:
            fh.write(stamped(time.time(), "second"))
        assert follower.stdout.readline().endswith("looop: second\n")
        os.replace(log, log.with_name("pulse.log.1"))  # rotated: the new file is read
        log.write_text(stamped(time.time(), "third"))
        assert follower.stdout.readline().endswith("looop: third\n")
    finally:
        follower.send_signal(signal.SIGINT)
        assert follower.wait(timeout=15) == 0


def test_unit_specifiers_expand_as_systemd_unit_5_defines_them_for_a_user_unit() -> None:
    from looop.service import specifiers

    env = {"HOME": "/home/ada", "XDG_RUNTIME_DIR": "/run/user/1000"}
    user = pwd.getpwuid(os.getuid())

    def expand(value: str, unit: str = "looop-x.service") -> str:
        return specifiers.expand(value, unit, env)

    assert expand("%h/a %t/b %S %L %C %E") == (
        "/home/ada/a /run/user/1000/b /home/ada/.local/state /home/ada/.local/state/log "
        "/home/ada/.cache /home/ada/.config"
    )
    assert expand("%u %U %n %N %p %j %%h %q") == (
        f"{user.pw_name} {user.pw_uid} looop-x.service looop-x looop-x x %h %q"
    )
    assert expand("%i|%I|%P", "w@a-b\\x2dc.service") == "a-b\\x2dc|a/b-c|w"
    xdg = {**env, "XDG_STATE_HOME": "/s", "XDG_CONFIG_HOME": "/c"}
    assert specifiers.expand("%S %L %E", "u.service", xdg) == "/s /s/log /c"


def test_logs_f_of_a_worker_prints_its_transcript_and_ends_when_the_worker_does(
    fleet: Profile,
) -> None:
    go = fleet.root / "go"
    body = f"echo working\nwhile [ ! -e {go} ]; do sleep 0.05; done\necho done\nexit 3"
    configure_workers(fleet, [str(worker_script(fleet.root / "w", body))])
    assert fleet.run("_", "worker", "start", "w1", "x").returncode == 0
    transcript = fleet.data / "sessions" / "w1" / "output.log"
    wait_for(lambda: transcript.exists() and b"working" in transcript.read_bytes())
    follower = fleet.popen("logs", "w1", "-f")
    assert follower.stdout is not None and follower.stderr is not None
    assert wait_for(lambda: "working" in follower.stdout.readline())
    go.touch()
    rest = follower.stdout.read()  # to its end: the follow stops once the worker has
    assert follower.wait(timeout=15) == 0
    assert "done\n" in rest and "exited (exit 3" in rest
    assert follower.stderr.read() == f"looop: reading worker w1's transcript, {transcript}\n"
