"""``looop reap`` through the installed command, against real processes and real files.

The fixture holds one session of every kind the reaper must tell apart: dead
and old, dead and young, alive (a process this test runs), a reused pid (a
live process that started after the session did), unreadable meta, a link
directly under ``sessions/`` and a dead session holding links to canaries
outside the data dir. Every process a test starts is ended by pid.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    DAY,
    LOOOP,
    TTL,
    Processes,
    Profile,
    as_plain_user,
    backdate,
    events,
    gone_pid,
    make_session,
    pid_alive,
    reap_json,
    start_sleeper,
    tree,
)

from looop import paths as looop_paths
from looop import tree as looop_tree
from looop.data import sessions
from looop.workers import reap, reap_sessions


# --- building sessions ---------------------------------------------------------
@dataclass
class Fixture:
    data: Path
    sessions: Path
    outside: Path
    alive_proc: subprocess.Popen[bytes]
    reused_proc: subprocess.Popen[bytes]
    due: set[str]  # what a reap with TTL must remove
    kept: set[str]  # the other sessions, which it must keep


def build_fixture(profile: Profile, procs: Processes) -> Fixture:
    data = profile.data
    sessions = data / "sessions"
    sessions.mkdir(parents=True)
    outside = profile.root / "outside"
    (outside / "canary-dir").mkdir(parents=True)
    (outside / "canary.txt").write_text("canary file\n")
    (outside / "canary-dir" / "inside.txt").write_text("canary dir\n")
    now = time.time()

    make_session(sessions, "dead-old", ended=now - 10 * DAY, exit_code=0, age=10 * DAY)
    make_session(sessions, "dead-pid-gone", pid=gone_pid(), started=now - 20 * DAY, age=10 * DAY)
    make_session(sessions, "dead-young", ended=now - 60, exit_code=1)

    alive_proc = start_sleeper(procs)
    make_session(sessions, "alive", pid=alive_proc.pid, started=time.time(), age=10 * DAY)

    reused_proc = start_sleeper(procs)  # owns the pid now, started long after the session
    make_session(sessions, "pid-reused", pid=reused_proc.pid, started=now - 20 * DAY, age=10 * DAY)

    # Garbage meta, even beside a status that says it exited long ago: never deleted blind.
    make_session(
        sessions, "unreadable-meta", meta="{this is not json", ended=now - 10 * DAY, age=10 * DAY
    )

    # A link directly under sessions/, to a directory that even looks like a dead old session.
    (outside / "canary-dir" / "status.json").write_text(
        json.dumps({"state": "exited", "exit_code": 0, "ended": now - 10 * DAY})
    )
    os.symlink(outside / "canary-dir", sessions / "top-link")

    # A dead old session holding links (and a hard link) to the canaries.
    linked = make_session(sessions, "dead-old-links", ended=now - 10 * DAY)
    os.symlink(outside / "canary.txt", linked / "to-file")
    os.symlink(outside / "canary-dir", linked / "to-dir")
    (linked / "nested").mkdir()
    os.symlink(outside, linked / "nested" / "to-outside")
    os.link(outside / "canary.txt", linked / "hard-link")

    return Fixture(
        data=data,
        sessions=sessions,
        outside=outside,
        alive_proc=alive_proc,
        reused_proc=reused_proc,
        due={"dead-old", "dead-pid-gone", "pid-reused", "dead-old-links"},
        kept={"dead-young", "alive", "unreadable-meta"},
    )


def canaries_intact(fx: Fixture) -> None:
    assert (fx.outside / "canary.txt").read_text() == "canary file\n"
    assert (fx.outside / "canary-dir" / "inside.txt").read_text() == "canary dir\n"
    assert (fx.outside / "canary-dir" / "status.json").is_file()


def session_names(sessions: Path) -> set[str]:
    return {p.name for p in sessions.iterdir() if not p.name.startswith(".")}


# --- acceptance 1: exactly the dead-old and pid-reused sessions go ------------------
def test_reap_removes_exactly_dead_old_and_reused_pid_sessions(
    profile: Profile, procs: Processes
) -> None:
    fx = build_fixture(profile, procs)
    out = profile.run("reap", "--ttl", TTL)
    assert out.returncode == 0, out.stdout + out.stderr

    assert session_names(fx.sessions) == fx.kept | {"top-link"}
    assert (fx.sessions / "top-link").is_symlink()
    canaries_intact(fx)
    # The reaper judged the processes; it never signals them.
    assert pid_alive(fx.alive_proc.pid) and pid_alive(fx.reused_proc.pid)
    # Nothing outside sessions/ and claims/ changed.
    assert sorted(p.name for p in fx.outside.iterdir()) == ["canary-dir", "canary.txt"]

    last = out.stdout.strip().splitlines()[-1]
    assert last == "reaped 4 sessions, 0 claims; kept 1 live, 1 young, 1 unknown"
    assert "kept session unreadable-meta: unknown" in out.stdout
    assert "left sessions/top-link alone: a symlink" in out.stdout
    assert {e["id"] for e in events(profile, "session_reaped")} == fx.due


def test_reap_honours_the_session_ttl_knob(profile: Profile, procs: Processes) -> None:
    fx = build_fixture(profile, procs)
    env = {**profile.env, "LOOOP_SESSION_TTL": TTL}
    out = profile.run("reap", env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert session_names(fx.sessions) == fx.kept | {"top-link"}

    # The default (three days) keeps a session that ended two days ago.
    make_session(fx.sessions, "two-days", ended=time.time() - 2 * DAY, age=2 * DAY)
    assert profile.run("reap").returncode == 0
    assert (fx.sessions / "two-days").is_dir()


# --- acceptance 2: dry run and --ttl 0 --------------------------------------------
def test_dry_run_lists_exactly_what_a_real_run_removes(profile: Profile, procs: Processes) -> None:
    fx = build_fixture(profile, procs)
    claims = profile.data / "claims"
    claims.mkdir()
    (claims / "of-dead.json").write_text(json.dumps({"session": "dead-young"}))
    (claims / "of-live.json").write_text(json.dumps({"session": "alive"}))
    before = tree(profile.root)

    code, dry = reap_json(profile, "--dry-run", "--ttl", TTL)
    assert code == 0
    assert dry["dry_run"] is True
    assert tree(profile.root) == before, "a dry run changed the disk"
    assert not (profile.data / "events.jsonl").exists()

    text = profile.run("reap", "--dry-run", "--ttl", TTL)
    assert "would reap 4 sessions, 1 claim; kept 1 live" in text.stdout
    for sid in fx.due:
        assert f"would reap session {sid} " in text.stdout
    assert tree(profile.root) == before

    code, real = reap_json(profile, "--ttl", TTL)
    assert code == 0
    listed = {s["id"] for s in dry["reaped"]["sessions"]}
    removed = {s["id"] for s in real["reaped"]["sessions"]}
    assert listed == removed == fx.due
    assert [c["name"] for c in dry["reaped"]["claims"]] == ["of-dead.json"]
    assert [c["name"] for c in real["reaped"]["claims"]] == ["of-dead.json"]
    gone = {p.split("/")[2] for p in set(before) - set(tree(profile.root)) if p.count("/") >= 2}
    assert gone == fx.due | {"of-dead.json"}


def test_ttl_zero_reaps_every_dead_session(profile: Profile, procs: Processes) -> None:
    fx = build_fixture(profile, procs)
    future = make_session(fx.sessions, "ended-in-future", ended=time.time() + 600)
    assert future.is_dir()
    code, result = reap_json(profile, "--ttl", "0")
    assert code == 0, result
    assert session_names(fx.sessions) == {"alive", "unreadable-meta", "top-link"}
    assert {s["id"] for s in result["reaped"]["sessions"]} == (
        fx.due | {"dead-young", "ended-in-future"}
    )
    assert result["kept"]["live"] == ["alive"]
    assert [u["id"] for u in result["kept"]["unknown"]] == ["unreadable-meta"]
    canaries_intact(fx)


# --- acceptance 3: two reapers at once ------------------------------------------
def populate_many(data: Path, alive_pid: int, now: float) -> None:
    """300 dead sessions (30 of them claimed), 20 young ones and a live one; deterministic."""
    sessions = data / "sessions"
    old = now - 30 * DAY
    for i in range(300):
        make_session(sessions, f"dead-{i:03d}", started=old, ended=now - 5 * DAY)
    for i in range(20):
        make_session(sessions, f"young-{i:02d}", started=old, ended=now - 60)
    make_session(sessions, "alive", pid=alive_pid, started=now)
    (data / "claims").mkdir()
    for i in range(0, 300, 10):
        (data / "claims" / f"c{i:03d}.json").write_text(json.dumps({"session": f"dead-{i:03d}"}))
    (data / "claims" / "live.json").write_text(json.dumps({"session": "alive"}))


def reap_at_once(profile: Profile, procs: Processes, count: int) -> list[dict[str, Any]]:
    """Start ``count`` reapers back to back; each must exit 0 with one JSON object."""
    started = [procs.add(profile.popen("reap", "--json", "--ttl", TTL)) for _ in range(count)]
    outputs = [p.communicate(timeout=120) for p in started]
    assert [p.returncode for p in started] == [0] * count, outputs
    return [json.loads(stdout) for stdout, _ in outputs]


def assert_same_as_one_run(
    profile: Profile, single: Path, one: dict[str, Any], results: list[dict[str, Any]]
) -> None:
    def without_lock(found: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in found.items() if k != ".reap.lock"}

    assert without_lock(tree(profile.data / "sessions")) == without_lock(tree(single / "sessions"))
    assert tree(profile.data / "claims") == tree(single / "claims")
    reaped = [s["id"] for r in results for s in r["reaped"]["sessions"]]
    claims = [c["name"] for r in results for c in r["reaped"]["claims"]]
    # Each removal is reported by exactly one of the reapers.
    assert sorted(reaped) == sorted(s["id"] for s in one["reaped"]["sessions"])
    assert sorted(claims) == sorted(c["name"] for c in one["reaped"]["claims"])
    assert len(reaped) == 300 and len(claims) == 30
    assert all(r["errors"] == [] for r in results)
    reaped_events = [e["id"] for e in events(profile, "session_reaped")]
    assert sorted(reaped_events) == sorted(reaped)


def twin_data_dirs(tmp_path: Path, profile: Profile, procs: Processes) -> Path:
    """The profile's data dir and a copy of it (returned), filled alike, one live worker."""
    alive = start_sleeper(procs)
    now = time.time()
    single = tmp_path / "single"
    populate_many(single, alive.pid, now)
    populate_many(profile.data, alive.pid, now)
    return single


