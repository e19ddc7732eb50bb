"""``_ state`` and ``_ wait`` read each file they need once per call (issue 27).

Counted with strace: every ``open`` of a goal and of a published reading.
``_ state`` opens each once. A wait woken by a goal edit reads the world
twice, by design (when it is armed, and at the wake that ends it), and the
state it prints is the world that wake measured, not a third read.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import LOOOP, Processes, Profile, strace_prefix, wait_for


def _opens(trace: Path, name: str) -> int:
    return sum(1 for line in trace.read_text().splitlines() if "open" in line and name in line)


def test_state_opens_each_file_once_and_a_woken_wait_adds_only_its_wake(
    profile: Profile, procs: Processes, tmp_path: Path
) -> None:
    procs.add(profile.popen("pulse", env={**profile.env, "LOOOP_INTERVAL": "3600"}))
    wait_for(lambda: profile.run("status").returncode == 0)
    assert profile.run("_", "goal", "write", "g1", "ship it").returncode == 0
    reading = "sys-goals.json"
    trace = tmp_path / "state.trace"
    traced = [*strace_prefix("-f", "-e", "trace=open,openat", "-o", str(trace)), LOOOP]
    done = subprocess.run([*traced, "_", "state", "--json"], env=profile.env, capture_output=True)
    assert done.returncode == 0, done.stderr
    assert (_opens(trace, "g1.md"), _opens(trace, reading)) == (1, 1)

    ready = tmp_path / "ready"
    trace = tmp_path / "wait.trace"
    traced = [*strace_prefix("-f", "-e", "trace=open,openat", "-o", str(trace)), LOOOP]
    waiter = procs.add(
        subprocess.Popen(
            [*traced, "_", "wait", "--json", "--timeout", "30"],
            env={**profile.env, "LOOOP_TEST_WAIT_READY": str(ready)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    )
    wait_for(ready.exists)
    with (profile.data / "goals" / "g1.md").open("a") as goal:
        goal.write("and test it\n")
    out, err = waiter.communicate(timeout=30)
    assert waiter.returncode == 0 and '"goals"' in out, err
    assert (_opens(trace, "g1.md"), _opens(trace, reading)) == (2, 2)
