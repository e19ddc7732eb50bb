"""The pulse's everyday costs.

    python bench/bench_pulse.py [--rounds N] [--idle-seconds S]

1. ``looop status`` wall time against ``python3 -I -c pass`` (the floor of
   any Python command), alternating in one run: medians and their ratio.
2. An idle pulse (interval 60, 5 trivial sensors) over S seconds (default 60):
   its peak RSS and the CPU seconds it used itself, read from /proc.
3. The pulse's clocks, on a notify socket with ``WATCHDOG_USEC`` = 2 s, beating
   every 2 s with a sensor that takes 1.5 s, over six beats: the gaps between
   ``WATCHDOG=1`` pings (goal: half the period, never over it) and between
   beat starts (goal: the interval, fixed rate; a fixed delay would be 3.5 s).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import GOALS, LOOOP, alternate, isolated_env, report, run, scratch


def status_ratio(rounds: int) -> None:
    root = scratch("status")
    env = isolated_env(root)
    run([LOOOP, "sense"], env)
    pulse = subprocess.Popen(
        [LOOOP, "pulse"], env={**env, "LOOOP_INTERVAL": "60"}, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 60
        while subprocess.run([LOOOP, "status"], env=env, capture_output=True).returncode != 0:
            if time.monotonic() > deadline or pulse.poll() is not None:
                raise SystemExit("the pulse did not come up")
            time.sleep(0.05)

        def status() -> None:
            subprocess.run([LOOOP, "status"], env=env, stdout=subprocess.DEVNULL, check=True)

        def floor() -> None:
            subprocess.run([sys.executable, "-I", "-c", "pass"], check=True)

        ours, theirs = alternate(status, floor, rounds)
        report("looop status vs python3 -I -c pass", ours, theirs, goal=GOALS["status"])
    finally:
        pulse.send_signal(signal.SIGTERM)
        pulse.wait()
        shutil.rmtree(root, ignore_errors=True)


def _proc_figures(pid: int) -> tuple[int, float]:
    """(peak RSS in KiB, CPU seconds of the process itself)."""
    status = Path(f"/proc/{pid}/status").read_text()
    hwm = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:"))
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return hwm, cpu


def idle_pulse(seconds: float) -> None:
    root = scratch("idle")
    env = isolated_env(root)
    run([LOOOP, "sense"], env)
    sensors = root / "data" / "sensors"
    for i in range(5):
        script = sensors / f"trivial{i}.sh"
        script.write_text(f"#!/bin/sh\necho '{{\"signal\": {i}}}'\n")
        script.chmod(0o755)
    pulse = subprocess.Popen(
        [LOOOP, "pulse"], env={**env, "LOOOP_INTERVAL": "60"}, stderr=subprocess.DEVNULL
    )
    try:
        time.sleep(seconds)
        rss, cpu = _proc_figures(pulse.pid)
        print(
            f"idle pulse over {seconds:.0f} s (interval 60, 6 sensors incl. the starter): "
            f"peak RSS {rss / 1024:.1f} MiB (goal <= 30), CPU {cpu:.2f} s (goal <= 0.5)"
        )
    finally:
        pulse.send_signal(signal.SIGTERM)
        pulse.wait()
        shutil.rmtree(root, ignore_errors=True)


def _gaps(times: list[float]) -> str:
    gaps = [b - a for a, b in itertools.pairwise(times)]
    if not gaps:
        return "no gaps"
    return (
        f"min {min(gaps):.2f} s, p50 {statistics.median(gaps):.2f} s, max {max(gaps):.2f} s"
        f" [{len(gaps)}]"
    )


def clocks(beats: int = 6) -> None:
    root = scratch("clocks")
    env = isolated_env(root)
    run([LOOOP, "sense"], env)
    sensors = root / "data" / "sensors"
    for script in sensors.glob("*.sh"):
        script.unlink()
    slow = sensors / "slowish.sh"
    slow.write_text("#!/bin/sh\nsleep 1.5\necho '{}'\n")
    slow.chmod(0o755)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(root / "notify.sock"))
    sock.settimeout(0.2)
    pings: list[float] = []
    pulse = subprocess.Popen(
        [LOOOP, "pulse"],
        env={
            **env,
            "NOTIFY_SOCKET": str(root / "notify.sock"),
            "WATCHDOG_USEC": "2000000",
            "LOOOP_INTERVAL": "2",
        },
        stderr=subprocess.DEVNULL,
    )
    events = root / "data" / "events.jsonl"

    def starts() -> list[float]:
        lines = events.read_text().splitlines() if events.exists() else []
        return [e["ts"] for e in map(json.loads, lines) if e["event"] == "beat_start"]

    try:
        deadline = time.monotonic() + 60
        while len(starts()) < beats + 1 and time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                continue
            if b"WATCHDOG=1" in data.splitlines():
                pings.append(time.monotonic())
        print(f"watchdog pings, WATCHDOG_USEC 2 s (goal ~1 s, max <= 2 s): {_gaps(pings)}")
        print(f"beat starts, interval 2 s, a 1.5 s sensor (goal 2 s): {_gaps(starts())}")
    finally:
        pulse.send_signal(signal.SIGTERM)
        pulse.wait()
        sock.close()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    args = parser.parse_args()
    status_ratio(args.rounds)
    idle_pulse(args.idle_seconds)
    clocks()


if __name__ == "__main__":
    main()
