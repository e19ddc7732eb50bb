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
from conftest import LOOOP, Processes, Profile, gone_pid, session_files, wait_for

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
    assert (out.returncode, out.stdout, out.stderr) == (0, "", "")
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


def test_an_answered_ask_is_not_resumed_and_its_id_is_not_reused(profile: Profile) -> None:
    assert raised(profile, "w1", "--prompt", "deploy?") == "w1-1"
    assert profile.run("_", "answer", "w1-1", "yes").returncode == 0
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


@pytest.mark.parametrize("garbage", [b"not json", b"[1, 2]", b'{"id": "w1-1"}', b'{"answer": ""}'])
def test_an_ask_whose_answer_is_not_a_valid_record_exits_1_with_a_reason(
    profile: Profile, procs: Processes, garbage: bytes
) -> None:
    asker = asking(procs, profile, "w1", "--prompt", "deploy?")
    wait_for(lambda: ask_file(profile, "w1-1").exists())
    tmp = profile.data / "answers" / ".garbage"
    tmp.write_bytes(garbage)
    tmp.rename(answer_file(profile, "w1-1"))
    stdout, stderr = asker.communicate(timeout=10)
    assert (asker.returncode, stdout) == (1, "")
    assert stderr.startswith("looop: ") and "w1-1" in stderr and stderr.count("\n") == 1


def test_an_ask_whose_answer_is_a_fifo_exits_1_without_hanging(
    profile: Profile, procs: Processes
) -> None:
    asker = asking(procs, profile, "w1", "--prompt", "deploy?")
    wait_for(lambda: ask_file(profile, "w1-1").exists())
    os.mkfifo(answer_file(profile, "w1-1"))
    stdout, stderr = asker.communicate(timeout=10)
    assert (asker.returncode, stdout) == (1, "")
    assert "FIFO" in stderr


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
    human = profile.run("_", "asks").stdout.splitlines()
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
    assert workers == ["worker alive (running)"], human


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
