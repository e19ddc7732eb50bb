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
import threading
from typing import Any

import pytest
from conftest import Profile, wait_for
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
