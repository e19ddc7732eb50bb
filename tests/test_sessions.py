"""The liveness judgment itself, against real processes and odd files on disk."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from conftest import Processes, Profile, gone_pid, session_files, start_sleeper

from looop import fs
from looop.data import sessions
from looop.data.sessions import ALIVE, DEAD, UNKNOWN


def test_a_running_process_that_started_the_session_is_alive(
    tmp_path: Path, procs: Processes
) -> None:
    proc = start_sleeper(procs)
    d = session_files(tmp_path / "s", {"id": "s", "pid": proc.pid, "started": time.time()})
    s = sessions.inspect(d)
    assert (s.liveness, s.state, s.exit_code) == (ALIVE, "running", None)
    # Without a start time there is no telling a reused pid apart: a running pid counts.
    d2 = session_files(tmp_path / "s2", {"id": "s2", "pid": proc.pid})
    assert sessions.inspect(d2).liveness == ALIVE


def test_a_pid_now_owned_by_a_later_process_is_dead(tmp_path: Path, procs: Processes) -> None:
    proc = start_sleeper(procs)
    d = session_files(tmp_path / "s", {"id": "s", "pid": proc.pid, "started": time.time() - 3600})
    s = sessions.inspect(d)
    assert (s.liveness, s.state) == (DEAD, "dead")
    assert "reused" in s.why


def test_a_gone_pid_and_a_zombie_are_dead(tmp_path: Path, procs: Processes) -> None:
    finished = subprocess.Popen(["true"])
    finished.wait()
    d = session_files(
        tmp_path / "gone", {"id": "gone", "pid": finished.pid, "started": time.time()}
    )
    assert sessions.inspect(d).liveness == DEAD
    for pid in (1 << 23, 2**31, 2**63):  # beyond any pid a system hands out
        d = session_files(
            tmp_path / f"pid-{pid}", {"id": "big", "pid": pid, "started": time.time()}
        )
        assert sessions.inspect(d).liveness == DEAD, pid

    zombie = procs.add(subprocess.Popen(["true"]))  # not waited for until teardown
    os.waitid(os.P_PID, zombie.pid, os.WEXITED | os.WNOWAIT)  # exited, left unreaped
    d = session_files(
        tmp_path / "zombie", {"id": "zombie", "pid": zombie.pid, "started": time.time()}
    )
    assert sessions.inspect(d).liveness == DEAD
    zombie.wait()


def test_an_exited_status_is_dead_whatever_the_pid(tmp_path: Path, procs: Processes) -> None:
    proc = start_sleeper(procs)
    d = session_files(
        tmp_path / "s",
        {"id": "s", "pid": proc.pid, "started": time.time()},
        {"state": "exited", "exit_code": 3, "ended": 1_700_000_000},
    )
    s = sessions.inspect(d)
    assert (s.liveness, s.state, s.exit_code, s.ended) == (DEAD, "exited", 3, 1_700_000_000.0)
    assert s.meta is not None and s.meta["pid"] == proc.pid  # readers still see the meta


def test_unreadable_or_odd_meta_is_unknown(tmp_path: Path, procs: Processes) -> None:
    proc = start_sleeper(procs)
    good = {"id": "x", "pid": proc.pid, "started": time.time()}
    cases = {
        "missing": None,
        "garbage": "{nope",
        "a list": "[1, 2]",
        "pid is true": {"id": "x", "pid": True},
        "pid negative": {"id": "x", "pid": -4},
        "pid text": {"id": "x", "pid": "123"},
        "too big": json.dumps({**good, "pad": "x" * (fs.SMALL + 1)}),
    }
    for name, meta in cases.items():
        d = session_files(tmp_path / name.replace(" ", "-"), meta)
        assert sessions.inspect(d).liveness == UNKNOWN, name

    # A meta.json that is a link is not followed, even to a perfectly good meta.
    real = session_files(tmp_path / "elsewhere", good)
    linked = session_files(tmp_path / "linked")
    os.symlink(real / "meta.json", linked / "meta.json")
    assert sessions.inspect(linked).liveness == UNKNOWN
    assert sessions.inspect(real).liveness == ALIVE


def test_an_exited_status_does_not_make_unreadable_meta_dead(tmp_path: Path) -> None:
    exited = {"state": "exited", "exit_code": 0, "ended": 1_700_000_000}
    cases = {"missing": None, "garbage": "{nope", "a list": "[1, 2]"}
    for name, meta in cases.items():
        d = session_files(tmp_path / name.replace(" ", "-"), meta, exited)
        s = sessions.inspect(d)
        assert (s.liveness, s.state) == (UNKNOWN, "unknown"), name
        assert s.status == exited  # what was read is still shown
    linked = session_files(tmp_path / "linked", status=exited)
    real = session_files(tmp_path / "elsewhere", {"id": "x", "pid": 1, "started": 1})
    os.symlink(real / "meta.json", linked / "meta.json")
    assert sessions.inspect(linked).liveness == UNKNOWN


def test_a_fifo_in_place_of_a_status_does_not_block(tmp_path: Path, procs: Processes) -> None:
    proc = start_sleeper(procs)
    d = session_files(tmp_path / "s", {"id": "s", "pid": proc.pid, "started": time.time()})
    os.mkfifo(d / "status.json")
    assert sessions.inspect(d).liveness == ALIVE


def test_scan_lists_real_directories_only(tmp_path: Path) -> None:
    root = tmp_path / "sessions"
    session_files(root / "b", {"id": "b", "pid": 999_999_999, "started": 1})
    session_files(root / "a", {"id": "a", "pid": 1, "started": 1}, {"state": "exited", "ended": 2})
    session_files(root / ".reaping-0000-c")
    (root / "file").write_text("not a session\n")
    target = session_files(
        tmp_path / "outside", status={"state": "exited", "exit_code": 0, "ended": 2}
    )
    os.symlink(target, root / "link")
    found = sessions.scan(root)
    assert [(s.id, s.liveness) for s in found] == [("a", DEAD), ("b", DEAD)]
    assert sessions.inspect(root / "link").liveness == UNKNOWN

    # A reader may look through a linked sessions/ dir; entries are still judged as above.
    os.symlink(root, tmp_path / "via-link")
    assert [s.id for s in sessions.scan(tmp_path / "via-link")] == ["a", "b"]
    assert sessions.scan(tmp_path / "absent") == []


def test_scan_skips_only_an_entry_that_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "sessions"
    exited = {"state": "exited", "exit_code": 0, "ended": 2}
    for sid in ("a", "b", "c"):
        session_files(root / sid, {"id": sid, "pid": 999_999_999, "started": 1}, exited)
    judge = sessions.judge

    def failing_on_b(parent_fd: int | None, name: str | Path) -> sessions.Verdict:
        if name == "b":
            raise OSError(5, "Input/output error")
        return judge(parent_fd, name)

    monkeypatch.setattr(sessions, "judge", failing_on_b)
    assert [(s.id, s.liveness) for s in sessions.scan(root)] == [("a", DEAD), ("c", DEAD)]


def test_the_manual_names_every_state_and_every_field_of_a_workers_row(tmp_path: Path) -> None:
    from looop.agent.manual import FIELDS

    workers = dict(FIELDS)["workers"]
    row = sessions.inspect(
        session_files(tmp_path / "s", {"id": "s", "pid": None, "started": 1})
    ).as_dict()
    for word in (*sessions.State.ALL, *row):
        assert word in workers, f"the manual's workers entry does not name {word}"


def test_a_starting_session_whose_detached_supervisor_is_gone_is_dead_at_once(
    profile: Profile, procs: Processes
) -> None:
    sessions_dir = profile.data / "sessions"
    meta = {"id": "w1", "pid": None, "started": time.time(), "cmd": ["true"]}
    for wid, pid in (("gone", gone_pid()), ("alive", start_sleeper(procs).pid), ("unit", None)):
        session = session_files(sessions_dir / wid, {**meta, "id": wid})
        if pid is not None:
            (session / "supervisor.pid").write_text(f"{pid}\n")
    out = profile.run("_", "worker", "list", "--json")
    assert out.returncode == 0, out.stderr
    states = {row["id"]: row["state"] for row in json.loads(out.stdout)}
    assert states == {"gone": "dead", "alive": "starting", "unit": "starting"}


def test_a_units_worker_that_is_gone_is_ending_while_its_cgroup_is_populated(
    tmp_path: Path,
) -> None:
    # Its unit supervised it alone: the unit's ExecStopPost= runs in its cgroup, recording its end.
    cgroup = tmp_path / "looop-worker-s.service"
    cgroup.mkdir()
    (cgroup / "cgroup.events").write_text("populated 1\nfrozen 0\n")
    meta = {"v": 2, "id": "s", "pid": gone_pid(), "started": time.time(), "cmd": ["w"]}
    d = session_files(tmp_path / "s", {**meta, "unit": cgroup.name, "cgroup": str(cgroup)})
    s = sessions.inspect(d)
    assert (s.liveness, s.state, s.why) == (ALIVE, "running", sessions.ENDING)
    (cgroup / "cgroup.events").write_text("populated 0\nfrozen 0\n")
    assert sessions.inspect(d).state == "dead"
    cgroup.rename(tmp_path / "collected")  # the unit is gone
    assert sessions.inspect(d).state == "dead"
