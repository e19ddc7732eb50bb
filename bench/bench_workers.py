"""How long does ``looop _ worker start`` keep its caller? Against what it stands on.

    sudo python bench/bench_workers.py [--rounds N]

1. Under a real systemd user manager (a normal user's, via the test
   harness): ``looop _ worker start`` of a trivial worker (it sleeps) against
   ``systemd-run --user --collect true``, both run the same way as the
   manager's user, alternating. Goal: median ratio <= 3.0.
   Also printed: the floor, a bare Python that only hands a looop
   supervisor to ``systemd-run`` (the supervisor's own start competes with
   the caller's return for the CPU), against the same baseline.
2. Without a manager (the detached supervisor): the same start against a
   bare ``python3 -I -c pass``. Goal: median ratio <= 4.0.

Timed is the return to the caller, which is what ``$(looop _ worker start
...)`` waits for. Every worker started is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from common import LOOOP, alternate, isolated_env, report, scratch, timed

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from systemd_harness import Harness, unavailable_reason

CONFIG = '[worker]\ncommand = ["{sleeper}"]\nmax_live = 10000\nsupervisor = "{supervisor}"\n'


def under_systemd(rounds: int) -> None:
    reason = unavailable_reason()
    if reason:
        print(f"under systemd: skipped ({reason})")
        return
    harness = Harness()
    try:
        m = harness.manager("user")
        m.reset()
        sleeper = m.write(m.base / "sleeper", "#!/bin/sh\nexec sleep 600\n", 0o755)
        m.write(m.data_dir / "config.toml", CONFIG.format(sleeper=sleeper, supervisor="auto"))
        n = iter(range(10**6))
        ours, theirs = alternate(
            lambda: m.run(m.looop, "_", "worker", "start", f"b{next(n)}", "x", check=True),
            lambda: m.run("systemd-run", "--user", "--collect", "--quiet", "true", check=True),
            rounds,
        )
        listed = json.loads(m.looop_cmd("workers", "--json").stdout)
        supervisors = {w["unit"] is not None for w in listed}
        report("worker start vs systemd-run --user --collect true", ours, theirs, goal=3.0)
        print(f"  every worker a unit: {supervisors == {True}}")
        # What no start can go below: a Python that only hands a looop
        # supervisor to systemd-run (it exits at once, finding no session).
        python = str(Path(m.looop).parent / "python")
        handing = "import subprocess, sys; subprocess.run(sys.argv[1:], check=True)"
        unit = ["systemd-run", "--user", "--collect", "--quiet", "--property=Type=exec"]
        hand = [python, "-I", "-c", handing, *unit, m.looop, "_", "supervise", "absent"]
        floor, theirs = alternate(
            lambda: m.run(*hand, check=True),
            lambda: m.run("systemd-run", "--user", "--collect", "--quiet", "true", check=True),
            rounds,
        )
        report("  floor vs the same systemd-run", floor, theirs, subject="floor")
        m.looop_cmd("down", timeout=300)
    finally:
        harness.close()


def detached(rounds: int) -> None:
    root = scratch("workers")
    env = isolated_env(root)
    sleeper = root / "sleeper"
    sleeper.write_text("#!/bin/sh\nexec sleep 600\n")
    sleeper.chmod(0o755)
    (root / "data").mkdir()
    (root / "data" / "config.toml").write_text(
        CONFIG.format(sleeper=sleeper, supervisor="detached")
    )
    n = iter(range(10**6))
    bare = [sys.executable, "-I", "-c", "pass"]

    def start() -> None:
        subprocess.run(
            [LOOOP, "_", "worker", "start", f"b{next(n)}", "x"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )

    try:
        ours, theirs = alternate(start, lambda: subprocess.run(bare, check=True), rounds)
        report("worker start (detached) vs python3 -I -c pass", ours, theirs, goal=4.0)
        once = timed(
            lambda: subprocess.run([LOOOP, "down"], env=env, check=True, stdout=subprocess.DEVNULL)
        )
        print(f"  down stopped {rounds} detached workers in {once:.2f}s")
    finally:
        subprocess.run([LOOOP, "down"], env=env, stdout=subprocess.DEVNULL)
        subprocess.run(["rm", "-rf", str(root)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    if os.geteuid() == 0:
        under_systemd(args.rounds)
    else:
        print("under systemd: skipped (needs root to start a private user manager)")
    detached(args.rounds)


if __name__ == "__main__":
    main()
