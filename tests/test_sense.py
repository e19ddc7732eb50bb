"""One beat through the installed ``looop sense``: seeding, sensor failures, limits."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import LOOOP, Processes, Profile, pid_alive, strace_prefix, wait_for


def test_fresh_data_dir_is_seeded_once(profile: Profile) -> None:
    out = profile.run("sense")
    assert out.returncode == 0, out.stderr
    seeded = ["PLAYBOOK.md", "goals/setup.md", "sensors/today.sh", ".gitignore"]
    for name in seeded:
        assert (profile.data / name).is_file(), name
    for name in ["goals/archive", "snapshots", "sessions", "claims", "asks", "answers", "reports"]:
        assert (profile.data / name).is_dir(), name
    assert os.access(profile.data / "sensors/today.sh", os.X_OK)
    assert profile.snapshot("sensor-today")["signal"]["date"] == time.strftime("%Y-%m-%d")
    assert profile.config.is_file()

    before = {name: (profile.data / name).stat().st_mtime_ns for name in seeded}
    (profile.data / "PLAYBOOK.md").write_text("# mine\n")
    (profile.data / "goals/setup.md").unlink()
    out = profile.run("sense")
    assert out.returncode == 0, out.stderr
    assert (profile.data / "PLAYBOOK.md").read_text() == "# mine\n"
    assert not (profile.data / "goals/setup.md").exists(), "a deleted starter came back"
    for name in ("sensors/today.sh", ".gitignore"):
        assert (profile.data / name).stat().st_mtime_ns == before[name]


def test_failing_sensor_becomes_an_error_reading_with_stderr(profile: Profile) -> None:
    profile.sensor("boom", "echo kaboom >&2\nexit 3")
    profile.sensor("fine", 'echo \'{"signal": {"ok": 1}}\'')
    out = profile.run("sense")
    assert out.returncode == 0, out.stderr
    assert "failed: boom" in out.stdout
    reading = profile.snapshot("sensor-boom")
    assert reading["signal"] == {"error": True, "exit_code": 3}
    assert "kaboom" in reading["detail"]["stderr"]
    assert "kaboom" in (profile.data / "snapshots/sensor-boom.err").read_text()
    assert profile.snapshot("sensor-fine") == {"signal": {"ok": 1}}
    assert not (profile.data / "snapshots/sensor-fine.err").exists()


def test_timeout_ends_the_whole_process_group(profile: Profile) -> None:
    pidfile = profile.root / "grandchild.pid"
    profile.sensor("hang", f"sleep 300 &\necho $! > {pidfile}\nsleep 300")
    profile.write_config("sensor_timeout = 1\n")
    out = profile.run("sense", timeout=60)  # bounded by the sensor's timeout, not by sleep 300
    assert out.returncode == 0, out.stderr
    reading = profile.snapshot("sensor-hang")
    assert reading["signal"] == {"error": True, "exit_code": 124}
    grandchild = int(pidfile.read_text())
    assert not pid_alive(grandchild), "the sensor's background child survived the beat"


def test_sensor_that_exits_leaves_no_background_process(profile: Profile) -> None:
    pidfile = profile.root / "left.pid"
    profile.sensor("leaky", f"sleep 300 >/dev/null 2>&1 &\necho $! > {pidfile}\necho '{{}}'")
    assert profile.run("sense").returncode == 0
    assert profile.snapshot("sensor-leaky") == {}
    assert not pid_alive(int(pidfile.read_text()))


def _beat_peak_rss_kib(profile: Profile) -> int:
    """Peak RSS of one ``looop sense`` child, from the kernel's accounting."""
    proc = subprocess.Popen(
        [LOOOP, "sense"], env=profile.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0
    return usage.ru_maxrss


def test_flooding_sensor_is_capped_and_costs_no_memory(profile: Profile) -> None:
    profile.sensor("quiet", "echo '{}'")
    idle = min(_beat_peak_rss_kib(profile) for _ in range(2))
    profile.sensor("flood", "head -c 50000000 /dev/zero | tr '\\0' x")
    peaks, signals = [], []
    for _ in range(2):
        peaks.append(_beat_peak_rss_kib(profile))
        reading = profile.snapshot("sensor-flood")
        signals.append(reading["signal"])
        assert reading["detail"]["max_bytes"] == 8192
        assert reading["detail"]["bytes_read"] > 8192
    assert signals[0] == signals[1] == {"error": True, "too_large": True}
    assert max(peaks) - idle < 4 * 1024, f"peak {max(peaks)} KiB vs idle {idle} KiB"


def test_output_that_is_not_json_is_an_invalid_json_reading(profile: Profile) -> None:
    profile.sensor("garbage", "echo 'this is not json'")
    profile.sensor("two", "echo '{}'; echo '{}'")
    profile.sensor("binary", "printf '\\377\\376'")
    profile.sensor("nan", "echo NaN")
    assert profile.run("sense").returncode == 0
    for name in ("garbage", "two", "binary", "nan"):
        reading = profile.snapshot(f"sensor-{name}")
        assert reading["signal"] == {"error": True, "invalid_json": True}, name
    assert "this is not json" in profile.snapshot("sensor-garbage")["detail"]["excerpt"]


def test_sensor_that_is_not_executable_is_reported(profile: Profile) -> None:
    profile.sensor("noexec", "echo '{}'", mode=0o644)
    out = profile.run("sense")
    assert out.returncode == 0
    reading = profile.snapshot("sensor-noexec")
    assert reading["signal"] == {"error": True, "exit_code": 126}
    assert "not executable" in reading["detail"]["message"]


def test_sensor_environment_and_working_directory(profile: Profile) -> None:
    profile.sensor(
        "env",
        'printf \'{"signal": {"cwd": "%s", "data": "%s", "bin": "%s", "config": "%s", '
        '"claims": "%s", "reports": "%s", "notify": "%s", "wd": "%s"}}\' "$PWD" '
        '"$LOOOP_DATA_DIR" "$LOOOP_BIN" "$LOOOP_CONFIG" "$LOOOP_CLAIMS_DIR" "$LOOOP_REPORTS_DIR" '
        '"${NOTIFY_SOCKET:-}" "${WATCHDOG_USEC:-}"',
    )
    env = dict(profile.env, NOTIFY_SOCKET="/nonexistent/notify", WATCHDOG_USEC="1000000")
    assert profile.run("sense", env=env).returncode == 0
    signal = profile.snapshot("sensor-env")["signal"]
    assert signal["cwd"] == str(profile.data) == signal["data"]
    assert signal["config"] == str(profile.config)
    assert signal["claims"] == str(profile.data / "claims")
    assert signal["reports"] == str(profile.data / "reports")
    assert os.path.isabs(signal["bin"]) and os.path.basename(signal["bin"]) == "looop"
    assert signal["notify"] == "" and signal["wd"] == ""


def test_sensors_run_concurrently_up_to_the_limit(profile: Profile) -> None:
    log = profile.root / "spans"
    log.mkdir()
    (profile.data / "sensors").mkdir(parents=True)
    for i in range(7):
        profile.sensor(
            f"s{i}",
            f"date +%s.%N > {log}/s{i}.start\nsleep 1\ndate +%s.%N > {log}/s{i}.end\necho '{{}}'",
        )
    profile.write_config("sensor_concurrency = 3\n")
    out = profile.run("sense", "--json")
    record = json.loads(out.stdout)
    assert record["failed"] == []
    spans = [
        (float((log / f"s{i}.start").read_text()), float((log / f"s{i}.end").read_text()))
        for i in range(7)
    ]
    overlap = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
    assert overlap == 3, f"{overlap} sensors ran at once with sensor_concurrency = 3"


def test_sense_refuses_while_another_process_holds_the_lock(profile: Profile) -> None:
    profile.sensor("slow", "sleep 3\necho '{}'")
    first = profile.popen("sense")
    try:
        lock_files = []
        deadline = time.monotonic() + 10
        while not lock_files and time.monotonic() < deadline:
            lock_files = list(profile.runtime.glob("*.pid")) if profile.runtime.exists() else []
            time.sleep(0.02)
        assert lock_files, "the first sense never took the lock"
        second = profile.run("sense")
        # A one-off sense is not a pulse and is not asked to beat: the second
        # says who holds the lock and gives up, never beating beside it.
        assert second.returncode == 1, second.stderr
        assert f"a beat is already running (pid {first.pid})" in second.stderr
    finally:
        first.wait(timeout=30)
    assert first.returncode == 0


def test_output_that_breaks_the_parser_or_utf8_is_a_reading(profile: Profile) -> None:
    profile.sensor("deep", 'python3 -c \'print("[" * 3000 + "]" * 3000)\'')
    profile.sensor("surrogate", 'printf \'{"signal": "\\\\ud800"}\'')
    out = profile.run("sense")
    assert out.returncode == 0, out.stderr
    assert profile.snapshot("sensor-deep")["signal"] == {"error": True, "invalid_json": True}
    assert profile.snapshot("sensor-surrogate")["signal"] == "\ud800"
    assert profile.state()["world_hash"]


def test_a_stopped_sense_ends_its_sensors(profile: Profile) -> None:
    pidfile = profile.root / "bg.pid"
    profile.sensor("slow", f"sleep 300 &\necho $! > {pidfile}\nwait")
    sense = profile.popen("sense")
    try:
        deadline = time.monotonic() + 15
        while not pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert pidfile.exists()
        down = profile.run("down")
        assert down.returncode == 0
        assert "a one-off beat holds the lock" in down.stdout
        assert sense.poll() is None, "down stopped a one-off beat"
        sense.send_signal(signal.SIGTERM)
        assert sense.wait(timeout=15) != 0
        assert "interrupted by SIGTERM" in sense.stderr.read()
    finally:
        if sense.poll() is None:
            sense.kill()
            sense.wait()
    assert not pid_alive(int(pidfile.read_text()))


# Each sensor starts a descendant that escapes its process group in its own way,
# and waits until that descendant has written its pid (so the sensor's exit is
# what orphans it, or, for the double forks, it is orphaned while the sensor runs).
ESCAPES = {
    "setsid": "setsid sh -c 'echo $$ >> {pids}; exec sleep 600' &",
    "doublefork": "(sh -c 'echo $$ >> {pids}; exec sleep 600' &) &",
    "setpgid": (
        "python3 -c 'import os, time; os.setpgid(0, 0); "
        'open("{pids}", "a").write(f"{{os.getpid()}}\\n"); time.sleep(600)\' &'
    ),
    "forksetsid": "(setsid sh -c 'echo $$ >> {pids}; exec sleep 600' &) &",
}


def _escaping_sensors(profile: Profile) -> dict[str, Path]:
    pidfiles = {}
    for name, line in ESCAPES.items():
        pids = profile.root / f"{name}.pids"
        pidfiles[name] = pids
        profile.sensor(
            name,
            f"{line.format(pids=pids)}\n"
            f"while [ ! -s {pids} ]; do sleep 0.01; done\necho '{{\"signal\": 1}}'",
        )
    return pidfiles


@pytest.fixture
def escapees(profile: Profile) -> Iterator[dict[str, Path]]:
    """The escaping sensors' pid files; any escapee still alive is killed at teardown."""
    pidfiles = _escaping_sensors(profile)
    try:
        yield pidfiles
    finally:
        for path in pidfiles.values():
            for pid in path.read_text().split() if path.exists() else []:
                if pid_alive(int(pid)):
                    os.kill(int(pid), signal.SIGKILL)


def _escapees(pidfiles: dict[str, Path]) -> dict[str, list[int]]:
    found = {name: [int(p) for p in path.read_text().split()] for name, path in pidfiles.items()}
    assert all(found.values()), found
    return found


def test_no_sensor_descendant_outlives_a_one_off_beat_even_one_that_escaped_its_group(
    profile: Profile, escapees: dict[str, Path]
) -> None:
    pidfiles = escapees
    out = profile.run("sense", "--json", timeout=60)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["failed"] == []
    alive = {n: [p for p in pids if pid_alive(p)] for n, pids in _escapees(pidfiles).items()}
    assert not any(alive.values()), f"survived the beat: {alive}"
    for name in ESCAPES:
        assert profile.snapshot(f"sensor-{name}") == {"signal": 1}


def test_no_sensor_descendant_outlives_a_beat_of_the_running_pulse(
    profile: Profile, procs: Processes, escapees: dict[str, Path]
) -> None:
    pidfiles = escapees
    profile.write_config("interval = 3600\n")
    pulse = procs.add(profile.popen("pulse"))
    # The beat record is written once the beat's sensors are done with.
    wait_for(
        lambda: os.path.exists(profile.paths.beat_file) or pulse.poll() is not None, timeout=60
    )
    assert pulse.poll() is None, pulse.stderr.read() if pulse.stderr else ""
    alive = {n: [p for p in pids if pid_alive(p)] for n, pids in _escapees(pidfiles).items()}
    assert not any(alive.values()), f"survived the pulse's beat: {alive}"
    # And the pulse keeps no zombie of them: every child it has is gone.
    tasks = Path(f"/proc/{pulse.pid}/task").glob("*/children")
    children = [pid for task in tasks for pid in task.read_text().split()]
    assert children == [], f"the pulse still has children {children}"


def test_sensors_wait_for_a_descriptor_slot_instead_of_failing(profile: Profile) -> None:
    (profile.data / "sensors").mkdir(parents=True)
    for i in range(300):
        profile.sensor(f"s{i:03d}", "echo '{\"signal\": 1}'")
    profile.write_config("sensor_concurrency = 200\n")
    profile.run("sense")  # seed the data dir under the ordinary limit
    out = subprocess.run(
        ["sh", "-c", f"ulimit -n 64; exec {LOOOP} sense --json"],
        env=profile.env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 0, out.stderr
    record = json.loads(out.stdout)
    assert record["failed"] == [], record["failed"][:5]
    assert record["ok"] == record["total"] == 301  # the starter sensor too
    for i in range(300):
        assert profile.snapshot(f"sensor-s{i:03d}") == {"signal": 1}


def test_a_crlf_shebang_is_reported_with_the_file_and_the_fix(profile: Profile) -> None:
    path = profile.data / "sensors" / "dos.sh"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"#!/bin/sh\r\necho '{}'\r\n")
    path.chmod(0o755)
    profile.sensor("fine", "echo '{}'")
    out = profile.run("sense")
    assert out.returncode == 0, out.stderr
    reading = profile.snapshot("sensor-dos")
    assert reading["signal"] == {"error": True, "exit_code": 127}
    message = "sensors/dos.sh has a CRLF line ending in its #! line; convert it with dos2unix"
    assert reading["detail"]["message"] == message
    assert message in (profile.data / "snapshots/sensor-dos.err").read_text()
    assert profile.snapshot("sensor-fine") == {}


def test_a_missing_interpreter_is_named_in_the_reading(profile: Profile) -> None:
    path = profile.data / "sensors" / "nointerp.sh"
    path.parent.mkdir(parents=True)
    path.write_text("#!/no/such/shell -e\necho '{}'\n")
    path.chmod(0o755)
    assert profile.run("sense").returncode == 0
    reading = profile.snapshot("sensor-nointerp")
    assert reading["signal"] == {"error": True, "exit_code": 127}
    assert reading["detail"]["message"] == (
        "sensors/nointerp.sh names /no/such/shell in its #! line, which does not exist"
    )


def test_a_byte_order_mark_before_the_shebang_is_named_in_the_reading(profile: Profile) -> None:
    path = profile.data / "sensors" / "bom.sh"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\xef\xbb\xbf#!/bin/sh\necho '{}'\n")
    path.chmod(0o755)
    assert profile.run("sense").returncode == 0
    reading = profile.snapshot("sensor-bom")
    assert reading["signal"]["error"] is True
    assert reading["detail"]["message"] == (
        "sensors/bom.sh starts with a byte-order mark before its #! line; save it without one"
    )


def _failing_listing(sensors: Path) -> list[str]:
    """A command prefix under which every listing of ``sensors`` fails with EIO."""
    trace = ["-f", "-P", str(sensors), "-e", "trace=getdents64"]
    return strace_prefix(*trace, "-e", "inject=getdents64:error=EIO")


def test_a_listing_of_sensors_that_fails_keeps_the_last_world(profile: Profile) -> None:
    profile.sensor("probe", "echo '{\"signal\": 1}'")
    assert profile.run("sense").returncode == 0
    before = profile.state()["world_hash"]
    sensors = profile.data / "sensors"
    out = subprocess.run(
        [*_failing_listing(sensors), LOOOP, "sense"],
        env=profile.env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    # Not "0 sensors ok": the failure is said, naming sensors/, and nothing is published.
    assert out.returncode == 1, out.stdout
    assert out.stderr == f"looop: {os.path.realpath(sensors)}: Input/output error\n"
    assert out.stdout == ""
    assert profile.snapshot("sensor-probe") == {"signal": 1}
    assert profile.state()["world_hash"] == before


def test_the_pulse_keeps_the_last_world_when_listing_sensors_fails(
    profile: Profile, procs: Processes
) -> None:
    profile.sensor("probe", "echo '{\"signal\": 1}'")
    assert profile.run("sense").returncode == 0
    profile.write_config("interval = 3600\n")
    sensors = profile.data / "sensors"
    traced = procs.add(
        subprocess.Popen(
            [*_failing_listing(sensors), LOOOP, "pulse"],
            env=profile.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
    )
    # The pulse is strace's child: it is ended by its own pid, whatever happens.
    pulse = wait_for(lambda: _pulse_pid(profile) or traced.poll() is not None)
    assert traced.poll() is None, traced.stderr.read() if traced.stderr else ""
    try:

        def failed_beat() -> dict[str, object] | None:
            record = next(profile.runtime.glob("*.beat.json"), None)
            found = json.loads(record.read_text()) if record is not None else {}
            return found if found.get("pid") == pulse else None

        record = wait_for(failed_beat, timeout=60)
        assert record["error"] == f"{os.path.realpath(sensors)}: Input/output error"
        assert profile.snapshot("sensor-probe") == {"signal": 1}
    finally:
        if pid_alive(pulse):
            os.kill(pulse, signal.SIGTERM)
    assert traced.wait(timeout=30) == 0
    assert traced.stderr is not None
    said = f"warning: the beat fails: {os.path.realpath(sensors)}: Input/output error"
    log = traced.stderr.read()
    assert said in log, log


def _pulse_pid(profile: Profile) -> int | None:
    """The pid a running pulse wrote beside its lock, once it has."""
    for path in profile.runtime.glob("*.pid") if profile.runtime.exists() else []:
        fields = path.read_text().split()
        if len(fields) > 1 and fields[1] == "pulse":
            return int(fields[0])
    return None


def _traced_sense(profile: Profile, trace: Path) -> dict[int, list[str]]:
    """``looop sense`` under ``strace -f``: each process's system calls by pid, in order."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is needed to count a beat's system calls")
    run = subprocess.run(
        [strace, "-f", "-qq", "-s", "64", "-o", str(trace), LOOOP, "sense"],
        env=profile.env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert run.returncode == 0, run.stderr
    calls: dict[int, list[str]] = {}
    for line in trace.read_text(errors="replace").splitlines():
        pid, _, call = line.partition(" ")
        call = call.lstrip()  # the pid is padded to a width
        if pid.isdigit() and call[:1].isalpha():
            calls.setdefault(int(pid), []).append(call)
    return calls


def test_a_beat_does_for_each_sensor_only_what_running_it_takes(
    profile: Profile, tmp_path: Path
) -> None:
    """The runner opens a sensor's script (its head, for a cadence) and its reading (written,
    or read and linked when unchanged) once each per beat, and nothing else per sensor; the
    lifeline's shell is never woken per sensor (it reads only when looop has died); and
    nothing is ``fsync``-ed: readings are scratch, the runtime dir's records volatile.
    """
    for i in range(40):
        profile.sensor(f"s{i:02d}", "echo '{\"signal\": 1}'")
    assert profile.run("sense").returncode == 0  # a world to compare the readings with
    calls = _traced_sense(profile, tmp_path / "trace")
    runner = next(iter(calls))  # strace's first process: looop itself
    assert [c for c in calls[runner] if c.startswith(("fsync(", "fdatasync("))] == []
    opened = [c for c in calls[runner] if c.startswith("openat(")]
    for i in range(40):
        assert sum(1 for c in opened if f"s{i:02d}." in c) <= 2, [
            c for c in opened if f"s{i:02d}." in c
        ]
    guardian = [
        made
        for made in calls.values()
        if any(c.startswith('execve("/bin/sh", ["/bin/sh", "-c"') for c in made)
    ]
    assert len(guardian) == 1, "one lifeline per beat"
    reads = [c for c in guardian[0] if c.startswith("read(")]
    assert len(reads) < 10, reads
