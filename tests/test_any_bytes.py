"""Any bytes (issue 23): what is not UTF-8 is never a traceback, and a verb does all or nothing.

Linux hands looop bytes: its arguments, its stdin, the names of the files in
its data dir and what those files hold. An agent passes on a tool's output
as it came (``looop _ answer ID "$(cat x)"``). Every command here is driven
through the agent's shell tool (``tests/shell_tool.py``) with bytes that are
not UTF-8 (``$'\\xff\\xfe'``), under ``PYTHONIOENCODING=utf-8`` so stdout
and stderr are strict, as in most UTF-8 locales: no traceback on any stderr,
a failure is one ``looop:`` line, and a verb that says it did its work did
all of it (the file, the journal line), so a retry finds it done.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from conftest import Profile, wait_for
from shell_tool import Call, ShellTool

BAD = "$'\\xff\\xfe'"  # bash: two bytes that are not UTF-8
REPLACED = "\ufffd\ufffd"  # what looop reads them as


def tool(profile: Profile) -> ShellTool:
    return ShellTool({**profile.env, "PYTHONIOENCODING": "utf-8"}, limit=20)


def clean(done: Call, *codes: int) -> None:
    """No traceback, an exit code among ``codes``, at most one line on stderr (or click's usage)."""
    assert b"Traceback" not in done.stderr, (done.text, done.err)
    assert done.returncode in codes, (done.text, done.returncode, done.err)
    if not done.err.startswith("Usage:"):
        assert len(done.err.splitlines()) <= 1, (done.text, done.err)


def journal(profile: Profile) -> list[str]:
    return (profile.data / "journal.md").read_text(encoding="utf-8").splitlines()


# Each command line once with the bytes in an argument, and the exit codes it may end with.
COMMAND_LINES = [
    (f"looop {BAD}", (2,)),
    (f"looop _ {BAD}", (2,)),
    (f"looop help {BAD}", (2,)),
    (f"looop _ state {BAD}", (2,)),
    (f"looop config get {BAD}", (2,)),
    (f"looop config set worker.command {BAD}", (0,)),
    (f"looop _ goal write {BAD} x", (2,)),
    (f"looop _ goal write g1 {BAD}", (0,)),
    (f"looop _ goal write g2 body --journal {BAD}", (0,)),
    (f"looop _ goal archive {BAD}", (2,)),
    ("looop _ sensor write s1 $'#!/bin/sh\\necho \\xff'", (0,)),
    (f"looop _ sensor remove {BAD}", (2,)),
    (f"looop _ sensor test {BAD}", (2,)),
    (f"looop _ playbook write {BAD}", (0,)),
    (f"looop _ schedule write {BAD} --in 1h", (2,)),
    (f"looop _ schedule write t1 --in 1h --note {BAD} --journal {BAD}", (0,)),
    (f"looop _ schedule write t2 --at {BAD}", (2,)),
    (f"looop _ schedule remove {BAD}", (2,)),
    (f"looop _ notify {BAD}", (0,)),
    (f"looop _ ask w1 --prompt {BAD} --timeout 0", (124,)),
    (f"looop _ ask {BAD} --prompt x --timeout 0", (2,)),
    (f"looop _ ask w1 --prompt x --ref {BAD} --options {BAD} --timeout 0", (124,)),
    (f"looop _ answer {BAD} x", (2,)),
    (f"looop _ run -- echo {BAD}", (0,)),
    (f"looop _ run --reason {BAD} -- true", (0,)),
    (f"looop _ cost worker w1 {BAD} 0.5", (0,)),
    (f"looop _ cost {BAD} w1 r 0.5", (0,)),
    (f"looop _ cost worker w1 r {BAD}", (2,)),
    ("looop cost", (0,)),
    (f"looop _ worker start {BAD} go", (2,)),
    (f"looop _ worker start w2 {BAD}", (127,)),  # the worker command is not on PATH
    (f"looop _ worker kill {BAD}", (2,)),
    (f"looop _ kill {BAD}", (2,)),
    (f"looop _ claim {BAD} --session w1", (2,)),
    (f"looop _ claim c --session {BAD}", (2,)),
    (f"looop logs {BAD}", (2,)),
    (f"looop _ wait --since {BAD} --timeout 0", (2,)),
    (f"looop reap --ttl {BAD}", (2,)),
    (f"looop completion {BAD}", (2,)),
]


def test_bytes_in_any_argument_of_any_command_are_never_a_traceback(profile: Profile) -> None:
    shell = tool(profile)
    for text, codes in COMMAND_LINES:
        clean(shell.call(text), *codes)
    # What was stored is UTF-8 text, the bytes read as U+FFFD.
    assert (profile.data / "goals" / "g1.md").read_text(encoding="utf-8") == REPLACED + "\n"
    assert (profile.data / "PLAYBOOK.md").read_text(encoding="utf-8") == REPLACED + "\n"
    assert f"goal write g2: {REPLACED}" in journal(profile)[1]
    asks = json.loads(shell.call("looop _ asks --json").stdout)
    assert [a["prompt"] for a in asks] == [REPLACED, "x"]
    assert asks[1]["options"] == [REPLACED]


@pytest.mark.parametrize("how", ["argument", "stdin"])
def test_an_answer_of_bytes_is_delivered_with_its_journal_line_and_a_retry_agrees(
    profile: Profile, how: str
) -> None:
    shell = tool(profile)
    clean(shell.call("looop _ ask w1 --prompt 'ship it?' --timeout 0"), 124)
    command = f"looop _ answer w1-1 {BAD}" if how == "argument" else "looop _ answer w1-1 -"
    stdin = b"\xff\xfe\n" if how == "stdin" else None
    first = shell.call(command, stdin=stdin)
    clean(first, 0)
    again = shell.call(command, stdin=stdin)  # an agent that lost the first call's output
    clean(again, 0)
    answer = json.loads((profile.data / "answers" / "w1-1.json").read_text(encoding="utf-8"))
    assert answer["answer"] == REPLACED
    assert [line for line in journal(profile) if "answer w1-1" in line] == [journal(profile)[-1]]


@pytest.mark.parametrize(
    "verb",
    [
        "looop _ goal write g -",
        "looop _ sensor write s -",
        "looop _ playbook write -",
        "looop _ notify -",
        "looop _ worker start w -",
    ],
)
def test_bytes_on_stdin_are_text_for_every_verb_that_reads_a_body(
    profile: Profile, verb: str
) -> None:
    stdin = b"#!/bin/sh\n# \xff\xfe\n" if "sensor" in verb else b"\xff\xfe body\n"
    done = tool(profile).call(verb, stdin=stdin)
    clean(done, 0, 127)  # 127: the worker's command is not on PATH; nothing started
    for line in journal(profile)[1:] if (profile.data / "journal.md").exists() else []:
        assert "\udcff" not in line


def hostile_data_dir(data: Path) -> None:
    """Names and contents that are not UTF-8 wherever looop reads."""
    root = os.fsencode(data)

    def put(rel: bytes, content: bytes, mode: int = 0o644) -> None:
        path = root + b"/" + rel
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(content)
        os.chmod(path, mode)

    put(b"sensors/name\xff.sh", b"#!/bin/sh\necho '{\"signal\": 1}'\n", 0o755)
    put(b"sensors/out.sh", b"#!/bin/sh\nprintf '\\377\\376\\n'; printf '\\377' >&2\n", 0o755)
    put(b"sensors/noshebang\xff.sh", b"echo 1\n", 0o644)
    put(b"goals/g\xff.md", b"goal\n")
    put(b"goals/c.md", b"content \xff\n")
    put(b"reports/r\xff.md", b"r \xff\n")
    put(b"PLAYBOOK.md", b"pb \xff\n")
    put(b"journal.md", b"- 2026-01-01 10:00 j \xff\n")
    put(b"asks/w1-1.json", b'{"id": "w1-1", "worker": "w1", "prompt": "p \xff", "ts": 1}')
    put(b"asks/w\xff-1.json", b'{"id": "w1-2", "worker": "w1", "prompt": "p", "ts": 1}')
    put(b"asks/w2-1.json", b'{"id": "w2-1", "worker": "w2", "prompt": "x\\udcff", "ts": 1}')
    put(b"answers/w9-1.json", b'{"id": "w9-1", "answer": "\xff", "ts": 1}')
    put(b"claims/c\xff.json", b"{}")
    put(b"claims/c.json", b'{"session": "\xff", "ts": 1}')
    put(b"sessions/s\xff/meta.json", b'{"id": "x", "pid": 1, "started": 1, "cmd": ["a"]}')
    put(b"sessions/w1/meta.json", b'{"id": "w1", "pid": 1, "started": 1, "cmd": ["a\xff"]}')
    put(b"sessions/w1/status.json", b'{"state": "exited\xff", "exit_code": 0, "ended": 1}')
    put(b"sessions/w1/output.log", b"out \xff\n")
    put(b"runs/r\xff.json", b"{}")
    put(b"runs/r1.json", b'{"id": "r1", "cmd": "\xff", "started": 1}')
    put(b"cost.jsonl", b'{"ts": 1, "kind": "w\xff", "id": "x", "runner": "r", "usd": 1}\n\xff\n')
    put(b"events.jsonl", b"\xff\n")
    put(b"snapshots/s\xff.json", b'{"signal": 1}')


READERS = [
    "looop status",
    "looop _ state",
    "looop _ state --json",
    "looop _ wait --timeout 0",
    "looop _ asks",
    "looop _ asks --json",
    "looop workers",
    "looop workers --json",
    "looop doctor",
    "looop cost",
    "looop cost --json",
    "looop sense -v",
    "looop _ sensor test out",
    "looop logs w1",
    "looop reap --dry-run",
    "looop reap --ttl 0",
    "looop _ state",
]


def test_names_and_contents_that_are_not_utf8_never_break_a_reader(profile: Profile) -> None:
    shell = tool(profile)
    clean(shell.call("looop _ state"), 0)  # the layout, seeded
    hostile_data_dir(profile.data)
    for text in READERS:
        done = shell.call(text)
        clean(done, 0, 1, 3)
        if text.endswith("--json"):
            json.loads(done.stdout)
    for words in ("looop _ goal write ", "looop _ answer ", "looop _ sensor test ", "looop logs "):
        cword = str(len(words.split(" ")) - 1)
        env = {"_LOOOP_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": cword}
        exports = " ".join(f"{k}='{v}'" for k, v in env.items())
        clean(shell.call(f"env {exports} looop"), 0)
    assert stat.S_ISDIR(os.lstat(profile.data / "sessions").st_mode)


def test_a_data_dir_whose_path_is_not_utf8_serves_every_verb(profile: Profile) -> None:
    data = os.fsdecode(os.fsencode(profile.root) + b"/d\xff")
    shell = ShellTool({**profile.env, "LOOOP_DATA_DIR": data, "PYTHONIOENCODING": "utf-8"})
    for text, codes in (
        ("looop _ goal write g1 ship it", (0,)),
        ("looop _ run -- pwd", (0,)),
        ("looop _ ask w1 --prompt q --timeout 0", (124,)),
        ("looop _ answer w1-1 yes", (0,)),
        ("looop sense", (0,)),
        ("looop status", (3,)),
        ("looop _ state --json", (0,)),
        ("looop doctor", (0, 1)),
    ):
        clean(shell.call(text), *codes)
    assert os.path.exists(os.fsencode(data) + b"/goals/g1.md")


def test_a_body_with_a_nul_or_bad_bytes_reaches_a_worker_and_a_notifier_as_text(
    profile: Profile, tmp_path: Path
) -> None:
    got = tmp_path / "got"
    recorder = tmp_path / "record"
    recorder.write_text(f'#!/bin/sh\nprintf "%s" "$1" > "{got}.$2"\n')
    recorder.chmod(0o755)
    profile.write_config(
        f'[worker]\ncommand = ["{recorder}", "{{prompt}}", "worker"]\nsupervisor = "detached"\n'
        f'[notify]\ncommand = ["{recorder}", "{{message}}", "notifier"]\n'
    )
    shell = tool(profile)
    clean(shell.call("looop _ notify -", stdin=b"a\0b\xff"), 0)
    clean(shell.call("looop _ worker start w1 -", stdin=b"task a\0b\xff"), 0)
    assert Path(f"{got}.notifier").read_text(encoding="utf-8") == "a\ufffdb\ufffd"
    worker = Path(f"{got}.worker")  # the shell creates it, then printf writes it
    wait_for(lambda: worker.exists() and "task a\ufffdb\ufffd" in worker.read_text("utf-8"))
    supervisor_log = profile.data / "sessions" / "w1" / "supervisor.log"
    assert not supervisor_log.exists() or "Traceback" not in supervisor_log.read_text()


def test_a_verb_whose_journal_cannot_take_its_line_moves_nothing(profile: Profile) -> None:
    shell = tool(profile)
    clean(shell.call("looop _ goal write g1 first"), 0)
    clean(shell.call("looop _ sensor write s1 -- '#!/bin/sh'"), 0)
    before = {p: p.read_bytes() for p in profile.data.rglob("*") if p.is_file()}
    (profile.data / "journal.md").unlink()
    (profile.data / "journal.md").mkdir()  # a journal no line can be appended to
    del before[profile.data / "journal.md"]
    for text in (
        "looop _ goal write g1 second",
        "looop _ goal write g2 new",
        "looop _ goal archive g1",
        "looop _ sensor write s1 -- '#!/bin/bash'",
        "looop _ sensor remove s1",
        "looop _ playbook write mine",
        "looop _ schedule write t1 --in 1h",
    ):
        done = shell.call(text)
        clean(done, 1)
        assert "journal.md" in done.err, done.err
    after = {p: p.read_bytes() for p in profile.data.rglob("*") if p.is_file()}
    assert after == before
