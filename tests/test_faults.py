"""Under failing system calls and crash points, looop keeps its promise.

The promise: one line naming the file and the reason, an exit code from the
table, every file whole (as it was or wholly new), no torn line, and the
next run succeeding. ``faults`` holds the machinery; here a seeded sample of
its cases (the whole sweep is ``bench/fault_sweep.py``), then single faults
aimed with ``strace -P`` (only calls naming that path fail) at the moments a
verb's effects are ordered around: an answer and its journal line, a command
and its record, a worker's start and its supervisor, an ask and the listing
it resumes from.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import subprocess
from pathlib import Path

import fault_commands
import faults
import pytest
from conftest import LOOOP, Processes, Profile, pid_alive, strace_prefix, wait_for

MISSING = faults.have_tools()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")

Ran = subprocess.CompletedProcess[str]
SAMPLE = 7  # cases per command: about three minutes for all of them on two cores
SEED = 22


@pytest.mark.parametrize("name", sorted(fault_commands.COMMANDS))
def test_a_sample_of_failing_calls_and_crash_points_keeps_the_promise(
    name: str, tmp_path: Path
) -> None:
    command = fault_commands.COMMANDS[name]
    base = faults.baseline(command, tmp_path / "base")
    cases = faults.cases_for(command, base.box, base.after, tmp_path / "base")
    picked = random.Random(f"{SEED}-{name}").sample(cases, min(SAMPLE, len(cases)))
    broken = []
    for index, case in enumerate(picked):
        result = faults.run_case(base, case, tmp_path / f"case-{index}")
        broken += [f"{case.label}: {b.kind}: {b.detail}" for b in result.breaches]
    assert not broken, "\n".join(broken)


def _traced(profile: Profile, strace: list[str], *args: str) -> Ran:
    """``looop ARGS`` under ``strace STRACE`` (its trace to /dev/null)."""
    return subprocess.run(
        [*strace_prefix(*strace), LOOOP, *args],
        env=profile.env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def _under(profile: Profile, path: Path, inject: str, *args: str) -> Ran:
    """``looop ARGS`` with ``inject`` applied only to the calls naming ``path``."""
    return _traced(profile, ["-f", "-P", str(path), "-e", f"inject={inject}"], *args)


def _one_line_naming(out: Ran, path: Path) -> str:
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("looop: "), out.stderr
    assert str(path) in lines[0], out.stderr
    return lines[0]


WHICH = ("_", "ask", "w1", "--prompt", "which?", "--timeout", "0")


def _ask(profile: Profile, worker: str, prompt: str) -> None:
    out = profile.run("_", "ask", worker, "--prompt", prompt, "--timeout", "0")
    assert out.returncode == 124, out.stderr


def test_an_answer_whose_journal_line_failed_is_completed_by_its_retry(profile: Profile) -> None:
    _ask(profile, "w1", "ok?")
    journal = profile.data / "journal.md"

    failed = _under(profile, journal, "openat:error=ENOSPC", "_", "answer", "w1-1", "yes")

    assert failed.returncode == 1
    _one_line_naming(failed, journal)
    retry = profile.run("_", "answer", "w1-1", "yes")
    assert retry.returncode == 0, retry.stderr
    again = profile.run("_", "answer", "w1-1", "yes")
    assert again.returncode == 0, again.stderr
    lines = [line for line in journal.read_text().splitlines() if "answer w1-1" in line]
    assert len(lines) == 1 and lines[0].endswith("answer w1-1: yes"), lines
    answer = json.loads((profile.data / "answers" / "w1-1.json").read_text())
    assert answer["answer"] == "yes"


def test_another_answer_to_an_answered_ask_is_still_refused(profile: Profile) -> None:
    _ask(profile, "w1", "ok?")
    assert profile.run("_", "answer", "w1-1", "yes").returncode == 0

    other = profile.run("_", "answer", "w1-1", "no")

    assert other.returncode == 1 and "already answered" in other.stderr
    assert profile.run("_", "answer", "w1-1", "no", "--force").returncode == 0


def test_a_failing_look_at_the_ask_is_that_failure_not_no_such_ask(profile: Profile) -> None:
    _ask(profile, "w1", "ok?")
    ask = profile.data / "asks" / "w1-1.json"

    out = _under(profile, ask, "newfstatat:error=EIO", "_", "answer", "w1-1", "yes")

    assert out.returncode == 1
    assert "Input/output error" in _one_line_naming(out, ask)
    assert not (profile.data / "answers" / "w1-1.json").exists()


def test_a_failing_listing_of_the_asks_raises_no_second_ask(profile: Profile) -> None:
    _ask(profile, "w1", "which?")
    asks = profile.data / "asks"

    out = _under(profile, asks, "getdents64:error=EIO", *WHICH)

    assert out.returncode == 1
    assert "Input/output error" in _one_line_naming(out, asks)
    assert sorted(os.listdir(asks)) == ["w1-1.json"]


def _killed_by(pidfile: Path) -> None:
    """Kill the process whose pid is in ``pidfile``, if it runs (a test's leftover)."""
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(pidfile.read_text()), signal.SIGKILL)


