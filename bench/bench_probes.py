"""A beat's cost on a big data dir: 2,000 goals and a 50 MiB journal.

    python bench/bench_probes.py [--rounds N]

The baseline is the same beat on an empty data dir (seeded, no user
sensors), timed alternately in the same run, so the ratio is what the big
data dir adds. Three figures, each against the shipped ``WatchdogSec=30``:

* ``looop sense`` as a process (start-up, probes, world hash, publishing);
* the probes alone, in-process (``looop.pulse.probes.PROBES``);
* the probes on a journal whose tail is one line of 40,000 joined goal ids,
  within the scanned tail (the goals probe's worst case: every word a goal,
  every span a candidate; before the fix it stalled a beat for seconds).

The test (tests/test_budget.py) asserts only behaviour: the watchdog pings
keep their period through such beats.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from common import LOOOP, alternate, isolated_env, report, run, scratch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from datasets import GOALS, big_data_dir

from looop.paths import Paths
from looop.pulse import probes

WATCHDOG_SEC = 30.0


def make_profile(name: str, big: bool, last_line: str = "") -> tuple[Path, dict[str, str]]:
    root = scratch(name)
    env = isolated_env(root)
    run([LOOOP, "sense"], env)  # seed, then take the starter sensor away
    data = root / "data"
    for script in (data / "sensors").glob("*.sh"):
        script.unlink()
    if big:
        big_data_dir(data, last_line)
    return root, env


def paths_of(root: Path) -> Paths:
    data = root / "data"
    return Paths(data, data / "config.toml", root / "run", False)


def all_probes(paths: Paths) -> None:
    for probe in probes.PROBES.values():
        probe(paths)


def of_watchdog(name: str, ours: list[float], theirs: list[float]) -> None:
    report(name, ours, theirs)
    worst = max(ours)
    print(f"  worst {worst * 1000:.1f} ms = {worst / WATCHDOG_SEC:.2%} of WatchdogSec=30")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    joined = ".".join(f"g{i % GOALS}" for i in range(40_000))
    empty, empty_env = make_profile("probes-empty", big=False)
    big, big_env = make_profile("probes-big", big=True)
    worst, _ = make_profile("probes-worst", big=True, last_line=f"- 2026-12-02 10:00 {joined}\n")
    try:
        ours, theirs = alternate(
            lambda: run([LOOOP, "sense"], big_env),
            lambda: run([LOOOP, "sense"], empty_env),
            args.rounds,
        )
        of_watchdog("looop sense, 2,000 goals + 50 MiB journal vs empty", ours, theirs)
        big_paths, empty_paths, worst_paths = paths_of(big), paths_of(empty), paths_of(worst)
        ours, theirs = alternate(
            lambda: all_probes(big_paths), lambda: all_probes(empty_paths), args.rounds
        )
        of_watchdog("probes in-process, 2,000 goals + 50 MiB journal vs empty", ours, theirs)
        ours, theirs = alternate(
            lambda: all_probes(worst_paths), lambda: all_probes(empty_paths), args.rounds
        )
        of_watchdog("probes in-process, journal ending in 40,000 joined ids vs empty", ours, theirs)
    finally:
        for root in (empty, big, worst):
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
