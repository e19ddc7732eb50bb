"""The mailbox (SPEC §10): ``_ ask``, ``_ answer``, ``_ asks``, through the installed looop.

Every asker and answerer is its own process, as a worker and the root agent
are. A test that needs an ask to be waiting first sees its file in ``asks/``;
``_ ask`` watches before it looks, so whatever happens after the file exists
is seen by the waiting process.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    LOOOP,
    TTL,
    Processes,
    Profile,
    gone_pid,
    make_session,
    session_files,
    strace_prefix,
    wait_for,
)
from shell_tool import ShellTool

BAD_IDS = ["../x", ".x", "a/b", "", "..", "-x", "a" * 65]


def ask_file(profile: Profile, ask_id: str) -> Path:
    return profile.data / "asks" / f"{ask_id}.json"


def answer_file(profile: Profile, ask_id: str) -> Path:
    return profile.data / "answers" / f"{ask_id}.json"


def asking(procs: Processes, profile: Profile, *args: str) -> subprocess.Popen[str]:
    return procs.add(profile.popen("_", "ask", *args))


def raised(profile: Profile, *args: str) -> str:
    """Raise (or resume) an ask without waiting for its answer (``--timeout 0``); its id."""
    out = profile.run("_", "ask", *args, "--timeout", "0")
    assert (out.returncode, out.stdout) == (124, ""), out.stderr
    found = re.fullmatch(r"looop: no answer to ask (\S+) yet \(it stays pending\)\n", out.stderr)
    assert found is not None, out.stderr
    return found[1]


def pending_id(stderr: str) -> str:
    """The id in ``_ ask --timeout 0``'s message."""
    found = re.search(r"no answer to ask (\S+) yet", stderr)
    assert found is not None, stderr
    return found[1]


def pending(profile: Profile) -> list[dict[str, Any]]:
    out = profile.run("_", "asks", "--json")
    assert out.returncode == 0, out.stderr
    result: list[dict[str, Any]] = json.loads(out.stdout)
    return result


def test_an_ask_answered_from_another_process_prints_exactly_the_answer(
    profile: Profile, procs: Processes
) -> None:
    asker = asking(procs, profile, "w1", "--prompt", "deploy?", "--options", "yes,no")
    wait_for(lambda: ask_file(profile, "w1-1").exists())
    out = profile.run("_", "answer", "w1-1", "yes")
    assert (out.returncode, out.stdout, out.stderr) == (0, "answered ask w1-1\n", "")
    stdout, stderr = asker.communicate(timeout=10)
    assert (asker.returncode, stdout, stderr) == (0, "yes\n", "")
    ask = json.loads(ask_file(profile, "w1-1").read_text())
    assert ask["worker"] == "w1" and ask["prompt"] == "deploy?" and ask["options"] == ["yes", "no"]


def test_the_worker_defaults_to_the_session_id_and_json_prints_the_answer_record(
    profile: Profile, procs: Processes
) -> None:
    env = {**profile.env, "LOOOP_SESSION_ID": "sess7"}
    asker = procs.add(profile.popen("_", "ask", "--prompt", "p?", "--json", env=env))
    wait_for(lambda: ask_file(profile, "sess7-1").exists())
    assert profile.run("_", "answer", "sess7-1", "go").returncode == 0
    stdout, _ = asker.communicate(timeout=10)
    assert asker.returncode == 0
    record = json.loads(stdout)
    assert (record["id"], record["answer"]) == ("sess7-1", "go")


def test_an_ask_without_a_worker_or_session_id_is_refused(profile: Profile) -> None:
    out = profile.run("_", "ask", "--prompt", "p?")
    assert out.returncode == 2 and "LOOOP_SESSION_ID" in out.stderr
    assert not (profile.data / "asks").exists()


