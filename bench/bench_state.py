"""``looop _ state --json`` whatever ``runs/`` holds: 1, 1,000 and 5,000 run records.

Each profile has 1,000 pending asks and the given number of ``_ run``
records (ended, each with 4 KiB of output, as ``_ run`` keeps); the three
are timed alternately in the same run, and the figure is the median of the
largest against the median of the smallest. ``_ state`` lists ``runs/``
but reads only a bounded window of its newest records (``data.runs``), so
the ratio stays near 1 however many there are.

    python bench/bench_state.py [--rounds 15]

Goal: 5,000 records / 1 record < 3.
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import subprocess
import time
from pathlib import Path

from common import LOOOP, isolated_env, report, scratch, timed

SIZES = (1, 1_000, 5_000)
ASKS = 1_000


def populate(root: Path, records: int) -> dict[str, str]:
    data = root / "data"
    (data / "asks").mkdir(parents=True)
    (data / "runs").mkdir()
    for n in range(ASKS):
        ask = {"v": 1, "id": f"w{n % 20}-{n}", "worker": f"w{n % 20}", "prompt": "which?", "ts": 1}
        (data / "asks" / f"{ask['id']}.json").write_text(json.dumps(ask))
    now = time.time()
    for n in range(records):
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now - records + n)) + ".000000-1"
        record = {
            "id": stamp,
            "cmd": "make test",
            "reason": "bench",
            "started": now - records + n,
            "pid": 1,
            "pgid": 1,
            "ended": now - records + n + 0.5,
            "exit_code": 0,
            "output": "x" * 4096,
            "truncated": False,
            "timed_out": False,
            "signal": None,
        }
        (data / "runs" / f"{stamp}.json").write_text(json.dumps(record, indent=2))
    return isolated_env(root)


def state(env: dict[str, str]) -> None:
    out = subprocess.run([LOOOP, "_", "state", "--json"], env=env, capture_output=True)
    if out.returncode != 0:
        raise SystemExit(f"_ state exited {out.returncode}: {out.stderr.decode()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    roots = {size: scratch(f"state-{size}") for size in SIZES}
    try:
        runs = {size: functools.partial(state, populate(roots[size], size)) for size in SIZES}
        for fn in runs.values():
            fn()  # first-run seeding and a warm cache, untimed
        times: dict[int, list[float]] = {size: [] for size in SIZES}
        for _ in range(args.rounds):
            for size in SIZES:
                times[size].append(timed(runs[size]))
        for size in SIZES[1:]:
            goal = 3.0 if size == SIZES[-1] else None
            report(
                f"_ state --json, {size} run records / 1 ({ASKS} asks)",
                times[size],
                times[SIZES[0]],
                goal,
            )
    finally:
        for root in roots.values():
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
