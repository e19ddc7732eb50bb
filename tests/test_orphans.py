"""Orphans: nothing a pulse or a one-off ``sense`` started outlives it, however it died;
concurrent ``looop restart`` calls coalesce instead of failing.

The sensors here are slow (a child of theirs sleeps), and the beat is
killed in mid-flight by a signal no process can catch (SIGKILL) or one that
dumps core (SIGQUIT). Every process a call started carries its marker
(``shell_tool.survivors``), the sensors and their children included. The
systemd side of ``restart`` is in test_systemd.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import LOOOP, Processes, Profile, live_with_env, strace_prefix, wait_for
from shell_tool import Call, ShellTool, survivors

SLOW = "sleep 60 | cat\necho 1"


def _killed_mid_beat(profile: Profile, command: str, sig: str) -> Call:
    """Run ``command`` through the tool; once the slow sensor runs, send it ``sig``."""
    started = profile.root / "started"
    profile.sensor("slow", f"echo $$ > {started}\n{SLOW}")
    tool = ShellTool(profile.env, limit=60)
    call = tool.call(
        # No core file from SIGQUIT; a background job of a script starts with it ignored.
        f"ulimit -c 0; env --default-signal=QUIT {command} & beat=$!\n"
        f"until [ -s {started} ]; do sleep 0.02; done\n"
        f"kill -{sig} $beat; wait $beat"
    )
    assert not call.killed and "Traceback" not in call.err, call.err
    return call


@pytest.mark.parametrize("sig", ["KILL", "QUIT"])
def test_a_sensor_never_outlives_a_one_off_sense_that_died(profile: Profile, sig: str) -> None:
    call = _killed_mid_beat(profile, "looop sense", sig)
    wait_for(lambda: survivors(call.marker) == [], timeout=5)


def test_a_sensor_never_outlives_a_pulse_killed_mid_beat(profile: Profile) -> None:
    profile.env["LOOOP_INTERVAL"] = "3600"
    call = _killed_mid_beat(profile, "looop pulse", "KILL")
    wait_for(lambda: survivors(call.marker) == [], timeout=5)


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _cmdline(pid: int) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None


def _running(parent: int, script: str) -> int | None:
    """The child of ``parent`` running ``script`` (strace forks others to probe the system)."""
    argv = [(c, (_cmdline(c) or b"").split(b"\0")) for c in _children(parent)]
    return next((c for c, args in argv if args[1:2] == [script.encode()]), None)


def _start_under_way(watcher: int) -> int | None:
    """A child of ``watcher`` still running the watcher's own program: a start under way.

    Only once another child runs a program of its own: the lifeline's shell,
    started first, so the child under way is not that one.
    """
    own = _cmdline(watcher)
    kids = {c: _cmdline(c) for c in _children(watcher)}
    under_way = [c for c, cmdline in kids.items() if cmdline == own]
    started = [c for c, cmdline in kids.items() if cmdline not in (own, None)]
    return under_way[0] if under_way and started else None


@pytest.mark.parametrize("watcher", ["sense", "_ run"])
def test_what_a_watcher_killed_while_starting_it_was_starting_never_outlives_it(
    profile: Profile, procs: Processes, watcher: str
) -> None:
    """The watcher dies while its child is between spawn and exec (not yet on its list).

    strace holds that child at a system call only it makes (the sensor's
    exec; for ``_ run``, whose lifeline's shell is the same ``/bin/sh``, the
    change of directory before the exec), so the start is provably under way
    when the watcher is SIGKILLed: its guardian must find and end what it was
    starting, which would otherwise run on with nobody watching it.
    """
    if watcher == "sense":
        sensor = profile.sensor("slow", SLOW)
        held = ["-e", "trace=execve", "-P", str(sensor), "-e", "inject=execve:delay_enter=300000"]
        argv = [LOOOP, "sense"]
    else:
        held = ["-e", "trace=chdir", "-e", "inject=chdir:delay_enter=300000"]
        argv = [LOOOP, "_", "run", SLOW]
    name, value = "LOOOP_TEST_STARTING", f"{os.getpid()}-{watcher}"
    tracer = procs.add(
        subprocess.Popen(
            [*strace_prefix("-f", "--seccomp-bpf", *held), *argv],
            env={**profile.env, name: value},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )
    looop = wait_for(lambda: _running(tracer.pid, LOOOP))
    wait_for(lambda: _start_under_way(looop))
    os.kill(looop, signal.SIGKILL)
    # strace ends with the last process it traces: the child held, and all it started.
    wait_for(lambda: tracer.poll() is not None, timeout=5)
    assert live_with_env(f"{name}={value}") == []


def _status(profile: Profile) -> dict[str, Any]:
    out = profile.run("status", "--json")
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def _starting(profile: Profile, before: int) -> bool:
    """A new pulse holds the lock but has not published its first beat yet."""
    from looop.pulse import lock, record

    holder = lock.holder_pid(profile.paths)
    return holder not in (None, before) and (record.read(profile.paths) or {}).get("pid") != holder


def _in_thread(tool: ShellTool, text: str, calls: list[Call]) -> threading.Thread:
    caller = threading.Thread(target=lambda: calls.append(tool.call(text)))
    caller.start()
    return caller


def test_concurrent_restarts_coalesce_and_none_fails(profile: Profile) -> None:
    profile.sensor("slow", "sleep 2; echo 1")  # a first beat slow enough to arrive during it
    profile.env["LOOOP_INTERVAL"] = "3600"
    assert profile.run("up", timeout=120).returncode == 0
    tool = ShellTool(profile.env, limit=120)
    try:
        before = _status(profile)["pid"]
        calls: list[Call] = []
        first = _in_thread(tool, "looop restart", calls)
        # The second comes while the first one's new pulse is starting.
        wait_for(lambda: _starting(profile, before) or calls, timeout=60)
        second = _in_thread(tool, "looop restart", calls)
        burst = [_in_thread(tool, "looop restart", calls) for _ in range(3)]
        for caller in (first, second, *burst):
            caller.join(150)
        failed = [(c.returncode, c.out, c.err) for c in calls if c.returncode or c.err]
        assert len(calls) == 5 and failed == []
        assert any("by a concurrent restart" in c.out for c in calls), [c.out for c in calls]
        status = _status(profile)
        assert status["running"] and status["pid"] != before
    finally:
        profile.run("down", timeout=60)


def test_a_detached_workers_command_never_outlives_its_supervisor_killed_outright(
    profile: Profile,
) -> None:
    worker = profile.root / "worker"
    worker.write_text("#!/bin/sh\nsleep 60 | cat\n")
    worker.chmod(0o755)
    profile.write_config(f'[worker]\ncommand = ["{worker}"]\nsupervisor = "detached"\n')
    call = ShellTool(profile.env, limit=60).call("looop _ worker start w x")
    assert call.returncode == 0, call.err
    meta_file = profile.data / "sessions" / "w" / "meta.json"
    meta = wait_for(lambda: (m := json.loads(meta_file.read_text())).get("pgid") and m)
    os.kill(meta["pid"], signal.SIGKILL)  # the supervisor, as an OOM killer would
    wait_for(lambda: survivors(call.marker) == [], timeout=5)
    profile.run("reap", "--ttl", "0")
