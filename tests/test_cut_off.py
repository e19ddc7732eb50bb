"""A caller killed or cut off at any moment: ``_ run`` and ``_ wait`` as an agent's tool runs them.

The tool (``shell_tool.ShellTool``) kills the whole group of a call at its
time limit (SIGTERM, then SIGKILL), pipes output into ``head`` and leaves
output unread. Whatever it does, ``_ run``'s command lives no longer than
its ``--timeout`` and no longer than ``_ run`` itself, its record says how
it ended, and ``_ wait`` leaves nothing that trips the next call.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
from conftest import Processes, Profile, detached_pulse, group_gone, run_records, tree, wait_for
from shell_tool import ShellTool, survivors


def ended(profile: Profile) -> dict[str, Any] | None:
    found = run_records(profile)
    return found[0] if len(found) == 1 and found[0].get("ended") is not None else None


@pytest.mark.parametrize("command", ["yes", "yes | cat", "sh -c 'yes'"])
def test_run_piped_into_head_ends_its_command_and_records_the_end(
    profile: Profile, command: str
) -> None:
    tool = ShellTool(profile.env, limit=20)
    call = tool.call(f'looop _ run --timeout 60 -- "{command}" | head -1')
    assert (call.killed, call.out, call.err) == (False, "y\n", "")
    wait_for(lambda: survivors(call.marker) == [], timeout=5)
    record = wait_for(lambda: ended(profile), timeout=5)
    # The reader went away: the command met a closed pipe, as it would in a shell pipeline.
    assert record["exit_code"] == 128 + signal.SIGPIPE and record["timed_out"] is False
    assert record["output"].startswith("y\n")
    assert profile.state()["runs"][0]["state"] == "ended"


def test_output_nobody_reads_is_still_ended_at_the_timeout(profile: Profile) -> None:
    release = profile.root / "release"
    # The reader never reads; it waits for the test to let it go.
    reader = f"sh -c 'until [ -e {release} ]; do sleep 0.05; done'"
    tool = ShellTool(profile.env, limit=60)
    calls: list[Any] = []
    caller = threading.Thread(
        target=lambda: calls.append(tool.call(f"looop _ run --timeout 1 -- yes | {reader}"))
    )
    caller.start()
    try:
        record = wait_for(lambda: ended(profile), timeout=20)
    finally:
        release.touch()
        caller.join(60)
    assert record["timed_out"] is True and record["exit_code"] == 124
    wait_for(lambda: group_gone(record["pgid"]), timeout=5)
    (call,) = calls
    assert call.err == "" and not call.killed
    wait_for(lambda: survivors(call.marker) == [], timeout=5)


@pytest.mark.parametrize(
    "command",
    [
        "sleep 60 | cat",
        # Deaf to SIGTERM, so _ run is still in its grace when the tool's SIGKILL comes.
        "trap '' TERM; sleep 60 & sleep 60 | cat; wait",
    ],
)
def test_a_run_killed_at_its_tools_limit_leaves_nothing_running(
    profile: Profile, command: str
) -> None:
    tool = ShellTool(profile.env, limit=3, grace=0.3)  # long enough for _ run to start
    call = tool.call(f'looop _ run --timeout 60 -- "{command}"')
    assert call.killed
    wait_for(lambda: survivors(call.marker) == [], timeout=5)
    (record,) = run_records(profile)
    assert record["signal"] == "SIGTERM"  # what reached _ run is on record, ended or not
    (run,) = profile.state()["runs"]
    assert run["state"] in ("ended", "interrupted")


def test_a_run_killed_outright_takes_its_command_with_it(
    profile: Profile, procs: Processes
) -> None:
    runner = procs.add(profile.popen("_", "run", "--", "sleep 60 | cat & sleep 60; wait"))
    wait_for(lambda: any("pgid" in r for r in run_records(profile)))
    (record,) = run_records(profile)
    runner.send_signal(signal.SIGKILL)
    runner.wait(10)
    wait_for(lambda: group_gone(record["pgid"]), timeout=5)
    assert [r["state"] for r in profile.state()["runs"]] == ["interrupted"]


def test_ctrl_c_ends_the_command_and_records_sigint(profile: Profile, procs: Processes) -> None:
    runner = procs.add(profile.popen("_", "run", "--", "sleep 60 | cat", start_new_session=True))
    wait_for(lambda: any("pgid" in r for r in run_records(profile)))
    os.killpg(runner.pid, signal.SIGINT)  # a terminal's ^C goes to the foreground group
    assert runner.wait(30) == 128 + signal.SIGINT
    (record,) = run_records(profile)
    assert record["signal"] == "SIGINT" and record["ended"] is not None
    wait_for(lambda: group_gone(record["pgid"]), timeout=5)


@pytest.fixture
def pulse(profile: Profile) -> Any:
    """A detached pulse that beats once an hour, so a wait blocks."""
    with detached_pulse(profile, "3600"):
        yield profile


def _quiet(root: Path) -> dict[str, str]:
    """The data dir's entries, less what a beat or a verb appends to."""
    return {k: v for k, v in tree(root).items() if k not in ("events.jsonl", "journal.md")}


def test_a_wait_killed_at_any_moment_leaves_nothing_that_trips_the_next(pulse: Profile) -> None:
    before = _quiet(pulse.data)
    tool = ShellTool(pulse.env, grace=0.05)
    cut = tool.call("looop _ wait --json | head -c 1", limit=5)
    for limit in (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.8):
        call = tool.call("looop _ wait --timeout 30 --json", limit=limit)
        assert call.killed and "Traceback" not in call.err, call.err
        wait_for(lambda c=call: survivors(c.marker) == [], timeout=5)
    assert cut.killed or cut.err == ""
    after = tool.call("looop _ wait --timeout 1 --json")
    assert (after.returncode, after.err) == (124, ""), after.err
    assert _quiet(pulse.data) == before


@pytest.mark.parametrize("command", ["_ run -- 'echo hi'", "_ state", "status", "_ asks"])
def test_a_caller_that_closed_stdout_gets_no_traceback(profile: Profile, command: str) -> None:
    tool = ShellTool(profile.env, limit=30)
    closed = tool.call(f"looop {command} >&-; echo $?")
    into_a_file = tool.call(f"looop {command} > {profile.root / 'out'}; echo $?")
    assert (closed.out, closed.err) == (into_a_file.out, "")
    assert (profile.root / "out").read_text() != "" or command == "_ asks"
