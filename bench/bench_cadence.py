"""The pulse's beat with 50 sensors of which 45 are cached, against all 50 running.

    python bench/bench_cadence.py [--rounds N] [--sensors N] [--cached N] [--work S]

Two profiles, each with a running pulse (interval one hour, so it beats only
when asked): in one, 45 of the 50 sensors declare ``# looop: every 1h``; in
the other none does. Each sensor sleeps ``--work`` seconds, then prints one
reading: by default once with 0 (an instant sensor, where the beat's fixed
costs weigh most) and once with 0.1 s (an observer that asks an API or a
build, what a cadence is for). Each round asks each pulse in turn for a beat with
SIGHUP (a reload's beat keeps the cadence; ``looop sense`` would run every
sensor fresh) and reads the beat's own duration from its beat record, so
only the beat is timed, not the command that asked for it. A profile's
beats are at least a second apart, so each republished reading's age has
moved and its file is written anew, as under a real pulse. Goal: ratio <= 0.2.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import time

from common import LOOOP, isolated_env, report, run, scratch

READING = 'echo \'{"signal": {"up": true}, "detail": {"n": 1}}\''
SPACING = 1.05  # seconds between two beats of one profile


class Profile:
    def __init__(self, name: str, sensors: int, cached: int, work: float) -> None:
        self.root = scratch(name)
        self.env = isolated_env(self.root)
        run([LOOOP, "sense"], self.env)  # seed, then replace the starter sensor
        folder = self.root / "data" / "sensors"
        for old in folder.glob("*.sh"):
            old.unlink()
        for i in range(sensors):
            declared = "# looop: every 1h\n" if i < cached else ""
            script = folder / f"s{i:03d}.sh"
            sleep = f"sleep {work}\n" if work else ""
            script.write_text(f"#!/bin/sh\n{declared}{sleep}{READING}\n")
            script.chmod(0o755)
        self.pulse = subprocess.Popen(
            [LOOOP, "pulse"], env={**self.env, "LOOOP_INTERVAL": "3600"}, stderr=subprocess.PIPE
        )
        self.last_beat = 0.0
        self.number = self.wait_beat(0)

    def record(self) -> dict[str, object]:
        found = next((self.root / "run").glob("*.beat.json"), None)
        try:
            return json.loads(found.read_text()) if found else {}
        except (OSError, ValueError):
            return {}

    def wait_beat(self, after: int) -> int:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            record = self.record()
            number = record.get("number")
            if record.get("pid") == self.pulse.pid and isinstance(number, int) and number > after:
                return number
            if self.pulse.poll() is not None:
                raise SystemExit(f"a pulse stopped: {self.pulse.communicate()[1]!r}")
            time.sleep(0.005)
        raise SystemExit("no beat within 60 s")

    def beat(self) -> float:
        """One beat asked for now; its duration as the beat record says."""
        time.sleep(max(0.0, self.last_beat + SPACING - time.monotonic()))
        self.last_beat = time.monotonic()
        self.pulse.send_signal(signal.SIGHUP)
        self.number = self.wait_beat(self.number)
        return float(self.record()["duration"])  # type: ignore[arg-type]

    def close(self) -> None:
        self.pulse.send_signal(signal.SIGTERM)
        self.pulse.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def compare(rounds: int, sensors: int, cached: int, work: float) -> None:
    cadenced = Profile("cadence", sensors, cached, work)
    every_beat = Profile("every-beat", sensors, 0, work)
    try:
        ours, theirs = [], []
        for _ in range(rounds):
            ours.append(cadenced.beat())
            theirs.append(every_beat.beat())
        summary = cadenced.record().get("summary")
        name = f"beat, {sensors} sensors of {work:g} s, {cached} cached vs all running"
        report(name, ours, theirs, goal=0.2)
        print(f"  last cached beat: {summary}")
    finally:
        cadenced.close()
        every_beat.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--sensors", type=int, default=50)
    parser.add_argument("--cached", type=int, default=45)
    parser.add_argument("--work", type=float, action="append", help="seconds each sensor takes")
    args = parser.parse_args()
    for work in args.work or [0.0, 0.1]:
        compare(args.rounds, args.sensors, args.cached, work)


if __name__ == "__main__":
    main()
