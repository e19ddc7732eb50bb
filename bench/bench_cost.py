"""``looop cost`` over a ledger of 10k and 1M lines: memory flat, time linear.

Writes two ledgers (the same mix of days, kinds and runners, with a
malformed line now and then) into throw-away profiles, then runs
``looop cost --json`` over each, alternating, and reports for each size the
median wall time and the child's peak memory (``ru_maxrss`` from
``wait4``), then the ratios of 1M to 10k: time should grow as the lines do
(about 100), memory not at all (about 1.0). Nothing is asserted.

    python bench/bench_cost.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from common import LOOOP, isolated_env, scratch

SIZES = (10_000, 1_000_000)


def write_ledger(path: Path, count: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    start = time.time() - 30 * 86400
    with open(path, "w") as f:
        for i in range(count):
            if i % 1000 == 999:
                f.write('{"ts": 1, "kind": "worker", "id"\n')  # a torn line, skipped
                continue
            line = {
                "ts": round(start + i * (30 * 86400 / count), 3),
                "kind": ("worker", "root", "sensor")[i % 3],
                "id": f"w{i % 50}",
                "runner": ("claude", "codex", "opencode", "pi")[i % 4],
                "usd": round((i % 97) / 1000, 3),
            }
            f.write(json.dumps(line) + "\n")


def one_run(env: dict[str, str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one ``looop cost --json``."""
    started = time.perf_counter()
    proc = subprocess.Popen([LOOOP, "cost", "--json"], env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"looop cost exited {proc.returncode}")
    return elapsed, usage.ru_maxrss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    roots = {size: scratch(f"cost-{size}") for size in SIZES}
    try:
        envs = {size: isolated_env(root) for size, root in roots.items()}
        for size, root in roots.items():
            write_ledger(root / "data" / "cost.jsonl", size)
        times: dict[int, list[float]] = {size: [] for size in SIZES}
        peaks: dict[int, list[int]] = {size: [] for size in SIZES}
        for _ in range(args.rounds):
            for size in SIZES:
                elapsed, peak = one_run(envs[size])
                times[size].append(elapsed)
                peaks[size].append(peak)
        for size in SIZES:
            ledger = roots[size] / "data" / "cost.jsonl"
            print(
                f"cost over {size:>9,} lines ({ledger.stat().st_size / 2**20:.1f} MiB): "
                f"{statistics.median(times[size]) * 1000:.0f} ms, "
                f"peak {max(peaks[size]) / 1024:.1f} MiB  [median of {args.rounds}]"
            )
        small, large = SIZES
        t_ratio = statistics.median(times[large]) / statistics.median(times[small])
        m_ratio = max(peaks[large]) / max(peaks[small])
        print(
            f"1M / 10k: time {t_ratio:.1f} (goal: linear, ~{large // small}), "
            f"memory {m_ratio:.2f} (goal: flat, ~1.0)"
        )
    finally:
        for root in roots.values():
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
