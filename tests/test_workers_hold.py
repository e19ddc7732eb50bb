"""Workers are never lost, doubled or clobbered, and a brief of any size reaches them (SPEC §12).

Driven through the shell tool an agent uses (``shell_tool``), with workers
shaped like agent CLIs (``workers_kit.AGENT_CLI``: the brief as one argument
or on stdin, a JSON result line) or that sleep; detached supervisors, the
ones a SIGKILL leaves nobody behind to clean up after.
"""

from __future__ import annotations

import json
import os
import shutil
import signal

import pytest
from conftest import Profile, configure_workers, gone_pid, pid_alive, strace_prefix, tree, wait_for
from shell_tool import ShellTool
from workers_kit import AGENT_CLI, SLEEPER, group_members, session_file, worker_script


def tool(profile: Profile, limit: float = 60) -> ShellTool:
    return ShellTool(profile.env, limit=limit)


def orphaned(profile: Profile, wid: str) -> int:
    """Start a sleeping worker, SIGKILL its supervisor; the worker's process group.

    The supervisor's lifeline (``looop.lifeline``) is killed first, as when
    the whole tree of the supervisor is killed at once (an OOM killer, a
    ``kill -9`` of everything it started): otherwise it would take the
    worker's group with the supervisor, and nothing would be left to find.
    """
    configure_workers(profile, [str(worker_script(profile.root / "w", SLEEPER))])
    assert tool(profile).call(f"looop _ worker start {wid} sleep").returncode == 0
    meta = wait_for(
        lambda: (m := session_file(profile.data, wid, "meta.json")) and "pgid" in m and m
    )
    for child in _children(meta["pid"]):
        if child != meta["pgid"]:  # not the worker itself: the lifeline's shell
            os.kill(child, signal.SIGKILL)
    os.kill(meta["pid"], signal.SIGKILL)
    wait_for(lambda: not pid_alive(meta["pid"]))
    assert group_members(meta["pgid"])  # the worker runs on, its supervisor gone
    return int(meta["pgid"])


def _children(pid: int) -> list[int]:
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        return [int(word) for word in fh.read().split()]


@pytest.mark.parametrize("verb", ["_ worker kill w1", "down"])
def test_a_worker_whose_supervisor_was_sigkilled_is_found_by_its_group_and_ended(
    fleet: Profile, verb: str
) -> None:
    pgid = orphaned(fleet, "w1")
    listed = tool(fleet).call("looop workers --json")
    assert [(w["id"], w["alive"]) for w in json.loads(listed.out)] == [("w1", True)]
    ended = tool(fleet).call(f"looop {verb}")
    assert ended.returncode == 0, ended.err
    assert group_members(pgid) == []
    status = session_file(fleet.data, "w1", "status.json")
    assert status and status["state"] == "killed", status
    again = tool(fleet).call("looop _ worker kill w1")
    assert again.returncode == 0 and "has ended (killed" in again.out


@pytest.mark.parametrize(
    "meta", ["{not json", json.dumps({"id": "w1", "v": 99, "pid": None, "started": 1.0})]
)
def test_a_start_over_a_session_it_cannot_judge_refuses_and_keeps_it(
    fleet: Profile, meta: str
) -> None:
    configure_workers(fleet, [str(worker_script(fleet.root / "w", AGENT_CLI))])
    session = fleet.data / "sessions" / "w1"
    session.mkdir(parents=True)
    (session / "meta.json").write_text(meta)
    (session / "status.json").write_text(json.dumps({"state": "exited", "exit_code": 0}))
    (session / "output.log").write_text("what the worker did\n")
    before = tree(session)
    out = tool(fleet).call("looop _ worker start w1 again")
    assert out.returncode == 1, out.err
    assert out.err.count("\n") == 1 and "w1" in out.err and "not touched" in out.err, out.err
    assert tree(session) == before


