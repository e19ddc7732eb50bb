"""``looop reap`` against a blind delete of the same sessions and their mail.

    python bench/bench_reap.py [--rounds N] [--sessions N [N ...]] [--dir DIR]

For each size (by default 300, 1,000 and 3,000 sessions), each round copies
one template of N dead, old sessions (three small files each), each with one
ask and one answer in the mailbox (``asks/<id>-1.json``,
``answers/<id>-1.json``, the mailbox's names), into two fresh data dirs, then
times ``looop reap`` on one and the baseline on the other, taking turns at
going first. Two in three sessions have an exited status with an ``ended``
time (meta, status, transcript): the reaper's fast path, judged from those
files alone. Every third has no status and a pid no process can have (meta,
transcript, an output log): dead only by its gone pid, so it costs a
process-table lookup and a walk measuring its newest modification. The
baseline,

    find sessions -mindepth 1 -maxdepth 1 -type d -mmin +60 -print0 | xargs -0 rm -rf
    find asks answers -type f -name '*.json' -print0 | xargs -0 rm -f

checks nothing; the reaper judges liveness, refuses links, renames each
victim before emptying it, removes exactly each reaped session's asks and
answers and records an event per session. The goal is a ratio of at most
1.5 at every size: a reaper that lists the mailbox once per session grows
quadratically and misses it at the larger sizes. Prints medians and ratios
of wall time and, steadier on a shared machine, of CPU time (user + system).
``--dir`` builds the data dirs elsewhere (another file system, a tmpfs).

looop's modules are byte-compiled once before the clock starts, as ``pip
install`` leaves them: without it, an editable install under
``PYTHONDONTWRITEBYTECODE`` compiles every module again on each run, and
the bench would time the compiler rather than the reaper.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import LOOOP, isolated_env, report, run, scratch, timed

DAY = 86400
SIZES = [300, 1000, 3000]
BASELINE = [
    "sh",
    "-c",
    "find sessions -mindepth 1 -maxdepth 1 -type d -mmin +60 -print0 | xargs -0 rm -rf"
    " && find asks answers -type f -name '*.json' -print0 | xargs -0 rm -f",
]
AREAS = ("sessions", "asks", "answers")


# Above any pid a system hands out (Linux caps pid_max at 2**22, macOS at
# 99,999): such a pid is gone for certain, whatever runs during the bench.
GONE_PID = 1 << 23


def make_template(root: Path, count: int) -> Path:
    """A data dir of ``count`` sessions that ended ten days ago, every mtime ten days back.

    Every third one has no status and a gone pid; the others exited. Each
    has one ask and its answer.
    """
    template = root / f"template-{count}"
    sessions = template / "sessions"
    sessions.mkdir(parents=True)
    now = time.time()
    old = now - 10 * DAY
    for i in range(count):
        d = sessions / f"w{i:05d}"
        d.mkdir()
        pid_gone = i % 3 == 2
        pid = GONE_PID + i if pid_gone else 100000 + i
        meta = {"id": d.name, "pid": pid, "started": old - 3600, "cmd": "worker --task x"}
        (d / "meta.json").write_text(json.dumps(meta))
        (d / "transcript.log").write_text(f"session {d.name}\nstep 1\nstep 2\ndone\n")
        if pid_gone:
            third = "output.log"
            (d / third).write_text("partial output, then the worker died\n")
        else:
            third = "status.json"
            status = {"state": "exited", "exit_code": 0, "ended": old}
            (d / third).write_text(json.dumps(status))
        for f in ("meta.json", "transcript.log", third):
            os.utime(d / f, (old, old))
        os.utime(d, (old, old))
        make_mail(template, d.name, old)
    return template


def make_mail(data: Path, sid: str, ts: float) -> None:
    """One ask of session ``sid`` and its answer, as ``_ ask`` and ``_ answer`` write them."""
    ask_id = f"{sid}-1"
    ask = {"id": ask_id, "worker": sid, "prompt": "which branch?", "ts": ts}
    answer = {"id": ask_id, "answer": "main", "ts": ts + 60}
    for box, record in (("asks", ask), ("answers", answer)):
        path = data / box / f"{ask_id}.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(record, indent=2) + "\n")
        os.utime(path, (ts, ts))


def fresh_copy(template: Path, data: Path) -> None:
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    # cp -a keeps the mtimes, so both sides see the same old sessions.
    for area in AREAS:
        subprocess.run(["cp", "-a", str(template / area), str(data / area)], check=True)


def left_over(data: Path) -> list[str]:
    """What a run left in the areas it reaps (the reaper's own lock aside)."""
    return [
        f"{area}/{name}"
        for area in AREAS
        for name in os.listdir(data / area)
        if name != ".reap.lock"
    ]


def timed_with_cpu(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall seconds and the children's CPU seconds (user + system) of one call."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = timed(fn)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def bench_size(root: Path, count: int, rounds: int) -> None:
    template = make_template(root, count)
    ours_root, theirs_root = root / "looop", root / "find"
    env = isolated_env(ours_root)
    ours_data, theirs_data = ours_root / "data", theirs_root / "data"

    def reap() -> None:
        run([LOOOP, "reap"], env)

    def baseline() -> None:
        run(BASELINE, env, cwd=theirs_data)

    wall: dict[str, list[float]] = {"looop": [], "find": []}
    cpu: dict[str, list[float]] = {"looop": [], "find": []}
    for i in range(rounds):
        # Copies are made before the clock starts; only the removals are timed.
        fresh_copy(template, ours_data)
        fresh_copy(template, theirs_data)
        order = [("looop", reap), ("find", baseline)]
        for name, fn in order if i % 2 == 0 else order[::-1]:
            w, c = timed_with_cpu(fn)
            wall[name].append(w)
            cpu[name].append(c)
        left_ours, left_theirs = left_over(ours_data), left_over(theirs_data)
        assert not left_ours and not left_theirs, (len(left_ours), len(left_theirs))
    shutil.rmtree(template)
    title = f"{count} dead old sessions x 3 files + 1 ask + 1 answer (1/3 by a gone pid)"
    report(f"{title}, wall", wall["looop"], wall["find"], goal=1.5)
    report(f"{title}, cpu (user+sys)", cpu["looop"], cpu["find"])


def byte_compile() -> None:
    """Compile the looop that ``LOOOP`` runs (the same interpreter and path), as pip does."""
    code = "import compileall, os, looop; compileall.compile_dir(os.path.dirname(looop.__file__))"
    subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--sessions", type=int, nargs="+", default=SIZES)
    parser.add_argument("--dir", type=Path, help="where to build the data dirs (default: temp)")
    args = parser.parse_args()
    byte_compile()
    if args.dir:
        root = Path(tempfile.mkdtemp(prefix="looop-bench-reap-", dir=args.dir))
    else:
        root = scratch("reap")
    try:
        for count in args.sessions:
            bench_size(root, count, args.rounds)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