def test_asking_the_same_question_again_after_the_first_ask_was_killed_waits_on_the_same_ask(
    profile: Profile, procs: Processes
) -> None:
    question = ("w1", "--prompt", "deploy?", "--ref", "/tmp/plan.md", "--options", "yes,no")
    first = asking(procs, profile, *question)
    wait_for(lambda: ask_file(profile, "w1-1").exists())
    first.kill()
    first.wait()
    again = asking(procs, profile, *question)
    wait_for(lambda: len(pending(profile)) == 1 and again.poll() is None)
    assert profile.run("_", "answer", "w1-1", "yes").returncode == 0
    stdout, _ = again.communicate(timeout=10)
    assert (again.returncode, stdout) == (0, "yes\n")
    assert sorted(os.listdir(profile.data / "asks")) == ["w1-1.json"]


def test_a_different_question_raises_a_second_ask(profile: Profile) -> None:
    assert raised(profile, "w1", "--prompt", "deploy?") == "w1-1"
    assert raised(profile, "w1", "--prompt", "deploy?", "--options", "yes,no") == "w1-2"
    assert raised(profile, "w1", "--prompt", "rollback?") == "w1-3"
    assert raised(profile, "w1", "--prompt", "deploy?") == "w1-1"  # still pending: resumed
    assert [a["id"] for a in pending(profile)] == ["w1-1", "w1-2", "w1-3"]


def test_an_answer_is_given_to_the_asker_once_and_then_its_question_is_asked_anew(
    profile: Profile,
) -> None:
    assert raised(profile, "w1", "--prompt", "deploy?") == "w1-1"
    assert profile.run("_", "answer", "w1-1", "yes").returncode == 0
    # The asker gave up before the answer came: asking again gets it, from the same ask.
    again = profile.run("_", "ask", "w1", "--prompt", "deploy?", "--timeout", "0")
    assert (again.returncode, again.stdout) == (0, "yes\n"), again.stderr
    wait_for(lambda: "delivered" in json.loads(ask_file(profile, "w1-1").read_text()))
    # Delivered: the same question later is a new ask, and the answered id is not reused.
    assert raised(profile, "w1", "--prompt", "deploy?") == "w1-2"