def test_a_start_whose_supervisor_cannot_start_leaves_no_session_directory(
    fleet: Profile,
) -> None:
    configure_workers(fleet, [str(worker_script(fleet.root / "w", AGENT_CLI))])
    (fleet.data / "sessions").mkdir(parents=True)
    # The detached supervisor's setsid fails: it never runs.
    strace = " ".join(strace_prefix("-f", "-e", "trace=setsid", "-e", "inject=setsid:error=EPERM"))
    out = tool(fleet).call(f"{strace} looop _ worker start w1 do it")
    assert out.returncode == 1, out.err
    assert out.err.startswith("looop: ") and out.err.count("\n") == 1, out.err
    assert [p.name for p in (fleet.data / "sessions").iterdir() if p.name[0] != "."] == []
    assert tool(fleet).call("looop _ worker start w1 do it").returncode == 0


def test_placeholders_are_replaced_in_the_template_only_never_in_the_brief(
    fleet: Profile,
) -> None:
    configure_workers(fleet, [str(worker_script(fleet.root / "w", AGENT_CLI)), "-p", "{prompt}"])
    brief = "keep {id}, {prompt} and {prompt_file} as they are"
    assert tool(fleet).call(f"looop _ worker start w1 '{brief}'").returncode == 0
    wait_for(lambda: session_file(fleet.data, "w1", "status.json"), timeout=30)
    got = (fleet.data / "reports" / "w1.argv").read_text()
    assert got == (fleet.data / "sessions" / "w1" / "prompt.md").read_text()
    assert got.rstrip().endswith(brief)
    assert (fleet.data / "reports" / "w1.stdin").read_text() == ""


def test_a_command_with_no_placeholder_gets_the_brief_on_its_stdin(fleet: Profile) -> None:
    configure_workers(fleet, [str(worker_script(fleet.root / "w", AGENT_CLI))])
    assert tool(fleet).call("looop _ worker start w1 read me from stdin").returncode == 0
    wait_for(lambda: session_file(fleet.data, "w1", "status.json"), timeout=30)
    got = (fleet.data / "reports" / "w1.stdin").read_text()
    assert got == (fleet.data / "sessions" / "w1" / "prompt.md").read_text()
    assert got.rstrip().endswith("read me from stdin")


def test_down_fails_closed_when_it_cannot_list_the_workers(fleet: Profile) -> None:
    fleet.data.mkdir(parents=True)
    (fleet.data / "sessions").write_text("not a directory\n")
    out = tool(fleet).call("looop down")
    assert out.returncode == 1, (out.out, out.err)
    assert "sessions" in out.err and out.err.startswith("looop: "), out.err


def leftovers(fleet: Profile) -> set[str]:
    """The hidden entries of sessions/: locks, marks and any temp file."""
    return {p.name for p in (fleet.data / "sessions").iterdir() if p.name[0] == "."}


@pytest.mark.parametrize("reuse", [False, True], ids=["new", "reused"])
def test_a_start_killed_at_any_call_leaves_nothing_that_stops_the_next_one(
    fleet: Profile, reuse: bool
) -> None:
    configure_workers(fleet, [str(worker_script(fleet.root / "w", SLEEPER))])
    (fleet.data / "sessions").mkdir(parents=True)
    shell = tool(fleet)
    assert shell.call("looop _ worker start w1 sleep").returncode == 0  # first-run seeding done
    assert shell.call("looop _ worker kill w1").returncode == 0
    for call in ("rename", "mkdir"):  # each of its renames and mkdirs, until one start is whole
        for n in range(1, 16):
            if not reuse:
                shutil.rmtree(fleet.data / "sessions" / "w1", ignore_errors=True)
            kill = f"inject={call}:signal=KILL:when={n}"
            killed = " ".join(strace_prefix("-e", f"trace={call}", "-e", kill))
            whole = shell.call(f"{killed} looop _ worker start w1 sleep").returncode == 0
            rows = json.loads(shell.call("looop _ worker list --json").out)
            assert [r for r in rows if r["state"] == "unknown"] == [], (call, n, rows)
            # A kill within the tool's limit, well inside the minute a start may take.
            ended = shell.call("looop _ worker kill w1", limit=20)
            assert not ended.killed and (ended.returncode == 0 or "no worker" in ended.err)
            retried = shell.call("looop _ worker start w1 sleep")
            assert retried.returncode == 0 or "already running" in retried.err, (n, retried.err)
            assert shell.call("looop _ worker kill w1").returncode == 0
            # The ended supervisor's last poke of .changed may still be in flight; a
            # temp file it leaves for good is what this looks for.
            wait_for(lambda: leftovers(fleet) <= {".start.lock", ".changed"})
            if whole:
                break
        else:
            raise AssertionError(f"a start makes more than 15 {call} calls")


