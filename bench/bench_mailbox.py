"""Mailbox latency: ask raised -> a blocked ``_ wait`` returns; answer written -> ``_ ask`` returns.

Runs a real pulse (quiet: one beat a minute) in a throw-away profile, then,
alternating in the same run between looop and the reference's approach (a
loop that looks once a second), for each of:

* **ask -> wait**: a ``looop _ wait`` is started and armed (it writes
  ``$LOOOP_TEST_WAIT_READY``), an ask lands in ``asks/`` (written whole,
  then renamed into place, as ``_ ask`` does), and the latency is from just
  before the rename to the waiter's exit. The ask is answered afterwards, so
  the next trial starts with nothing pending.
* **answer -> ask**: a ``looop _ ask`` is started; once its ask file exists
  (and a short random pause has let it arm its watch), the answer lands in
  ``answers/`` and the latency is from just before the rename to the
  asker's exit.

The baseline pollers are started at a random phase, so their latency is
uniform over the poll period, as the reference's is. Nothing is asserted.

    python bench/bench_mailbox.py [--trials 30]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import LOOOP, isolated_env, scratch, show_latency, start_pulse, stop_pulse

POLL_WAIT = """
import os, random, sys, time
asks = sys.argv[1]
open(sys.argv[2], "w").write("armed")
time.sleep(random.random())  # the poller's phase
while not any(n.endswith(".json") and not os.path.exists(os.path.join(sys.argv[3], n))
              for n in os.listdir(asks)):
    time.sleep(1.0)
"""

POLL_ASK = """
import os, sys, time
while not os.path.exists(sys.argv[1]):
    time.sleep(1.0)
print(open(sys.argv[1]).read())
"""


def land(path: Path, record: dict[str, object]) -> float:
    """Write ``record`` beside ``path`` and rename it into place; the time just before."""
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(json.dumps(record))
    started = time.monotonic()
    os.rename(temp, path)
    return started


class Bench:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.env = isolated_env(root)
        self.env["LOOOP_INTERVAL"] = "60"
        self.asks, self.answers = self.data / "asks", self.data / "answers"
        self.pulse = start_pulse(self.env, (self.data / "snapshots").exists)
        self.serial = 0

    def close(self) -> None:
        stop_pulse(self.pulse)

    def _next(self) -> str:
        self.serial += 1
        return f"bench-{self.serial}"

    def _answer(self, ask_id: str) -> None:
        land(self.answers / f"{ask_id}.json", {"id": ask_id, "answer": "ok", "ts": time.time()})

    def ask_to_wait(self, looop: bool) -> float:
        ready = self.root / f"ready-{self.serial}"
        if looop:
            env = {**self.env, "LOOOP_TEST_WAIT_READY": str(ready)}
            argv = [LOOOP, "_", "wait", "--json"]
        else:
            env = self.env
            argv = [sys.executable, "-c", POLL_WAIT, str(self.asks), str(ready), str(self.answers)]
        waiter = subprocess.Popen(
            argv, env=env, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL
        )
        while not ready.exists():
            time.sleep(0.005)
        ready.unlink()
        time.sleep(random.uniform(0.05, 0.3))
        ask_id = self._next()
        worker = ask_id.rsplit("-", 1)[0]
        started = land(
            self.asks / f"{ask_id}.json",
            {"id": ask_id, "worker": worker, "prompt": "q", "ts": time.time()},
        )
        waiter.wait(timeout=30)
        latency = time.monotonic() - started
        self._answer(ask_id)
        return latency

    def answer_to_ask(self, looop: bool) -> float:
        ask_id = self._next()
        worker, n = ask_id.rsplit("-", 1)
        if looop:
            argv = [LOOOP, "_", "ask", worker, "--prompt", f"question {n}"]
        else:
            land(
                self.asks / f"{ask_id}.json",
                {"id": ask_id, "worker": worker, "prompt": f"question {n}", "ts": time.time()},
            )
            argv = [sys.executable, "-c", POLL_ASK, str(self.answers / f"{ask_id}.json")]
        asker = subprocess.Popen(
            argv, env=self.env, stdout=subprocess.DEVNULL, stdin=subprocess.DEVNULL
        )
        while not (self.asks / f"{ask_id}.json").exists():
            time.sleep(0.005)
        time.sleep(random.uniform(0.2, 1.2))  # armed; and a uniform phase for the poller
        started = time.monotonic()
        self._answer(ask_id)
        asker.wait(timeout=30)
        return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    args = parser.parse_args()
    root = scratch("mailbox")
    bench = Bench(root)
    try:
        (bench.data / "asks").mkdir(exist_ok=True)
        (bench.data / "answers").mkdir(exist_ok=True)
        results: dict[str, tuple[list[float], list[float]]] = {}
        for name, trial in (
            ("ask -> wait", bench.ask_to_wait),
            ("answer -> ask", bench.answer_to_ask),
        ):
            ours, theirs = [], []
            for _ in range(args.trials):
                ours.append(trial(True))
                theirs.append(trial(False))
            results[name] = (ours, theirs)
        print(f"{args.trials} trials each, alternating, one run")
        for name, (ours, theirs) in results.items():
            show_latency(name, ours, theirs)
    finally:
        bench.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
