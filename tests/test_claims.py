"""``looop _ claim`` and ``_ unclaim`` through the installed command, with real sessions.

A live holder is a ``sessions/<id>`` whose meta names a ``sleep`` this test
starts (and ends, by pid); a dead one has a status saying it exited. The
last test holds the reaper and ``_ claim`` to one judgment: every claim the
reaper would remove is one ``_ claim`` takes over, and no other.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from conftest import (
    DAY,
    TTL,
    Processes,
    Profile,
    backdate,
    events,
    gone_pid,
    make_session,
    reap_json,
    start_sleeper,
)
from shell_tool import ShellTool


def sessions_dir(profile: Profile) -> Path:
    return profile.data / "sessions"


def claim_file(profile: Profile, name: str) -> Path:
    return profile.data / "claims" / f"{name}.json"


def live_session(profile: Profile, procs: Processes, sid: str) -> None:
    worker = start_sleeper(procs)
    make_session(sessions_dir(profile), sid, pid=worker.pid, started=time.time())


def dead_session(profile: Profile, sid: str) -> None:
    make_session(sessions_dir(profile), sid, ended=time.time() - 60)


def write_claim(profile: Profile, name: str, body: Any, age: float = 600) -> Path:
    path = claim_file(profile, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    backdate(path, age)
    return path


def holder(profile: Profile, name: str) -> str:
    return str(json.loads(claim_file(profile, name).read_text())["session"])


def test_a_claim_is_created_exclusively_with_its_session_name_and_time(profile: Profile) -> None:
    before = time.time()
    out = profile.run("_", "claim", "build", "--session", "w1")
    assert out.returncode == 0, out.stderr
    body = json.loads(claim_file(profile, "build").read_text())
    assert set(body) == {"session", "name", "ts"}
    assert body["session"] == "w1" and body["name"] == "build"
    assert before - 1 <= body["ts"] <= time.time() + 1
    assert [e["name"] for e in events(profile, "claim_taken")] == ["build"]


def test_the_owner_defaults_to_the_session_in_the_environment(profile: Profile) -> None:
    env = {**profile.env, "LOOOP_SESSION_ID": "w7"}
    out = profile.run("_", "claim", "build", env=env)
    assert out.returncode == 0, out.stderr
    assert holder(profile, "build") == "w7"


def test_no_owner_is_a_usage_error_and_writes_nothing(profile: Profile) -> None:
    for verb in ("claim", "unclaim"):
        out = profile.run("_", verb, "build")
        assert out.returncode == 2, out.stderr
        assert "LOOOP_SESSION_ID" in out.stderr and "Traceback" not in out.stderr
    assert not (profile.data / "claims").exists()


def test_a_claim_held_by_the_same_session_is_already_yours_and_stamped_afresh(
    profile: Profile,
) -> None:
    write_claim(profile, "build", {"session": "w1", "name": "build", "ts": 1}, age=0)
    out = profile.run("_", "claim", "build", "--session", "w1")
    assert out.returncode == 0, out.stderr
    assert "already yours" in out.stdout
    body = json.loads(claim_file(profile, "build").read_text())
    assert body["session"] == "w1" and body["ts"] > time.time() - 60


def test_a_claim_held_by_another_live_session_is_refused_naming_it(
    profile: Profile, procs: Processes
) -> None:
    live_session(profile, procs, "holder")
    write_claim(profile, "build", {"session": "holder", "name": "build", "ts": 1})
    out = profile.run("_", "claim", "build", "--session", "w2")
    assert out.returncode == 1
    assert "holder" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert holder(profile, "build") == "holder"


def test_a_dead_sessions_claim_is_taken_over_and_stamped_afresh(profile: Profile) -> None:
    dead_session(profile, "gone")
    write_claim(profile, "build", {"session": "gone", "ts": 1}, age=0)
    out = profile.run("_", "claim", "build", "--session", "w2")
    assert out.returncode == 0, out.stderr
    assert "taken over from gone" in out.stdout
    assert holder(profile, "build") == "w2"
    assert json.loads(claim_file(profile, "build").read_text())["ts"] > time.time() - 60
    assert events(profile, "claim_taken")[-1] == {
        **events(profile, "claim_taken")[-1],
        "name": "build",
        "session": "w2",
        "from": "gone",
    }


def test_of_ten_takers_of_a_dead_sessions_claim_exactly_one_wins(
    profile: Profile, procs: Processes
) -> None:
    dead_session(profile, "gone")
    write_claim(profile, "build", {"session": "gone"})
    worker = start_sleeper(procs)
    for i in range(10):
        make_session(sessions_dir(profile), f"w{i}", pid=worker.pid, started=time.time())
    takers = [
        procs.add(profile.popen("_", "claim", "build", "--session", f"w{i}")) for i in range(10)
    ]
    outputs = [p.communicate(timeout=60) for p in takers]
    codes = [p.returncode for p in takers]
    assert sorted(codes) == [0] + [1] * 9, outputs
    winner = f"w{codes.index(0)}"
    assert holder(profile, "build") == winner
    for code, (_, stderr) in zip(codes, outputs, strict=True):
        if code == 1:
            assert winner in stderr, stderr
    assert [p.name for p in (profile.data / "claims").iterdir()] == ["build.json"]


def test_a_claim_whose_holder_is_unknown_or_that_may_be_still_written_is_not_taken(
    profile: Profile,
) -> None:
    make_session(sessions_dir(profile), "mystery", meta="{not json", age=10 * DAY)
    cases = {
        "of-unknown": ({"session": "mystery"}, 600),
        "young-empty": ("", 0),
        "young-garbage": ("{not js", 0),
    }
    for name, (body, age) in cases.items():
        path = write_claim(profile, name, body, age=age)
        before = path.read_bytes()
        out = profile.run("_", "claim", name, "--session", "w2")
        assert out.returncode == 1, (name, out.stdout, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert path.read_bytes() == before


def test_a_claim_whose_holder_has_no_session_at_all_is_taken_at_once_by_one_of_ten(
    profile: Profile, procs: Processes
) -> None:
    write_claim(profile, "build", {"session": "never-was", "ts": time.time()}, age=0)
    worker = start_sleeper(procs)
    for i in range(10):
        make_session(sessions_dir(profile), f"w{i}", pid=worker.pid, started=time.time())
    tool = ShellTool(profile.env, limit=60)
    done = tool.call(
        "for i in 0 1 2 3 4 5 6 7 8 9; do"
        ' (looop _ claim build --session w$i >/dev/null 2>&1; echo "w$i $?") &'
        " done; wait"
    )
    codes = dict(line.split() for line in done.out.splitlines())
    assert sorted(codes.values()) == ["0"] + ["1"] * 9, (codes, done.err)
    winner = next(w for w, code in codes.items() if code == "0")
    assert holder(profile, "build") == winner
    assert [e["session"] for e in events(profile, "claim_taken")] == [winner]
    assert [p.name for p in (profile.data / "claims").iterdir()] == ["build.json"]


def test_an_empty_or_garbage_claim_file_past_a_short_grace_is_debris_taken_and_reaped(
    profile: Profile, procs: Processes
) -> None:
    live_session(profile, procs, "w2")
    bodies: dict[str, Any] = {
        "empty": "",
        "garbage": "{not json",
        "nobody": {"x": 1},
        "escape": {"session": "../x"},
    }
    tool = ShellTool(profile.env)
    for name, body in bodies.items():
        write_claim(profile, name, body, age=30)
        done = tool.call(f"looop _ claim {name} --session w2")
        assert done.returncode == 0, (name, done.err)
        assert holder(profile, name) == "w2"
    for name, body in bodies.items():
        write_claim(profile, f"left-{name}", body, age=30)
    done = tool.call(f"looop reap --ttl {TTL} --json")
    assert done.returncode == 0, done.err
    reaped = {c["name"] for c in json.loads(done.out)["reaped"]["claims"]}
    assert reaped == {f"left-{name}.json" for name in bodies}
    assert sorted(p.name for p in (profile.data / "claims").iterdir()) == sorted(
        f"{name}.json" for name in bodies
    )


def test_a_fifo_named_like_the_claim_is_reported_not_waited_on(profile: Profile) -> None:
    (profile.data / "claims").mkdir(parents=True)
    os.mkfifo(claim_file(profile, "build"))
    out = profile.run("_", "claim", "build", "--session", "w2", timeout=20)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr


def test_bad_names_and_sessions_are_refused_before_a_file_is_touched(profile: Profile) -> None:
    for name in ("../x", ".x", "a/b", ""):
        out = profile.run("_", "claim", name, "--session", "w1")
        assert out.returncode == 2, (name, out.stderr)
        assert "Traceback" not in out.stderr
    out = profile.run("_", "claim", "ok", "--session", "../w")
    assert out.returncode == 2
    assert not profile.data.exists() or not any(profile.data.rglob("*"))


def test_unclaim_removes_only_the_callers_own_claim(profile: Profile) -> None:
    assert profile.run("_", "claim", "build", "--session", "w1").returncode == 0
    other = profile.run("_", "unclaim", "build", "--session", "w2")
    assert other.returncode == 1
    assert "w1" in other.stderr
    assert claim_file(profile, "build").exists()

    own = profile.run("_", "unclaim", "build", "--session", "w1")
    assert own.returncode == 0, own.stderr
    assert not claim_file(profile, "build").exists()
    assert [e["name"] for e in events(profile, "claim_released")] == ["build"]

    none = profile.run("_", "unclaim", "build", "--session", "w1")
    assert none.returncode == 0
    assert "none" in none.stdout


def test_the_reaper_and_claim_agree_on_which_claims_are_free(
    profile: Profile, procs: Processes
) -> None:
    now = time.time()
    root = sessions_dir(profile)
    live_session(profile, procs, "alive")
    dead_session(profile, "dead-young")
    make_session(root, "dead-old", ended=now - 10 * DAY, age=10 * DAY)
    make_session(root, "pid-gone", pid=gone_pid(), started=now - DAY, age=DAY)
    make_session(root, "unreadable", meta="{not json", age=10 * DAY)
    situations: dict[str, tuple[Any, float]] = {
        "of-alive": ({"session": "alive"}, 600),
        "of-dead-young": ({"session": "dead-young"}, 600),
        "of-dead-old": ({"session": "dead-old"}, 0),
        "of-pid-gone": ({"session": "pid-gone"}, 600),
        "of-unreadable": ({"session": "unreadable"}, 600),
        "of-missing-old": ({"session": "never-was"}, 600),
        "of-missing-young": ({"session": "not-yet"}, 0),
        "garbage": ("{not json", 600),
        "no-session": ({"holder": "x"}, 600),
        "escape": ({"session": "../../outside"}, 600),
        "young-garbage": ("{not json", 0),
    }
    for name, (body, age) in situations.items():
        write_claim(profile, name, body, age=age)

    code, dry = reap_json(profile, "--dry-run", "--ttl", TTL)
    assert code == 0, dry
    reaper_frees = {c["name"][: -len(".json")] for c in dry["reaped"]["claims"]}
    assert reaper_frees == {
        "of-dead-young",
        "of-dead-old",
        "of-pid-gone",
        "of-missing-old",
        "of-missing-young",
        "garbage",
        "no-session",
        "escape",
    }

    claim_takes = set()
    for name in situations:
        out = profile.run("_", "claim", name, "--session", "taker")
        assert out.returncode in (0, 1), (name, out.stderr)
        if out.returncode == 0:
            claim_takes.add(name)
            assert holder(profile, name) == "taker"
    assert claim_takes == reaper_frees
