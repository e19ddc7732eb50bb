"""``_ ask``, ``_ answer`` and ``_ claim`` killed at any instruction, as an agent's tool kills.

Each verb is traced once to find the mutating system calls it makes on the
profile's files (``faults.touching_calls``); then, for a sample of those,
it is run through the shell tool under ``strace`` that SIGKILLs it at that
call, and run again the way an agent retries a lost command. The retry
must converge: the same ask resumed (one ask, not two), the answer given
and journaled once, one claim holder, and no dot-temp file left behind.
A worker's ``_ ask`` killed by the tool's time limit while it waits is
resumed on the same ask by the retry.
"""

from __future__ import annotations

import json
import os
import shlex
import time
from pathlib import Path

import pytest
from conftest import make_session, strace_prefix, wait_for
from faults import KILL, MUTATING, Case, Command, Sandbox, touching_calls
from shell_tool import ShellTool

ASK = Command("ask", ("_", "ask", "w1", "--prompt", "which?", "--timeout", "0"))
ANSWER = Command(
    "answer",
    ("_", "answer", "w1-1", "yes"),
    prepare=(("_", "ask", "w1", "--prompt", "ok?", "--timeout", "0"),),
)
CLAIM = Command("claim", ("_", "claim", "c1", "--session", "w1"))
SAMPLE = 3  # kill points per system call: its first, middle and last call


def sandbox(root: Path, command: Command) -> Sandbox:
    box = Sandbox(root)
    (root / "home").mkdir(parents=True)
    for argv in command.prepare:
        box.run(argv)
    if command is CLAIM:  # a dead holder's claim, so the taking over is killed too
        make_session(box.data / "sessions", "gone", ended=time.time() - 60)
        make_session(box.data / "sessions", "w1", pid=os.getpid(), started=time.time())
        (box.data / "claims").mkdir()
        (box.data / "claims" / "c1.json").write_text(json.dumps({"session": "gone", "ts": 1}))
    return box


def kill_points(command: Command, tmp_path: Path) -> list[Case]:
    strace_prefix()  # skips where strace is missing
    template = sandbox(tmp_path / "template", command)
    found = []
    for call, ns in sorted(touching_calls(template, command, tmp_path).items()):
        if call in MUTATING:
            picked = sorted({ns[0], ns[len(ns) // 2], ns[-1]})[:SAMPLE]
            found += [Case(command.name, call, KILL, n) for n in picked]
    assert found, f"no kill point found for {command.name}"
    return found


def dot_files(box: Sandbox) -> list[str]:
    return sorted(
        str(path.relative_to(box.data))
        for box_dir in ("asks", "answers", "claims")
        if (box.data / box_dir).is_dir()
        for path in (box.data / box_dir).iterdir()
        if path.name.startswith(".")
    )


def converged(command: Command, box: Sandbox, retry_code: int) -> str | None:
    """What is wrong with the state after the retry, or None."""
    if command is ASK:
        asks = [p for p in (box.data / "asks").iterdir() if not p.name.startswith(".")]
        if retry_code != 124 or [p.name for p in asks] != ["w1-1.json"]:
            return f"retry exit {retry_code}, asks {sorted(p.name for p in asks)}"
    elif command is ANSWER:
        record = json.loads((box.data / "answers" / "w1-1.json").read_text())
        lines = (box.data / "journal.md").read_text().count("answer w1-1: yes")
        if (retry_code, record.get("answer"), lines) != (0, "yes", 1):
            return f"retry exit {retry_code}, answer {record}, {lines} journal lines"
    else:
        names = sorted(os.listdir(box.data / "claims"))
        holder = json.loads((box.data / "claims" / "c1.json").read_text())["session"]
        if (retry_code, names, holder) != (0, ["c1.json"], "w1"):
            return f"retry exit {retry_code}, claims {names}, held by {holder}"
    left = dot_files(box)
    return f"left behind: {left}" if left else None


@pytest.mark.parametrize("command", [ASK, ANSWER, CLAIM], ids=lambda c: c.name)
def test_a_verb_killed_at_any_mutating_call_converges_on_the_retry(
    tmp_path: Path, command: Command
) -> None:
    failures = []
    for i, case in enumerate(kill_points(command, tmp_path)):
        box = sandbox(tmp_path / f"case{i}", command)
        tool = ShellTool(box.env, limit=60)
        killed = tool.call(shlex.join([*case.prefix(), "looop", *command.argv]))
        retry = tool.call(shlex.join(["looop", *command.argv]))
        why = converged(command, box, retry.returncode)
        if "Traceback" in killed.err + retry.err or why:
            failures.append(f"{case.label}: {why or 'a traceback'} | {retry.err.strip()[:200]}")
    assert not failures, "\n".join(failures)


def test_an_asker_killed_by_the_tools_time_limit_is_resumed_on_the_same_ask(
    tmp_path: Path,
) -> None:
    box = sandbox(tmp_path / "box", ASK)
    tool = ShellTool(box.env, limit=1.0, grace=0.2)
    asking = "looop _ ask w1 --prompt 'deploy now?' --options yes,no"
    for _ in range(3):
        lost = tool.call(asking)
        assert lost.killed and "Traceback" not in lost.err, lost.err
    assert os.listdir(box.data / "asks") == ["w1-1.json"]
    root = ShellTool(box.env)
    assert root.call("looop _ answer w1-1 yes").returncode == 0
    done = ShellTool(box.env, limit=30).call(asking)
    assert (done.returncode, done.out) == (0, "yes\n"), done.err
    # The asker's child marks the ask delivered after the answer is out: its
    # temp file is there until that write ends.
    wait_for(lambda: dot_files(box) == [])
