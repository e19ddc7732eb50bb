"""Start-up cost of the probes a shell or an agent runs in a loop, against the
cheapest Python there is, ``python3 -I -c pass``; and ``status`` with 5,000
live sessions against ``status`` with none.

Runs a real pulse (one beat, then a long interval) in a throw-away profile, so
``status`` answers "running" with its beat record, then times each probe and
the baseline alternately in the same run: ``looop status``, ``looop _ state
--json`` and one completion TAB (the environment bash's completion sets for
``looop _ goal write d``). The baseline is the interpreter looop runs on
(this script's ``sys.executable``) with ``-I``, which also skips ``site``:
so the ratio is what looop *and* the installation's ``site`` (its ``.pth``
files: an editable install's finder imports ``pathlib``) add to a bare
start. Install non-editable to time looop alone.

The sessions figure: a second profile whose ``sessions/`` holds 5,000 live
sessions (one live process's pid each), its pulse having beaten once on
them, timed alternately with the first (no session at all).

    python bench/bench_status.py [--rounds 40]

Goals (issue 27's table, ``common.GOALS``): status <= 1.6x the baseline,
``_ state --json`` <= 2.0x, a TAB <= 2.0x; status with 5,000 live sessions
<= 1.1x status with none.
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import (
    GOALS,
    LOOOP,
    alternate,
    isolated_env,
    report,
    scratch,
    start_pulse,
    stop_pulse,
)

TAB = {"_LOOOP_COMPLETE": "bash_complete", "COMP_WORDS": "looop _ goal write d", "COMP_CWORD": "4"}
PROBES: dict[str, tuple[dict[str, str], list[str], int, float]] = {
    "looop status": ({}, ["status"], 0, GOALS["status"]),
    "looop _ state --json": ({}, ["_", "state", "--json"], 0, GOALS["state"]),
    "one TAB (_ goal write d)": (TAB, [], 0, GOALS["completion"]),
}
SESSIONS = 5_000


def probe(argv: list[str], env: dict[str, str], code: int) -> None:
    out = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True)
    if out.returncode != code:
        raise SystemExit(f"{' '.join(argv)} exited {out.returncode}: {out.stderr.decode()}")


def running(env: dict[str, str]) -> subprocess.Popen[bytes]:
    env["LOOOP_INTERVAL"] = "3600"
    return start_pulse(
        env, lambda: subprocess.run([LOOOP, "status"], env=env, capture_output=True).returncode == 0
    )


def live_sessions(data: Path, pid: int) -> None:
    """``SESSIONS`` sessions whose meta names ``pid``, a process that runs throughout."""
    now = time.time()
    for n in range(SESSIONS):
        session = data / "sessions" / f"w{n}"
        session.mkdir(parents=True)
        meta = {"id": f"w{n}", "pid": pid, "started": now, "cmd": "bench"}
        (session / "meta.json").write_text(json.dumps(meta))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    root, crowded = scratch("status"), scratch("status-sessions")
    env, crowded_env = isolated_env(root), isolated_env(crowded)
    sleeper = subprocess.Popen(["sleep", "3600"])
    pulses = []
    try:
        for gid in ("deploy", "docs"):
            probe([LOOOP, "_", "goal", "write", gid, "bench"], env, 0)
        live_sessions(crowded / "data", sleeper.pid)
        pulses = [running(env), running(crowded_env)]
        baseline = [sys.executable, "-I", "-c", "pass"]
        for name, (extra, argv, code, goal) in PROBES.items():
            command, probed = [LOOOP, *argv], {**env, **extra}
            probe(command, probed, code)  # warm the caches; fail loudly if it does not answer
            ours, theirs = alternate(
                functools.partial(probe, command, probed, code),
                functools.partial(probe, baseline, env, 0),
                args.rounds,
            )
            report(name, ours, theirs, goal)
        status = json.loads(
            subprocess.run([LOOOP, "status", "--json"], env=crowded_env, capture_output=True).stdout
        )
        if status["workers"] != SESSIONS:
            raise SystemExit(f"the pulse counted {status['workers']} live workers, not {SESSIONS}")
        ours, theirs = alternate(
            functools.partial(probe, [LOOOP, "status"], crowded_env, 0),
            functools.partial(probe, [LOOOP, "status"], env, 0),
            args.rounds,
        )
        report(
            f"looop status, {SESSIONS:,} live sessions / none",
            ours,
            theirs,
            GOALS["status 5,000 sessions"],
        )
    finally:
        for pulse in pulses:
            stop_pulse(pulse)
        sleeper.kill()
        sleeper.wait()
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(crowded, ignore_errors=True)


if __name__ == "__main__":
    main()
