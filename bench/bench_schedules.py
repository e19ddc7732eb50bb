"""Schedule latency: a schedule's instant -> a blocked ``_ wait`` returns.

Runs a real pulse (quiet: one beat a minute) in a throw-away profile, then,
alternating in the same run between looop and the reference's approach (a
loop that looks once a second whether the instant has come), for each trial:
a ``looop _ wait --for schedules`` is started and armed (it writes ``$LOOOP_TEST_WAIT_READY``),
``looop _ schedule write --in D`` makes a one-shot due a random 0.3 to 0.6 s
later, and the latency is from the instant written in the schedule's file to
the waiter's exit (both on the wall clock; the exit seen by a blocking
``waitpid``, as ``Popen.wait(timeout=...)`` would poll for it). The schedule is removed after
each trial. The baseline poller is started at a random phase, so its latency
is uniform over the poll period, as the reference's is. Nothing is asserted.

    python bench/bench_schedules.py [--trials 20]
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import LOOOP, isolated_env, scratch, show_latency, start_pulse, stop_pulse

POLL_DUE = """
import json, random, sys, time
started = time.time()
open(sys.argv[2], "w").write("armed")
time.sleep(random.random())  # the poller's phase
while time.time() < started + 30:
    try:
        if time.time() >= json.load(open(sys.argv[1]))["at"]:
            break
    except OSError:
        pass
    time.sleep(1.0)
"""


class Bench:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.env = isolated_env(root)
        self.env["LOOOP_INTERVAL"] = "60"
        self.pulse = start_pulse(self.env, (self.data / "snapshots").exists)
        self.serial = 0

    def close(self) -> None:
        stop_pulse(self.pulse)

    def looop(self, *args: str) -> None:
        subprocess.run([LOOOP, *args], env=self.env, check=True, stdout=subprocess.DEVNULL)

    def due_to_wait(self, looop: bool) -> float:
        self.serial += 1
        name = f"bench-{self.serial}"
        ready = self.root / f"ready-{self.serial}"
        record = self.data / "schedules" / f"{name}.json"
        if looop:
            env = {**self.env, "LOOOP_TEST_WAIT_READY": str(ready)}
            argv = [LOOOP, "_", "wait", "--json", "--timeout", "30", "--for", "schedules"]
        else:
            env, argv = self.env, [sys.executable, "-c", POLL_DUE, str(record), str(ready)]
        waiter = subprocess.Popen(
            argv, env=env, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL
        )
        while not ready.exists():
            time.sleep(0.005)
        ready.unlink()
        self.looop("_", "schedule", "write", name, "--in", f"{random.uniform(0.3, 0.6):.3f}s")
        # A blocking waitpid: Popen.wait(timeout=...) polls, every 50 ms by then.
        waiter.wait()
        latency = time.time() - float(json.loads(record.read_text())["at"])
        self.looop("_", "schedule", "remove", name)
        return latency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    root = scratch("schedules")
    bench = Bench(root)
    try:
        ours, theirs = [], []
        for _ in range(args.trials):
            ours.append(bench.due_to_wait(True))
            theirs.append(bench.due_to_wait(False))
        print(f"{args.trials} trials each, alternating, one run")
        show_latency("due -> wait", ours, theirs)
    finally:
        bench.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
