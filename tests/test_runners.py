"""Runners (SPEC §2, §12): named worker commands, the agent CLIs' presets, and the spend they print.

The agent CLIs are stand-ins on ``PATH`` under their real names (``claude``,
``codex``, ``opencode``, ``pi``) that record the argv and the stdin they were
given, so each preset is checked against the command its tool documents,
written out here by hand rather than read from the preset table. The
Claude Code stand-in also ends with the JSON result line of ``claude -p
--output-format json``, with or without the worker's own ``_ cost``.
Driven through the shell tool an agent uses (``shell_tool``), with detached
supervisors; every stand-in ends on its own, so no test needs the fleet's
clean-up.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import Profile, wait_for
from shell_tool import ShellTool
from workers_kit import session_file

# Records what it was run with, then plays the agent the brief asks for:
# SPEND=<usd> ends with a Claude-Code-shaped result line, SELF_FIRST calls
# `_ cost` before it, SELF_AFTER after it.
STAND_IN = f"""#!{sys.executable}
import json, os, subprocess, sys, time
reports = os.environ["LOOOP_REPORTS_DIR"]
sid = os.environ["LOOOP_SESSION_ID"]
os.makedirs(reports, exist_ok=True)
stdin = sys.stdin.read()
record = {{"argv": [os.path.basename(sys.argv[0]), *sys.argv[1:]], "stdin": stdin}}
text = " ".join(sys.argv[1:]) + stdin
def cost(usd):
    argv = [os.environ["LOOOP_BIN"], "_", "cost", "worker", sid, "claude", usd]
    record["cost"] = subprocess.run(argv, capture_output=True, text=True, check=True).stderr
if "SELF_FIRST" in text:
    cost("0.5")
if "SPEND=" in text:
    usd = float(text.split("SPEND=", 1)[1].split()[0])
    print(json.dumps({{"type": "system", "subtype": "init", "total_cost_usd": 9}}), flush=True)
    print(json.dumps({{"type": "result", "subtype": "success", "is_error": False,
                      "result": "done " * 50000, "total_cost_usd": usd}}), flush=True)
if "SELF_AFTER" in text:  # once the supervisor has read the result, as a slow agent would
    marker = os.path.join(os.environ["LOOOP_DATA_DIR"], "sessions", sid, "spend.from")
    deadline = time.monotonic() + 30
    while not os.path.exists(marker) and time.monotonic() < deadline:
        time.sleep(0.01)
    cost("0.5")
with open(os.path.join(reports, sid + ".tmp"), "w") as fh:
    json.dump(record, fh)
os.rename(os.path.join(reports, sid + ".tmp"), os.path.join(reports, sid + ".json"))
"""


def stand_ins(profile: Profile, *names: str) -> None:
    """The recorder on the profile's PATH under each of ``names``; detached supervisors."""
    bin_dir = profile.root / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in names:
        (bin_dir / name).write_text(STAND_IN)
        (bin_dir / name).chmod(0o755)
    profile.env["PATH"] = f"{bin_dir}:{profile.env.get('PATH', '')}"


def tool(profile: Profile) -> ShellTool:
    return ShellTool(profile.env, limit=60)


def ran(profile: Profile, wid: str) -> dict[str, Any]:
    """What the stand-in recorded, once the worker has ended."""
    wait_for(lambda: session_file(profile.data, wid, "status.json"), timeout=30)
    status = session_file(profile.data, wid, "status.json")
    assert status["exit_code"] == 0, (profile.data / "sessions" / wid / "output.log").read_text()
    return json.loads((profile.data / "reports" / f"{wid}.json").read_text())


def prompt_of(profile: Profile, wid: str) -> Path:
    return profile.data / "sessions" / wid / "prompt.md"


