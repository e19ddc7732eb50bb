"""Start-up cost of the probes: ``looop status`` and ``looop _ state --json``
against the cheapest Python there is, ``python3 -I -c pass``.

Runs a real pulse (one beat, then a long interval) in a throw-away profile, so
``status`` answers "running" with its beat record, then times each probe and
the baseline alternately in the same run. The baseline is the interpreter
looop runs on (this script's ``sys.executable``), so the ratio is what looop
adds to a bare start.

    python bench/bench_status.py [--rounds 40]

Goals: ``status`` <= 2.0x the baseline, ``_ state --json`` <= 3.0x.
"""

from __future__ import annotations

import argparse
import functools
import shutil
import subprocess
import sys

from common import LOOOP, alternate, isolated_env, report, scratch, start_pulse, stop_pulse

PROBES = {
    "looop status": (["status"], 0, 2.0),
    "looop _ state --json": (["_", "state", "--json"], 0, 3.0),
}


def probe(argv: list[str], env: dict[str, str], code: int) -> None:
    out = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True)
    if out.returncode != code:
        raise SystemExit(f"{' '.join(argv)} exited {out.returncode}: {out.stderr.decode()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    root = scratch("status")
    env = isolated_env(root)
    env["LOOOP_INTERVAL"] = "3600"
    pulse = start_pulse(
        env, lambda: subprocess.run([LOOOP, "status"], env=env, capture_output=True).returncode == 0
    )
    try:
        baseline = [sys.executable, "-I", "-c", "pass"]
        for name, (argv, code, goal) in PROBES.items():
            command = [LOOOP, *argv]
            probe(command, env, code)  # warm the caches; fail loudly if it does not answer
            ours, theirs = alternate(
                functools.partial(probe, command, env, code),
                functools.partial(probe, baseline, env, 0),
                args.rounds,
            )
            report(name, ours, theirs, goal)
    finally:
        stop_pulse(pulse)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
