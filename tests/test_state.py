"""``looop _ state`` (SPEC §8): the root agent's one read."""

from __future__ import annotations

import json
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import Profile, session_files

from looop.data import journal, mailbox
from looop.lines import BLOCK
from looop.paths import Paths
from looop.pulse import probes


def test_state_json_has_the_contract_fields(profile: Profile) -> None:
    profile.sensor("plain", "echo 'not json'")
    asks, answers = profile.data / "asks", profile.data / "answers"
    for directory in (asks, answers, profile.data / "sessions"):
        directory.mkdir(parents=True)
    (asks / "q1.json").write_text(json.dumps({"id": "q1", "worker": "w", "prompt": "?", "ts": 1}))
    (asks / "q2.json").write_text(json.dumps({"id": "q2", "worker": "w", "prompt": "?", "ts": 2}))
    (answers / "q2.json").write_text(json.dumps({"id": "q2", "answer": "yes", "ts": 3}))
    session_files(
        profile.data / "sessions" / "w1",
        {"id": "w1", "pid": 999999, "started": 1},
        {"state": "exited", "exit_code": 0, "ended": time.time()},
    )
    (profile.data / "journal.md").write_text("".join(f"line {i}\n" for i in range(30)))
    assert profile.run("sense").returncode == 0

    state = profile.state()
    assert set(state) >= {
        "world_hash",
        "pulse_alive",
        "snapshots",
        "asks",
        "workers",
        "goals",
        "journal_tail",
        "data_dir",
    }
    assert len(state["world_hash"]) == 64
    assert state["pulse_alive"] is False
    assert state["data_dir"] == str(profile.data)
    assert state["goals"] == ["setup"]
    assert [a["id"] for a in state["asks"]] == ["q1"]
    assert state["workers"] == [
        {
            "id": "w1",
            "state": "exited",
            "alive": False,
            "started": 1.0,
            "exit_code": 0,
            "unit": None,
            "pending_ask": None,
            "undelivered": 0,
            "verify": None,
            "health": None,  # a live worker's only
            "idle": None,
            "ask_age": None,
        }
    ]
    assert state["journal_tail"] == [f"line {i}" for i in range(10, 30)]
    assert {"sensor-today", "sys-sessions", "sys-claims", "sys-goals"} <= set(state["snapshots"])
    assert state["snapshots"]["sensor-plain"]["signal"]["invalid_json"] is True
    assert state["snapshots"]["sys-sessions"]["signal"] == [
        {"id": "w1", "state": "exited", "exit_code": 0}
    ]


def test_state_is_a_pure_read(profile: Profile) -> None:
    assert profile.run("sense").returncode == 0
    before = sorted(p.relative_to(profile.data) for p in profile.data.rglob("*"))
    mtimes = {p: p.stat().st_mtime_ns for p in profile.data.rglob("*") if p.is_file()}
    assert profile.run("_", "state").returncode == 0
    assert profile.run("_", "state", "--json").returncode == 0
    assert sorted(p.relative_to(profile.data) for p in profile.data.rglob("*")) == before
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes


def test_human_state_summary(profile: Profile) -> None:
    assert profile.run("sense").returncode == 0
    out = profile.run("_", "state")
    assert out.returncode == 0
    assert "pulse       not running" in out.stdout
    assert str(profile.data) in out.stdout


def _paths(profile: Profile) -> Paths:
    return Paths(profile.data, profile.config, profile.runtime, False)


ASK = json.dumps({"id": "q", "worker": "w", "prompt": "?", "ts": 1})


def _make_ask(asks: Path, answers: Path, case: str) -> None:
    if case == "good":
        (asks / "q.json").write_text(ASK)
    elif case == "fifo":
        os.mkfifo(asks / "q.json")
    elif case == "directory":
        (asks / "q.json").mkdir()
    elif case == "garbage":
        (asks / "q.json").write_text("{not json")
    elif case == "answered":
        (asks / "q.json").write_text(ASK)
        (answers / "q.json").write_text(json.dumps({"id": "q", "answer": "yes", "ts": 2}))
    elif case == "dot-file":
        (asks / ".q.json").write_text(ASK)


@pytest.mark.parametrize(
    ("case", "pending", "error"),
    [
        ("good", True, None),
        ("fifo", True, "is a FIFO, not a regular file"),
        ("directory", True, "is a directory, not a regular file"),
        ("garbage", True, "is not valid JSON"),
        ("answered", False, None),
        ("dot-file", False, None),
    ],
)
def test_has_pending_and_the_pending_listing_agree_on_every_kind_of_ask(
    profile: Profile, case: str, pending: bool, error: str | None
) -> None:
    paths = _paths(profile)
    paths.asks.mkdir(parents=True)
    paths.answers.mkdir()
    _make_ask(paths.asks, paths.answers, case)

    problems: list[dict[str, str]] = []
    listed = mailbox.pending(paths, problems)

    assert mailbox.has_pending(paths) is pending
    assert bool(listed) is pending
    if pending:
        assert [ask["id"] for ask in listed] == ["q"]
        assert listed[0].get("error") == error
        assert problems == ([{"path": "asks/q.json", "why": error}] if error else [])
    state = profile.state()
    assert [ask["id"] for ask in state["asks"]] == (["q"] if pending else [])
    waited = profile.run("_", "wait", "--json", "--timeout", "0")
    assert ("asks" in json.loads(waited.stdout)["changed"]) is pending


