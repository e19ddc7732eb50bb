"""The shell-tool harness itself: it must kill, cut and find survivors as an agent's tool does."""

from __future__ import annotations

import os
import signal

from conftest import Profile, pid_alive, wait_for
from shell_tool import ShellTool, survivors


def test_a_call_past_its_limit_has_its_whole_group_killed(profile: Profile) -> None:
    tool = ShellTool(profile.env, limit=0.5, grace=0.2)
    done = tool.call("echo started; sleep 30 & sleep 30; echo never")
    assert done.killed and done.returncode < 0
    assert done.out == "started\n"
    wait_for(lambda: not survivors(done.marker))


def test_a_process_that_left_the_group_is_still_found(profile: Profile) -> None:
    tool = ShellTool(profile.env, limit=5)
    done = tool.call("setsid sleep 30 >/dev/null 2>&1 & echo $!")
    pid = int(done.out)
    try:
        assert not done.killed
        # Read while it execs, a process's environ is empty for a moment: look again.
        wait_for(lambda: survivors(done.marker) == [pid])
    finally:
        if pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_output_is_cut_at_the_tools_size(profile: Profile) -> None:
    tool = ShellTool(profile.env, cut=1000)
    done = tool.call("head -c 100000 /dev/zero; echo err >&2")
    assert len(done.stdout) == 1000 and done.err == "err\n" and done.returncode == 0


def test_looop_in_a_call_is_the_installed_one(profile: Profile) -> None:
    done = ShellTool(profile.env).call("looop _ state --json | head -c 1")
    assert (done.returncode, done.out) == (0, "{")
