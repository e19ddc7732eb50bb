"""``looop _ run -- true`` against ``sh -c true``: what the guard rail's parser costs a run.

``_ run`` reads its command with tree-sitter's bash grammar before it runs
it (``agent.gate``). This times, alternately in the same run, ``sh -c
true`` (the baseline), ``looop _ run -- true``, and a longer command of
the kind an agent sends (a list, a pipeline, a substitution, a heredoc),
each to its end; with ``--before LOOOP`` (an installation from before the
parser) it times that one's ``_ run -- true`` too and prints the ratio of
the two, which is the parser's share.

    python bench/bench_run_guard.py [--rounds 30] [--before /path/to/old/bin/looop]

Goal: the parser does not double ``_ run``'s time (after / before < 2).
"""

from __future__ import annotations

import argparse
import functools
import shutil
import subprocess

from common import LOOOP, isolated_env, report, scratch, timed

LONG = (
    "cd . && test -d . || exit 1; for f in a b c; do printf '%s\\n' \"$f\"; done"
    ' | tee /dev/null | wc -l; echo "$(date +%s)" > /dev/null; cat <<EOF\nok\nEOF'
)


def run(argv: list[str], env: dict[str, str]) -> None:
    out = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if out.returncode != 0:
        raise SystemExit(f"{argv[:3]} exited {out.returncode}: {out.stderr.decode()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--before", help="a looop installed from before the parser")
    args = parser.parse_args()
    root = scratch("run-guard")
    try:
        env = isolated_env(root)
        subjects = {
            "sh -c true": functools.partial(run, ["sh", "-c", "true"], env),
            "_ run -- true": functools.partial(run, [LOOOP, "_", "run", "--", "true"], env),
            "_ run -- LONG": functools.partial(run, [LOOOP, "_", "run", "--", LONG], env),
        }
        if args.before:
            before = [args.before, "_", "run", "--", "true"]
            subjects["before: _ run -- true"] = functools.partial(run, before, env)
        for fn in subjects.values():
            fn()  # first-run seeding and a warm cache, untimed
        times: dict[str, list[float]] = {name: [] for name in subjects}
        for _ in range(args.rounds):
            for name, fn in subjects.items():
                times[name].append(timed(fn))
        base = times["sh -c true"]
        report("_ run -- true / sh -c true", times["_ run -- true"], base)
        report("_ run -- LONG / sh -c true", times["_ run -- LONG"], base)
        if args.before:
            report(
                "_ run -- true, after / before the parser",
                times["_ run -- true"],
                times["before: _ run -- true"],
                goal=2.0,
            )
            report("before: _ run -- true / sh -c true", times["before: _ run -- true"], base)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