def test_an_unreadable_ask_is_listed_in_the_human_state_too(profile: Profile) -> None:
    (profile.data / "asks").mkdir(parents=True)
    os.mkfifo(profile.data / "asks" / "q.json")
    out = profile.run("_", "state", timeout=10)
    assert out.returncode == 0, out.stderr
    assert "asks        1 pending" in out.stdout
    assert "problem     asks/q.json is a FIFO, not a regular file" in out.stdout


def test_a_journal_line_is_written_in_the_documented_format_with_newlines_folded(
    profile: Profile,
) -> None:
    paths = _paths(profile)
    profile.data.mkdir(parents=True)
    when = time.mktime((2026, 12, 2, 10, 30, 0, 0, 0, -1))
    journal.append(paths, "answer q1: yes\nand more", when=when)
    journal.append(paths, "second")
    lines = paths.journal.read_text().splitlines()
    assert lines[0] == "- 2026-12-02 10:30 answer q1: yes and more"
    assert re.fullmatch(r"- \d{4}-\d{2}-\d{2} \d{2}:\d{2} second", lines[1])
    assert journal.parse(lines[0]) == (when, "answer q1: yes and more")
    assert journal.tail(paths) == lines


def test_a_journal_line_is_read_at_its_minute_in_local_time_not_at_midnight() -> None:
    ten_thirty = time.mktime((2026, 12, 2, 10, 30, 0, 0, 0, -1))
    assert journal.parse("- 2026-12-02 10:30 did setup") == (ten_thirty, "did setup")
    assert journal.parse("2026-12-02 10:30 did setup") == (ten_thirty, "did setup")
    assert journal.parse("- 2026-12-02T10:30:00+00:00 did setup") == (
        datetime(2026, 12, 2, 10, 30, tzinfo=UTC).timestamp(),
        "did setup",
    )
    assert journal.parse("- 2026-12-02 did setup") is None  # a date is not a moment
    assert journal.parse("- not a stamp") is None


def test_sys_goals_ages_a_goal_from_the_minute_its_journal_line_names(profile: Profile) -> None:
    paths = _paths(profile)
    for goal in ("setup", "my-goal", "setupx", "quiet"):
        (paths.goals / f"{goal}.md").parent.mkdir(parents=True, exist_ok=True)
        (paths.goals / f"{goal}.md").write_text("# goal\n")
    two_hours_ago = time.time() - 7200
    journal.append(paths, "worked on goals/setup.md and my-goal", when=two_hours_ago)
    journal.append(paths, "unrelated: setupxy, quietly")
    ages = probes.sys_goals(paths)["detail"]["since_acted"]
    assert ages["quiet"] is None and ages["setupx"] is None
    for goal in ("setup", "my-goal"):
        # The stamp has a minute's resolution; midnight would be hours off.
        assert 7200 - 60 <= ages[goal] <= 7200 + 60, ages


def test_the_journal_tail_reads_the_end_of_a_big_journal_not_all_of_it(
    profile: Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _paths(profile)
    profile.data.mkdir(parents=True)
    with open(paths.journal, "wb") as fh:
        fh.truncate(100 << 20)
        fh.seek(0, os.SEEK_END)
        fh.write(b"".join(b"- 2026-12-02 10:%02d line %d\n" % (i % 60, i) for i in range(30)))
    read: list[int] = []
    real_pread = os.pread

    def counting(fd: int, size: int, offset: int) -> bytes:
        read.append(size)
        return real_pread(fd, size, offset)

    monkeypatch.setattr(os, "pread", counting)
    tail = journal.tail(paths)
    assert tail == [f"- 2026-12-02 10:{i % 60:02d} line {i}" for i in range(10, 30)]
    assert sum(read) <= BLOCK
    read.clear()
    journal.tail(paths, None, max_bytes=journal.TAIL_BYTES)
    assert sum(read) <= journal.TAIL_BYTES


def test_a_meta_whose_start_time_is_too_big_for_a_float_is_shown_without_one(
    profile: Profile,
) -> None:
    session = profile.data / "sessions" / "huge"
    session.mkdir(parents=True)
    (session / "meta.json").write_text(
        f'{{"id": "huge", "pid": 999999999, "started": 1{"0" * 400}}}'
    )
    out = profile.run("_", "state", "--json")
    assert out.returncode == 0, out.stderr
    [row] = json.loads(out.stdout)["workers"]
    assert (row["id"], row["state"], row["alive"], row["started"]) == ("huge", "dead", False, None)
