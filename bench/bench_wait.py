"""Wake latency of ``looop _ wait`` against the reference's one-second poll.

Runs a real pulse (1 s beats) in a throw-away profile, then, alternating
between the contenders in the same run:

* **goal edit**: a waiter is armed, a goal file is appended to, and the
  latency is the time from just before the write to the waiter's exit;
* **snapshot swap**: a waiter is armed, the file a sensor prints is changed,
  and the latency is from the swap of the ``snapshots`` link that published
  the new reading (seen by this script's own inotify watch on the data dir)
  to the waiter's exit.

Contenders: ``looop _ wait`` on file-system events; the baseline, a waiter
that re-reads the world hash once a second the way the reference does; the
floor (goal edit only), a minimal Python (``-I``, ctypes) that arms an
inotify watch on ``goals/`` and exits on the first event of the edit, the
least any waiter woken by that event can cost; and, with ``--fallback``,
``looop _ wait`` with its polling fallback forced. Each
waiter is started, and each change made, after a random delay, so a poller's
phase against the beat and against the edit is uniform.

Then the timeout: ``looop _ wait --timeout 1`` on a world that holds still,
from its spawn to its exit (124): never under 1 s, and by how much over.

    python bench/bench_wait.py [--trials 30] [--fallback]

Goal (issue 27's table): the goal edit's wake, p50 and max, <= 1.2x the floor's.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import random
import shutil
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from common import GOALS, LOOOP, isolated_env, scratch, start_pulse, stop_pulse

SIGNAL_SENSOR = """#!/bin/sh
printf '{"signal": {"v": "%s"}}\\n' "$(cat "$SIG")"
"""

# The reference's approach: read the world hash once a second until it moves.
BASELINE = """
import json, os, sys, time
from pathlib import Path
from looop import paths
from looop.agent import state
from looop.pulse import worldhash
p = paths.resolve()
start = worldhash.measure(p).hash
Path(os.environ["READY"]).write_text("baseline")
while True:
    time.sleep(1.0)
    if worldhash.measure(p).hash != start:
        print(json.dumps(state.collect(p)))
        break
"""


# The floor: a Python that exits on the first inotify event of a goal edit.
FLOOR = """
import ctypes, os
libc = ctypes.CDLL(None)
fd = libc.inotify_init1(os.O_CLOEXEC)
# IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE
libc.inotify_add_watch(fd, os.fsencode(os.environ["GOALS"]), 0x2 | 0x8 | 0x80 | 0x100)
with open(os.environ["READY"], "w") as fh:
    fh.write("floor")
