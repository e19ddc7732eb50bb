"""``looop _ run`` (SPEC §11): one command, recorded before it starts, ended at its timeout,
refused when it cannot be undone; a record whose runner died shows as interrupted."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import struct
import subprocess
import termios
from pathlib import Path

import pytest
from conftest import LOOOP, Processes, Profile, group_gone, run_records, wait_for


def test_run_prints_the_output_exits_with_the_status_and_keeps_a_record(profile: Profile) -> None:
    out = profile.run("_", "run", "--reason", "check", "--", "echo hi; exit 3")
    assert (out.returncode, out.stdout) == (3, "hi\n")
    (record,) = run_records(profile)
    assert record["exit_code"] == 3 and record["cmd"] == "echo hi; exit 3"
    assert record["reason"] == "check" and record["output"] == "hi\n"
    assert record["ended"] >= record["started"]
    assert journal(profile)[-1].endswith(f" run {record['id']}: echo hi; exit 3: check")
    lines = (profile.data / "events.jsonl").read_text().splitlines()
    assert [json.loads(line)["event"] for line in lines] == ["ran"]


def journal(profile: Profile) -> list[str]:
    return (profile.data / "journal.md").read_text().splitlines()


def test_the_timeout_ends_the_whole_process_group(profile: Profile) -> None:
    out = profile.run("_", "run", "--timeout", "1", "--", "sleep 60 & sleep 60; wait", timeout=30)
    assert out.returncode == 124
    (record,) = run_records(profile)
    assert record["timed_out"] is True and record["exit_code"] == 124
    wait_for(lambda: group_gone(record["pgid"]))  # killed; gone once the kernel has reaped it


def test_what_a_finished_command_leaves_in_its_group_is_ended(profile: Profile) -> None:
    out = profile.run("_", "run", "--", "sleep 300 & echo started", timeout=30)
    assert (out.returncode, out.stdout) == (0, "started\n")
    wait_for(lambda: group_gone(run_records(profile)[0]["pgid"]))


def test_allow_dangerous_runs_it_and_journals_that(profile: Profile, tmp_path: Path) -> None:
    stub = tmp_path / "bin" / "sudo"
    stub.parent.mkdir()
    stub.write_text('#!/bin/sh\necho stub sudo "$@"\n')
    stub.chmod(0o755)
    env = {**profile.env, "PATH": f"{stub.parent}:{os.environ['PATH']}"}
    out = profile.run("_", "run", "--allow-dangerous", "--", "sudo", "true", env=env)
    assert (out.returncode, out.stdout) == (0, "stub sudo true\n")
    assert run_records(profile)[0]["allowed_dangerous"] is True
    assert "allowed dangerous" in journal(profile)[-1]


def test_a_command_that_closes_its_output_is_still_waited_for_and_timed_out(
    profile: Profile,
) -> None:
    done = profile.run("_", "run", "--", "echo a; exec >&- 2>&-; sleep 0.3; exit 5")
    assert (done.returncode, done.stdout, done.stderr) == (5, "a\n", "")
    out = profile.run("_", "run", "--timeout", "1", "--", "exec >&- 2>&-; sleep 60", timeout=30)
    assert (out.returncode, out.stderr) == (124, "")
    wait_for(lambda: group_gone(run_records(profile)[-1]["pgid"]))


def test_only_the_last_64_kib_of_output_are_kept(profile: Profile) -> None:
    out = profile.run("_", "run", "--", "head -c 200000 /dev/zero | tr '\\0' a; echo END")
    assert out.returncode == 0 and len(out.stdout) == 200004
    (record,) = run_records(profile)
    assert record["truncated"] is True and len(record["output"]) == 64 * 1024
    assert record["output"].endswith("aEND\n")


def test_a_non_blocking_stdout_that_fills_loses_no_output(profile: Profile) -> None:
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)  # a caller may hand its pipe over non-blocking
    with open(read_end, "rb") as reader:
        runner = profile.popen(
            "_", "run", "--", "head -c 200000 /dev/zero | tr '\\0' a; echo END", stdout=write_end
        )
        os.close(write_end)
        # Read nothing until the pipe is full: the run's writes meet a full pipe.
        wait_for(lambda: _unread(reader.fileno()) >= 65536 or runner.poll() is not None)
        received = reader.read()
    assert runner.wait(30) == 0, runner.stderr and runner.stderr.read()
    assert len(received) == 200004 and received.endswith(b"aEND\n")


def _unread(fd: int) -> int:
    """How many bytes wait in the pipe ``fd`` reads from."""
    return int(struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0])


def test_a_run_killed_with_its_caller_shows_as_interrupted_in_state(
    profile: Profile, procs: Processes
) -> None:
    runner = procs.add(profile.popen("_", "run", "--", "sleep 120"))
    wait_for(lambda: any("pgid" in r for r in run_records(profile)))
    (record,) = run_records(profile)
    try:
        state = profile.state()
        assert [r["state"] for r in state["runs"]] == ["running"]
        runner.send_signal(signal.SIGKILL)
        runner.wait(10)
        state = profile.state()
        assert [(r["id"], r["state"]) for r in state["runs"]] == [(record["id"], "interrupted")]
    finally:
        os.killpg(record["pgid"], signal.SIGKILL)


def test_sigterm_to_run_ends_the_command_and_records_the_signal(
    profile: Profile, procs: Processes
) -> None:
    runner = procs.add(profile.popen("_", "run", "--", "sleep 120"))
    wait_for(lambda: any("pgid" in r for r in run_records(profile)))
    runner.send_signal(signal.SIGTERM)
    assert runner.wait(30) == 128 + signal.SIGTERM
    (record,) = run_records(profile)
    assert record["signal"] == "SIGTERM"
    wait_for(lambda: group_gone(record["pgid"]))


@pytest.mark.root("mounts a small tmpfs")
def test_a_run_in_a_read_only_data_dir_is_one_line_and_runs_nothing(
    profile: Profile, tiny_fs: Path
) -> None:
    profile.run("_", "state")
    env = {**profile.env, "LOOOP_DATA_DIR": str(tiny_fs)}
    subprocess.run([LOOOP, "_", "state"], env=env, capture_output=True, check=False)
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_fs)], check=True)
    try:
        out = subprocess.run(
            [LOOOP, "_", "run", "--", f"touch {tiny_fs.parent}/ran"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(tiny_fs)], check=True)
    assert out.returncode == 1, out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Read-only" in out.stderr
    assert not (tiny_fs.parent / "ran").exists()


def test_the_command_gets_the_environment_sensors_and_workers_get(profile: Profile) -> None:
    env = {**profile.env, "NOTIFY_SOCKET": "/run/user/0/systemd/notify", "MINE": "kept"}
    out = profile.run("_", "run", "--", "env", env=env)
    assert out.returncode == 0, out.stderr
    seen = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)
    assert seen["LOOOP_DATA_DIR"] == os.path.realpath(profile.data)
    assert seen["LOOOP_CLAIMS_DIR"] and seen["LOOOP_BIN"] and seen["LOOOP_CONFIG"]
    assert seen["MINE"] == "kept"
    assert "NOTIFY_SOCKET" not in seen  # the service manager's channel is the pulse's alone
