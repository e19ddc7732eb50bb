"""Shared benchmark plumbing: an isolated profile, alternating timed runs, medians.

The machines are shared and noisy, so every benchmark times looop and its
baseline in the same run, alternating, and reports medians and their ratio;
none of this asserts anything.
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# The goals of issue 27's table, one place for every bench that prints one:
# each a ratio to its baseline in the same run (MiB for the RSS figures).
GOALS = {
    "status": 1.6,  # looop status / python3 -I -c pass
    "state": 2.0,  # looop _ state --json / the same
    "completion": 2.0,  # one TAB (COMP_WORDS for `looop _ goal write d`) / the same
    "status 5,000 sessions": 1.1,  # status with 5,000 live sessions / with none
    "worker start": 2.5,  # _ worker start / systemd-run --user --collect true
    "worker RSS systemd": 2.0,  # MiB added per live worker
    "worker RSS detached": 8.0,  # MiB added per live worker
    "sense 200": 0.3,  # looop sense of 200 trivial sensors / a serial shell loop
    "wait floor": 1.2,  # _ wait's wake after a goal edit / a minimal inotify waiter's
}

LOOOP = str(Path(sys.executable).parent / "looop")
if not os.path.exists(LOOOP):
    LOOOP = shutil.which("looop") or "looop"


def isolated_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOOOP_", "NOTIFY_"))}
    env.update(
        LOOOP_DATA_DIR=str(root / "data"),
        LOOOP_RUNTIME_DIR=str(root / "run"),
        HOME=str(root),
    )
    return env


def scratch(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"looop-bench-{prefix}-"))


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def alternate(
    subject: Callable[[], object], baseline: Callable[[], object], rounds: int
) -> tuple[list[float], list[float]]:
    """Time subject and baseline alternately, ``rounds`` times each."""
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(timed(subject))
        theirs.append(timed(baseline))
    return ours, theirs


def report(
    name: str,
    ours: list[float],
    theirs: list[float],
    goal: float | None = None,
    subject: str = "looop",
) -> float:
    a, b = statistics.median(ours), statistics.median(theirs)
    ratio = a / b
    goal_text = "" if goal is None else f"  (goal <= {goal})"
    print(
        f"{name}: {subject} {a * 1000:.1f} ms, baseline {b * 1000:.1f} ms, "
        f"ratio {ratio:.3f}{goal_text}  [median of {len(ours)}]"
    )
    return ratio


def run(cmd: list[str], env: dict[str, str], cwd: Path | None = None) -> None:
    subprocess.run(cmd, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)


def start_pulse(
    env: dict[str, str], ready: Callable[[], bool], timeout: float = 30
) -> subprocess.Popen[bytes]:
    """A pulse on ``env``'s profile, returned once ``ready()`` (its first beat's mark)."""
    pulse = subprocess.Popen(
        [LOOOP, "pulse"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline or pulse.poll() is not None:
            pulse.kill()
            pulse.wait()
            raise SystemExit("the pulse did not start")
        time.sleep(0.02)
    return pulse


def show_latency(name: str, ours: list[float], theirs: list[float]) -> None:
    """p50 and max of a wake-up latency against a 1 s poller's (goal 15 / 50 ms)."""

    def ms(values: list[float]) -> str:
        return f"p50 {statistics.median(values) * 1e3:7.1f} ms  max {max(values) * 1e3:7.1f} ms"

    ratio = statistics.median(ours) / statistics.median(theirs)
    print(f"{name:<16} looop    {ms(ours)}   (goal p50 <= 15 ms, max <= 50 ms)")
    print(f"{'':<16} 1 s poll {ms(theirs)}")
    print(f"{'':<16} ratio looop/poll (p50) {ratio:.3f}")


def stop_pulse(pulse: subprocess.Popen[bytes]) -> None:
    """SIGTERM to a pulse still running, and its end awaited (SIGKILL after 10 s)."""
    if pulse.poll() is None:
        pulse.send_signal(signal.SIGTERM)
        try:
            pulse.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pulse.kill()
            pulse.wait()