os.read(fd, 4096)
os.write(1, b"woke\\n")
os._exit(0)  # as looop's wait leaves: no interpreter teardown
"""
GOAL = GOALS["wait floor"]


class SwapClock:
    """Times every swap of ``snapshots`` in the data dir, with the value it published."""

    IN_MOVED_TO = 0x80

    def __init__(self, data: Path) -> None:
        self.data = data
        self.swaps: list[tuple[float, str]] = []
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_CLOEXEC)
        if self.fd < 0 or libc.inotify_add_watch(self.fd, os.fsencode(data), self.IN_MOVED_TO) < 0:
            raise OSError(ctypes.get_errno(), "inotify")
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while True:
            buf = os.read(self.fd, 65536)
            now = time.monotonic()
            offset = 0
            while offset < len(buf):
                _wd, _mask, _cookie, length = struct.unpack_from("iIII", buf, offset)
                name = buf[offset + 16 : offset + 16 + length].rstrip(b"\0")
                offset += 16 + length
                if name == b"snapshots":
                    try:
                        reading = json.loads(
                            (self.data / "snapshots" / "sensor-signal.json").read_text()
                        )
                        value = str(reading["signal"]["v"])
                    except (OSError, ValueError, KeyError, TypeError):
                        value = ""
                    self.swaps.append((now, value))

    def first_swap_of(self, value: str) -> float | None:
        return next((t for t, v in list(self.swaps) if v == value), None)


class Bench:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.sig = root / "sig"
        self.sig.write_text("start")
        self.env = isolated_env(root)
        self.env.update(LOOOP_INTERVAL="1", SIG=str(self.sig))
        sensors = self.data / "sensors"
        sensors.mkdir(parents=True)
        for name, body in {
            "today": """#!/bin/sh\necho '{"signal": {"date": "fixed"}}'\n""",
            "signal": SIGNAL_SENSOR,
        }.items():
            (sensors / f"{name}.sh").write_text(body)
            (sensors / f"{name}.sh").chmod(0o755)
        (self.data / "goals").mkdir()
        self.goal = self.data / "goals" / "bench.md"
        self.goal.write_text("# bench\n")
        self.pulse = start_pulse(self.env, (self.data / "snapshots" / "sensor-signal.json").exists)
        self.swaps = SwapClock(self.data)
        self.serial = 0

    def close(self) -> None:
        stop_pulse(self.pulse)

    def spawn(self, contender: str) -> subprocess.Popen[bytes]:
        """Start a waiter and return once it has taken its starting reading."""
        # A random phase on both sides: the arm time against the beat (which
        # sets when a poller's reads fall relative to a swap) and the change
        # against the arm time (which sets where an edit falls between reads).
        time.sleep(random.uniform(0.0, 1.0))
        self.serial += 1
        ready = self.root / f"ready-{self.serial}"
        env = dict(self.env, READY=str(ready), LOOOP_TEST_WAIT_READY=str(ready))
        if contender == "baseline":
            argv = [sys.executable, "-c", BASELINE]
        elif contender == "floor":
            argv = [sys.executable, "-I", "-c", FLOOR]
            env["GOALS"] = str(self.data / "goals")
        else:
            argv = [LOOOP, "_", "wait", "--json", "--timeout", "30"]
            if contender == "fallback":
                env["LOOOP_WAIT_POLL"] = "1"
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        while not ready.exists():
            if proc.poll() is not None:
                raise SystemExit(f"{contender} waiter exited before it was armed")
            time.sleep(0.002)
        time.sleep(random.uniform(0.0, 1.0))
        return proc

    def finish(self, proc: subprocess.Popen[bytes], contender: str) -> float:
        out, _ = proc.communicate(timeout=60)
        ended = time.monotonic()  # the waiter has exited and been reaped
        if proc.returncode != 0 or not out:
            raise SystemExit(f"{contender} waiter failed (exit {proc.returncode})")
        return ended

    def timed_out(self) -> float:
        """Seconds from spawning ``_ wait --timeout 1`` to its exit, nothing having changed."""
        began = time.monotonic()
        code = subprocess.run(
            [LOOOP, "_", "wait", "--json", "--timeout", "1"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            timeout=60,
        ).returncode
        if code != 124:
            raise SystemExit(f"_ wait --timeout 1 exited {code}, not 124")
        return time.monotonic() - began

    def goal_edit(self, contender: str) -> float:
        proc = self.spawn(contender)
        began = time.monotonic()
        with open(self.goal, "a") as fh:
            fh.write(f"- edit {self.serial}\n")
        return self.finish(proc, contender) - began

    def snapshot_swap(self, contender: str) -> float:
        proc = self.spawn(contender)
        value = f"v{self.serial}"
        self.sig.write_text(value)
        ended = self.finish(proc, contender)
        swapped = self.swaps.first_swap_of(value)
        if swapped is None:
            raise SystemExit("the swap that published the change was not seen")
        return ended - swapped


def run(trials: int, contenders: list[str]) -> None:
    root = scratch("wait")
    bench = Bench(root)
    try:
        scenarios: dict[str, Callable[[str], float]] = {
            "goal edit": bench.goal_edit,
            "snapshot swap": bench.snapshot_swap,
        }
        results: dict[tuple[str, str], list[float]] = {}
        for scenario, trial in scenarios.items():
            # The floor wakes on any event in goals/: a swap is not one.
            racing = [c for c in contenders if c != "floor" or scenario == "goal edit"]
            for n in range(trials):
                order = racing if n % 2 == 0 else racing[::-1]
                for contender in order:
                    results.setdefault((scenario, contender), []).append(trial(contender))
                print(f"\r{scenario}: {n + 1}/{trials}", end="", file=sys.stderr, flush=True)
            print(file=sys.stderr)
        report(results, trials, contenders)
        floor_ratio(results)
        took = [bench.timed_out() for _ in range(5)]
        print(
            f"_ wait --timeout 1, spawn to exit: min {min(took):.3f} s (goal >= 1.000), "
            f"p50 {statistics.median(took):.3f} s, max {max(took):.3f} s  [{len(took)} runs]"
        )
    finally:
        bench.close()
        shutil.rmtree(root, ignore_errors=True)


LABELS = {
    "events": "looop _ wait (events)",
    "fallback": "looop _ wait (LOOOP_WAIT_POLL=1)",
    "baseline": "1 s hash poll (reference)",
    "floor": "inotify floor (python -I, exits)",
}


def report(results: dict[tuple[str, str], list[float]], trials: int, contenders: list[str]) -> None:
    print(f"wake latency, {trials} trials each, pulse beating every 1 s (milliseconds)")
    print(f"{'scenario':<15}{'contender':<34}{'p50':>9}{'mean':>9}{'max':>9}{'p50 vs base':>13}")
    for scenario in ("goal edit", "snapshot swap"):
        base = statistics.median(results[(scenario, "baseline")])
        for contender in contenders:
            if (scenario, contender) not in results:
                continue
            xs = [x * 1000 for x in results[(scenario, contender)]]
            p50 = statistics.median(xs)
            ratio = "" if contender == "baseline" else f"{base * 1000 / p50:>11.0f}x"
            print(
                f"{scenario:<15}{LABELS[contender]:<34}{p50:>9.1f}"
                f"{statistics.fmean(xs):>9.1f}{max(xs):>9.1f}{ratio:>13}"
            )


def floor_ratio(results: dict[tuple[str, str], list[float]]) -> None:
    """The goal edit's wake against the floor's: p50 and max, with the table's goal."""
    ours, floor = results[("goal edit", "events")], results[("goal edit", "floor")]
    p50 = statistics.median(ours) / statistics.median(floor)
    worst = max(ours) / max(floor)
    print(
        f"goal edit, looop _ wait / inotify floor: p50 {p50:.2f}x, max {worst:.2f}x"
        f" (goal <= {GOAL})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--fallback", action="store_true", help="also time the polling fallback")
    args = parser.parse_args()
    if not sys.platform.startswith("linux"):
        raise SystemExit("this benchmark times swaps with inotify: Linux only")
    contenders = ["events", *(["fallback"] if args.fallback else []), "baseline", "floor"]
    with contextlib.suppress(KeyboardInterrupt):
        run(args.trials, contenders)


if __name__ == "__main__":
    main()
