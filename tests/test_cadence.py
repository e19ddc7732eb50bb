"""Sensor cadence through the installed ``looop``: ``# looop: every 1h`` and what honours it.

A sensor with a cadence runs only when due; between its runs each of the
pulse's beats republishes its last reading, marked ``cached``, and the
world hash holds still. The kept reading survives a pulse restart, an
edited script runs at once, and a beat a person asks for (``looop sense``)
runs it fresh. ``looop _ sensor test`` always runs it and says when the
pulse would next.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path
from typing import Any

from conftest import Processes, Profile, wait_for
from shell_tool import ShellTool


def _record(profile: Profile) -> dict[str, Any]:
    found = next(profile.runtime.glob("*.beat.json"), None)
    if found is None:
        return {}
    try:
        return dict(json.loads(found.read_text()))
    except (ValueError, OSError):
        return {}


def _row(record: dict[str, Any], name: str) -> dict[str, Any]:
    return next(row for row in record["sensors"] if row["name"] == name)


def _runs(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def _pulse(profile: Profile, procs: Processes) -> subprocess.Popen[str]:
    return procs.add(profile.popen("pulse", env={**profile.env, "LOOOP_INTERVAL": "1"}))


def _beats_until(profile: Profile, number: int, pid: int) -> list[dict[str, Any]]:
    """The beat records of this pulse up to beat ``number``, each read as it appears."""
    seen: dict[int, dict[str, Any]] = {}
    for k in range(1, number + 1):
        rec = wait_for(
            lambda k=k: (r := _record(profile)).get("pid") == pid and r.get("number", 0) >= k and r
        )
        seen[rec["number"]] = rec
    return [seen[k] for k in sorted(seen)]


def test_a_sensor_every_hour_runs_once_over_five_beats_and_is_republished_each_beat(
    profile: Profile, procs: Processes
) -> None:
    runs, failures = profile.root / "slow.runs", profile.root / "flaky.runs"
    slow = profile.sensor(
        "slow",
        f"# looop: every 1h\necho run >> {runs}\n"
        'echo "{\\"signal\\": {\\"n\\": 1}, \\"detail\\": {\\"at\\": $(date +%s%N)}}"',
    )
    profile.sensor("plain", "# looop: every 2h\necho '{\"count\": 3}'")
    profile.sensor("flaky", f"# looop: every 1h\necho run >> {failures}\necho oops >&2\nexit 3")
    profile.sensor("bad", "# looop: every 5x\necho '{}'")
    twos = profile.root / "two.runs"  # every 2s under a 1 s beat: every other beat
    profile.sensor("two", f"# looop: every 2s\necho run >> {twos}\necho '{{}}'")

    pulse = _pulse(profile, procs)
    early = _beats_until(profile, 2, pulse.pid)
    inode = (profile.data / "snapshots/sensor-slow.json").stat().st_ino
    by_number = {b["number"]: b for b in early + _beats_until(profile, 5, pulse.pid)}
    beats = [by_number[k] for k in sorted(by_number)]
    assert _runs(runs) == 1 and _runs(failures) == 1, "a cached sensor ran again"
    # Beats 1, 3 and 5, unless a beat ran late: neither once nor every beat.
    assert 1 < _runs(twos) < 5, [_row(b, "two") for b in beats]
    assert len({b["world_hash"] for b in beats}) == 1, [b["world_hash"] for b in beats]
    assert _row(beats[0], "slow")["cached"] is None and _row(beats[0], "slow")["every"] == 3600
    for later in beats[1:]:
        assert _row(later, "slow")["cached"] is not None, later["sensors"]
        assert "flaky" in later["failed"] and " cached" in later["summary"]
    reading = profile.snapshot("sensor-slow")
    assert reading["signal"] == {"n": 1} and reading["detail"]["cached"]["every"] == 3600
    assert reading["detail"]["cached"]["read_at"] == round(beats[0]["started"], 3)
    # The same bytes every beat: the file is linked into each generation, never rewritten.
    assert (profile.data / "snapshots/sensor-slow.json").stat().st_ino == inode
    seen = profile.state()["snapshots"]["sensor-slow"]["detail"]["cached"]
    assert seen["age"] >= 3 and seen["read_at"] == reading["detail"]["cached"]["read_at"]
    cached = profile.snapshot("sensor-plain")
    assert cached["signal"] == {"count": 3} and set(cached["detail"]) == {"cached"}
    assert profile.snapshot("sensor-flaky")["signal"] == {"error": True, "exit_code": 3}
    assert "oops" in (profile.data / "snapshots/sensor-flaky.err").read_text()
    pulse.terminate()
    _, log = pulse.communicate(timeout=30)
    assert log.count("sensors/bad.sh:2:") == 1, log  # said once, not every beat

    # A restarted pulse keeps the reading; an edited script runs at its next beat.
    pulse = _pulse(profile, procs)
    (first,) = _beats_until(profile, 1, pulse.pid)
    assert _runs(runs) == 1 and _row(first, "slow")["cached"] is not None
    slow.write_text(slow.read_text() + "# edited\n")
    pulse.send_signal(signal.SIGHUP)  # a reload's beat, at once: it keeps the cadence
    edited = wait_for(lambda: (r := _record(profile)).get("number", 0) >= 2 and r)
    assert _runs(runs) == 2 and _row(edited, "slow")["cached"] is None

    # A beat a person asks for runs it fresh; the table says its cadence.
    out = profile.run("sense", "-v")
    assert out.returncode == 0, out.stderr
    assert _runs(runs) == 3 and _runs(failures) == 2
    line = next(row for row in out.stdout.splitlines() if row.startswith("slow "))
    assert "every 1h" in line and "cached" not in line, out.stdout

    # `_ sensor test` always runs it, and says when the pulse would next.
    call = ShellTool(profile.env).call("looop _ sensor test slow")
    assert call.returncode == 0 and json.loads(call.out)["signal"] == {"n": 1}, call.err
    assert "every 1h (line 2)" in call.err and "the pulse would next run it at" in call.err
    assert _runs(runs) == 4
    pulse.terminate()
    pulse.wait(timeout=30)


def test_the_cadence_grammar_and_a_malformed_line_warn_once_and_run_every_beat(
    profile: Profile,
) -> None:
    runs = profile.root / "a.runs"
    profile.sensor("a", f"# looop: every 30s\necho run >> {runs}\necho '{{}}'")
    profile.sensor("b", "#looop: every 10m\necho '{}'")
    profile.sensor("c", "# a comment\n  # looop: every 2h  \necho '{}'")
    profile.sensor("d", "#\n" * 8 + "# looop: every 1d\necho '{}'")  # line 10: the last read
    profile.sensor("e", "#\n" * 9 + "# looop: every 5x\necho '{}'")  # line 11: not read
    malformed = {"f": "every 0s", "g": "every 31d", "h": "every 10", "i": "hourly"}
    for name, said in malformed.items():
        profile.sensor(name, f"# looop: {said}\n# looop: every 1h\necho '{{}}'")

    out = profile.run("sense", "--json")
    assert out.returncode == 0, out.stderr
    rows = {row["name"]: row for row in json.loads(out.stdout)["sensors"]}
    every = {name: row["every"] for name, row in rows.items()}
    assert every == {
        **{"a": 30, "b": 600, "c": 7200, "d": 86400, "e": None, "today": None},
        **dict.fromkeys(malformed),
    }
    assert all(row["ok"] for row in rows.values()), rows
    warnings = [line for line in out.stderr.splitlines() if "is not a cadence" in line]
    assert len(warnings) == len(malformed), out.stderr
    for name, said in malformed.items():
        assert rows[name]["warning"].startswith(f'sensors/{name}.sh:2: "# looop: {said}"')
        assert any(f"sensors/{name}.sh:2:" in line for line in warnings)
    table = profile.run("sense", "-v").stdout
    assert "every beat (declaration malformed)" in table and "every 1d" in table, table
    assert _runs(runs) == 2  # `looop sense` runs every sensor, cached or not


def test_an_agent_writing_a_sensor_is_told_its_cadence_and_doctor_names_a_malformed_one(
    profile: Profile,
) -> None:
    tool = ShellTool(profile.env)
    good = tool.call("looop _ sensor write gh -", stdin=b"#!/bin/sh\n# looop: every 10m\necho 1\n")
    assert good.returncode == 0 and good.out.rstrip().endswith(", runs every 10m"), good.err
    bad = tool.call(
        "looop _ sensor write ci -", stdin=b"#!/bin/sh\n# looop: every 10 min\necho 1\n"
    )
    assert bad.returncode == 0, bad.err  # written all the same: it runs every beat
    assert 'sensors/ci.sh:2: "# looop: every 10 min" is not a cadence' in bad.err
    doctor = profile.run("doctor").stdout
    assert "✓ sensor gh.sh: has a #! line and the run bit, runs every 10m" in doctor, doctor
    line = next(line for line in doctor.splitlines() if "sensor ci.sh" in line)
    assert line.startswith("✗ sensor ci.sh: sensors/ci.sh:2:") and "# looop: every 10m" in line