def test_twenty_concurrent_asks_from_one_worker_get_twenty_distinct_ids(profile: Profile) -> None:
    askers = [
        subprocess.Popen(
            [LOOOP, "_", "ask", "w1", "--prompt", f"question {i}", "--timeout", "0"],
            env=profile.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(20)
    ]
    results = [(p.communicate(timeout=60), p.returncode) for p in askers]
    assert [code for _, code in results] == [124] * 20, results
    asks = [json.loads(p.read_text()) for p in (profile.data / "asks").glob("*.json")]
    assert len(asks) == 20
    assert len({a["id"] for a in asks}) == 20
    assert {a["prompt"] for a in asks} == {f"question {i}" for i in range(20)}


def test_ten_concurrent_answers_to_one_ask_exactly_one_wins(profile: Profile) -> None:
    ask_id = raised(profile, "w1", "--prompt", "deploy?")
    answerers = [
        subprocess.Popen(
            [LOOOP, "_", "answer", ask_id, f"answer {i}"],
            env=profile.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(10)
    ]
    for p in answerers:
        p.communicate(timeout=60)
    winners = [i for i, p in enumerate(answerers) if p.returncode == 0]
    assert len(winners) == 1, [p.returncode for p in answerers]
    assert all(p.returncode == 1 for p in answerers if p.returncode != 0)
    record = json.loads(answer_file(profile, ask_id).read_text())
    assert record["answer"] == f"answer {winners[0]}"
    assert sorted(os.listdir(profile.data / "answers")) == [f"{ask_id}.json"]


def test_force_replaces_an_answer(profile: Profile) -> None:
    ask_id = raised(profile, "w1", "--prompt", "deploy?")
    assert profile.run("_", "answer", ask_id, "yes").returncode == 0
    again = profile.run("_", "answer", ask_id, "no")
    assert again.returncode == 1 and "--force" in again.stderr
    assert json.loads(answer_file(profile, ask_id).read_text())["answer"] == "yes"
    forced = profile.run("_", "answer", ask_id, "no", "--force")
    assert forced.returncode == 0, forced.stderr
    assert json.loads(answer_file(profile, ask_id).read_text())["answer"] == "no"


def test_an_answer_from_stdin_is_the_text_without_its_last_newline(profile: Profile) -> None:
    ask_id = raised(profile, "w1", "--prompt", "deploy?")
    for args in (["-"], []):
        out = subprocess.run(
            [LOOOP, "_", "answer", ask_id, *args, "--force"],
            env=profile.env,
            input="ship it\nafter lunch\n",
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert json.loads(answer_file(profile, ask_id).read_text())["answer"] == (
            "ship it\nafter lunch"
        )


def test_an_answer_is_journaled_and_both_moves_are_events(profile: Profile) -> None:
    ask_id = raised(profile, "w1", "--prompt", "deploy?")
    assert profile.run("_", "answer", ask_id, "yes\nand tell ops").returncode == 0
    journal = (profile.data / "journal.md").read_text().splitlines()
    assert journal[-1].endswith(f" answer {ask_id}: yes")
    events = [json.loads(line) for line in (profile.data / "events.jsonl").read_text().splitlines()]
    assert [(e["event"], e["id"]) for e in events] == [
        ("ask_raised", ask_id),
        ("ask_answered", ask_id),
    ]


@pytest.mark.parametrize("text", ["", "  \n"])
def test_an_empty_answer_is_refused_and_nothing_is_written(profile: Profile, text: str) -> None:
    ask_id = raised(profile, "w1", "--prompt", "deploy?")
    out = profile.run("_", "answer", ask_id, text)
    assert out.returncode == 2 and "empty" in out.stderr
    assert os.listdir(profile.data / "answers") == []


def test_an_answer_to_an_ask_that_does_not_exist_is_refused(profile: Profile) -> None:
    out = profile.run("_", "answer", "nobody-1", "yes")
    assert out.returncode == 1 and "no such ask" in out.stderr
    assert not answer_file(profile, "nobody-1").exists()


def test_an_ask_whose_file_is_deleted_while_it_waits_exits_1_with_a_reason(
    profile: Profile, procs: Processes
) -> None:
    asker = asking(procs, profile, "w1", "--prompt", "deploy?")
    wait_for(lambda: ask_file(profile, "w1-1").exists())
    ask_file(profile, "w1-1").unlink()
    stdout, stderr = asker.communicate(timeout=10)
    assert (asker.returncode, stdout) == (1, "")
    assert stderr.startswith("looop: ") and "withdrawn" in stderr and stderr.count("\n") == 1


BAD_ANSWERS = {
    "not-json": b"not json",
    "not-an-object": b"[1, 2]",
    "no-text": b'{"id": "w1-1"}',
    "empty-text": b'{"answer": ""}',
    "another-ask": b'{"id": "w9-9", "answer": "yes"}',
    "empty-file": b"",
    "fifo": None,
    "directory": None,
}


def place_answer(profile: Profile, ask_id: str, kind: str) -> None:
    path = answer_file(profile, ask_id)
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        tmp = path.with_name(".garbage")
        tmp.write_bytes(BAD_ANSWERS[kind] or b"")
        tmp.rename(path)


@pytest.mark.parametrize("kind", sorted(BAD_ANSWERS))
def test_a_corrupt_or_non_regular_answer_never_hides_its_ask_and_force_repairs_it(
    profile: Profile, procs: Processes, kind: str
) -> None:
    asker = asking(procs, profile, "w1", "--prompt", "deploy?", "--timeout", "60")
    wait_for(lambda: ask_file(profile, "w1-1").exists())
    place_answer(profile, "w1-1", kind)
    root = ShellTool(profile.env)
    listed = json.loads(root.call("looop _ asks --json").out)
    assert [a["id"] for a in listed] == ["w1-1"]
    assert "answers/w1-1.json" in listed[0]["answer_error"]
    state = json.loads(root.call("looop _ state --json").out)
    assert [a["id"] for a in state["asks"]] == ["w1-1"]
    assert "answers/w1-1.json" in {p["path"] for p in state["problems"]}
    assert "asks" in json.loads(root.call("looop _ wait --json --timeout 0").out)["changed"]
    assert "w1-1" in root.call("looop _ asks").out
    refused = root.call("looop _ answer w1-1 yes")
    assert refused.returncode == 1 and "--force" in refused.err, refused.err
    repaired = root.call("looop _ answer --force w1-1 fixed")
    assert repaired.returncode == 0, repaired.err
    stdout, stderr = asker.communicate(timeout=30)
    assert (asker.returncode, stdout) == (0, "fixed\n"), stderr
    assert json.loads(root.call("looop _ asks --json").out) == []


def test_a_missing_answers_or_asks_directory_is_made_not_taken_for_a_missing_ask(
    profile: Profile, procs: Processes
) -> None:
    tool = ShellTool(profile.env)
    assert tool.call("looop _ ask w1 --prompt first? --timeout 0").returncode == 124
    (profile.data / "answers").rmdir()
    answered = tool.call("looop _ answer w1-1 yes")
    assert answered.returncode == 0, answered.err
    assert json.loads(answer_file(profile, "w1-1").read_text())["answer"] == "yes"
    (answer_file(profile, "w1-1")).unlink()
    (profile.data / "answers").rmdir()
    asker = asking(procs, profile, "w1", "--prompt", "second?", "--timeout", "60")
    wait_for(lambda: ask_file(profile, "w1-2").exists())
    assert tool.call("looop _ answer w1-2 no").returncode == 0
    assert asker.communicate(timeout=30)[0] == "no\n"
    for gone in ("asks", "answers"):
        for box in ("asks", "answers"):
            for entry in (profile.data / box).iterdir():
                entry.unlink()
        (profile.data / gone).rmdir()
        listed = tool.call("looop _ asks --json")
        assert (listed.returncode, json.loads(listed.out)) == (0, []), listed.err
        assert tool.call("looop _ ask w2 --prompt again? --timeout 0").returncode == 124


def nth_listing_of(profile: Profile, directory: Path, *args: str) -> int:
    """Which ``getdents64`` of ``looop args`` (in its process) first lists ``directory``."""
    trace = profile.root / "trace.txt"
    prefix = strace_prefix("-yy", "-e", "trace=getdents64")
    prefix[prefix.index(os.devnull)] = str(trace)
    subprocess.run([*prefix, LOOOP, *args], env=profile.env, capture_output=True, check=False)
    calls = [line for line in trace.read_text().splitlines() if line.startswith("getdents64(")]
    return next(n for n, line in enumerate(calls, 1) if f"{directory}>" in line)


def test_a_failure_to_list_asks_is_reported_as_that_failure_never_as_no_asks(
    profile: Profile,
) -> None:
    tool = ShellTool(profile.env)
    assert tool.call("looop _ ask w1 --prompt deploy? --timeout 0").returncode == 124
    for verb in ("_ asks", "_ ask w1 --prompt deploy? --timeout 0"):
        n = nth_listing_of(profile, profile.data / "asks", *verb.split())
        inject = ("-e", "trace=getdents64", "-e", f"inject=getdents64:error=EIO:when={n}")
        done = tool.call(f"{' '.join(strace_prefix(*inject))} looop {verb}")
        assert done.returncode not in (0, 124), (verb, done.out, done.err)
        assert done.err.startswith("looop: ") and "asks" in done.err, done.err
        assert "Traceback" not in done.err
    assert sorted(os.listdir(profile.data / "asks")) == ["w1-1.json"]


def test_identical_asks_from_one_worker_at_the_same_instant_are_one_ask(profile: Profile) -> None:
    tool = ShellTool(profile.env, limit=60)
    done = tool.call(
        "for i in 1 2 3 4 5 6 7 8 9 10; do"
        " looop _ ask w1 --prompt 'deploy?' --options yes,no --timeout 0 2>/dev/null &"
        " done; wait"
    )
    assert not done.killed, done.err
    assert sorted(os.listdir(profile.data / "asks")) == ["w1-1.json"]


def test_a_relative_ref_is_stored_as_given_so_the_question_resumes_from_anywhere(
    profile: Profile, tmp_path: Path
) -> None:
    ids = []
    for where in ("a", "b"):
        (tmp_path / where).mkdir()
        tool = ShellTool(profile.env, cwd=tmp_path / where)
        done = tool.call("looop _ ask w1 --prompt 'read it?' --ref notes/plan.md --timeout 0")
        assert done.returncode == 124, done.err
        ids.append(pending_id(done.err))
    assert ids == ["w1-1", "w1-1"]
    assert json.loads(ask_file(profile, "w1-1").read_text())["reference"] == "notes/plan.md"


def test_every_mailbox_record_carries_a_version_and_a_newer_one_is_shown_with_one_warning(
    profile: Profile,
) -> None:
    tool = ShellTool(profile.env)
    assert tool.call("looop _ ask w1 --prompt deploy? --timeout 0").returncode == 124
    assert tool.call("looop _ answer w1-1 yes").returncode == 0
    assert json.loads(ask_file(profile, "w1-1").read_text())["v"] == 1
    assert json.loads(answer_file(profile, "w1-1").read_text())["v"] == 1
    for n in (2, 3):
        future = {"v": 2, "id": f"w1-{n}", "worker": "w1", "prompt": "new?", "ts": 1, "more": {}}
        ask_file(profile, f"w1-{n}").write_text(json.dumps(future))
    for verb in ("looop _ asks --json", "looop _ state --json"):
        done = tool.call(verb)
        assert done.returncode == 0, done.err
        listed = json.loads(done.out)
        asks = listed if isinstance(listed, list) else listed["asks"]
        assert [a["id"] for a in asks] == ["w1-2", "w1-3"], asks
        warnings = done.err.splitlines()
        assert len(warnings) == 1 and "version 2" in warnings[0], done.err


@pytest.mark.parametrize("length", [43, 44, 45, 62, 64])
def test_every_worker_id_start_accepts_can_ask_again_and_again(
    profile: Profile, length: int
) -> None:
    worker = ("w" + "x-y." * 20)[: length - 1] + "z"
    tool = ShellTool(profile.env)
    ids = []
    for n in range(12):
        done = tool.call(f"looop _ ask {worker} --prompt 'question {n}?' --timeout 0")
        assert done.returncode == 124, done.err
        ask_id = pending_id(done.err)
        assert len(ask_id) <= 64
        ids.append(ask_id)
        assert tool.call(f"looop _ answer {ask_id} 'answer {n}'").returncode == 0
    assert len(set(ids)) == 12
    again = tool.call(f"looop _ ask {worker} --prompt 'question 0?' --timeout 0")
    assert (again.returncode, again.out) == (0, "answer 0\n"), again.err
    asked = profile.data / "asks" / f"{ids[0]}.json"
    wait_for(lambda: "delivered" in json.loads(asked.read_text()))
    anew = tool.call(f"looop _ ask {worker} --prompt 'question 0?' --timeout 0")
    assert pending_id(anew.err) not in ids
    make_session(profile.data / "sessions", worker, ended=1.0, age=10 * 86400)
    reaped = tool.call(f"looop reap --ttl {TTL} --json")
    assert reaped.returncode == 0, reaped.err
    assert os.listdir(profile.data / "asks") == os.listdir(profile.data / "answers") == []


def test_an_ask_that_times_out_exits_124_and_stays_pending(profile: Profile) -> None:
    out = profile.run("_", "ask", "w1", "--prompt", "deploy?", "--timeout", "1")
    assert (out.returncode, out.stdout) == (124, "")
    assert [a["id"] for a in pending(profile)] == ["w1-1"]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_a_bad_worker_id_is_refused_with_nothing_written(profile: Profile, bad: str) -> None:
    out = profile.run("_", "ask", "--prompt", "deploy?", "--timeout", "0", "--", bad)
    assert out.returncode == 2 and "invalid worker id" in out.stderr
    env = {**profile.env, "LOOOP_SESSION_ID": bad}
    out = profile.run("_", "ask", "--prompt", "deploy?", "--timeout", "0", env=env)
    assert out.returncode == 2 and "invalid worker id" in out.stderr
    assert not profile.data.exists()


@pytest.mark.parametrize("bad", BAD_IDS)
def test_a_bad_ask_id_is_refused_with_nothing_written(profile: Profile, bad: str) -> None:
    raised(profile, "w1", "--prompt", "deploy?")
    out = profile.run("_", "answer", "--", bad, "yes")
    assert out.returncode == 2 and "invalid ask id" in out.stderr
    assert os.listdir(profile.data / "answers") == []
    assert not (profile.data / "journal.md").exists()


def test_asks_lists_pending_asks_oldest_first_with_age_and_stranded(profile: Profile) -> None:
    session_files(profile.data / "sessions" / "dead", {"pid": gone_pid(), "started": 1.0})
    session_files(profile.data / "sessions" / "alive", {"pid": os.getpid()})
    for worker in ("dead", "alive", "nosession"):
        raised(profile, worker, "--prompt", f"from {worker}")
    raised(profile, "done", "--prompt", "answered")
    assert profile.run("_", "answer", "done-1", "ok").returncode == 0
    asks = pending(profile)
    assert [(a["id"], a["stranded"]) for a in asks] == [
        ("dead-1", True),
        ("alive-1", False),
        ("nosession-1", False),
    ]
    assert all(isinstance(a["age"], float) and a["age"] >= 0 for a in asks)
    header, *human = profile.run("_", "asks").stdout.splitlines()
    assert header.split() == ["ID", "AGE", "WORKER", "PROMPT"]
    assert [line.split()[0] for line in human] == ["dead-1", "alive-1", "nosession-1"]
    assert "(stranded)" in human[0] and "(stranded)" not in human[1]


def test_state_marks_stranded_asks_and_its_human_form_lists_asks_and_live_workers(
    profile: Profile,
) -> None:
    session_files(profile.data / "sessions" / "dead", {"pid": gone_pid(), "started": 1.0})
    session_files(profile.data / "sessions" / "alive", {"pid": os.getpid()})
    raised(profile, "dead", "--prompt", "from the dead")
    raised(profile, "alive", "--prompt", "deploy\nnow?")
    state = json.loads(profile.run("_", "state", "--json").stdout)
    assert {a["id"]: a["stranded"] for a in state["asks"]} == {"dead-1": True, "alive-1": False}
    human = profile.run("_", "state").stdout.splitlines()
    asks = [line.strip() for line in human if line.strip().startswith("ask ")]
    assert len(asks) == 2
    assert any(re.fullmatch(r"ask alive-1 \(alive, \d+s\): deploy now\?", a) for a in asks), asks
    assert any(re.fullmatch(r"ask dead-1 \(dead, \d+s, stranded\): from the dead", a) for a in asks)
    workers = [line.strip() for line in human if line.strip().startswith("worker ")]
    assert len(workers) == 1, human
    assert re.fullmatch(r"worker alive \(running, waiting, ask \d+s\)", workers[0]), human


KILLED_AFTER_NAMING = """
import os, signal, sys
from looop import fs
def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)
fs.sync_dir = die  # killed while the new name is made durable
fs.write_whole(sys.argv[1], b'{"id": "w1-1"}', exclusive=True)
"""


def test_an_exclusive_write_killed_as_it_syncs_its_new_name_leaves_no_temp_file(
    tmp_path: Path,
) -> None:
    # What an ask killed as it began to wait did: the ask's name was given,
    # and its temp name was never taken away.
    target = tmp_path / "w1-1.json"
    run = subprocess.run([sys.executable, "-c", KILLED_AFTER_NAMING, str(target)], check=False)
    assert run.returncode == -9
    assert sorted(os.listdir(tmp_path)) == ["w1-1.json"]
    assert target.read_bytes() == b'{"id": "w1-1"}'
