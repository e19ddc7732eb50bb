"""Workers without a service manager (SPEC §12): the detached supervisor, as processes.

Every worker here is a real script run by the installed ``looop`` through
``[worker] supervisor = "detached"`` (python-daemon); the same scenarios
under a real systemd user manager are in ``test_systemd_workers.py``. Every
worker a test starts is killed at teardown (``looop down``, then by pid).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import LOOOP, Processes, Profile, configure_workers, pid_alive, wait_for
from workers_kit import (
    ESCAPER,
    EXITS_3,
    FAKE_AGENT,
    ROOT_AGENT,
    SLEEPER,
    group_members,
    pids_of,
    session_file,
    worker_script,
)


def ended(profile: Profile, wid: str) -> dict[str, object]:
    return wait_for(lambda: session_file(profile.data, wid, "status.json"), timeout=60)


def test_a_contract_keeping_worker_asks_is_answered_reports_and_ends(
    fleet: Profile, procs: Processes, tmp_path: Path
) -> None:
    configure_workers(fleet, [str(FAKE_AGENT), "{prompt_file}"])
    pulse = procs.add(fleet.popen("pulse", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    wait_for(lambda: fleet.run("status").returncode == 0, timeout=30)
    log = tmp_path / "agent.log"
    agent_env = {**fleet.env, "LOOOP": LOOOP, "PY": sys.executable, "LOG": str(log)}
    agent = procs.add(
        subprocess.Popen(["bash", "-c", ROOT_AGENT], env=agent_env, stdin=subprocess.DEVNULL)
    )
    out = fleet.run("_", "worker", "start", "w1", "ship the release")
    assert out.returncode == 0, out.stderr
    assert out.stdout == "w1\n"
    status = ended(fleet, "w1")
    assert status["state"] == "exited" and status["exit_code"] == 0, status
    assert status["reason"] == "done"
    assert (fleet.data / "reports" / "w1.md").read_text() == "answer: yes\n"
    cost = json.loads(fleet.run("cost", "--json").stdout)
    assert [(r["kind"], r["runner"], r["usd"]) for r in cost["rows"]] == [
        ("worker", "fake-agent", 0.25)
    ]
    assert not list((fleet.data / "claims").glob("*.json"))
    meta = session_file(fleet.data, "w1", "meta.json")
    assert meta["supervisor"] == "detached" and "unit" not in meta
    prompt = (fleet.data / "sessions" / "w1" / "prompt.md").read_text()
    assert prompt.startswith("You are a looop worker") and prompt.endswith("ship the release\n")
    wait_for(lambda: "answered w1-1" in log.read_text().splitlines())
    pulse.send_signal(signal.SIGTERM)
    pulse.wait(timeout=30)
    assert agent.wait(timeout=30) == 0
    assert log.read_text().splitlines()[-1] == "exit 3"

    # Then the reaper: the ended worker goes with its mail; a live one's stays.
    configure_workers(fleet, [str(worker_script(fleet.root / "w", SLEEPER))])
    assert fleet.run("_", "worker", "start", "w9", "x").returncode == 0
    asking = procs.add(fleet.popen("_", "ask", "w9", "--prompt", "still?", stdout=subprocess.PIPE))
    wait_for(lambda: list((fleet.data / "asks").glob("w9-*.json")))
    assert fleet.run("_", "claim", "held", "--session", "w9").returncode == 0
    mail = [*(fleet.data / "asks").glob("w1-*.json"), *(fleet.data / "answers").glob("w1-*.json")]
    assert mail
    reap = fleet.run("reap", "--ttl", "0")
    assert reap.returncode == 0, reap.stderr
    assert not (fleet.data / "sessions" / "w1").exists()
    assert not [p for p in mail if p.exists()]
    assert (fleet.data / "sessions" / "w9" / "meta.json").exists()
    assert list((fleet.data / "asks").glob("w9-*.json"))
    assert (fleet.data / "claims" / "held.json").exists()
    assert asking.poll() is None  # its ask still pending, its asker still waiting


def test_every_printer_of_workers_shows_one_live_worker_in_the_same_row(
    fleet: Profile, procs: Processes
) -> None:
    configure_workers(fleet, [str(worker_script(fleet.root / "w", SLEEPER))])
    assert fleet.run("_", "worker", "start", "w4", "x").returncode == 0
    procs.add(fleet.popen("_", "ask", "w4", "--prompt", "which?", stdout=subprocess.PIPE))
    ask = wait_for(lambda: list((fleet.data / "asks").glob("w4-*.json")))[0].stem

    def rows() -> dict[str, list[dict[str, object]]]:
        # status counts the live workers as the last beat did; it prints no rows.
        return {
            "workers": json.loads(fleet.run("workers", "--json").stdout),
            "_ worker list": json.loads(fleet.run("_", "worker", "list", "--json").stdout),
            "_ state": fleet.state()["workers"],
        }

    def running() -> bool:
        found = json.loads(fleet.run("workers", "--json").stdout)
        return bool(found) and found[0]["state"] == "running"

    wait_for(running, timeout=30)  # then its row holds still while it sleeps (but its clocks)
    shown = rows()
    expected = shown["workers"]
    assert [r["id"] for r in expected] == ["w4"] and expected[0]["pending_ask"] == ask
    assert expected[0]["alive"] is True and isinstance(expected[0]["started"], float)
    assert expected[0]["health"] == "waiting" and expected[0]["ask_age"] >= 0
    assert set(expected[0]) == {
        "id",
        "state",
        "alive",
        "started",
        "exit_code",
        "unit",
        "pending_ask",
        "undelivered",
        "verify",
        "health",
        "idle",
        "ask_age",
    }
    clocks = ("idle", "ask_age")  # seconds, as of each printer's own moment
    still = {
        p: [{k: v for k, v in r.items() if k not in clocks} for r in s] for p, s in shown.items()
    }
    assert still == {printer: still["workers"] for printer in shown}


def test_start_in_a_command_substitution_returns_while_the_worker_runs(fleet: Profile) -> None:
    configure_workers(fleet, [str(worker_script(fleet.root / "w", SLEEPER))])
    shell = subprocess.run(
        ["sh", "-c", f'out=$("{LOOOP}" _ worker start w2 sleep); echo "[$out]"'],
        env=fleet.env,
        capture_output=True,
        text=True,
        timeout=30,  # the worker sleeps 60 s: returning at all is returning early
    )
    assert shell.returncode == 0, shell.stderr
    assert shell.stdout == "[w2]\n"
    state = json.loads(fleet.run("workers", "--json").stdout)
    assert [(w["id"], w["alive"]) for w in state] == [("w2", True)]


def test_kill_ends_the_worker_and_its_process_group_and_reports_what_escaped(
    fleet: Profile,
) -> None:
    configure_workers(fleet, [str(worker_script(fleet.root / "w", ESCAPER))])
    assert fleet.run("_", "worker", "start", "w3", "x").returncode == 0
    pids = wait_for(lambda: len(_pids(fleet, "w3")) == 3 and _pids(fleet, "w3"))
    meta = wait_for(lambda: (session_file(fleet.data, "w3", "meta.json") or {}).get("pgid"))
    out = fleet.run("_", "worker", "kill", "w3")
    assert out.returncode == 0, out.stderr
    assert session_file(fleet.data, "w3", "status.json")["state"] == "killed"
    assert group_members(meta) == []  # nothing is left in the worker's process group
    assert not pid_alive(pids["worker"]) and not pid_alive(pids["forked"])
    # Without a service manager, a child that left the group with setsid is
    # beyond the supervisor's reach: it is what escapes (ended here by pid).
    assert pid_alive(pids["escaped"])
    again = fleet.run("_", "worker", "kill", "w3")
    assert again.returncode == 0 and "has ended (killed" in again.stdout


def _pids(profile: Profile, wid: str) -> dict[str, int]:
    try:
        return pids_of(profile.data, wid)
    except (FileNotFoundError, ValueError, IndexError):
        return {}


def test_a_worker_that_exits_3_is_exited_3_a_timeout_killed_and_a_sigkill_recorded(
    fleet: Profile,
) -> None:
    configure_workers(fleet, [str(worker_script(fleet.root / "w", EXITS_3))])
    assert fleet.run("_", "worker", "start", "three", "x").returncode == 0
    status = ended(fleet, "three")
    assert (status["state"], status["exit_code"]) == ("exited", 3)
    configure_workers(fleet, [str(worker_script(fleet.root / "s", SLEEPER))])
    assert fleet.run("_", "worker", "start", "slow", "x", "--timeout", "1").returncode == 0
    status = ended(fleet, "slow")
    assert (status["state"], status["exit_code"], status["reason"]) == ("killed", 124, "timeout")
    log = fleet.run("logs", "three")
    assert log.returncode == 0 and "working\n" in log.stdout and "exited (exit 3" in log.stdout
    configure_workers(fleet, [str(worker_script(fleet.root / "k", ESCAPER))])
    assert fleet.run("_", "worker", "start", "killed", "x").returncode == 0
    pids = wait_for(lambda: len(_pids(fleet, "killed")) == 3 and _pids(fleet, "killed"))
    os.kill(pids["escaped"], signal.SIGKILL)
    os.kill(pids["worker"], signal.SIGKILL)  # killed outright: its end is recorded all the same
    status = ended(fleet, "killed")
    assert (status["state"], status["exit_code"]) == ("exited", 128 + signal.SIGKILL)


def test_max_live_refuses_a_third_worker_naming_the_two_live_ones(fleet: Profile) -> None:
    configure_workers(fleet, [str(worker_script(fleet.root / "w", SLEEPER))], max_live=2)
    for wid in ("a1", "a2"):
        assert fleet.run("_", "worker", "start", wid, "x").returncode == 0
    third = fleet.run("_", "worker", "start", "a3", "x")
    assert third.returncode == 1
    assert "a1" in third.stderr and "a2" in third.stderr and "max_live 2" in third.stderr
    assert not (fleet.data / "sessions" / "a3").exists()
    twice = fleet.run("_", "worker", "start", "a1", "x")
    assert twice.returncode == 1 and "already" in twice.stderr


def test_a_missing_command_exits_127_and_leaves_no_session(fleet: Profile) -> None:
    configure_workers(fleet, ["no-such-agent-anywhere", "{prompt}"])
    out = fleet.run("_", "worker", "start", "w4", "x")
    assert out.returncode == 127
    assert out.stderr.count("\n") == 1 and "no-such-agent-anywhere" in out.stderr
    assert not (fleet.data / "sessions" / "w4").exists()


@pytest.mark.parametrize("bad", ["../x", ".x", "pulse-x/..", "a/b", "", "-x"])
def test_a_bad_worker_id_is_refused_before_anything_is_written(fleet: Profile, bad: str) -> None:
    configure_workers(fleet, [str(worker_script(fleet.root / "w", SLEEPER))])
    before = sorted(p.relative_to(fleet.root) for p in fleet.root.rglob("*"))
    out = fleet.run("_", "worker", "start", "--", bad, "x")
    assert out.returncode == 2, out
    assert "Traceback" not in out.stderr
    after = sorted(p.relative_to(fleet.root) for p in fleet.root.rglob("*"))
    assert after == before


def test_down_stops_the_pulse_and_every_live_worker_unless_told_to_keep_them(
    fleet: Profile, procs: Processes
) -> None:
    configure_workers(fleet, [str(worker_script(fleet.root / "w", SLEEPER))])
    for keep in (True, False):
        procs.add(fleet.popen("pulse", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for(lambda: fleet.run("status").returncode == 0, timeout=30)
        for wid in ("d1", "d2"):
            if not keep:
                break
            assert fleet.run("_", "worker", "start", wid, "x").returncode == 0
        args = ["down", "--keep-workers"] if keep else ["down"]
        out = fleet.run(*args, timeout=120)
        assert out.returncode == 0, out.stderr
        assert fleet.run("status").returncode == 3
        live = [w["id"] for w in json.loads(fleet.run("workers", "--json").stdout) if w["alive"]]
        if keep:
            assert live == ["d1", "d2"]
        else:
            assert live == [] and "stopped 2 workers: d1, d2" in out.stdout
            for wid in ("d1", "d2"):
                assert session_file(fleet.data, wid, "status.json")["state"] == "killed"


def test_a_wait_wakes_with_workers_when_a_worker_ends(fleet: Profile, procs: Processes) -> None:
    configure_workers(fleet, [str(worker_script(fleet.root / "w", SLEEPER))])
    # No beat during the test: what wakes the wait is the session's own change.
    fleet.write_config(fleet.config.read_text().replace("[worker]", "interval = 3600\n[worker]"))
    procs.add(fleet.popen("pulse", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    wait_for(lambda: fleet.run("status").returncode == 0, timeout=30)
    assert fleet.run("_", "worker", "start", "ww", "x").returncode == 0
    wait_for(lambda: session_file(fleet.data, "ww", "meta.json").get("pid"))
    cursor = json.loads(fleet.run("_", "state", "--json").stdout)["cursor"]
    waiter = procs.add(fleet.popen("_", "wait", "--json", "--since", cursor, "--timeout", "60"))
    assert fleet.run("_", "worker", "kill", "ww").returncode == 0
    out, _ = waiter.communicate(timeout=60)
    assert waiter.returncode == 0
    assert "workers" in json.loads(out)["changed"]


def test_the_transcript_keeps_the_newest_part_of_a_flood(fleet: Profile) -> None:
    flood = (
        'i=0; while [ $i -lt 300 ]; do head -c 32768 /dev/zero | tr "\\0" x; echo " $i"; '
        "i=$((i+1)); done"
    )
    configure_workers(fleet, [str(worker_script(fleet.root / "w", flood))])
    assert fleet.run("_", "worker", "start", "fl", "x").returncode == 0
    ended(fleet, "fl")
    output = fleet.data / "sessions" / "fl" / "output.log"
    # The status is the record and is written first; the transcript's last
    # line, how it ended, follows it.
    log = wait_for(lambda: (data := output.read_bytes()).rstrip().endswith(b"exit)") and data)
    assert len(log) < 5 << 20  # 9.6 MiB printed, the cap is 4 MiB
    assert b"earlier bytes dropped" in log and log.rstrip().endswith(b"exit)")
    assert b" 299\n" in log and b" 0\n" not in log
    tail = fleet.run("logs", "fl", "-n", "2")
    assert tail.stdout.splitlines()[-1].startswith("[looop] exited (exit 0")


def test_a_session_dir_that_is_a_link_is_not_started_in(fleet: Profile, tmp_path: Path) -> None:
    configure_workers(fleet, [str(worker_script(fleet.root / "w", SLEEPER))])
    (fleet.data / "sessions").mkdir(parents=True, exist_ok=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (fleet.data / "sessions" / "ln").symlink_to(elsewhere)
    out = fleet.run("_", "worker", "start", "ln", "x")
    assert out.returncode == 1 and "not a directory" in out.stderr
    assert list(elsewhere.iterdir()) == []
