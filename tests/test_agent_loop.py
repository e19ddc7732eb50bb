"""The whole loop (SPEC §8, §10): a scripted worker asks, a scripted root agent answers.

Both are real shell scripts driving the installed ``looop`` against a real
pulse: the worker runs ``answer=$(looop _ ask ...)``, the agent loops on
``_ wait --json --since`` as the README shows, answers the ask it is woken
for, and its loop ends with exit 3 when the pulse stops.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from conftest import LOOOP, Processes, Profile, wait_for

WORKER = """#!/bin/sh
export LOOOP_SESSION_ID=w1
answer=$(looop _ ask --prompt "deploy?" --options yes,no)
printf '%s' "$answer" > "$OUT"
"""

AGENT = """#!/bin/bash
field() { "$PY" -c "import json, sys; s = json.load(sys.stdin); print($1)"; }
c=""
while :; do
    state=$(looop _ wait --json ${c:+--since "$c"}); rc=$?
    [ "$rc" -eq 0 ] || break
    c=$(printf '%s' "$state" | field 's["cursor"]')
    echo "woke $(printf '%s' "$state" | field '",".join(s["changed"])')" >> "$LOG"
    for id in $(printf '%s' "$state" | field '" ".join(a["id"] for a in s["asks"])'); do
        looop _ answer "$id" yes && echo "answered $id" >> "$LOG"
    done
done
echo "exit $rc $(printf '%s' "$state" | field '",".join(s["changed"])')" >> "$LOG"
"""


def script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_a_scripted_worker_gets_exactly_the_answer_a_scripted_agent_gives(
    profile: Profile, procs: Processes, tmp_path: Path
) -> None:
    out, log = tmp_path / "answer", tmp_path / "agent.log"
    env = {
        **profile.env,
        "PATH": f"{Path(LOOOP).parent}:{os.environ['PATH']}",
        "PY": sys.executable,
        "OUT": str(out),
        "LOG": str(log),
    }
    pulse = procs.add(profile.popen("pulse", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    wait_for(lambda: profile.run("status").returncode == 0, timeout=30)
    agent_script, worker_script = script(tmp_path / "agent", AGENT), script(tmp_path / "w", WORKER)
    agent = procs.add(subprocess.Popen([agent_script], env=env, stdin=subprocess.DEVNULL))
    worker = procs.add(subprocess.Popen([worker_script], env=env, stdin=subprocess.DEVNULL))
    assert worker.wait(timeout=60) == 0
    assert out.read_bytes() == b"yes"
    # The worker may return before the agent has logged its answer: wait for that line.
    wait_for(lambda: "answered w1-1" in log.read_text().splitlines())
    lines = log.read_text().splitlines()
    assert any(line.startswith("woke ") and "asks" in line for line in lines), lines
    pulse.send_signal(signal.SIGTERM)
    pulse.wait(timeout=30)
    assert agent.wait(timeout=30) == 0
    assert log.read_text().splitlines()[-1] == "exit 3 pulse-down"
    assert lines.count("answered w1-1") == 1  # the answered ask did not wake it again
