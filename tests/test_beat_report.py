"""What a beat reports: each sensor's result (``sense -v``) and a log that says changes once.

The beat record keeps every sensor's status, duration and reason; ``looop
sense -v`` prints them slowest first. The pulse's log tells a failure when it
starts, when it changes and when it ends, with a reminder while it lasts, and
not once per beat. Everything runs through the installed ``looop``; the
beats of a long-interval pulse are asked for with ``looop sense``.
"""

from __future__ import annotations

import json
import signal

from conftest import Processes, Profile, wait_for


def test_sense_verbose_lists_every_sensor_with_its_duration_and_reason_slowest_first(
    profile: Profile,
) -> None:
    profile.sensor("quick", 'echo \'{"signal": {"n": 1}}\'')
    profile.sensor("slow", 'sleep 0.6; echo \'{"signal": {"n": 2}}\'')
    profile.sensor("broken", "echo 'the disk is gone' >&2; exit 4")
    profile.sensor("chatty", "echo not json")
    out = profile.run("sense", "-v")
    assert out.returncode == 0, out.stderr
    table, summary = out.stdout.split("\n\n")
    header, *lines = table.splitlines()
    rows = [line.split(None, 3) for line in lines]
    assert header.split() == ["sensor", "result", "duration", "cadence", "reason"]
    names = [row[0] for row in rows]
    on_disk = sorted(p.stem for p in (profile.data / "sensors").glob("*.sh"))
    assert sorted(names) == on_disk and {"broken", "chatty", "quick", "slow"} <= set(names)
    assert names[0] == "slow"  # slowest first
    durations = [float(row[2].removesuffix("s")) for row in rows]
    assert durations == sorted(durations, reverse=True)
    by_name = {row[0]: row for row in rows}
    assert by_name["quick"][1] == "ok" and len(by_name["quick"]) == 3
    assert by_name["broken"][1] == "failed"
    assert by_name["broken"][3] == "exited with status 4: the disk is gone"
    assert by_name["chatty"][1] == "failed"
    assert by_name["chatty"][3].startswith("output is not one JSON value")
    assert summary.startswith(f"{len(names) - 2}/{len(names)} sensors ok · failed: ")

    record = json.loads(profile.run("sense", "--json").stdout)
    kept = {s["name"]: s for s in record["sensors"]}
    assert sorted(kept) == on_disk
    assert kept["broken"]["ok"] is False and kept["broken"]["exit_code"] == 4
    assert kept["quick"]["ok"] is True and kept["quick"]["reason"] is None
    assert kept["slow"]["duration"] >= 0.6


def test_a_sensor_failing_the_same_way_for_twenty_beats_is_said_a_bounded_number_of_times(
    profile: Profile, procs: Processes
) -> None:
    profile.sensor("fine", "echo '{\"signal\": {}}'")
    flaky = profile.sensor("flaky", "echo 'no route to host' >&2; exit 1")
    pulse = procs.add(
        profile.popen(
            "--log-format", "human", "pulse", env={**profile.env, "LOOOP_INTERVAL": "3600"}
        )
    )
    wait_for(lambda: profile.run("status").returncode == 0)
    for _ in range(19):  # with the first beat: 20 beats of the same failure
        assert profile.run("sense").returncode == 0
    flaky.write_text("#!/bin/sh\necho '{\"signal\": {}}'\n")
    assert profile.run("sense").returncode == 0
    for _ in range(3):
        assert profile.run("sense").returncode == 0
    pulse.send_signal(signal.SIGTERM)
    _, stderr = pulse.communicate(timeout=30)
    lines = stderr.splitlines()
    first = [line for line in lines if "first beat: " in line]
    assert len(first) == 1 and first[0].endswith("sensors ok · failed: flaky"), lines
    about = [line for line in lines if "flaky" in line and "sensors ok" not in line]
    started = [line for line in about if "sensor flaky fails: exited with status 1" in line]
    reminders = [line for line in about if "still fails" in line]
    recovered = [line for line in about if "sensor flaky is ok again" in line]
    assert len(started) == 1, about
    assert len(reminders) == 1 and "10 beats" in reminders[0], about
    assert len(recovered) == 1 and "after 20 failing beats" in recovered[0], about
    assert len(about) == 3, about
    # Beats that change nothing say nothing: 24 beats, a handful of lines.
    assert len(stderr.splitlines()) < 10, stderr


def test_a_sensor_that_fails_differently_is_said_again(profile: Profile, procs: Processes) -> None:
    flaky = profile.sensor("flaky", "exit 1")
    pulse = procs.add(
        profile.popen(
            "--log-format", "human", "pulse", env={**profile.env, "LOOOP_INTERVAL": "3600"}
        )
    )
    wait_for(lambda: profile.run("status").returncode == 0)
    assert profile.run("sense").returncode == 0
    flaky.write_text("#!/bin/sh\nexit 2\n")
    assert profile.run("sense").returncode == 0
    assert profile.run("sense").returncode == 0
    pulse.send_signal(signal.SIGTERM)
    _, stderr = pulse.communicate(timeout=30)
    about = [line for line in stderr.splitlines() if "flaky" in line and "ok" not in line]
    assert len(about) == 2, about
    assert "exited with status 1" in about[0] and "exited with status 2" in about[1]