def reap_single(profile: Profile, single: Path) -> dict[str, Any]:
    env = {**profile.env, "LOOOP_DATA_DIR": str(single)}
    one = profile.run("reap", "--json", "--ttl", TTL, env=env)
    assert one.returncode == 0, one.stderr
    return json.loads(one.stdout)


def test_two_reapers_at_once_both_succeed_and_match_one_run(
    tmp_path: Path, profile: Profile, procs: Processes
) -> None:
    """Two identical data dirs: one reaped once, the other by two reapers at once."""
    single = twin_data_dirs(tmp_path, profile, procs)
    one = reap_single(profile, single)
    results = reap_at_once(profile, procs, 2)
    assert_same_as_one_run(profile, single, one, results)


def test_reapers_without_the_run_lock_still_share_the_work(
    tmp_path: Path, profile: Profile, procs: Processes
) -> None:
    """A run lock that cannot be taken (here: a link in its place) is not needed for safety."""
    single = twin_data_dirs(tmp_path, profile, procs)
    decoy = tmp_path / "decoy"
    decoy.write_text("not a lock\n")
    os.symlink(decoy, profile.data / "sessions" / ".reap.lock")
    one = reap_single(profile, single)
    results = reap_at_once(profile, procs, 4)
    assert_same_as_one_run(profile, single, one, results)
    assert (profile.data / "sessions" / ".reap.lock").is_symlink()
    assert decoy.read_text() == "not a lock\n"