def test_a_brief_too_long_for_argv_reaches_the_worker_by_its_file_and_stdin(
    fleet: Profile,
) -> None:
    configure_workers(fleet, [str(worker_script(fleet.root / "w", AGENT_CLI)), "-p", "{prompt}"])
    brief = ("a long brief line {id}\n" * 15_000).encode()  # 345,000 bytes: over 128 KiB
    out = tool(fleet).call("looop _ worker start w1 -", stdin=brief)
    assert out.returncode == 0, out.err
    status = wait_for(lambda: session_file(fleet.data, "w1", "status.json"), timeout=30)
    assert (status["state"], status["exit_code"]) == ("exited", 0), status
    prompt = (fleet.data / "sessions" / "w1" / "prompt.md").read_bytes()
    assert prompt.endswith(brief.rstrip() + b"\n")
    assert (fleet.data / "reports" / "w1.stdin").read_bytes() == prompt
    pointer = (fleet.data / "reports" / "w1.argv").read_text()
    assert str(fleet.data / "sessions" / "w1" / "prompt.md") in pointer and len(pointer) < 1000


def test_a_brief_of_megabytes_keeps_every_session_file_readable(fleet: Profile) -> None:
    configure_workers(fleet, [str(worker_script(fleet.root / "w", AGENT_CLI)), "-p", "{prompt}"])
    brief = b"x" * (3 << 20)
    out = tool(fleet).call("looop _ worker start w1 -", stdin=brief)
    assert out.returncode == 0, out.err
    wait_for(lambda: session_file(fleet.data, "w1", "status.json"), timeout=30)
    rows = json.loads(tool(fleet).call("looop workers --json").out)
    assert [(r["id"], r["state"], r["exit_code"]) for r in rows] == [("w1", "exited", 0)]


def test_a_brief_over_the_limit_is_refused_before_anything_is_written(fleet: Profile) -> None:
    configure_workers(
        fleet, [str(worker_script(fleet.root / "w", AGENT_CLI))], max_prompt_bytes=1000
    )
    out = tool(fleet).call("looop _ worker start w1 -", stdin=b"y" * 1001)
    assert out.returncode == 1, out.err
    assert "max_prompt_bytes" in out.err and out.err.count("\n") == 1, out.err
    assert not (fleet.data / "sessions" / "w1").exists()
    assert tool(fleet).call("looop _ worker start w1 -", stdin=b"y" * 1000).returncode == 0


def test_the_reaper_removes_a_staged_session_whose_start_is_gone_and_keeps_a_live_ones(
    profile: Profile,
) -> None:
    sessions = profile.data / "sessions"
    gone, live = (
        sessions / f".w1.{gone_pid()}-abcdef.tmp",
        sessions / f".w2.{os.getpid()}-abcdef.tmp",
    )
    for staged in (gone, live):
        staged.mkdir(parents=True)
        (staged / "meta.json").write_text(json.dumps({"id": "w", "pid": None, "started": 1.0}))
        (staged / "env.json").write_text("{}")
    out = tool(profile).call("looop reap --ttl 0")
    assert out.returncode == 0, out.err
    assert not gone.exists() and (live / "env.json").exists()
