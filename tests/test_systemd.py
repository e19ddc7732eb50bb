"""The pulse and the reaper under real systemd user managers.

Every test installs the shipped units with ``looop install --systemd`` into an
isolated home and drives them with ``systemctl --user``, under a normal
user's manager (what users run) and, where the issue asks for both, root's.
A test drop-in sends unit output to a file and shortens the watchdog and the
restart delay; everything else is the unit exactly as shipped. What the
manager itself saw (notifications, watchdog timeouts, kills) is read from its
debug log.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import LOOOP_BIN, pid_alive, unit_settings, wait_for
from systemd_harness import Manager, add_test_drop_in, notifications, unit_log

from looop.paths import Paths
from looop.pulse import lock

pytestmark = pytest.mark.systemd

PULSE = "looop.service"
STATUS_TEXT = re.compile(r"^beat \d+ · \d+/\d+ sensors ok · next in \d+s$")


# --- helpers -----------------------------------------------------------------
def install(m: Manager, *args: str, start: bool = True, drop_in: str = "") -> str:
    """``looop install --systemd`` as the manager's user, with the test drop-in."""
    path = add_test_drop_in(m)
    if drop_in:
        path.write_text(path.read_text() + drop_in)
    flags = [] if start else ["--no-start"]
    out = m.looop_cmd("install", "--systemd", *flags, *args, check=True, timeout=120)
    return out.stdout


def config(m: Manager, text: str) -> None:
    m.write(m.data_dir / "config.toml", text)


