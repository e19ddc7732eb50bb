"""The full fault sweep: every command under every failing call and crash point.

For each command of ``tests/fault_commands.py`` (``sense``, the verbs, ``_ ask``,
``_ answer``, ``_ claim``, ``_ cost``, ``_ run``, ``config set``, ``reap``,
``_ worker start``), trace it once to find the calls that reach its files,
then run it once per case (each of those calls failing with each errno, a
kill at each mutating one, short writes at the append files' ends) and check
looop's promise after each. Prints the cases run and the cases that broke the
promise, by class and by command; ``--log`` keeps every breach, one a line.

    python bench/fault_sweep.py [--jobs 2] [--limit N] [--only CMD,...] [--log FILE]

``tests/test_faults.py`` runs a seeded sample of the same cases.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import fault_commands
import faults


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="cases run at once")
    parser.add_argument("--limit", type=int, default=0, help="a seeded sample of this many cases")
    parser.add_argument("--seed", type=int, default=22)
    parser.add_argument("--only", default="", help="comma-separated command names")
    parser.add_argument("--log", type=Path, help="write every breach here")
    args = parser.parse_args()
    missing = faults.have_tools()
    if missing:
        print(f"cannot sweep: {missing}", file=sys.stderr)
        return 1
    names = [n for n in args.only.split(",") if n] or list(fault_commands.COMMANDS)
    work = Path(tempfile.mkdtemp(prefix="looop-faults-"))
    started = time.monotonic()
    bases, cases = {}, []
    for name in names:
        command = fault_commands.COMMANDS[name]
        bases[name] = base = faults.baseline(command, work / name)
        found = faults.cases_for(command, base.box, base.after, work / name)
        print(f"{name}: {len(found)} cases", flush=True)
        cases += found
    if args.limit and args.limit < len(cases):
        cases = sorted(random.Random(args.seed).sample(cases, args.limit), key=cases.index)
    log = args.log.open("w") if args.log else None
    broken: Counter[str] = Counter()
    by_command: Counter[str] = Counter()
    cases_broken = 0
    done = 0
    lock = threading.Lock()

    def one(index: int) -> None:
        nonlocal cases_broken, done
        case = cases[index]
        result = faults.run_case(bases[case.command], case, work / f"case-{index}")
        with lock:
            done += 1
            kinds = sorted({b.kind for b in result.breaches})
            if kinds:
                cases_broken += 1
                broken.update(kinds)
                by_command.update(f"{case.command} {k}" for k in kinds)
            if log:
                for b in result.breaches:
                    log.write(f"{case.label}\t{b.kind}\t{b.detail}\n")
                log.flush()
            if done % 100 == 0:
                print(f"  {done}/{len(cases)} run, {cases_broken} broke the promise", flush=True)

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:
        list(pool.map(one, range(len(cases))))
    if log:
        log.close()
    minutes = (time.monotonic() - started) / 60
    print(f"\ncases run: {len(cases)}, broke the promise: {cases_broken} ({minutes:.1f} min)")
    print("by class (a case may break more than one):")
    for kind, count in broken.most_common():
        print(f"  {kind:14} {count}")
    print("by command and class:")
    for key, count in sorted(by_command.items()):
        print(f"  {key:30} {count}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