def test_runner_picks_the_argv_per_worker_and_worker_runner_is_the_default(
    profile: Profile,
) -> None:
    fleet = profile  # every worker here ends on its own
    stand_ins(fleet, "alpha", "beta", "gamma")
    fleet.write_config(
        '[worker]\nsupervisor = "detached"\nrunner = "a"\ncommand = ["gamma", "{prompt}"]\n'
        '[runners.a]\ncommand = ["alpha", "--brief", "{prompt_file}"]\n'
        '[runners.b]\ncommand = ["beta", "{id}"]\n'
    )
    sh = tool(fleet)
    out = sh.call("looop _ worker start w1 first && looop _ worker start w2 --runner b second")
    assert out.returncode == 0, out.err
    assert ran(fleet, "w1")["argv"] == ["alpha", "--brief", str(prompt_of(fleet, "w1"))]
    beta = ran(fleet, "w2")
    assert beta["argv"] == ["beta", "w2"] and beta["stdin"] == prompt_of(fleet, "w2").read_text()
    assert [session_file(fleet.data, w, "meta.json")["runner"] for w in ("w1", "w2")] == ["a", "b"]
    # A runner that is not there: a usage error, and nothing started.
    out = sh.call("looop _ worker start w3 --runner nope third")
    assert (
        out.returncode == 2 and "no runner named 'nope'" in out.err and "runners: a, b" in out.err
    )
    assert not (fleet.data / "sessions" / "w3").exists()
    # worker.runner unset: worker.command, as before runners.
    assert sh.call("looop config set worker.runner ''").returncode == 0
    assert sh.call("looop _ worker start w4 fourth").returncode == 0
    assert ran(fleet, "w4")["argv"] == ["gamma", prompt_of(fleet, "w4").read_text()]


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ('[runners.a]\ncommand = ["x"]\n\n[runners.b]\nbogus = 1\n', 5, "runners.b.bogus"),
        ('[runners.a]\ncommand = ["x"]\n[runners."a b"]\ncommand = ["x"]\n', 3, "runners.a b"),
        ("[runners.a]\nmodel = 1\n", 2, "runners.a.model"),
        ('runners = ["x"]\n', 1, "runners"),
        ('[worker]\nrunner = "b"\n[runners.a]\ncommand = ["x"]\n', 2, "worker.runner"),
    ],
)
def test_a_bad_runner_table_exits_78_naming_file_line_and_key(
    profile: Profile, text: str, line: int, key: str
) -> None:
    profile.write_config(text)
    out = profile.run("config", "show")
    assert out.returncode == 78, out.stderr
    assert out.stderr.startswith(f"looop: {profile.config}:{line}: {key}:"), out.stderr


def test_config_runner_add_keeps_the_users_file_and_init_asks_nothing_without_a_terminal(
    profile: Profile,
) -> None:
    mine = "# mine\ninterval = 30  # why\n\n[worker]\n# note\nmax_live = 3\n"
    profile.write_config(mine)
    sh = tool(profile)
    assert sh.call("looop config runner add pi --preset pi").returncode == 0
    out = sh.call("looop init --runner codex")
    assert out.returncode == 0, out.err
    text = profile.config.read_text()
    assert text.startswith(mine.replace("max_live = 3\n", 'max_live = 3\nrunner = "codex"\n'))
    assert "# Codex, non-interactive: `codex exec PROMPT`" in text
    assert "https://developers.openai.com/codex/noninteractive" in text
    assert text.index("[runners.pi]") < text.index("[runners.codex]")
    assert (profile.data / "PLAYBOOK.md").exists()  # the data dir is seeded
    assert "not installed" in out.out  # never without --install
    again = sh.call("looop init --runner codex")
    assert again.returncode == 1 and "--force replaces it" in again.err
    assert profile.config.read_text() == text
    listed = json.loads(sh.call("looop config runner list --json").out)
    assert listed["default"] == "codex" and list(listed["runners"]) == ["pi", "codex"]


LONG = "x" * (200 << 10)  # past one argument's 128 KiB: the brief goes another way