def test_a_command_whose_run_record_cannot_be_written_is_not_left_running(
    profile: Profile,
) -> None:
    assert profile.run("_", "goal", "write", "g0", "seed").returncode == 0
    pidfile = profile.root / "child.pid"
    try:
        # Not -f: only looop _ run is traced, and its first rename is the record's update.
        out = _traced(
            profile,
            ["-e", "trace=rename", "-e", "inject=rename:error=EIO:when=1"],
            *("_", "run", "--", f"echo $$ > {pidfile}; exec sleep 60"),
        )
        assert out.returncode == 1, out.stdout + out.stderr
        assert "runs/" in _one_line_naming(out, profile.data)
        if pidfile.exists() and pidfile.read_text().strip():
            wait_for(lambda: not pid_alive(int(pidfile.read_text())))
    finally:
        _killed_by(pidfile)


def test_a_worker_whose_record_fails_is_not_said_to_have_never_run(
    profile: Profile, procs: Processes
) -> None:
    pidfile = profile.root / "worker.pid"
    command = json.dumps(["sh", "-c", f"echo $$ > {pidfile}; exec sleep 60"])
    profile.write_config(f'[worker]\ncommand = {command}\nsupervisor = "detached"\n')
    try:
        assert profile.run("_", "worker", "start", "w1", "task").returncode == 0
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip())
        assert profile.run("_", "kill", "w1").returncode == 0
        wait_for(lambda: (profile.data / "sessions" / "w1" / "status.json").exists())
        pidfile.unlink()
        # Its supervisor again, by hand: its renames are its pid into the meta,
        # the wake-up poke, then the group into the meta, which fails.
        out = _traced(
            profile,
            ["-e", "trace=rename", "-e", "inject=rename:error=EIO:when=3"],
            *("_", "supervise", "w1"),
        )
        status = json.loads((profile.data / "sessions" / "w1" / "status.json").read_text())
        assert status["exit_code"] != 126 and status.get("reason") != "not run", (status, out)
        if pidfile.exists() and pidfile.read_text().strip():
            wait_for(lambda: not pid_alive(int(pidfile.read_text())))
    finally:
        _killed_by(pidfile)


def test_a_worker_start_killed_part_way_is_retried_without_a_trace(profile: Profile) -> None:
    profile.write_config('[worker]\ncommand = ["true"]\nsupervisor = "detached"\n')
    assert profile.run("_", "goal", "write", "g0", "seed").returncode == 0
    env_file = profile.data / "sessions" / "w1" / "env.json"

    # Killed at its first fork: the session written, no supervisor started.
    killed = _traced(
        profile,
        ["-e", "trace=clone,clone3", "-e", "inject=clone,clone3:signal=KILL:when=1"],
        *("_", "worker", "start", "w1", "t"),
    )

    assert killed.returncode == -signal.SIGKILL and env_file.exists()
    retry = profile.run("_", "worker", "start", "w1", "t")
    assert retry.returncode == 0, retry.stderr
    wait_for(lambda: (profile.data / "sessions" / "w1" / "status.json").exists())
    assert not env_file.exists()


