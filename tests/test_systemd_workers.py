"""Workers under a real systemd user manager (SPEC §12): transient units, whole-cgroup stops.

Each test runs the installed ``looop`` as the manager's user (a normal
user's manager, and root's where marked), with ``[worker] supervisor`` left
at ``auto``: that a user manager answers is what makes each worker a unit
``looop-worker-<id>``. The harness stops every ``looop*`` unit, workers
included, when a test ends.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import wait_for
from systemd_harness import Manager
from workers_kit import (
    ESCAPER,
    EXITS_3,
    FAKE_AGENT,
    ROOT_AGENT,
    SLEEPER,
    pids_of,
    session_file,
)

from looop.service.systemd import WORKER_STOP_SEC

pytestmark = pytest.mark.systemd

SYSTEM_PYTHON = "/usr/bin/python3"


def configure(m: Manager, command: list[str]) -> None:
    m.write(m.data_dir / "config.toml", f"[worker]\ncommand = {json.dumps(command)}\n")


def script(m: Manager, name: str, body: str) -> Path:
    return m.write(m.base / name, f"#!/bin/sh\n{body}\n", 0o755)


def start(m: Manager, wid: str, *extra: str) -> dict[str, object]:
    out = m.looop_cmd("_", "worker", "start", wid, "the task", "--json", *extra)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def running_unit(m: Manager, wid: str) -> dict[str, str]:
    unit = f"looop-worker-{wid}.service"
    return wait_for(
        lambda: (
            (p := m.show(unit, "ActiveState", "MainPID", "ControlGroup"))["ActiveState"] == "active"
            and p
        )
    )


def alive(pids: list[int]) -> list[int]:
    left = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state not in ("Z", "X"):
            left.append(pid)
    return left


def test_a_contract_keeping_worker_runs_as_a_unit_is_answered_and_ends(
    any_manager: Manager,
) -> None:
    m = any_manager
    configure(m, [str(FAKE_AGENT), "{prompt_file}"])
    assert m.looop_cmd("up").returncode == 0
    started = start(m, "w1")
    assert started["supervisor"] == "systemd" and started["unit"] == "looop-worker-w1.service"
    unit = running_unit(m, "w1")
    meta = wait_for(
        lambda: (
            (session_file(m.data_dir, "w1", "meta.json") or {}).get("pid")
            and session_file(m.data_dir, "w1", "meta.json")
        )
    )
    assert int(unit["MainPID"]) == meta["pid"]
    assert meta["unit"] == "looop-worker-w1.service"
    log = m.write(m.base / "agent.log", "")
    env = {"LOOOP": m.looop, "PY": SYSTEM_PYTHON, "LOG": str(log)}
    agent = subprocess.Popen(m.command(["bash", "-c", ROOT_AGENT], env), stdin=subprocess.DEVNULL)
    try:
        status = wait_for(lambda: session_file(m.data_dir, "w1", "status.json"), timeout=60)
        assert (status["state"], status["exit_code"], status["reason"]) == ("exited", 0, "done")
        assert (m.data_dir / "reports" / "w1.md").read_text() == "answer: yes\n"
        cost = json.loads(m.looop_cmd("cost", "--json").stdout)
        assert [(r["kind"], r["runner"], r["usd"]) for r in cost["rows"]] == [
            ("worker", "fake-agent", 0.25)
        ]
        assert not list((m.data_dir / "claims").glob("*.json"))
        wait_for(
            lambda: (
                m.show("looop-worker-w1.service", "ActiveState")["ActiveState"] in ("inactive", "")
            )
        )
        assert m.looop_cmd("down").returncode == 0
        assert agent.wait(timeout=30) == 0
        assert log.read_text().splitlines()[-1] == "exit 3"
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()


def test_kill_ends_every_process_of_the_unit_even_one_that_left_with_setsid(
    any_manager: Manager,
) -> None:
    m = any_manager
    configure(m, [str(script(m, "escaper", ESCAPER))])
    start(m, "w3")
    unit = running_unit(m, "w3")
    wait_for(
        lambda: (
            (m.data_dir / "reports" / "w3.pids").exists()
            and len((m.data_dir / "reports" / "w3.pids").read_text().splitlines()) == 3
        )
    )
    pids = pids_of(m.data_dir, "w3")
    everything = m.unit_pids("looop-worker-w3.service")
    assert pids["escaped"] in everything and int(unit["MainPID"]) in everything
    # Given the unit's stop timeout and a little more; a kill that hangs fails here.
    out = m.looop_cmd("_", "worker", "kill", "w3", timeout=WORKER_STOP_SEC + 10)
    assert out.returncode == 0, out.stderr
    assert session_file(m.data_dir, "w3", "status.json")["state"] == "killed"
    assert alive(everything) == []
    assert m.show("looop-worker-w3.service", "ActiveState")["ActiveState"] == "inactive"


def test_a_worker_killed_outright_takes_its_units_tree_and_its_end_is_recorded(
    user_manager: Manager,
) -> None:
    m = user_manager
    configure(m, [str(script(m, "escaper", ESCAPER))])
    start(m, "w6")
    unit = running_unit(m, "w6")
    wait_for(
        lambda: (
            (m.data_dir / "reports" / "w6.pids").exists()
            and len((m.data_dir / "reports" / "w6.pids").read_text().splitlines()) == 3
        )
    )
    everything = m.unit_pids("looop-worker-w6.service")
    meta = session_file(m.data_dir, "w6", "meta.json")
    # The unit is the supervisor: its main process is the worker, and no looop runs beside it.
    assert meta["pid"] == int(unit["MainPID"]) == pids_of(m.data_dir, "w6")["worker"]
    assert meta["cgroup"].endswith(unit["ControlGroup"])  # where its end is recorded
    assert not [
        p for p in everything if "python" in os.path.basename(os.readlink(f"/proc/{p}/exe"))
    ]
    # Nobody copies its output, so the reaper caps the transcript in place while it runs.
    log = m.data_dir / "sessions" / "w6" / "output.log"
    with log.open("ab") as flood:
        flood.write(b"x" * 100 + b"\n" + b"y" * (5 << 20) + b"\nlast line\n")
    assert m.looop_cmd("reap").returncode == 0
    assert log.stat().st_size - 100 <= 1 << 20 and log.read_bytes().endswith(b"\nlast line\n")
    os.kill(meta["pid"], signal.SIGKILL)
    wait_for(lambda: alive(everything) == [], timeout=WORKER_STOP_SEC + 10)
    status = wait_for(lambda: session_file(m.data_dir, "w6", "status.json"))
    assert (status["state"], status["exit_code"]) == ("exited", 128 + signal.SIGKILL)
    listed = json.loads(m.looop_cmd("workers", "--json").stdout)
    assert [(w["id"], w["state"], w["alive"]) for w in listed] == [("w6", "exited", False)]


def test_a_units_worker_reads_its_brief_exits_3_times_out_and_one_with_checks_is_checked(
    user_manager: Manager,
) -> None:
    m = user_manager
    brief = m.data_dir / "reports" / "e3.brief"
    configure(m, [str(script(m, "three", f'cat > "{brief}"; {EXITS_3}'))])
    start(m, "e3")
    configure(m, [str(script(m, "sleeper", SLEEPER))])
    start(m, "slow", "--timeout", "1")
    configure(m, [str(script(m, "ok", "echo fine"))])
    start(m, "checked", "--verify", "test -f config.toml")
    ended = {
        w: wait_for(lambda w=w: session_file(m.data_dir, w, "status.json"))
        for w in ("e3", "slow", "checked")
    }
    assert (ended["e3"]["state"], ended["e3"]["exit_code"]) == ("exited", 3)
    assert [ended["slow"][k] for k in ("state", "exit_code", "reason")] == [
        "killed",
        124,
        "timeout",
    ]
    assert (ended["checked"]["exit_code"], ended["checked"]["verify"]) == (0, "passed")
    log = m.looop_cmd("logs", "e3")
    assert "working\n" in log.stdout and "exited (exit 3, exit)" in log.stdout, log.stdout
    assert "# Your task\n\nthe task\n" in brief.read_text()  # no placeholder: on its stdin


def test_thirty_workers_are_thirty_units_and_down_stops_them_all(user_manager: Manager) -> None:
    m = user_manager
    configure(m, [str(script(m, "sleeper", SLEEPER))])
    ids = [f"n{i:02d}" for i in range(30)]
    m.write(
        m.data_dir / "config.toml", (m.data_dir / "config.toml").read_text() + "max_live = 30\n"
    )
    for wid in ids:
        start(m, wid)
    units = wait_for(lambda: len(u := _worker_units(m)) == 30 and u, timeout=60)
    assert units == [f"looop-worker-{wid}.service" for wid in ids]
    pids = [p for wid in ids for p in m.unit_pids(f"looop-worker-{wid}.service")]
    out = m.looop_cmd("down", timeout=120)
    assert out.returncode == 0, out.stderr
    assert "stopped 30 workers" in out.stdout
    assert _worker_units(m) == []
    assert alive(pids) == []
    listed = json.loads(m.looop_cmd("workers", "--json").stdout)
    assert {w["state"] for w in listed} == {"killed"}


def _worker_units(m: Manager) -> list[str]:
    out = m.systemctl("list-units", "--plain", "--no-legend", "--state=active", "looop-worker-*")
    return sorted(line.split()[0] for line in out.stdout.splitlines() if line.strip())
