"""A write that runs out of room says which file, and leaves no half of it behind.

Under a file-size limit (``prlimit --fsize``: ``EFBIG`` and short writes, as a
full disk gives ``ENOSPC``) the verbs print ``looop: <file>: <reason>``, never
a bare ``looop: File too large``, and an append is whole or absent.
"""

from __future__ import annotations

import json
import subprocess

from conftest import LOOOP, Profile


def limited(profile: Profile, fsize: int, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["prlimit", f"--fsize={fsize}", "--", LOOOP, *args],
        env=profile.env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_a_goal_too_big_to_write_names_the_goal_file(profile: Profile) -> None:
    assert profile.run("_", "goal", "write", "seed", "x").returncode == 0  # the layout exists
    out = limited(profile, 4096, "_", "goal", "write", "big", "x" * 10_000)
    goal = profile.data / "goals" / "big.md"
    assert out.returncode == 1
    assert out.stderr == f"looop: {goal}: File too large\n"
    assert not goal.exists()
    assert [p.name for p in goal.parent.iterdir() if p.name.startswith(".")] == []


def test_a_journal_line_that_does_not_fit_names_the_journal_and_is_absent(
    profile: Profile,
) -> None:
    assert profile.run("_", "goal", "write", "seed", "x").returncode == 0
    journal = profile.data / "journal.md"
    before = journal.read_bytes()
    out = limited(profile, len(before) + 10, "_", "goal", "write", "next", "y")
    assert out.returncode == 1
    assert out.stderr == f"looop: {journal}: File too large\n"
    assert journal.read_bytes() == before  # the part that fit was taken back


def test_a_cost_line_that_does_not_fit_is_absent_and_named(profile: Profile) -> None:
    assert profile.run("_", "cost", "worker", "w1", "claude", "0.5").returncode == 0
    ledger = profile.data / "cost.jsonl"
    before = ledger.read_bytes()
    out = limited(profile, len(before) + 20, "_", "cost", "worker", "w2", "claude", "1.25")
    assert out.returncode == 1
    assert out.stderr == f"looop: {ledger}: File too large\n"
    assert ledger.read_bytes() == before
    summary = profile.run("cost")
    assert summary.returncode == 0 and "skipped" not in summary.stdout


def test_an_answer_printed_to_a_full_disk_names_the_standard_output(profile: Profile) -> None:
    # `looop ... > file` on a full disk: the write that fails is stdout's, which
    # has no file name of its own. Both the fast path and click's say so.
    for args in (("_", "state", "--json"), ("status",), ("help",), ("_", "state", "--wat")):
        with open("/dev/full", "w") as full:
            out = subprocess.run(
                [LOOOP, *args], env=profile.env, stdout=full, stderr=subprocess.PIPE, text=True
            )
        if args[-1] == "--wat":  # a usage error writes only to stderr
            assert out.returncode == 2 and "No such option" in out.stderr, out.stderr
            continue
        assert out.returncode == 1, (args, out.stderr)
        assert out.stderr == "looop: <stdout>: No space left on device\n", (args, out.stderr)


def test_a_run_whose_output_cannot_be_written_runs_whole_records_it_and_names_stdout(
    profile: Profile,
) -> None:
    # A full disk under `_ run ... > file` is not a reader gone: the command is
    # not cut short by SIGPIPE, its end and output are recorded, and the line says why.
    with open("/dev/full", "w") as full:
        out = subprocess.run(
            [LOOOP, "_", "run", "--", "seq 100000"],
            env=profile.env,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert out.returncode == 1, out.stderr
    assert out.stderr == "looop: <stdout>: No space left on device\n"
    (record,) = [json.loads(p.read_text()) for p in (profile.data / "runs").glob("*.json")]
    assert record["exit_code"] == 0 and record["output"].endswith("\n100000\n")