@pytest.mark.parametrize("preset", ["claude", "codex", "opencode", "pi"])
def test_each_preset_renders_the_command_its_tool_documents(profile: Profile, preset: str) -> None:
    stand_ins(profile, preset)
    profile.write_config('[worker]\nsupervisor = "detached"\n')
    sh = tool(profile)
    assert sh.call(f"looop config runner add {preset} --preset {preset}").returncode == 0
    out = sh.call(f"looop _ worker start w1 --runner {preset} short brief")
    assert out.returncode == 0, out.err
    if preset == "claude":  # and one past one argument's 128 KiB
        long = sh.call(f"looop _ worker start w2 --runner {preset} -", stdin=LONG.encode())
        assert long.returncode == 0, long.err
    got, prompt = ran(profile, "w1"), prompt_of(profile, "w1")
    text = prompt.read_text()
    expected = {
        # `claude -p "query"`, events as JSON lines ending with the result.
        "claude": ["claude", "-p", text, "--output-format", "stream-json", "--verbose"],
        # `codex exec -`: the prompt from stdin.
        "codex": ["codex", "exec", "--skip-git-repo-check", "--sandbox", "workspace-write", "-"],
        # `opencode run [message..] --file FILE`.
        "opencode": [
            "opencode",
            "run",
            "Follow the brief in the attached file.",
            "--file",
            str(prompt),
        ],
        # `pi -p @FILE`, events as JSON lines.
        "pi": ["pi", "-p", "--mode", "json", f"@{prompt}"],
    }[preset]
    assert (got["argv"], got["stdin"]) == (expected, text if preset == "codex" else "")
    if preset == "claude":  # `cat file | claude -p "query"`, the query naming the file
        got, prompt = ran(profile, "w2"), prompt_of(profile, "w2")
        assert got["argv"][:2] == ["claude", "-p"] and str(prompt) in got["argv"][2]
        assert got["argv"][3:] == ["--output-format", "stream-json", "--verbose"]
        assert got["stdin"] == prompt.read_text() and got["stdin"].endswith(LONG + "\n")


def test_a_claude_shaped_result_is_recorded_once_and_a_worker_own_cost_is_not_doubled(
    profile: Profile,
) -> None:
    fleet = profile  # every worker here ends on its own
    stand_ins(fleet, "claude")
    fleet.write_config('[worker]\nsupervisor = "detached"\n')
    sh = tool(fleet)
    assert sh.call("looop config runner add claude --preset claude --default").returncode == 0
    starts = [
        "looop _ worker start w1 SPEND=0.0123",  # forgets _ cost: the runner's figure counts
        "looop _ worker start w2 SELF_FIRST SPEND=0.02",  # its own _ cost came first: it counts
        "looop _ worker start w3 SPEND=0.03 SELF_AFTER",  # the result came first: not doubled
    ]
    assert sh.call(" && ".join(starts)).returncode == 0
    said = {wid: ran(fleet, wid).get("cost") for wid in ("w1", "w2", "w3")}
    lines = [json.loads(line) for line in (fleet.data / "cost.jsonl").read_text().splitlines()]
    assert sorted((e["kind"], e["id"], e["runner"], e["usd"]) for e in lines) == [
        ("worker", "w1", "claude", 0.0123),
        ("worker", "w2", "claude", 0.5),
        ("worker", "w3", "claude", 0.03),
    ]
    assert json.loads(sh.call("looop cost --json").out)["total"] == 0.5423
    assert said == {
        "w1": None,
        "w2": "",
        "w3": "note: worker w3's spend is counted from its runner's output\n",
    }
    log = (fleet.data / "sessions" / "w2" / "output.log").read_text()
    assert "[looop] spend 0.02 USD from the runner's output: the worker's own counts" in log
    # The session's id reused: its new run reports afresh.
    assert sh.call("looop _ worker start w1 'SPEND=0.25'").returncode == 0
    wait_for(lambda: len((fleet.data / "cost.jsonl").read_text().splitlines()) == 4)