def record(m: Manager) -> dict[str, Any]:
    try:
        value = json.loads(Path(m.paths().beat_file).read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def holder(m: Manager) -> int | None:
    return lock.holder_pid(m.paths())


def active_pid(m: Manager) -> int:
    props = m.show(PULSE, "ActiveState", "SubState", "MainPID")
    if props["ActiveState"] == "active" and props["SubState"] == "running":
        return int(props["MainPID"])
    return 0


def status_json(m: Manager) -> tuple[int, dict[str, Any]]:
    out = m.looop_cmd("status", "--json")
    return out.returncode, json.loads(out.stdout)


def verify(m: Manager, *units: str) -> None:
    """``systemd-analyze --user verify`` on installed units: exit 0 and not a word."""
    files = [str(m.unit_dir / u) for u in units]
    out = m.run("systemd-analyze", "--user", "verify", *files, timeout=60)
    assert out.returncode == 0, out.stderr
    complaints = [line for line in out.stderr.splitlines() if "looop" in line]
    assert complaints == [], out.stderr


# --- issue 3, item 1 -----------------------------------------------------------
def test_start_returns_after_first_beat(any_manager: Manager) -> None:
    m = any_manager
    config(m, "interval = 3600\n")
    m.sensor("slow", 'sleep 1.5; echo \'{"signal": {"ok": true}}\'')
    install(m, start=False)
    verify(m, PULSE, "looop-reap.service", "looop-reap.timer")
    assert m.prop(PULSE, "ActiveState") == "inactive"
    assert not os.path.exists(m.paths().beat_file)

    started = m.systemctl("start", PULSE, timeout=120)

    # `start` has returned: the first beat must already be published.
    assert started.returncode == 0, started.stderr
    snapshot = json.loads((m.data_dir / "snapshots" / "sensor-slow.json").read_text())
    assert snapshot == {"signal": {"ok": True}}
    beat = record(m)
    assert beat["number"] == 1 and beat["failed"] == []
    props = m.show(PULSE, "ActiveState", "SubState", "StatusText", "MainPID", "NRestarts")
    assert (props["ActiveState"], props["SubState"]) == ("active", "running")
    assert STATUS_TEXT.match(props["StatusText"]), props["StatusText"]
    assert re.match(r"beat 1 · (\d+)/\1 sensors ok", props["StatusText"]), props["StatusText"]
    assert beat["pid"] == int(props["MainPID"]) == holder(m)
    assert props["NRestarts"] == "0"


# --- issue 3, item 2 -----------------------------------------------------------
def test_sigstop_is_killed_by_the_watchdog_and_restarted(user_manager: Manager) -> None:
    m = user_manager
    config(m, "interval = 60\n")
    install(m)
    for trial in range(1, 4):
        old = wait_for(lambda: active_pid(m))
        offset = m.log_offset()
        os.kill(old, signal.SIGSTOP)
        new = wait_for(lambda old=old: (pid := active_pid(m)) != old and pid, timeout=30)
        seen = m.log_since(offset)
        assert "looop.service: Watchdog timeout" in seen, seen[-2000:]
        assert "looop.service: Failed with result 'watchdog'." in seen, seen[-2000:]
        assert m.prop(PULSE, "NRestarts") == str(trial)
        assert not pid_alive(old)
        # The new pulse holds the lock and has beaten (its first beat precedes READY=1).
        assert holder(m) == new
        assert record(m)["pid"] == new


# --- issue 3, item 3 -----------------------------------------------------------
def test_kill_9_is_restarted_with_nothing_stale(user_manager: Manager) -> None:
    m = user_manager
    config(m, "interval = 60\n")
    install(m)
    for trial in range(1, 4):
        old = wait_for(lambda: active_pid(m))
        os.kill(old, signal.SIGKILL)
        new = wait_for(lambda old=old: (pid := active_pid(m)) != old and pid, timeout=30)
        assert m.prop(PULSE, "NRestarts") == str(trial)
        assert holder(m) == new
        code, status = status_json(m)
        assert code == 0 and status["running"] is True
        assert status["pid"] == new
        assert status["beats"] is not None and status["last_beat"]
        pid_file = Path(m.paths().pid_file).read_text().split()
        assert int(pid_file[0]) == new


# --- issue 3, item 4 -----------------------------------------------------------
def test_slow_sensor_within_its_timeout_does_not_trip_the_watchdog(
    user_manager: Manager,
) -> None:
    m = user_manager
    # Each beat takes 3 s, longer than the 2 s watchdog, inside a 30 s sensor_timeout.
    config(m, "interval = 1\nsensor_timeout = 30\n")
    m.sensor("slow", 'sleep 3; echo \'{"signal": "done"}\'')
    offset = m.log_offset()
    install(m)
    pid = active_pid(m)
    wait_for(lambda: record(m).get("number", 0) >= 3, timeout=60)
    seen = m.log_since(offset)
    assert "Watchdog timeout" not in seen
    assert active_pid(m) == pid
    assert m.prop(PULSE, "NRestarts") == "0"
    beat = record(m)
    assert beat["pid"] == pid and beat["failed"] == [] and beat["duration"] >= 3


# --- issue 3, item 5 -----------------------------------------------------------
def test_broken_config_fails_the_start_with_78_and_no_restart(user_manager: Manager) -> None:
    m = user_manager
    config(m, 'interval = "soon"\n')
    install(m, start=False)

    started = m.systemctl("start", PULSE, timeout=60)

    assert started.returncode != 0
    props = m.show(PULSE, "ActiveState", "Result", "ExecMainStatus", "NRestarts")
    assert props["ActiveState"] == "failed"
    assert props["Result"] == "exit-code"
    assert props["ExecMainStatus"] == "78"
    time.sleep(1.0)  # five restart delays of the test drop-in: a restart would have happened
    assert m.prop(PULSE, "NRestarts") == "0"
    assert m.prop(PULSE, "ActiveState") == "failed"
    out = unit_log(m).read_text()
    assert "config.toml" in out and "interval" in out

    # `looop install` itself reports the failed start rather than claiming success.
    again = m.looop_cmd("install", "--systemd", timeout=60)
    assert again.returncode != 0
    assert "did not start" in again.stderr


# --- issue 3, item 6 -----------------------------------------------------------
def test_reload_sends_reloading_then_ready_and_applies_the_interval(
    user_manager: Manager,
) -> None:
    m = user_manager
    config(m, "interval = 3600\n")
    install(m)
    pid = active_pid(m)
    assert record(m)["interval"] == 3600
    config(m, "interval = 1\n")
    offset = m.log_offset()

    reloaded = m.systemctl("reload", PULSE, timeout=60)

    assert reloaded.returncode == 0, reloaded.stderr

    def reload_messages() -> list[str]:
        sent = notifications(m.log_since(offset), pid)
        start = next((i for i, msg in enumerate(sent) if "RELOADING=1" in msg), None)
        if start is None:
            return []
        return sent[start:] if any("READY=1" in msg for msg in sent[start:]) else []

    sent = wait_for(reload_messages)
    assert "RELOADING=1" in sent[0] and "MONOTONIC_USEC=" in sent[0]
    assert any(msg.startswith("READY=1") or ", READY=1" in msg for msg in sent[1:]), sent
    # The new interval: beats now come a second apart, not an hour.
    wait_for(lambda: record(m).get("interval") == 1 and record(m).get("number", 0) >= 4)
    assert active_pid(m) == pid
    assert m.prop(PULSE, "ActiveState") == "active"


# --- issue 3, item 7 -----------------------------------------------------------
SLOW_WHEN_FLAGGED = """\
if [ -e "$LOOOP_DATA_DIR/slow" ]; then
    {trap}
    sleep 300 &
    echo "$$ $!" > "$LOOOP_DATA_DIR/pids-{name}"
    wait
fi
echo '{{"signal": "fast"}}'
"""


def test_stop_mid_beat_leaves_no_sensor_and_frees_the_lock(user_manager: Manager) -> None:
    m = user_manager
    config(m, "interval = 3600\nsensor_timeout = 600\n")
    m.sensor("polite", SLOW_WHEN_FLAGGED.format(trap="", name="polite"))
    # This one ignores SIGTERM (and so does its child): only SIGKILL ends them.
    m.sensor("stubborn", SLOW_WHEN_FLAGGED.format(trap="trap '' TERM", name="stubborn"))
    # systemd enforces the issue's bound: a pulse still running 5 s after SIGTERM
    # would be killed and the unit's result would be "timeout".
    install(m, drop_in="TimeoutStopSec=5\n")
    pid = active_pid(m)
    m.write(m.data_dir / "slow", "")
    os.kill(pid, signal.SIGUSR1)  # beat now: both sensors start and hang
    pid_files = [m.data_dir / "pids-polite", m.data_dir / "pids-stubborn"]
    wait_for(lambda: all(p.exists() and p.read_text().strip() for p in pid_files))
    sensor_pids = [int(x) for p in pid_files for x in p.read_text().split()]
    assert all(pid_alive(p) for p in sensor_pids)
    offset = m.log_offset()

    began = time.monotonic()
    stopped = m.systemctl("stop", PULSE, timeout=60)
    took = time.monotonic() - began

    assert stopped.returncode == 0, stopped.stderr
    props = m.show(PULSE, "ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
    assert props["ActiveState"] == "inactive"
    assert props["Result"] == "success", props  # not "timeout": it stopped inside 5 s
    assert props["ExecMainStatus"] == "0"
    assert [p for p in sensor_pids if pid_alive(p)] == []
    assert m.unit_pids(PULSE) == []
    # The pulse ended its sensors itself: systemd had nothing left to kill.
    assert "Killing process" not in m.log_since(offset)
    assert holder(m) is None
    assert m.looop_cmd("status").returncode == 3
    print(f"stop mid-beat took {took:.2f}s")


# --- issue 4, item 6 -----------------------------------------------------------
def _session(m: Manager, sid: str, pid: int, started: float, ended: float | None) -> Path:
    where = m.data_dir / "sessions" / sid
    meta = {"id": sid, "pid": pid, "started": started, "cmd": ["worker"]}
    m.write(where / "meta.json", json.dumps(meta))
    if ended is not None:
        status = {"state": "exited", "exit_code": 0, "ended": ended}
        m.write(where / "status.json", json.dumps(status))
    return where


def test_reap_timer_is_enabled_and_the_service_reaps(user_manager: Manager) -> None:
    m = user_manager
    config(m, "interval = 3600\nsession_ttl = 3600\n")
    add_test_drop_in(m, "looop-reap.service")
    install(m)
    assert m.systemctl("is-enabled", "looop-reap.timer").stdout.strip() == "enabled"
    assert m.prop("looop-reap.timer", "ActiveState") == "active"
    timers = m.systemctl("list-timers", "--all", "--no-pager").stdout
    assert "looop-reap.timer" in timers and "looop-reap.service" in timers
    verify(m, "looop-reap.service", "looop-reap.timer")

    now = time.time()
    gone = subprocess.Popen(["true"])
    gone.wait()
    live = subprocess.Popen(["sleep", "120"])
    try:
        old = _session(m, "old-dead", gone.pid, now - 86400 * 10, now - 86400 * 9)
        young = _session(m, "young-dead", gone.pid, now - 60, now - 30)
        alive = _session(m, "alive", live.pid, time.time(), None)
        m.write(m.data_dir / "claims" / "stale.json", json.dumps({"session": "old-dead"}))
        m.write(m.data_dir / "claims" / "held.json", json.dumps({"session": "alive"}))

        ran = m.systemctl("start", "looop-reap.service", timeout=120)

        assert ran.returncode == 0, ran.stderr
        assert m.prop("looop-reap.service", "Result") == "success"
        assert not old.exists()
        assert young.is_dir() and alive.is_dir()
        assert not (m.data_dir / "claims" / "stale.json").exists()
        assert (m.data_dir / "claims" / "held.json").exists()
        assert "reaped 1 session" in unit_log(m, "looop-reap.service").read_text()
    finally:
        live.kill()
        live.wait()


# --- install, uninstall, a second profile --------------------------------------
def test_install_is_idempotent_and_uninstall_keeps_the_data(user_manager: Manager) -> None:
    m = user_manager
    config(m, "interval = 3600\n")
    first = install(m)
    pid = active_pid(m)
    assert pid and f"write {m.unit_dir / PULSE}" in first

    second = m.looop_cmd("install", "--systemd", check=True).stdout

    assert f"unchanged {m.unit_dir / PULSE}" in second
    assert active_pid(m) == pid  # not restarted
    code, status = status_json(m)
    assert code == 0 and status["service"]["unit"] == PULSE

    removed = m.looop_cmd("uninstall", check=True).stdout

    assert "removed" in removed
    for unit in ("looop.service", "looop-reap.service", "looop-reap.timer"):
        assert not (m.unit_dir / unit).exists()
    assert not pid_alive(pid)
    assert holder(m) is None
    assert (m.data_dir / "config.toml").read_text() == "interval = 3600\n"
    assert m.prop(PULSE, "LoadState") == "not-found"


def test_uninstall_keeps_an_edited_unit_unless_forced(user_manager: Manager) -> None:
    m = user_manager
    config(m, "interval = 3600\n")
    install(m)
    pid = active_pid(m)
    unit = m.unit_dir / PULSE
    edited = unit.read_text().replace("RestartSec=5", "RestartSec=7")
    assert edited != unit.read_text()
    m.write(unit, edited)
    # A unit file gone by hand (still loaded) must not keep the rest running.
    (m.unit_dir / "looop-reap.timer").unlink()

    out = m.looop_cmd("uninstall", check=True).stdout

    assert f"kept {unit}" in out and "--force" in out
    assert unit.read_text() == edited
    assert not (m.unit_dir / "looop-reap.service").exists()
    assert not pid_alive(pid) and holder(m) is None
    assert m.systemctl("is-enabled", PULSE).stdout.strip() == "disabled"
    assert m.prop("looop-reap.timer", "ActiveState") == "inactive"

    forced = m.looop_cmd("uninstall", "--force", check=True).stdout

    assert f"removed {unit}" in forced and not unit.exists()
    assert m.prop(PULSE, "LoadState") == "not-found"


def test_dollar_signs_in_the_looop_path_and_data_dir_stay_literal(user_manager: Manager) -> None:
    """systemd expands no ``$`` in the program path or Environment=: none may be escaped."""
    m = user_manager
    weird = m.base / "a $HOME ${USER} $$"
    data = weird / "data"
    m.write(data / "config.toml", "interval = 3600\n")
    bindir = weird / "bin"
    bindir.mkdir()
    m.chown(bindir)
    link = bindir / "looop"
    link.symlink_to(m.looop)
    try:
        out = m.run(str(link), "install", "--systemd", env={"LOOOP_DATA_DIR": str(data)})
        assert out.returncode == 0, out.stdout + out.stderr
        unit = re.findall(r"(looop-[0-9a-f]{16}\.service)", out.stdout)[0]
        props = m.show(unit, "ActiveState", "MainPID")
        assert props["ActiveState"] == "active"
        pid = int(props["MainPID"])
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert os.fsencode(link) in argv  # the path as written ran
        # The pulse serves exactly this data dir: its lock and its beat are there.
        paths = Paths(data, data / "config.toml", m.runtime_dir / "looop", False)
        assert lock.holder_pid(paths) == pid
        assert json.loads(Path(paths.beat_file).read_text())["pid"] == pid
    finally:
        m.reset()
        shutil.rmtree(weird, ignore_errors=True)


def test_reset_leaves_no_looop_unit_of_any_profile(user_manager: Manager) -> None:
    """The harness's cleanup: a second profile's pulse must not outlive its test."""
    m = user_manager
    other = m.base / "stray profile"
    try:
        env = {"LOOOP_DATA_DIR": str(other)}
        m.run(m.looop, "install", "--systemd", env=env, check=True, timeout=120)
        (unit,) = [u for u in m.looop_units() if re.fullmatch(r"looop-[0-9a-f]{16}\.service", u)]
        pid = m.main_pid(unit)
        assert pid

        m.reset()

        assert m.looop_units() == []
        assert not pid_alive(pid)
    finally:
        shutil.rmtree(other, ignore_errors=True)


def test_a_second_profile_gets_its_own_units(user_manager: Manager) -> None:
    m = user_manager
    config(m, "interval = 3600\n")
    install(m)
    other = m.base / "other profile"  # outside home, with a space: quoting and sandbox paths
    env = {"LOOOP_DATA_DIR": str(other)}
    out = m.run(m.looop, "install", "--systemd", env=env, check=True, timeout=120)
    names = re.findall(r"(looop-[0-9a-f]{16}\.service)", out.stdout)
    assert names, out.stdout
    unit = names[0]
    suffix = unit.removeprefix("looop-").removesuffix(".service")
    verify(m, unit, f"looop-reap-{suffix}.service", f"looop-reap-{suffix}.timer")
    assert m.prop(unit, "ActiveState") == "active"
    assert (other / "snapshots").exists()
    # Both pulses run, each holding its own profile's lock.
    assert active_pid(m) and m.prop(unit, "MainPID") != m.prop(PULSE, "MainPID")
    status = m.run(m.looop, "status", "--json", env=env)
    assert status.returncode == 0 and json.loads(status.stdout)["service"]["unit"] == unit
    m.run(m.looop, "uninstall", env=env, check=True)
    assert m.prop(PULSE, "ActiveState") == "active"


def test_up_and_down_go_through_the_installed_unit(user_manager: Manager) -> None:
    m = user_manager
    config(m, "interval = 3600\n")
    install(m, start=False)

    up = m.looop_cmd("up", timeout=120)

    assert up.returncode == 0, up.stderr
    assert "systemd" in up.stdout
    pid = active_pid(m)
    assert pid and holder(m) == pid and record(m)["pid"] == pid
    code, status = status_json(m)
    assert code == 0 and status["pid"] == pid
    assert status["service"]["state"] == "active (running)"

    down = m.looop_cmd("down", timeout=120)

    assert down.returncode == 0, down.stderr
    assert m.prop(PULSE, "ActiveState") == "inactive"
    assert holder(m) is None
    code, status = status_json(m)
    assert code == 3 and status["service"]["state"] == "inactive (dead)"


def test_up_then_install_hands_the_pulse_to_the_unit_and_starts_the_reap_timer(
    user_manager: Manager,
) -> None:
    """The README's order as a normal user; then the timer, logs and a crash, as a person sees."""
    m = user_manager
    config(m, "interval = 3600\n")
    up = m.looop_cmd("up", timeout=120)
    assert up.returncode == 0 and up.stdout.startswith("started (pid "), up.stderr
    detached = holder(m)
    assert detached and record(m)["pid"] == detached
    # The unit's stderr goes to a file named with specifiers (a drop-in, as a user writes one).
    m.drop_in(PULSE, "[Service]\nStandardError=append:%h/pulse.err\n", name="zz-log.conf")

    out = install(m)

    assert f"handed over: the pulse started outside systemd (pid {detached}) stopped" in out
    assert not pid_alive(detached)
    pid = active_pid(m)
    assert pid and pid != detached and holder(m) == pid == record(m)["pid"]  # one pulse: the unit
    timer = m.show("looop-reap.timer", "ActiveState", "NextElapseUSecRealtime")
    assert timer["ActiveState"] == "active" and timer["NextElapseUSecRealtime"], timer

    code, report = status_json(m)
    reap = report["service"]["reap_timer"]
    assert code == 0 and reap["unit"] == "looop-reap.timer" and reap["active"] is True
    assert reap["next_run"] > time.time()  # last_run: the timer's stamp outlives a reinstall
    human = m.looop_cmd("status").stdout
    assert "    reap      looop-reap.timer active, next run in " in human, human
    doctor = m.looop_cmd("doctor")
    assert doctor.returncode == 0, doctor.stdout
    said = [x for x in doctor.stdout.splitlines() if x.startswith("✓ reap timer: ")]
    assert said and said[0].startswith("✓ reap timer: looop-reap.timer active, next run in ")

    # `looop logs` reads the file the drop-in names: %h, and after a change %t, expanded.
    err = m.home / "pulse.err"
    wait_for(lambda: "pulse started" in err.read_text())
    logs = m.looop_cmd("logs", "-n", "1")
    assert logs.returncode == 0 and logs.stdout == err.read_text().splitlines(True)[-1]
    said = f"looop: reading {PULSE}'s StandardError=append:%h/pulse.err, {err}\n"
    assert logs.stderr == said, logs.stderr
    m.drop_in(PULSE, "[Service]\nStandardError=append:%t/looop-%u.err\n", name="zz-log.conf")
    m.systemctl("daemon-reload", check=True)
    m.write(m.runtime_dir / f"looop-{m.user}.err", "a line in the runtime dir\n")
    logs = m.looop_cmd("logs", "-n", "1")
    assert logs.returncode == 0 and logs.stdout == "a line in the runtime dir\n", logs.stderr
    assert logs.stderr.endswith(f"%t/looop-%u.err, {m.runtime_dir}/looop-{m.user}.err\n")

    # The timer stopped by hand: doctor fails naming it, status says it is not active.
    m.systemctl("stop", "looop-reap.timer", check=True)
    doctor = m.looop_cmd("doctor")
    assert doctor.returncode == 1
    assert [x for x in doctor.stdout.splitlines() if x.startswith("✗")] == [
        "✗ reap timer: looop-reap.timer is not active (inactive): dead sessions and stale "
        "claims stay; fix: systemctl --user start looop-reap.timer"
    ]
    assert "looop-reap.timer NOT ACTIVE (inactive)" in m.looop_cmd("status").stdout

    # A crash: status says how the last run ended, not how the restarted one runs.
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: active_pid(m) not in (0, pid), timeout=30)
    code, report = status_json(m)
    assert code == 0 and report["last_run"]["pid"] == pid
    assert report["last_run"]["how"] == "killed by signal KILL"
    assert f"  last run    pid {pid}, " in m.looop_cmd("status").stdout
    # The documented recovery (down, then up through the unit) starts the timer again.
    assert m.looop_cmd("down", timeout=120).returncode == 0
    assert m.looop_cmd("up", timeout=120).returncode == 0
    assert m.prop("looop-reap.timer", "ActiveState") == "active"
    m.looop_cmd("down", timeout=120)


# --- issue 9: a path cannot steer the units ----------------------------------------
def dry_run_units(out: str) -> list[tuple[str, str]]:
    """The units ``looop install --systemd --dry-run`` printed: (file name, text), in order."""
    units = []
    for section in out.rstrip("\n").split("\n\n--- ")[1:]:
        head, _, text = section.partition("\n")
        units.append((Path(head.split(" ", 1)[1]).name, text + "\n"))
    return units


@pytest.mark.parametrize(
    "hostile", ["\n", "\r", os.fsdecode(b"\xff")], ids=["newline", "CR", "invalid UTF-8"]
)
@pytest.mark.parametrize("where", ["data dir", "looop executable"])
def test_a_path_cannot_add_a_directive_that_systemd_analyze_verify_reads(
    hostile: str, where: str, tmp_path: Path
) -> None:
    """Refused when the unit could not hold it; the same path made printable verifies clean."""
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path / "home"),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_RUNTIME_DIR": str(runtime),
    }

    def dry_run(char: str) -> subprocess.CompletedProcess[str]:
        name = os.fsencode(f"x{char}ExecStartPre=touch pwned")
        if where == "data dir":
            binary = os.fsencode(LOOOP_BIN)
            env["LOOOP_DATA_DIR"] = os.fsdecode(os.path.join(os.fsencode(tmp_path), name))
        else:
            bindir = os.path.join(os.fsencode(tmp_path), name)
            os.makedirs(bindir, exist_ok=True)
            binary = os.path.join(bindir, b"looop")
            if not os.path.lexists(binary):
                os.symlink(LOOOP_BIN, binary)
            env["LOOOP_DATA_DIR"] = str(tmp_path / "data")
        return subprocess.run(
            [binary, "install", "--systemd", "--dry-run"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )

    refused = dry_run(hostile)
    assert refused.returncode == 1 and refused.stdout == "", refused.stdout
    assert len(refused.stderr.splitlines()) == 1, refused.stderr
    assert not (tmp_path / "config").exists()

    plain, printable = dry_run("_"), dry_run(" ")
    assert plain.returncode == 0 and printable.returncode == 0, printable.stderr
    unit_dir = tmp_path / "units"
    unit_dir.mkdir()
    expected = dry_run_units(plain.stdout)
    rendered = dry_run_units(printable.stdout)
    assert len(rendered) == len(expected) == 3
    for (name, text), (_, plain_text) in zip(rendered, expected, strict=True):
        (unit_dir / name).write_text(text)
        keys = [k for k, values in unit_settings(text).items() for _ in values]
        assert keys == [k for k, values in unit_settings(plain_text).items() for _ in values]
        assert "ExecStartPre" not in keys
    out = subprocess.run(
        ["systemd-analyze", "--user", "verify", *sorted(map(str, unit_dir.iterdir()))],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert [line for line in out.stderr.splitlines() if "looop" in line] == [], out.stderr


# --- issue 12: logs, restart and reload through the manager --------------------
def test_logs_restart_and_reload_go_through_the_installed_unit(any_manager: Manager) -> None:
    m = any_manager
    config(m, "interval = 1\n")
    m.sensor("restless", "date +%s%N >&2\nexit 1")  # a new failure, so a new line, each beat
    install(m)
    log = unit_log(m)
    wait_for(lambda: len(log.read_text().splitlines()) >= 6, timeout=30)

    # The test drop-in sends the unit's stderr to a file (no journald here):
    # `looop logs` reads the file systemd writes, found through the unit.
    shown = m.looop_cmd("logs", "-n", "5")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert len(lines) == 5 and set(lines) <= set(log.read_text().splitlines()), shown.stdout
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d{4} looop: ", x) for x in lines)

    human = m.looop_cmd("status").stdout
    assert "service     systemd looop.service" in human
    assert "    enabled   enabled" in human and "    active    active (running)" in human

    pid = active_pid(m)
    reloaded = m.looop_cmd("reload", timeout=60)
    assert reloaded.returncode == 0, reloaded.stderr
    assert reloaded.stdout.strip() == "reloaded through systemd" and active_pid(m) == pid
    restarted = m.looop_cmd("restart", timeout=120)
    assert restarted.returncode == 0, restarted.stderr
    assert restarted.stdout.strip() == "restarted through systemd"
    assert active_pid(m) not in (0, pid) and holder(m) == active_pid(m)

    # Without a file output the journal is the log: looop hands over to
    # journalctl for the unit (a stand-in on PATH shows what it was asked).
    m.drop_in(PULSE, "[Service]\nWatchdogSec=2\n")
    m.systemctl("daemon-reload", check=True)
    fake = m.base / "bin" / "journalctl"
    m.write(fake, '#!/bin/sh\necho "journalctl $*"\n', mode=0o755)
    path = f"{fake.parent}:{m.env.get('PATH', '/usr/bin:/bin')}"
    asked = m.looop_cmd("logs", "-n", "7", "-f", env={"PATH": path})
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.strip() == "journalctl --user -u looop.service -n 7 --no-pager -f"
    m.looop_cmd("down", timeout=120)


def test_doctor_passes_under_the_user_manager_and_install_names_lingering_when_off(
    any_manager: Manager,
) -> None:
    m = any_manager
    config(m, 'interval = 3600\n[worker]\ncommand = ["sleep", "{prompt_file}"]\n')
    m.sensor("fine", "echo '{\"signal\": 1}'")
    # No logind runs here: a stand-in loginctl says lingering is off, as on a
    # fresh machine, and install must say what that means and how to fix it.
    fake = m.base / "bin" / "loginctl"
    m.write(fake, "#!/bin/sh\necho no\n", mode=0o755)
    path = {"PATH": f"{fake.parent}:{m.env.get('PATH', '/usr/bin:/bin')}"}
    add_test_drop_in(m)
    out = m.looop_cmd("install", "--systemd", env=path, timeout=120)
    assert out.returncode == 0, out.stderr
    note = [line for line in out.stdout.splitlines() if "lingering" in line]
    assert len(note) == 1 and "stops when you log out" in note[0], out.stdout
    assert note[0].endswith("to keep it running: loginctl enable-linger " + m.user)

    checked = m.looop_cmd("doctor", env=path)
    assert checked.returncode == 1, checked.stdout
    lines = checked.stdout.splitlines()
    assert [x for x in lines if x.startswith("✗")] == [
        "✗ lingering: off: the user manager, and the pulse with it, stops when you log out; "
        f"fix: loginctl enable-linger {m.user}"
    ]
    assert any(x.startswith("✓ installed systemd pulse ") and "runs this looop" in x for x in lines)
    assert any(x.startswith("✓ user manager: systemd answers at ") for x in lines)

    # With lingering on (or logind not there to ask) the same setup is healthy.
    m.write(fake, "#!/bin/sh\necho yes\n", mode=0o755)
    healthy = m.looop_cmd("doctor", env=path)
    assert healthy.returncode == 0, healthy.stdout
    m.looop_cmd("down", timeout=120)


# --- issue 23: concurrent restarts coalesce --------------------------------------
def test_concurrent_restarts_through_the_unit_coalesce_and_none_fails(
    user_manager: Manager,
) -> None:
    m = user_manager
    config(m, "interval = 3600\n")
    m.sensor("slow", "sleep 2; echo 1")  # a start slow enough for the others to arrive during it
    install(m)
    before = active_pid(m)
    done: list[subprocess.CompletedProcess[str]] = []

    def restart() -> threading.Thread:
        caller = threading.Thread(target=lambda: done.append(m.looop_cmd("restart", timeout=120)))
        caller.start()
        return caller

    first = restart()
    # The others come while the first one's new pulse is starting.
    wait_for(lambda: m.prop(PULSE, "ActiveState") == "activating" or done, timeout=60)
    callers = [first, *(restart() for _ in range(3))]
    for caller in callers:
        caller.join(150)
    failed = [(r.returncode, r.stdout, r.stderr) for r in done if r.returncode or r.stderr]
    assert len(done) == 4 and failed == []
    # Those that asked before a newer pulse started take it as theirs: fewer pulses than calls.
    assert any("by a concurrent restart" in r.stdout for r in done), [r.stdout for r in done]
    assert active_pid(m) not in (0, before) and holder(m) == active_pid(m)
    m.looop_cmd("down", timeout=120)
