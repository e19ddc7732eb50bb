"""Shared benchmark plumbing: an isolated profile, alternating timed runs, medians.

The machines are shared and noisy, so every benchmark times looop and its
baseline in the same run, alternating, and reports medians and their ratio;
none of this asserts anything.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

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
