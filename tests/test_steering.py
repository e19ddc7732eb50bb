"""Steering a live worker and checking its work (issue 25): ``_ tell``/``_ told`` and ``--verify``.

The root agent's calls and the worker's own go through the agent's shell
tool (``tests/shell_tool.py``); the worker's tool is the same tool with the
worker's ``LOOOP_SESSION_ID``, as an agent CLI's shell tool inherits it.
Workers are small scripts under the detached supervisor; a blocked ``_
wait`` is a process of its own, as a root agent's would be.
"""

from __future__ import annotations

import json
import subprocess

from conftest import Processes, Profile, configure_workers, events, wait_for
from shell_tool import Call, ShellTool
from workers_kit import session_file, worker_script

MARKER = "--- looop: message"

# Asks once, keeps what the ask printed, then stays alive.
ASKS_THEN_SLEEPS = """\
"$LOOOP_BIN" _ ask --prompt "go on?" > "$LOOOP_REPORTS_DIR/$LOOOP_SESSION_ID.answer"
exec sleep 60
"""
# Works until the test says go, then ends as done (its own `_ kill`).
UNTIL_GO = """\
while [ ! -e "$LOOOP_REPORTS_DIR/go" ]; do sleep 0.05; done
[ "$LOOOP_SESSION_ID" = good ] && echo "# report" > "$LOOOP_REPORTS_DIR/y.md"
[ "$LOOOP_SESSION_ID" = fails ] && exit 3
exec "$LOOOP_BIN" _ kill "$LOOOP_SESSION_ID"
"""


def ok(done: Call) -> Call:
    assert done.returncode == 0 and not done.killed, (done.text, done.returncode, done.err)
    return done


def rows(tool: ShellTool) -> dict[str, dict[str, object]]:
    return {w["id"]: w for w in json.loads(ok(tool.call("looop _ worker list --json")).stdout)}


def test_a_message_told_to_an_asking_worker_comes_with_its_answer_and_told_shows_each_once(
    fleet: Profile,
) -> None:
    configure_workers(fleet, [str(worker_script(fleet.root / "w", ASKS_THEN_SLEEPS))])
    root = ShellTool(fleet.env, limit=20)
    worker = ShellTool({**fleet.env, "LOOOP_SESSION_ID": "w1"}, limit=20)
    ok(root.call("looop _ worker start w1 'do the task'"))
    wait_for(lambda: list((fleet.data / "asks").glob("w1-*.json")), timeout=30)

    said = ok(root.call("looop _ tell w1 --journal steer also update the changelog"))
    assert "w1" in said.out
    assert rows(root)["w1"]["undelivered"] == 1
    assert "1 undelivered" in ok(root.call("looop workers")).out
    ok(root.call("looop _ answer w1-1 yes"))
    answer = fleet.data / "reports" / "w1.answer"
    text = wait_for(lambda: answer.exists() and answer.read_text(), timeout=30)
    first, marker, message = text.split("\n", 2)
    assert (first, message) == ("yes", "also update the changelog\n"), text
    assert marker.startswith(MARKER + " 1 "), text
    assert ok(worker.call("looop _ told")).out == ""  # delivered with the answer: once

    ok(root.call("looop _ tell w1 -", stdin=b"stop after the tests\nthen report\n"))
    assert rows(root)["w1"]["undelivered"] == 1
    told = ok(worker.call("looop _ told")).out
    assert told.startswith(MARKER + " 2 ") and told.endswith(
        "\nstop after the tests\nthen report\n"
    )
    assert ok(worker.call("looop _ told")).out == ""
    listed = json.loads(ok(worker.call("looop _ told --all --json")).stdout)
    assert [m["text"] for m in listed] == [
        "also update the changelog",
        "stop after the tests\nthen report",
    ]
    assert rows(root)["w1"]["undelivered"] == 0

    journal = (fleet.data / "journal.md").read_text()
    assert "tell w1: also update the changelog: steer" in journal
    assert [e["worker"] for e in events(fleet, "worker_told")] == ["w1", "w1"]

    refused = root.call("looop _ tell nobody hello")
    assert refused.returncode == 1 and "no worker nobody" in refused.err
    assert root.call("looop _ tell w1 " + "x" * 20000).returncode == 1
    assert worker.call("env -u LOOOP_SESSION_ID looop _ told").returncode == 2
    ok(root.call("looop _ tell w1 never read"))
    ok(root.call("looop _ worker kill w1"))
    dead = root.call("looop _ tell w1 too late")
    assert dead.returncode == 1 and "not alive" in dead.err, dead.err
    assert rows(root)["w1"]["undelivered"] == 1  # told, never delivered: shown as such
    ok(root.call("looop _ worker start w1 'a new run'"))  # starts with an empty inbox
    assert rows(root)["w1"]["undelivered"] == 0
    assert ok(worker.call("looop _ told --all")).out == ""


def test_a_failed_verify_marks_the_worker_in_every_listing_and_wakes_a_blocked_wait(
    fleet: Profile, procs: Processes
) -> None:
    configure_workers(fleet, [str(worker_script(fleet.root / "w", UNTIL_GO))])
    fleet.write_config("interval = 3600\n" + fleet.config.read_text())
    procs.add(fleet.popen("pulse", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    root = ShellTool(fleet.env, limit=20)
    wait_for(lambda: root.call("looop status").returncode == 0, timeout=30)

    refused = root.call("looop _ worker start w0 --verify 'sudo true' task")
    assert refused.returncode == 1 and "refused" in refused.err, refused.err
    assert not (fleet.data / "sessions" / "w0").exists()
    checks = "--verify 'test -f reports/x.md' --verify 'echo checked; ls reports/x.md'"
    ok(root.call(f"looop _ worker start bad {checks} 'write reports/x.md'"))
    ok(root.call("looop _ worker start good --verify 'test -f reports/y.md' task"))
    ok(root.call("looop _ worker start fails --verify 'true' task"))
    wait_for(lambda: all(w["state"] == "running" for w in rows(root).values()), timeout=30)
    cursor = json.loads(ok(root.call("looop _ state --json")).stdout)["cursor"]
    waiter = procs.add(fleet.popen("_", "wait", "--json", "--since", cursor, "--timeout", "60"))

    (fleet.data / "reports" / "go").touch()
    out, _ = waiter.communicate(timeout=60)
    assert waiter.returncode == 0 and "workers" in json.loads(out)["changed"]
    wait_for(lambda: not [w for w in rows(root).values() if w["alive"]], timeout=30)
    shown = rows(root)
    assert {w: (r["state"], r["exit_code"], r["verify"]) for w, r in shown.items()} == {
        "bad": ("exited", 0, "failed"),
        "good": ("exited", 0, "passed"),
        "fails": ("exited", 3, "skipped"),
    }
    status = session_file(fleet.data, "bad", "status.json")
    assert status["verify"] == "failed" and status["reason"] == "done"
    assert [(c["cmd"], c["exit_code"]) for c in status["checks"]] == [
        ("test -f reports/x.md", 1),
        ("echo checked; ls reports/x.md", 2),
    ]
    assert status["checks"][1]["output"].startswith("checked\n")
    assert "verify failed" in ok(root.call("looop workers")).out
    lines = ok(root.call("looop _ state")).out.splitlines()
    assert [line for line in lines if "bad" in line and "verify failed" in line], lines
    state = json.loads(ok(root.call("looop _ state --json")).stdout)
    assert {w["id"]: w["verify"] for w in state["workers"]}["bad"] == "failed"
    assert "verify: test -f reports/x.md" in ok(root.call("looop logs bad")).out
