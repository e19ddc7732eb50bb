"""What does a worker cost? Its start, against ``systemd-run``; its memory while it lives.

    sudo python bench/bench_workers.py [--rounds N]

1. Under a real systemd user manager (a normal user's, via the test
   harness): ``looop _ worker start`` of a trivial worker (it sleeps) against
   ``systemd-run --user --collect true``, both run the same way as the
   manager's user, alternating. Goal: median ratio <= 2.5.
   Also printed: the floor, a bare Python that only hands a looop
   supervisor to ``systemd-run``, against the same baseline.
2. Without a manager (the detached supervisor): the same start against a
   bare ``python3 -I -c pass``. Goal: median ratio <= 4.0.
3. The memory a live worker adds, with 10 and then 30 sleeping workers, both
   ways: every process that is not the worker's own command (a supervisor,
   its lifeline), by ``VmRSS`` (and by ``Pss``, which shares the
   interpreter's pages among its copies), plus under systemd what the
   manager grew by (its ``VmRSS``), each per worker. Goals: <= 2 MiB per
   worker under systemd, <= 8 MiB detached. Printed beside them: a bare
   ``python3 -I -S`` that sleeps, the floor of any Python supervisor.

Timed is the return to the caller, which is what ``$(looop _ worker start
...)`` waits for. Every worker started is stopped at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from common import LOOOP, alternate, isolated_env, report, scratch, timed

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from systemd_harness import Harness, Manager, unavailable_reason

from looop.workers.start import BOOT

LIVE = (10, 30)  # live workers at which their memory is measured
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
        report("worker start vs systemd-run --user --collect true", ours, theirs, goal=2.5)
        print(f"  every worker a unit: {supervisors == {True}}")
        # What no start can go below: a Python that only hands a looop
        # supervisor to systemd-run (it exits at once, finding no session).
        python = str(Path(m.looop).parent / "python")
        handing = "import subprocess, sys; subprocess.run(sys.argv[1:], check=True)"
        unit = ["systemd-run", "--user", "--collect", "--quiet", "--property=Type=exec"]
        # The supervisor as a start hands it over (``start.entry``'s lean argv).
        site = next(str(p) for p in Path(m.looop).parent.parent.glob("lib/python*/site-packages"))
        lean = [python, "-I", "-S", "-c", BOOT, site, "_", "supervise", "absent"]
        hand = [python, "-I", "-c", handing, *unit, *lean]
        floor, theirs = alternate(
            lambda: m.run(*hand, check=True),
            lambda: m.run("systemd-run", "--user", "--collect", "--quiet", "true", check=True),
            rounds,
        )
        report("  floor vs the same systemd-run", floor, theirs, subject="floor")
        m.looop_cmd("down", timeout=300)
        _memory_under_systemd(m)
    finally:
        harness.close()


def _memory_under_systemd(m: Manager) -> None:
    """The memory each live unit worker adds: its unit's other processes, the manager's growth."""
    assert m.proc is not None
    before = _kib(m.proc.pid, "VmRSS")
    started = 0
    for count in LIVE:
        for i in range(started, count):
            m.run(m.looop, "_", "worker", "start", f"m{i}", "x", check=True)
        started = count
        metas = _running(m.data_dir, count)
        others = [
            p
            for w in metas
            for p in m.unit_pids(str(w["unit"]))
            if p != w["pid"] and p not in _descendants(int(w["pid"]))
        ]
        grown = max(0, _kib(m.proc.pid, "VmRSS") - before)
        _memory_row(f"systemd, {count} workers", others, count, grown, goal=2.0)
    m.looop_cmd("down", timeout=300)


def _memory_row(name: str, pids: list[int], count: int, grown: int, goal: float) -> None:
    rss = sum(_kib(p, "VmRSS") for p in pids)
    pss = sum(_kib(p, "Pss", "smaps_rollup") for p in pids)
    per = (rss + grown) / count / 1024
    manager = f"; the manager grew {grown / count:.0f} KiB a worker" if grown else ""
    print(
        f"memory per live worker ({name}): VmRSS {per:.2f} MiB  (goal <= {goal})  "
        f"[{len(pids)} processes beside the workers' own: Pss {pss / count / 1024:.2f} MiB "
        f"a worker{manager}]"
    )


def _running(data: Path, count: int) -> list[dict[str, Any]]:
    """The metas of the ``count`` running ``m*`` workers, once each has its pid (and group)."""
    deadline = time.monotonic() + 60
    while True:
        metas = []
        for session in sorted((data / "sessions").glob("m*")):
            if (session / "status.json").exists():
                continue
            try:
                meta = json.loads((session / "meta.json").read_text())
            except (OSError, ValueError):
                continue
            if meta.get("pid") and (meta.get("unit") or meta.get("pgid")):
                metas.append(meta)
        if len(metas) >= count or time.monotonic() > deadline:
            return metas
        time.sleep(0.1)


def _kib(pid: int, field: str, name: str = "status") -> int:
    try:
        with open(f"/proc/{pid}/{name}") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _descendants(pid: int) -> set[int]:
    found, todo = set(), [pid]
    while todo:
        parent = todo.pop()
        try:
            with open(f"/proc/{parent}/task/{parent}/children") as fh:
                kids = [int(k) for k in fh.read().split()]
        except OSError:
            kids = []
        found.update(kids)
        todo += kids
    return found


def _group_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[2])
    except (OSError, ValueError, IndexError):
        return -1


def bare_python() -> None:
    """A bare ``python3 -I -S`` asleep: what any Python supervisor costs at the least."""
    sleeper = subprocess.Popen([sys.executable, "-I", "-S", "-c", "import time; time.sleep(30)"])
    try:
        time.sleep(1)
        rss, pss = _kib(sleeper.pid, "VmRSS"), _kib(sleeper.pid, "Pss", "smaps_rollup")
        print(
            f"  floor: a bare python3 -I -S asleep: VmRSS {rss / 1024:.2f} MiB, "
            f"Pss {pss / 1024:.2f} MiB"
        )
    finally:
        sleeper.kill()
        sleeper.wait()


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
        started = 0
        for count in LIVE:
            for i in range(started, count):
                subprocess.run(
                    [LOOOP, "_", "worker", "start", f"m{i}", "x"],
                    env=env,
                    check=True,
                    stdout=subprocess.DEVNULL,
                )
            started = count
            metas = _running(root / "data", count)
            # The supervisor and its lifeline: every descendant outside the worker's own group.
            others = [
                p
                for w in metas
                for p in [int(w["pid"]), *_descendants(int(w["pid"]))]
                if _group_of(p) != w["pgid"]
            ]
            _memory_row(f"detached, {count} workers", others, count, 0, goal=8.0)
        bare_python()
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