def test_a_reaper_waits_for_one_that_holds_the_lock(profile: Profile, procs: Processes) -> None:
    sessions = profile.data / "sessions"
    make_session(sessions, "dead", ended=time.time() - 5 * DAY)
    fd = os.open(sessions / ".reap.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        reaper = procs.add(profile.popen("reap", "--ttl", TTL))
        try:
            # It announces the wait on stderr and removes nothing while it waits.
            assert reaper.stderr is not None
            ready = select.select([reaper.stderr], [], [], 60)[0]
            assert ready, "the second reaper said nothing while it waited"
            assert "another reap is running" in reaper.stderr.readline()
            assert (sessions / "dead").is_dir()
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
        stdout, _ = reaper.communicate(timeout=60)
    finally:
        os.close(fd)
    assert reaper.returncode == 0
    assert "reaped 1 session, 0 claims" in stdout
    assert not (sessions / "dead").exists()


# --- acceptance 4: claims ---------------------------------------------------------
def test_claims_of_dead_or_missing_sessions_go_and_live_ones_stay(
    profile: Profile, procs: Processes
) -> None:
    fx = build_fixture(profile, procs)
    claims = profile.data / "claims"
    claims.mkdir()

    def claim(name: str, body: Any, age: float = 600) -> Path:
        path = claims / name
        path.write_text(body if isinstance(body, str) else json.dumps(body))
        backdate(path, age)
        return path

    claim("dead.json", {"session": "dead-young", "what": "build"})
    claim("reaped.json", {"session": "dead-old"})
    claim("missing.json", {"session": "never-existed"})
    claim("live.json", {"session": "alive"})
    claim("unknown.json", {"session": "unreadable-meta"})
    claim("garbage.json", "{not json")
    claim("no-session.json", {"holder": "someone"})
    claim("escape.json", {"session": "../../outside"})
    claim("fresh-missing.json", {"session": "not-yet-created"}, age=0)
    claim("fresh-reaped.json", {"session": "dead-old-links"}, age=0)
    claim("fresh-garbage.json", "{not js", age=0)  # maybe still being written
    (claims / "notes.txt").write_text("not a claim\n")
    os.symlink(fx.outside / "canary.txt", claims / "linked.json")

    code, result = reap_json(profile, "--ttl", TTL)
    assert code == 0, result
    assert {c["name"] for c in result["reaped"]["claims"]} == {
        "dead.json",
        "reaped.json",
        "fresh-reaped.json",
        "missing.json",
        "fresh-missing.json",
        "garbage.json",
        "no-session.json",
        "escape.json",
    }
    assert sorted(p.name for p in claims.iterdir()) == sorted(
        ["live.json", "unknown.json", "fresh-garbage.json", "notes.txt", "linked.json"]
    )
    kept = {c["name"]: c["why"] for c in result["kept"]["claims"]}
    assert kept["live.json"] == "live"
    assert "unknown" in kept["unknown.json"]
    assert (claims / "linked.json").is_symlink()
    canaries_intact(fx)
    assert {e["name"] for e in events(profile, "claim_reaped")} == {
        c["name"] for c in result["reaped"]["claims"]
    }

    # The live claim stays for as long as its session runs, and goes once it has ended.
    fx.alive_proc.send_signal(signal.SIGTERM)
    fx.alive_proc.wait(timeout=30)
    code, result = reap_json(profile, "--ttl", TTL)
    assert code == 0
    assert "live.json" in {c["name"] for c in result["reaped"]["claims"]}


def old_claim(claims: Path, name: str, sid: str) -> Path:
    """``claims/<name>`` naming session ``sid``, ten minutes old."""
    claims.mkdir(parents=True, exist_ok=True)
    path = claims / name
    path.write_text(json.dumps({"session": sid}))
    backdate(path, 600)
    return path


def test_claims_go_when_sessions_dir_is_missing(profile: Profile) -> None:
    """No ``sessions/`` at all: every session is missing, so claims of them go."""
    claim = old_claim(profile.data / "claims", "gone.json", "never-existed")
    code, result = reap_json(profile, "--ttl", TTL)
    assert code == 0, result
    assert [c["name"] for c in result["reaped"]["claims"]] == ["gone.json"]
    assert not claim.exists()


def test_claims_are_kept_when_a_linked_sessions_dir_cannot_be_read(
    profile: Profile, procs: Processes
) -> None:
    """A ``sessions/`` the reaper refuses to open says nothing about its sessions."""
    worker = start_sleeper(procs)
    elsewhere = profile.root / "elsewhere"
    make_session(elsewhere, "alive", pid=worker.pid, started=time.time())
    profile.data.mkdir(parents=True)
    os.symlink(elsewhere, profile.data / "sessions")
    claim = old_claim(profile.data / "claims", "live.json", "alive")

    code, result = reap_json(profile, "--ttl", TTL)
    assert code == 1, result  # the linked sessions/ itself is reported
    assert result["reaped"]["claims"] == []
    assert claim.is_file(), "the claim of a live session was deleted blind"
    kept = {c["name"]: c["why"] for c in result["kept"]["claims"]}
    assert "unknown" in kept["live.json"]


# --- acceptance 5: failures are per session -----------------------------------------
def run_reap(profile: Profile, *args: str, prefix: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, LOOOP, "reap", *args],
        env=profile.env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def locked_dirs() -> Iterator[list[Path]]:
    """Directories a test makes unreadable; their mode is restored at the end."""
    made: list[Path] = []
    yield made
    for path in made:
        if path.exists():
            path.chmod(0o755)


def test_an_unreadable_subdirectory_is_reported_and_the_rest_reaped(
    profile: Profile, locked_dirs: list[Path]
) -> None:
    prefix = as_plain_user()
    sessions = profile.data / "sessions"
    now = time.time()
    for sid in ("a-dead", "c-dead", "d-dead"):
        make_session(sessions, sid, ended=now - 5 * DAY)
    blocked = make_session(sessions, "b-blocked", ended=now - 5 * DAY)
    (blocked / "private").mkdir()
    (blocked / "private" / "secret.txt").write_text("x\n")
    (blocked / "private").chmod(0)
    locked_dirs.append(blocked / "private")
    # A dead session with no ended time is aged by its contents: unreadable ones
    # leave its age unknown, so it is kept whole.
    unmeasured = make_session(sessions, "e-unmeasured", pid=gone_pid(), age=5 * DAY)
    (unmeasured / "private").mkdir()
    (unmeasured / "private").chmod(0)
    backdate(unmeasured, 5 * DAY)  # backdate leaves the unreadable directory alone
    locked_dirs.append(unmeasured / "private")

    out = run_reap(profile, "--json", "--ttl", TTL, prefix=prefix)
    assert out.returncode == 1, out.stdout + out.stderr
    result = json.loads(out.stdout)
    assert {s["id"] for s in result["reaped"]["sessions"]} == {"a-dead", "c-dead", "d-dead"}
    failed = {e["name"]: e for e in result["errors"]}
    assert set(failed) == {"b-blocked", "e-unmeasured"}
    assert "private" in failed["b-blocked"]["error"]
    assert "Permission denied" in failed["b-blocked"]["error"]
    assert "cannot measure its age" in failed["e-unmeasured"]["error"]
    for sid in ("a-dead", "c-dead", "d-dead"):
        assert not (sessions / sid).exists()
    assert (unmeasured / "meta.json").is_file(), "a session of unknown age must be kept whole"
    # The half-removed session is out of sight of readers, and left where it says.
    assert "b-blocked" not in session_names(sessions)
    left = profile.data / failed["b-blocked"]["left"]
    assert (left / "private").is_dir()
    locked_dirs[0] = left / "private"

    text = run_reap(profile, "--ttl", TTL, prefix=prefix)
    assert text.returncode == 1
    assert "error: session b-blocked: cannot remove" in text.stdout
    assert "error: session e-unmeasured: cannot measure its age" in text.stdout

    # Once the user fixes the permissions, the next run finishes the job.
    for path in locked_dirs:
        path.chmod(0o755)
    out = run_reap(profile, "--json", "--ttl", TTL, prefix=prefix)
    assert out.returncode == 0, out.stdout
    assert {s["id"] for s in json.loads(out.stdout)["reaped"]["sessions"]} == {
        "b-blocked",
        "e-unmeasured",
    }
    assert os.listdir(sessions) == [".reap.lock"]


def test_claims_are_kept_when_sessions_dir_is_unreadable(
    profile: Profile, procs: Processes, locked_dirs: list[Path]
) -> None:
    prefix = as_plain_user()
    worker = start_sleeper(procs)
    sessions = profile.data / "sessions"
    make_session(sessions, "alive", pid=worker.pid, started=time.time())
    claim = old_claim(profile.data / "claims", "live.json", "alive")
    sessions.chmod(0)
    locked_dirs.append(sessions)

    out = run_reap(profile, "--json", "--ttl", TTL, prefix=prefix)
    assert out.returncode == 1, out.stdout + out.stderr
    result = json.loads(out.stdout)
    assert [e["name"] for e in result["errors"]] == ["sessions/"]
    assert "Permission denied" in result["errors"][0]["error"]
    assert result["reaped"]["claims"] == []
    assert claim.is_file(), "the claim of a live session was deleted blind"
    kept = {c["name"]: c["why"] for c in result["kept"]["claims"]}
    assert "unknown" in kept["live.json"]


@pytest.fixture
def immutable() -> Iterator[list[Path]]:
    """Files a test marks immutable (``chattr +i``); cleared at the end."""
    marked: list[Path] = []
    yield marked
    for path in marked:
        subprocess.run(["chattr", "-i", str(path)], check=False, capture_output=True)


@pytest.mark.root("makes a file immutable (chattr +i)")
def test_a_file_even_root_cannot_remove_fails_only_its_session(
    profile: Profile, immutable: list[Path]
) -> None:
    chattr = shutil.which("chattr")
    if chattr is None:
        pytest.skip("needs chattr (e2fsprogs) to make a file that cannot be removed")
    sessions = profile.data / "sessions"
    now = time.time()
    stuck = make_session(sessions, "stuck", ended=now - 5 * DAY)
    make_session(sessions, "free", ended=now - 5 * DAY)
    mark = subprocess.run([chattr, "+i", str(stuck / "transcript.log")], capture_output=True)
    if mark.returncode != 0:
        pytest.skip(f"this file system has no immutable flag: {mark.stderr.decode().strip()}")
    immutable.append(stuck / "transcript.log")

    code, result = reap_json(profile, "--ttl", TTL)
    assert code == 1
    assert [s["id"] for s in result["reaped"]["sessions"]] == ["free"]
    assert [e["name"] for e in result["errors"]] == ["stuck"]
    immutable[0] = profile.data / result["errors"][0]["left"] / "transcript.log"
    assert "Operation not permitted" in result["errors"][0]["error"]
    assert {e["id"] for e in events(profile, "session_reaped")} == {"free"}


# --- never outside sessions/ and claims/, never through a link ----------------------
def test_a_linked_sessions_dir_is_refused(profile: Profile) -> None:
    elsewhere = profile.root / "elsewhere"
    make_session(elsewhere, "dead", ended=time.time() - 5 * DAY)
    profile.data.mkdir(parents=True)
    os.symlink(elsewhere, profile.data / "sessions")
    before = tree(elsewhere)
    out = profile.run("reap", "--ttl", "0")
    assert out.returncode == 1
    assert "sessions/" in out.stdout and "symlink" in out.stdout
    assert tree(elsewhere) == before


def test_links_deep_inside_a_session_are_removed_as_links(profile: Profile) -> None:
    sessions = profile.data / "sessions"
    outside = profile.root / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep\n")
    dead = make_session(sessions, "dead", ended=time.time() - 5 * DAY)
    for depth in range(5):
        (dead / "deep" / ("d" * (depth + 1))).mkdir(parents=True)
    os.symlink(outside, dead / "deep" / "d" / "link")
    os.symlink(outside / "keep.txt", dead / "meta-link.json")
    out = profile.run("reap", "--ttl", TTL)
    assert out.returncode == 0, out.stdout
    assert not dead.exists()
    assert (outside / "keep.txt").read_text() == "keep\n"


def test_nothing_to_reap_on_a_fresh_profile(profile: Profile) -> None:
    out = profile.run("reap")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "reaped 0 sessions, 0 claims; kept 0 live"
    assert not (profile.data / "sessions").exists()


# --- one liveness answer for readers and the reaper ---------------------------------
def test_state_workers_sys_sessions_and_reap_agree(profile: Profile, procs: Processes) -> None:
    fx = build_fixture(profile, procs)
    beat = profile.run("sense")
    assert beat.returncode == 0, beat.stderr
    # A beat senses; it does not prune sessions.
    assert session_names(fx.sessions) == fx.due | fx.kept | {"top-link"}

    workers = {w["id"]: w for w in profile.state()["workers"]}
    signal_ = {s["id"]: s for s in profile.snapshot("sys-sessions")["signal"]}
    _, dry = reap_json(profile, "--dry-run", "--ttl", TTL)

    sessions_seen = fx.due | fx.kept
    assert set(workers) == set(signal_) == sessions_seen  # the link is not a session
    alive = {sid for sid, w in workers.items() if w["alive"]}
    assert alive == {"alive"} == set(dry["kept"]["live"])
    unknown = {sid for sid, w in workers.items() if w["state"] == "unknown"}
    assert unknown == {"unreadable-meta"} == {u["id"] for u in dry["kept"]["unknown"]}
    dead = sessions_seen - alive - unknown
    assert dead == fx.due | {"dead-young"}
    assert workers["pid-reused"]["state"] == signal_["pid-reused"]["state"] == "dead"
    assert {k: workers["dead-young"][k] for k in ("id", "state", "alive", "exit_code")} == {
        "id": "dead-young",
        "state": "exited",
        "alive": False,
        "exit_code": 1,
    }
    for sid in sessions_seen:
        assert signal_[sid] == {k: workers[sid][k] for k in ("id", "state", "exit_code")}


def test_a_session_that_comes_alive_while_being_measured_is_kept(
    profile: Profile, procs: Processes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Liveness is judged again after the age walk, right before removal."""
    sessions = profile.data / "sessions"
    session = make_session(sessions, "revived", pid=gone_pid(), age=5 * DAY)
    worker = start_sleeper(procs)
    measure = looop_tree.walk

    def measure_then_revive(
        fd: int, home: Any, where: str, cutoff: float | None, found: Any, depth: int = 0
    ) -> None:
        measure(fd, home, where, cutoff, found, depth=depth)
        if depth == 0:  # the worker restarts in this session while it is being measured
            meta = {"id": "revived", "pid": worker.pid, "started": time.time(), "cmd": "work"}
            (session / "meta.json").write_text(json.dumps(meta))

    monkeypatch.setattr(looop_tree, "walk", measure_then_revive)
    monkeypatch.setenv("LOOOP_DATA_DIR", str(profile.data))
    result = reap.reap(looop_paths.resolve(), ttl=3600)
    assert result.live == ["revived"] and result.sessions == []
    assert (session / "meta.json").is_file()


def test_a_lease_renamed_over_a_claim_being_judged_is_kept(
    profile: Profile, procs: Processes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker atomically renames a fresh lease into the name of a claim judged due."""
    root = profile.data / "sessions"
    make_session(root, "dead", ended=time.time() - 60)  # young: kept, but its claim is due
    worker = start_sleeper(procs)
    make_session(root, "alive", pid=worker.pid, started=time.time())
    lease = old_claim(profile.data / "claims", "job.json", "dead")
    judge = sessions.judge
    renamed: list[int] = []

    def judge_while_a_worker_takes_the_lease(parent_fd: int | None, name: Any) -> Any:
        verdict = judge(parent_fd, name)
        if name == "dead" and not renamed:  # the last look before removal
            fresh = lease.with_name(".job.json.tmp")
            fresh.write_text(json.dumps({"session": "alive"}))
            os.rename(fresh, lease)
            renamed.append(lease.stat().st_ino)
        return verdict

    monkeypatch.setattr(sessions, "judge", judge_while_a_worker_takes_the_lease)
    monkeypatch.setenv("LOOOP_DATA_DIR", str(profile.data))
    result = reap.reap(looop_paths.resolve(), ttl=3600)
    assert renamed, "the claim was never judged again before removal"
    assert lease.is_file(), "a fresh lease was deleted"
    assert json.loads(lease.read_text()) == {"session": "alive"}
    assert result.claims == [] and result.errors == []
    assert [c["name"] for c in result.kept_claims] == ["job.json"]


def test_a_lease_rewritten_in_place_after_judging_is_kept(
    profile: Profile, procs: Processes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same file, new content, written after the last read: the claim is not removed."""
    root = profile.data / "sessions"
    make_session(root, "dead", ended=time.time() - 60)
    worker = start_sleeper(procs)
    make_session(root, "alive", pid=worker.pid, started=time.time())
    lease = old_claim(profile.data / "claims", "job.json", "dead")
    judge = sessions.judge
    rewritten: list[bool] = []

    def judge_while_a_worker_rewrites(parent_fd: int | None, name: Any) -> Any:
        verdict = judge(parent_fd, name)
        if name == "dead" and not rewritten:
            with open(lease, "r+") as f:  # the same inode, truncated and rewritten
                f.truncate(0)
                f.write(json.dumps({"session": "alive"}))
            rewritten.append(True)
        return verdict

    monkeypatch.setattr(sessions, "judge", judge_while_a_worker_rewrites)
    monkeypatch.setenv("LOOOP_DATA_DIR", str(profile.data))
    result = reap.reap(looop_paths.resolve(), ttl=3600)
    assert rewritten
    assert json.loads(lease.read_text()) == {"session": "alive"}
    assert result.claims == [] and result.errors == []


def test_a_session_replaced_after_judging_is_skipped_not_moved(
    profile: Profile, procs: Processes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name no longer holds the judged directory: left alone, reported, not an error."""
    root = profile.data / "sessions"
    victim = make_session(root, "victim", ended=time.time() - 5 * DAY, age=5 * DAY)
    make_session(root, "other", ended=time.time() - 5 * DAY, age=5 * DAY)
    aside = profile.root / "aside"
    worker = start_sleeper(procs)
    judge_at = sessions.judge_at
    rename = os.rename
    swapped: list[bool] = []
    renamed_from: list[str] = []

    def judge_then_swap(fd: int) -> Any:
        verdict = judge_at(fd)
        if not swapped and os.path.samestat(os.fstat(fd), os.stat(victim)):
            # The worker's session directory is replaced by a new, live one.
            rename(victim, aside)
            make_session(root, "victim", pid=worker.pid, started=time.time())
            swapped.append(True)
        return verdict

    def recording_rename(src: Any, dst: Any, **kw: Any) -> None:
        renamed_from.append(os.fsdecode(src))
        rename(src, dst, **kw)

    monkeypatch.setattr(sessions, "judge_at", judge_then_swap)
    monkeypatch.setattr(os, "rename", recording_rename)
    monkeypatch.setenv("LOOOP_DATA_DIR", str(profile.data))
    result = reap.reap(looop_paths.resolve(), ttl=3600)
    monkeypatch.undo()
    assert swapped
    assert "victim" not in renamed_from, "the new session was moved out of its name"
    assert result.errors == [] and result.exit_code == 0
    assert [s["id"] for s in result.sessions] == ["other"]
    assert [s["name"] for s in result.skipped] == ["sessions/victim"]
    assert json.loads((victim / "meta.json").read_text())["pid"] == worker.pid
    assert (aside / "meta.json").is_file(), "the judged directory, now outside, was touched"


def test_a_session_replaced_between_check_and_rename_is_put_back(
    profile: Profile, procs: Processes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should the swap land after the last check, the rename is undone: skipped, not an error."""
    root = profile.data / "sessions"
    victim = make_session(root, "victim", ended=time.time() - 5 * DAY, age=5 * DAY)
    aside = profile.root / "aside"
    worker = start_sleeper(procs)
    judge_at = sessions.judge_at
    swapped: list[bool] = []

    def judge_then_swap(fd: int) -> Any:
        verdict = judge_at(fd)
        if not swapped:
            os.rename(victim, aside)
            make_session(root, "victim", pid=worker.pid, started=time.time())
            swapped.append(True)
        return verdict

    monkeypatch.setattr(sessions, "judge_at", judge_then_swap)
    monkeypatch.setattr(looop_tree, "still_named", lambda parent_fd, name, fd: True)
    monkeypatch.setenv("LOOOP_DATA_DIR", str(profile.data))
    result = reap.reap(looop_paths.resolve(), ttl=3600)
    assert swapped
    assert result.errors == [] and result.exit_code == 0 and result.sessions == []
    assert [(s["name"], "put back" in s["why"]) for s in result.skipped] == [
        ("sessions/victim", True)
    ]
    assert json.loads((victim / "meta.json").read_text())["pid"] == worker.pid
    assert sorted(os.listdir(root)) == [".reap.lock", "victim"]
    assert (aside / "meta.json").is_file()


# --- never leaving the session's own tree --------------------------------------------
class Mounts:
    """File systems a test mounts; each is unmounted at the end, even on failure."""

    def __init__(self) -> None:
        self.points: list[Path] = []

    def tmpfs(self, target: Path) -> Path:
        target.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(target)], check=True)
        self.points.append(target)
        return target

    def bind(self, source: Path, target: Path) -> Path:
        if source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.touch()
        subprocess.run(["mount", "--bind", str(source), str(target)], check=True)
        self.points.append(target)
        return target

    def unmount(self, target: Path) -> None:
        subprocess.run(["umount", str(target)], check=True)
        self.points.remove(target)

    def unmount_all(self) -> None:
        for target in reversed(self.points):
            # Lazily, should the test have left something busy: never leave a mount behind.
            subprocess.run(["umount", "-l", str(target)], check=False, capture_output=True)
        self.points.clear()


@pytest.fixture
def mounts() -> Iterator[Mounts]:
    made = Mounts()
    try:
        yield made
    finally:
        made.unmount_all()


def fill(root: Path) -> None:
    """A few files and a nested directory: what a worker left on its mount."""
    (root / "work").mkdir(parents=True, exist_ok=True)
    (root / "notes.txt").write_text("the user's notes\n")
    (root / "work" / "draft.md").write_text("# a draft\n")
    (root / "work" / "deep").mkdir(exist_ok=True)
    (root / "work" / "deep" / "data.bin").write_bytes(b"\0\1\2" * 100)


def dead_old_session(sessions: Path, sid: str) -> Path:
    """Meta with a gone pid, a status that says it exited ten days ago, old mtimes."""
    return make_session(sessions, sid, pid=gone_pid(), ended=time.time() - 10 * DAY, age=10 * DAY)


def strict_json(text: str) -> Any:
    """JSON as the standard has it: ``NaN`` and ``Infinity`` are not JSON."""

    def refuse(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    return json.loads(text, parse_constant=refuse)


@pytest.mark.root("mounts file systems")
@pytest.mark.parametrize("kind", ["tmpfs", "bind"])
@pytest.mark.parametrize("ttl", [TTL, "0"])
def test_a_file_system_mounted_inside_a_dead_session_is_never_entered(
    profile: Profile, mounts: Mounts, kind: str, ttl: str
) -> None:
    sessions = profile.data / "sessions"
    session = dead_old_session(sessions, "mounted")
    dead_old_session(sessions, "plain")
    point = session / "scratch" / "mnt"
    if kind == "tmpfs":
        mounts.tmpfs(point)
    else:  # the same file system as the data dir: only the mount tells it apart
        source = profile.root / "project"
        source.mkdir()
        mounts.bind(source, point)
    fill(point)
    backdate(session, 10 * DAY)
    on_mount = tree(point)
    whole = tree(session)
    assert len(on_mount) == 5

    for args in (["--dry-run"], []):
        code, result = reap_json(profile, "--ttl", ttl, *args)
        assert code == 1, result
        assert tree(point) == on_mount, "a file on the mount was touched"
        assert tree(session) == whole, "the session was not kept whole"
        assert [m["id"] for m in result["kept"]["mounted"]] == ["mounted"]
        assert result["kept"]["mounted"][0]["at"] == "sessions/mounted/scratch/mnt"
        assert "left" not in result["kept"]["mounted"][0]
        assert result["counts"]["mounted"] == 1
        assert [s["id"] for s in result["reaped"]["sessions"]] == ["plain"]
        assert result["exit_code"] == 1
    # Kept under its own name: never renamed out of sight.
    assert sorted(os.listdir(sessions)) == [".reap.lock", "mounted"]
    assert [e["id"] for e in events(profile, "session_reaped")] == ["plain"]

    text = profile.run("reap", "--ttl", ttl)
    assert text.returncode == 1
    assert (
        "kept session mounted whole: sessions/mounted/scratch/mnt is a mount point "
        "(another file system); unmount it, then reap again"
    ) in text.stdout
    assert text.stdout.strip().splitlines()[-1].endswith("1 mounted")
    assert tree(point) == on_mount

    mounts.unmount(point)
    code, result = reap_json(profile, "--ttl", ttl)
    assert code == 0, result
    assert [s["id"] for s in result["reaped"]["sessions"]] == ["mounted"]
    assert result["kept"]["mounted"] == []
    assert os.listdir(sessions) == [".reap.lock"]
    if kind == "bind":
        assert tree(profile.root / "project") == on_mount


@pytest.mark.root("mounts file systems")
def test_a_mount_on_the_session_directory_itself_is_never_entered(
    profile: Profile, mounts: Mounts
) -> None:
    sessions = profile.data / "sessions"
    session = sessions / "itself"
    mounts.tmpfs(session)
    meta = {"id": "itself", "pid": gone_pid(), "started": time.time() - 20 * DAY, "cmd": "work"}
    (session / "meta.json").write_text(json.dumps(meta))
    status = {"state": "exited", "exit_code": 0, "ended": time.time() - 10 * DAY}
    (session / "status.json").write_text(json.dumps(status))
    fill(session)
    backdate(session, 10 * DAY)
    whole = tree(session)
    code, result = reap_json(profile, "--ttl", "0")
    assert code == 1, result
    assert tree(session) == whole
    assert [(m["id"], m["at"]) for m in result["kept"]["mounted"]] == [
        ("itself", "sessions/itself")
    ]


@pytest.mark.root("mounts file systems")
@pytest.mark.parametrize("kind", ["tmpfs", "bind"])
def test_a_mount_that_appears_during_removal_is_left_and_finished_later(
    profile: Profile, mounts: Mounts, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """Raced in after the survey: the renamed leftover stays until the mount is gone.

    A bind mount of the data dir's own file system, made once the run has
    begun, is told apart by its mount id all the same (the run's look at the
    mount table is out of date by then).
    """
    sessions = profile.data / "sessions"
    dead_old_session(sessions, "raced")
    empty = reap_sessions._empty
    points: list[Path] = []

    def mount_then_empty(doomed: str, *args: Any) -> Any:
        target = sessions / doomed / "late"
        if kind == "tmpfs":
            point = mounts.tmpfs(target)
        else:
            source = profile.root / "project"
            source.mkdir()
            point = mounts.bind(source, target)
        fill(point)
        points.append(point)
        return empty(doomed, *args)

    monkeypatch.setattr(reap_sessions, "_empty", mount_then_empty)
    monkeypatch.setenv("LOOOP_DATA_DIR", str(profile.data))
    result = reap.reap(looop_paths.resolve(), ttl=3600)
    monkeypatch.undo()
    assert len(points) == 1
    point = points[0]
    on_mount = tree(point)
    assert len(on_mount) == 5
    assert result.exit_code == 1 and result.sessions == []
    [kept] = result.mounted
    assert kept["id"] == "raced"
    assert kept["left"] == f"sessions/{point.parent.name}"
    assert kept["at"] == f"sessions/{point.parent.name}/late"

    # Every later run keeps it (and says so) while the mount is there...
    code, again = reap_json(profile, "--ttl", TTL)
    assert code == 1
    assert [m["id"] for m in again["kept"]["mounted"]] == ["raced"]
    assert tree(point) == on_mount
    # ...and finishes the removal once it is gone.
    mounts.unmount(point)
    code, done = reap_json(profile, "--ttl", TTL)
    assert code == 0, done
    assert [s["id"] for s in done["reaped"]["sessions"]] == ["raced"]
    assert os.listdir(sessions) == [".reap.lock"]


def test_what_a_dead_worker_left_after_the_survey_is_removed_with_it(
    profile: Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Emptied from the survey's listing, the victim is cleared again when more was made in it.

    A straggler of the dead worker (a file, a directory holding one) writes
    into the session once its survey has listed it: the reap still leaves
    nothing behind, in one run.
    """
    sessions = profile.data / "sessions"
    dead_old_session(sessions, "late-writes")
    dead_old_session(sessions, "plain")
    empty = reap_sessions._empty
    written: list[str] = []

    def write_then_empty(doomed: str, *args: Any) -> Any:
        if doomed.endswith("late-writes"):
            (sessions / doomed / "late.log").write_text("written after the survey\n")
            (sessions / doomed / "late-dir").mkdir()
            (sessions / doomed / "late-dir" / "inner.txt").write_text("inner\n")
            written.append(doomed)
        return empty(doomed, *args)

    monkeypatch.setattr(reap_sessions, "_empty", write_then_empty)
    monkeypatch.setenv("LOOOP_DATA_DIR", str(profile.data))
    result = reap.reap(looop_paths.resolve(), ttl=3600)
    monkeypatch.undo()
    assert written
    assert result.errors == [] and result.mounted == [] and result.exit_code == 0
    assert sorted(s["id"] for s in result.sessions) == ["late-writes", "plain"]
    assert os.listdir(sessions) == [".reap.lock"]


def nest(root: Path, depth: int) -> Path:
    """``depth`` directories one inside the other under ``root``, a file in each."""
    path = root
    for level in range(depth):
        path = path / "d"
        path.mkdir()
        (path / "f.txt").write_text(f"level {level + 1}\n")
    return path


def test_a_session_deeper_than_the_walker_follows_is_kept_whole(profile: Profile) -> None:
    sessions = profile.data / "sessions"
    deep = dead_old_session(sessions, "too-deep")
    nest(deep, looop_tree.MAX_DEPTH + 1)
    backdate(deep, 10 * DAY)
    edge = dead_old_session(sessions, "just-deep-enough")
    nest(edge, looop_tree.MAX_DEPTH)
    whole = tree(deep)

    for ttl in (TTL, "0"):
        code, result = reap_json(profile, "--ttl", ttl)
        assert code == 1, result
        assert tree(deep) == whole, "a session too deep to follow was half-emptied"
        assert [k["id"] for k in result["kept"]["too_deep"]] == ["too-deep"]
        assert result["counts"]["too_deep"] == 1
        assert result["errors"] == []
    assert [e["id"] for e in events(profile, "session_reaped")] == ["just-deep-enough"]
    assert sorted(os.listdir(sessions)) == [".reap.lock", "too-deep"]
    text = profile.run("reap", "--ttl", TTL)
    assert text.returncode == 1
    assert (
        f"kept session too-deep whole: nested deeper than {looop_tree.MAX_DEPTH} directories"
        in text.stdout
    )


NOT_FINITE = {"nan": "NaN", "inf": "Infinity", "neg-inf": "-Infinity", "overflow": "1e999"}


def non_finite_sessions(sessions: Path, pid: int, started: float, prefix: str) -> set[str]:
    made = set()
    for name, literal in NOT_FINITE.items():
        sid = f"{prefix}-{name}"
        d = make_session(sessions, sid, pid=pid, started=started)
        (d / "status.json").write_text(
            '{"state": "exited", "exit_code": 0, "ended": ' + literal + "}"
        )
        backdate(d, 10 * DAY)
        made.add(sid)
    return made


def test_a_non_finite_ended_never_reaches_the_output_or_the_events(profile: Profile) -> None:
    sessions = profile.data / "sessions"
    gone = non_finite_sessions(sessions, gone_pid(), time.time() - 20 * DAY, "gone")
    for args in (["--dry-run", "--ttl", TTL], ["--dry-run", "--ttl", "0"], ["--ttl", TTL]):
        out = profile.run("reap", "--json", *args)
        assert out.returncode == 0, out.stdout + out.stderr
        result = strict_json(out.stdout)
        assert {s["id"] for s in result["reaped"]["sessions"]} == gone
        for s in result["reaped"]["sessions"]:
            assert s["age"] is None or s["age"] > 9 * DAY
    for line in (profile.data / "events.jsonl").read_text().splitlines():
        strict_json(line)
    assert os.listdir(sessions) == [".reap.lock"]


def test_a_status_with_a_non_finite_ended_is_judged_by_its_pid(
    profile: Profile, procs: Processes
) -> None:
    sessions = profile.data / "sessions"
    worker = start_sleeper(procs)
    live = non_finite_sessions(sessions, worker.pid, time.time(), "live")
    gone = non_finite_sessions(sessions, gone_pid(), time.time() - 20 * DAY, "gone")
    out = profile.run("reap", "--json", "--ttl", "0")
    assert out.returncode == 0, out.stdout + out.stderr
    result = strict_json(out.stdout)
    assert result["kept"]["live"] == sorted(live)
    assert {s["id"] for s in result["reaped"]["sessions"]} == gone
    # Dead because its pid is gone, not because a status nobody can read says it exited.
    assert {s["state"] for s in result["reaped"]["sessions"]} == {"dead"}
    assert sorted(os.listdir(sessions)) == sorted([".reap.lock", *live])


@pytest.mark.root("mounts file systems")
def test_a_file_mounted_over_an_entry_is_never_removed(profile: Profile, mounts: Mounts) -> None:
    """The survey sees directories only; the kernel refuses to unlink a mounted file."""
    sessions = profile.data / "sessions"
    session = dead_old_session(sessions, "file-mount")
    source = profile.root / "precious.txt"
    source.write_text("the user's file\n")
    target = mounts.bind(source, session / "mounted.txt")

    code, result = reap_json(profile, "--ttl", "0")
    assert code == 1, result
    assert source.read_text() == "the user's file\n"
    [kept] = result["kept"]["mounted"]
    mounts.points[mounts.points.index(target)] = profile.data / kept["at"]  # moved with it
    assert kept["id"] == "file-mount" and kept["at"].endswith("/mounted.txt")
    assert result["errors"] == []
    text = profile.run("reap", "--ttl", "0")
    assert text.returncode == 1
    assert f"its removal is left as {kept['left']}" in text.stdout

    mounts.unmount(profile.data / kept["at"])
    code, done = reap_json(profile, "--ttl", "0")
    assert code == 0, done
    assert os.listdir(sessions) == [".reap.lock"]
    assert source.read_text() == "the user's file\n"


# --- with a reaped session go its asks and answers; old _ run records go -----------
def mail(profile: Profile, box: str, name: str, body: str = "{}") -> Path:
    path = profile.data / box / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    return path


def test_a_reaped_sessions_asks_and_answers_go_and_no_others(
    profile: Profile, procs: Processes
) -> None:
    now = time.time()
    root = profile.data / "sessions"
    make_session(root, "w", ended=now - 10 * DAY, age=10 * DAY)
    make_session(root, "w-2", ended=now - 60)  # young: kept, and its mail with it
    worker = start_sleeper(procs)
    make_session(root, "live", pid=worker.pid, started=time.time())
    outside = profile.root / "outside.json"
    outside.write_text("keep\n")
    for box in ("asks", "answers"):
        for name in ("w-1.json", "w-12.json", "w-2-1.json", "w-x.json", "live-1.json", "w.json"):
            mail(profile, box, name)
        os.symlink(outside, profile.data / box / "w-3.json")
        (profile.data / box / "w-4.json").mkdir()
    mail(profile, "asks", "w-5.json")  # an ask never answered

    code, dry = reap_json(profile, "--dry-run", "--ttl", TTL)
    assert code == 0, dry
    assert dry["counts"]["asks"] == 3 and dry["counts"]["answers"] == 2
    assert (profile.data / "asks" / "w-1.json").exists()
    text = profile.run("reap", "--dry-run", "--ttl", TTL).stdout
    assert "would reap 1 session (3 asks, 2 answers), 0 claims; kept 1 live" in text

    out = profile.run("reap", "--ttl", TTL)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "reaped 1 session (3 asks, 2 answers), 0 claims; kept 1 live, 1 young" in out.stdout
    for box in ("asks", "answers"):
        left = sorted(p.name for p in (profile.data / box).iterdir())
        assert left == ["live-1.json", "w-2-1.json", "w-3.json", "w-4.json", "w-x.json", "w.json"]
        assert (profile.data / box / "w-3.json").is_symlink()
    assert outside.read_text() == "keep\n"
    reaped = events(profile, "session_reaped")
    assert [(e["id"], e["asks"], e["answers"]) for e in reaped] == [("w", 3, 2)]


def run_record(profile: Profile, name: str, **fields: Any) -> Path:
    path = profile.data / "runs" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"id": name, "cmd": ["true"], **fields}))
    return path


def test_old_ended_and_interrupted_run_records_go_and_running_ones_stay(
    profile: Profile, procs: Processes
) -> None:
    now = time.time()
    worker = start_sleeper(procs)
    old_ended = run_record(profile, "old-ended", started=now - 5 * DAY, ended=now - 4 * DAY)
    young_ended = run_record(profile, "young-ended", started=now - 120, ended=now - 60)
    old_gone = run_record(profile, "old-interrupted", pid=gone_pid(), started=now - 5 * DAY)
    young_gone = run_record(profile, "young-interrupted", pid=gone_pid(), started=now - 60)
    # Running: its runner is alive (the record is old, its directory older still).
    running = run_record(profile, "running", pid=worker.pid, started=time.time())
    garbage = profile.data / "runs" / "garbage.json"
    garbage.write_text("{not json")
    backdate(profile.data / "runs", 10 * DAY)

    code, dry = reap_json(profile, "--dry-run", "--ttl", TTL)
    assert code == 0, dry
    assert {r["id"] for r in dry["reaped"]["runs"]} == {"old-ended", "old-interrupted"}
    assert old_ended.exists()

    out = profile.run("reap", "--ttl", TTL)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().splitlines()[-1] == "reaped 0 sessions, 0 claims, 2 runs; kept 0 live"
    assert not old_ended.exists() and not old_gone.exists()
    for kept in (young_ended, young_gone, running, garbage):
        assert kept.exists(), kept
    assert {e["id"] for e in events(profile, "run_reaped")} == {"old-ended", "old-interrupted"}


# --- temp files of writers that are gone ----------------------------------------------
def temp_name(name: str, pid: int) -> str:
    """The name ``fs.write_whole`` gives its temp file for ``name``."""
    return f".{name}.{pid}-a1b2c3.tmp"


def test_temp_files_whose_writer_is_gone_are_swept_and_no_others(
    profile: Profile, procs: Processes
) -> None:
    writer = start_sleeper(procs)
    gone = gone_pid()
    swept, kept = [], []
    for area, name in (
        ("asks", "w-1.json"),
        ("answers", "w-1.json"),
        ("claims", "job.json"),
        ("runs", "r.json"),
        ("sessions", "x"),
    ):
        (profile.data / area).mkdir(parents=True, exist_ok=True)
        swept.append(mail(profile, area, temp_name(name, gone), "half"))
        kept.append(mail(profile, area, temp_name(name, writer.pid), "being written"))
        kept.append(mail(profile, area, f".{name}.tmp", "not a writer's temp"))
        kept.append(mail(profile, area, f".{name}.{gone}-a1b2c3.tmp.bak", "not one either"))
    # A directory of that shape is not a temp file, and a link is not followed.
    (profile.data / "asks" / temp_name("w-2.json", gone)).mkdir()
    kept.append(profile.data / "asks" / temp_name("w-2.json", gone))
    outside = profile.root / "outside.txt"
    outside.write_text("keep\n")
    os.symlink(outside, profile.data / "claims" / temp_name("other.json", gone))
    kept.extend([outside, profile.data / "claims" / temp_name("other.json", gone)])

    code, dry = reap_json(profile, "--dry-run", "--ttl", TTL)
    assert code == 0, dry
    names = [str(p.relative_to(profile.data)) for p in swept]
    assert dry["reaped"]["temps"] == sorted(names) and dry["counts"]["temps"] == 5
    assert all(p.exists() for p in swept)

    out = profile.run("reap", "--ttl", TTL)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "reaped 0 sessions, 0 claims, 5 temp files; kept 0 live" in out.stdout
    assert not any(p.exists() for p in swept)
    assert all(p.exists() for p in kept)


# --- a failed run says what failed, one line each, on stderr -----------------------------
def test_a_failed_reap_says_on_stderr_which_file_and_why(
    profile: Profile, locked_dirs: list[Path]
) -> None:
    prefix = as_plain_user()
    sessions = profile.data / "sessions"
    blocked = make_session(sessions, "blocked", ended=time.time() - 5 * DAY)
    (blocked / "private").mkdir()
    (blocked / "private" / "secret.txt").write_text("x\n")
    (blocked / "private").chmod(0)
    locked_dirs.append(blocked / "private")
    claims = profile.data / "claims"
    old_claim(claims, "job.json", "blocked")
    claims.chmod(0)
    locked_dirs.append(claims)

    for args in ((), ("--json",), ("--dry-run",)):
        out = run_reap(profile, *args, "--ttl", TTL, prefix=prefix)
        assert out.returncode == 1, out.stdout + out.stderr
        [line] = out.stderr.splitlines()  # one line: the first failure, and how many more
        if args == ("--dry-run",):  # nothing is removed, so nothing else fails
            assert line == f"looop: {claims}: Permission denied", line
            continue
        left = next(p for p in sessions.iterdir() if p.name.startswith(".reaping-"))
        assert line.startswith("looop: ") and line.endswith(" (and 1 more)"), line
        first = f"{claims}: Permission denied"
        assert first in line or (f"{left}: cannot remove " in line and "blocked" in line), line
        locked_dirs.append(left / "private")