def test_a_worker_start_that_fails_leaves_no_session(profile: Profile) -> None:
    profile.write_config('[worker]\ncommand = ["true"]\nsupervisor = "detached"\n')
    assert profile.run("_", "goal", "write", "g0", "seed").returncode == 0
    session = profile.data / "sessions" / "w1"

    # A new session is written aside (meta, prompt, env: three renames) and
    # renamed into place: that fourth rename fails.
    failing = ["-f", "-e", "trace=rename", "-e", "inject=rename:error=EIO:when=4"]
    out = _traced(profile, failing, "_", "worker", "start", "w1", "t")

    assert out.returncode == 1
    _one_line_naming(out, session)
    assert [p.name for p in session.parent.iterdir() if not p.name.startswith(".")] == []
    assert [p.name for p in session.parent.iterdir() if p.name.endswith(".tmp")] == []


def test_a_worker_start_that_cannot_list_sessions_says_so_in_one_line(profile: Profile) -> None:
    profile.write_config('[worker]\ncommand = ["true"]\nsupervisor = "detached"\n')
    assert profile.run("_", "goal", "write", "g0", "seed").returncode == 0
    sessions = profile.data / "sessions"
    sessions.mkdir(exist_ok=True)

    # Every open of sessions/ fails: the sweep of killed starts finds nothing
    # to do, and the listing of live workers is the failure said.
    out = _under(profile, sessions, "openat:error=EIO", "_", "worker", "start", "w1", "t")

    assert out.returncode == 1
    _one_line_naming(out, sessions)
    assert "Traceback" not in out.stderr


def test_a_sense_that_cannot_publish_says_so_on_stderr(profile: Profile) -> None:
    assert profile.run("sense").returncode == 0

    # Its one directory made at a descriptor is the new generation of snapshots.
    inject = ["-e", "trace=mkdirat", "-e", "inject=mkdirat:error=EIO:when=1"]
    out = _traced(profile, inject, "sense")

    assert out.returncode == 1
    # The generation it was writing: published snapshots live under data/.snapshots.
    line = _one_line_naming(out, profile.data / ".snapshots" / "gen-")
    assert "Input/output error" in line and "snapshots" in line


def test_a_reap_that_cannot_remove_a_session_says_so_on_stderr(profile: Profile) -> None:
    profile.write_config('[worker]\ncommand = ["true"]\nsupervisor = "detached"\n')
    assert profile.run("_", "worker", "start", "w9", "t").returncode == 0
    wait_for(lambda: (profile.data / "sessions" / "w9" / "status.json").exists())

    inject = ["-e", "trace=unlinkat", "-e", "inject=unlinkat:error=EIO:when=1"]
    out = _traced(profile, inject, "reap", "--ttl", "0")

    assert out.returncode == 1
    # Renamed out of sight before it is emptied: the line names where it was left, and whose.
    line = _one_line_naming(out, profile.data / "sessions" / ".reaping-")
    assert "Input/output error" in line and "session w9" in line


def test_a_supervisor_that_cannot_detach_is_one_line_naming_why(profile: Profile) -> None:
    profile.write_config('[worker]\ncommand = ["true"]\nsupervisor = "detached"\n')
    assert profile.run("_", "goal", "write", "g0", "seed").returncode == 0
    log = profile.data / "sessions" / "w1" / "supervisor.log"

    out = _under(profile, log, "openat:error=EIO", "_", "worker", "start", "w1", "t")

    assert out.returncode == 1
    assert "Input/output error" in _one_line_naming(out, log)
    assert not (profile.data / "sessions" / "w1").exists()


def test_a_supervisor_that_cannot_take_its_session_over_leaves_it_dead(profile: Profile) -> None:
    profile.write_config('[worker]\ncommand = ["true"]\nsupervisor = "detached"\n')
    status = profile.data / "sessions" / "w1" / "status.json"
    assert profile.run("_", "worker", "start", "w1", "t").returncode == 0
    wait_for(status.exists)
    meta = profile.data / "sessions" / "w1" / "meta.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "pid": None}))
    status.unlink()  # as a start leaves it: "starting", until its supervisor writes its pid

    inject = ["-e", "trace=rename", "-e", "inject=rename:error=EIO:when=1"]
    out = _traced(profile, inject, "_", "supervise", "w1")

    assert out.returncode == 1
    _one_line_naming(out, meta)
    assert json.loads(status.read_text())["state"] == "exited"
    again = profile.run("_", "worker", "start", "w1", "t")
    assert again.returncode == 0, again.stderr
