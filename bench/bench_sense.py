"""``looop sense`` against the reference's way of beating: a shell loop that runs
each sensor one by one through ``timeout 60``.

    python bench/bench_sense.py [--rounds N]

Prints medians and ratios for 40 sleeping sensors and 200 instant ones, and
the cost per sensor of a beat at 10, 100 and 1,000 instant sensors.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
from functools import partial
from pathlib import Path

from common import LOOOP, alternate, isolated_env, report, run, scratch, timed

BASELINE = """\
cd "$1"
for f in sensors/*.sh; do
    out=$(timeout 60 "$f" </dev/null 2>/dev/null)
done
"""


def make_profile(count: int, body: str) -> tuple[Path, dict[str, str]]:
    root = scratch(f"sense{count}")
    env = isolated_env(root)
    run([LOOOP, "sense"], env)  # seed, then replace the starter sensor
    sensors = root / "data" / "sensors"
    for old in sensors.glob("*.sh"):
        old.unlink()
    for i in range(count):
        script = sensors / f"s{i:04d}.sh"
        script.write_text(f"#!/bin/sh\n{body}\n")
        script.chmod(0o755)
    return root, env


def compare(name: str, count: int, body: str, rounds: int, goal: float) -> None:
    root, env = make_profile(count, body)
    data = root / "data"
    try:
        ours, theirs = alternate(
            lambda: run([LOOOP, "sense"], env),
            lambda: run(["bash", "-c", BASELINE, "bench", str(data)], env),
            rounds,
        )
        report(name, ours, theirs, goal)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def scaling(rounds: int) -> None:
    """Beat time at 10, 100 and 1,000 instant sensors: per sensor, and per added sensor.

    The per-sensor figure includes the fixed cost of starting the command;
    the marginal one (between sizes) is what each further sensor costs.
    """
    previous: tuple[int, float] | None = None
    for count in (10, 100, 1000):
        root, env = make_profile(count, "echo '{\"signal\": 1}'")
        try:
            times = [timed(partial(run, [LOOOP, "sense"], env)) for _ in range(rounds)]
            beat = statistics.median(times)
            marginal = ""
            if previous is not None:
                added = (beat - previous[1]) / (count - previous[0])
                marginal = f", {added * 1000:5.2f} ms per added sensor"
            print(
                f"scaling: {count:5d} sensors, beat {beat * 1000:7.1f} ms, "
                f"{beat / count * 1000:6.2f} ms per sensor{marginal}  [median of {rounds}]"
            )
            previous = (count, beat)
        finally:
            shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    compare("40 sensors x sleep 0.25", 40, "sleep 0.25\necho '{\"signal\": 1}'", args.rounds, 0.15)
    compare("200 instant sensors", 200, "echo '{\"signal\": 1}'", args.rounds, 0.3)
    scaling(args.rounds)


if __name__ == "__main__":
    main()
