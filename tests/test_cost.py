"""``looop _ cost`` and ``looop cost`` through the installed command."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from conftest import Processes, Profile
from shell_tool import ShellTool


def ledger(profile: Profile) -> Path:
    return profile.data / "cost.jsonl"


def spend(profile: Profile, *args: str) -> None:
    out = profile.run("_", "cost", *args)
    assert out.returncode == 0, out.stderr


def report(profile: Profile, *args: str) -> dict[str, Any]:
    out = profile.run("cost", "--json", *args)
    assert out.returncode == 0, out.stderr
    return dict(json.loads(out.stdout))


def refuse(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def old_line(profile: Profile, days: float, kind: str, runner: str, usd: float) -> None:
    ts = time.time() - days * 86400
    line = {"ts": ts, "kind": kind, "id": "old", "runner": runner, "usd": usd}
    with open(ledger(profile), "a") as f:
        f.write(json.dumps(line) + "\n")


def test_cost_appends_one_line_with_every_field(profile: Profile) -> None:
    before = time.time()
    spend(profile, "worker", "w1", "claude", "0.25")
    spend(profile, "agent", "root", "codex", "1")
    lines = [json.loads(line) for line in ledger(profile).read_text().splitlines()]
    assert [set(line) for line in lines] == [{"ts", "kind", "id", "runner", "usd"}] * 2
    assert lines[0]["kind"] == "worker" and lines[0]["id"] == "w1"
    assert lines[0]["runner"] == "claude" and lines[0]["usd"] == 0.25
    assert lines[1]["usd"] == 1.0
    assert before - 1 <= lines[0]["ts"] <= time.time() + 1


def test_cost_sums_by_day_kind_and_runner(profile: Profile) -> None:
    spend(profile, "worker", "w1", "claude", "0.25")
    spend(profile, "worker", "w2", "claude", "0.50")
    spend(profile, "worker", "w3", "codex", "2")
    spend(profile, "agent", "root", "claude", "1")
    old_line(profile, 3, "worker", "claude", 4.0)
    today = time.strftime("%Y-%m-%d")
    then = time.strftime("%Y-%m-%d", time.localtime(time.time() - 3 * 86400))

    full = report(profile)
    rows = {(r["day"], r["kind"], r["runner"]): (r["usd"], r["count"]) for r in full["rows"]}
    assert rows == {
        (then, "worker", "claude"): (4.0, 1),
        (today, "agent", "claude"): (1.0, 1),
        (today, "worker", "claude"): (0.75, 2),
        (today, "worker", "codex"): (2.0, 1),
    }
    assert full["total"] == 7.75 and full["skipped"] == 0

    only_today = report(profile, "--today")
    assert {r["day"] for r in only_today["rows"]} == {today}
    assert only_today["total"] == 3.75

    text = profile.run("cost")
    assert text.returncode == 0, text.stderr
    assert "claude" in text.stdout and "codex" in text.stdout
    assert text.stdout.strip().splitlines()[-1] == "total 7.7500 USD"


def test_bad_amounts_are_usage_errors_and_nothing_is_appended(profile: Profile) -> None:
    spend(profile, "worker", "w1", "claude", "0.25")
    before = ledger(profile).read_bytes()
    for usd in ("abc", "-1", "nan", "inf", "-inf", "1e999", "", "1e300", "1000000.01"):
        out = profile.run("_", "cost", "worker", "w1", "claude", usd)
        assert out.returncode == 2, (usd, out.stderr)
        assert "USD" in out.stderr and "Traceback" not in out.stderr
    for bad in (("", "w1", "claude"), ("worker", "a\nb", "claude"), ("worker", "w1", "")):
        out = profile.run("_", "cost", *bad, "1")
        assert out.returncode == 2, (bad, out.stderr)
    assert ledger(profile).read_bytes() == before


def test_a_malformed_line_is_skipped_and_counted(profile: Profile) -> None:
    spend(profile, "worker", "w1", "claude", "1")
    with open(ledger(profile), "a") as f:
        f.write('{"ts": 1, "kind": "worker", "id"\n')  # a line cut short
        f.write('{"ts": 1, "kind": "worker", "id": "x", "runner": "r", "usd": NaN}\n')
        f.write("[1, 2]\n")
    spend(profile, "worker", "w2", "claude", "2")
    result = report(profile)
    assert result["total"] == 3.0 and result["skipped"] == 3
    text = profile.run("cost")
    assert text.returncode == 0 and "skipped 3" in text.stdout


def test_a_line_with_an_absurd_time_or_amount_is_skipped_and_the_sums_stay_finite(
    profile: Profile,
) -> None:
    spend(profile, "worker", "w1", "claude", "1.5")
    now = time.time()
    absurd = [
        {"ts": 1e300, "usd": 1},  # no calendar has that day
        {"ts": -1e300, "usd": 1},
        {"ts": 1e19, "usd": 1},
        {"ts": now, "usd": 1e308},  # two of these would sum to infinity
        {"ts": now, "usd": 1e308},
        {"ts": now, "usd": 1e300},
        {"ts": now, "usd": 10**400},  # an integer no float can hold
        {"ts": 10**400, "usd": 1},
    ]
    with open(ledger(profile), "a") as f:
        for fields in absurd:
            line = {"kind": "worker", "id": "x", "runner": "r", **fields}
            f.write(json.dumps(line) + "\n")
        f.write('{"ts": 1, "kind": "worker", "id": "x", "runner": "r", "usd": Infinity}\n')
        f.write('{"ts": 1, "kind": "a\\ud800", "id": "x", "runner": "r", "usd": 1}\n')
    tool = ShellTool(profile.env)
    done = tool.call("looop cost --json | head -c 100000")
    assert done.returncode == 0 and not done.err, done.err
    result = json.loads(done.out, parse_constant=refuse)  # strict JSON: no NaN or Infinity
    assert result["total"] == 1.5 and result["skipped"] == len(absurd) + 2
    for variant in ("looop cost", "looop cost --today", "looop cost --today --json"):
        done = tool.call(variant)
        assert done.returncode == 0 and not done.err, (variant, done.err)
    assert "skipped 10" in tool.call("looop cost").out


def test_a_fifo_named_cost_jsonl_is_reported_not_waited_on(profile: Profile) -> None:
    profile.data.mkdir(parents=True)
    os.mkfifo(ledger(profile))
    out = profile.run("cost", timeout=20)
    assert out.returncode == 1
    assert "FIFO" in out.stderr and "Traceback" not in out.stderr
    out = profile.run("_", "cost", "worker", "w1", "claude", "1", timeout=20)
    assert out.returncode == 1 and "Traceback" not in out.stderr


def test_a_linked_ledger_is_not_followed(profile: Profile) -> None:
    profile.data.mkdir(parents=True)
    elsewhere = profile.root / "elsewhere.jsonl"
    elsewhere.write_text("")
    os.symlink(elsewhere, ledger(profile))
    assert profile.run("cost").returncode == 1
    assert profile.run("_", "cost", "worker", "w1", "claude", "1").returncode == 1
    assert elsewhere.read_text() == ""


def test_twenty_writers_at_once_leave_twenty_intact_lines(
    profile: Profile, procs: Processes
) -> None:
    writers = [
        procs.add(profile.popen("_", "cost", "worker", f"w{i}", "claude", f"{i}.5"))
        for i in range(20)
    ]
    assert [p.wait(timeout=60) for p in writers] == [0] * 20
    lines = [json.loads(line) for line in ledger(profile).read_text().splitlines()]
    assert sorted(line["id"] for line in lines) == sorted(f"w{i}" for i in range(20))
    assert report(profile)["total"] == sum(i + 0.5 for i in range(20))
