"""``looop _ state`` (SPEC §8): the root agent's one read."""

from __future__ import annotations

import json
import time

from conftest import Profile


def test_state_json_has_the_contract_fields(profile: Profile) -> None:
    profile.sensor("plain", "echo 'not json'")
    asks, answers = profile.data / "asks", profile.data / "answers"
    for directory in (asks, answers, profile.data / "sessions"):
        directory.mkdir(parents=True)
    (asks / "q1.json").write_text(json.dumps({"id": "q1", "worker": "w", "prompt": "?", "ts": 1}))
    (asks / "q2.json").write_text(json.dumps({"id": "q2", "worker": "w", "prompt": "?", "ts": 2}))
    (answers / "q2.json").write_text(json.dumps({"id": "q2", "answer": "yes", "ts": 3}))
    session = profile.data / "sessions" / "w1"
    session.mkdir()
    (session / "meta.json").write_text(json.dumps({"id": "w1", "pid": 999999, "started": 1}))
    (session / "status.json").write_text(
        json.dumps({"state": "exited", "exit_code": 0, "ended": time.time()})
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
    assert state["workers"] == [{"id": "w1", "state": "exited", "alive": False, "exit_code": 0}]
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
