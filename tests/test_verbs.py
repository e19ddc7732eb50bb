"""The root agent's verbs (SPEC §9, §11), driven through the installed ``looop``.

Each verb writes its file whole, journals one line and records one event;
bad ids and flag-shaped or empty bodies write nothing; a reader hashing the
world while goals and sensors are rewritten never sees a torn file; and
``_ notify`` hands its message over as one argument, never to a shell.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import LOOOP, Processes, Profile, events, tree
from shell_tool import ShellTool


def journal(profile: Profile) -> list[str]:
    path = profile.data / "journal.md"
    return path.read_text().splitlines() if path.exists() else []


def moved(
    profile: Profile, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a verb; assert it made exactly one journal line and one event."""
    before_journal, before_events = len(journal(profile)), len(events(profile))
    out = subprocess.run(
        [LOOOP, *args],
        env=profile.env,
        input=stdin,
        stdin=None if stdin is not None else subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert len(journal(profile)) == before_journal + 1, journal(profile)
    assert len(events(profile)) == before_events + 1, events(profile)
    return out


def test_goal_write_writes_the_goal_and_journals_one_line_and_one_event(profile: Profile) -> None:
    moved(profile, "_", "goal", "write", "ship", "the", "release")
    assert (profile.data / "goals" / "ship.md").read_text() == "the release\n"
    moved(
        profile, "_", "goal", "write", "ship", "-", "--journal", "scope grew", stdin="new\ntext\n"
    )
    assert (profile.data / "goals" / "ship.md").read_text() == "new\ntext\n"
    assert journal(profile)[-1].endswith(" goal write ship: scope grew")
    assert events(profile)[-1]["event"] == "goal_written" and events(profile)[-1]["goal"] == "ship"


def test_goal_archive_moves_it_and_never_over_an_archived_goal(profile: Profile) -> None:
    moved(profile, "_", "goal", "write", "g", "first")
    moved(profile, "_", "goal", "archive", "g")
    assert not (profile.data / "goals" / "g.md").exists()
    assert (profile.data / "goals" / "archive" / "g.md").read_text() == "first\n"
    moved(profile, "_", "goal", "write", "g", "second")
    out = profile.run("_", "goal", "archive", "g")
    assert out.returncode == 1 and "already archived" in out.stderr
    assert (profile.data / "goals" / "archive" / "g.md").read_text() == "first\n"
    assert (profile.data / "goals" / "g.md").read_text() == "second\n"
    missing = profile.run("_", "goal", "archive", "nosuch")
    assert missing.returncode == 1 and "no goal named 'nosuch'" in missing.stderr


def test_sensor_write_makes_an_executable_script_and_refuses_one_without_a_shebang(
    profile: Profile,
) -> None:
    script = "#!/bin/sh\necho '{\"signal\": 1}'\n"
    moved(profile, "_", "sensor", "write", "ci", "-", stdin=script)
    path = profile.data / "sensors" / "ci.sh"
    assert path.read_text() == script
    assert stat.S_IMODE(path.stat().st_mode) == 0o755
    refused = profile.run("_", "sensor", "write", "bad", "echo", "{}")
    # A bad body is a usage error (exit 2), as the manual's exit table says.
    assert refused.returncode == 2 and "#!" in refused.stderr
    assert not (profile.data / "sensors" / "bad.sh").exists()
    moved(profile, "_", "sensor", "remove", "ci")
    assert not path.exists()


def test_sensor_test_prints_the_reading_and_publishes_nothing(profile: Profile) -> None:
    profile.sensor("probe", 'echo \'{"signal": {"n": 1}, "detail": "x"}\'')
    out = profile.run("_", "sensor", "test", "probe")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == {"signal": {"n": 1}, "detail": "x"}
    as_json = json.loads(profile.run("_", "sensor", "test", "probe", "--json").stdout)
    assert as_json["ok"] is True and as_json["name"] == "sensor-probe"
    assert not (profile.data / "snapshots").exists()
    profile.sensor("broken", "echo not json")
    assert profile.run("_", "sensor", "test", "broken").returncode == 1


def test_playbook_write_keeps_the_previous_version_and_only_the_last_twenty(
    profile: Profile,
) -> None:
    moved(profile, "_", "playbook", "write", "version", "0")
    for n in range(1, 23):
        moved(profile, "_", "playbook", "write", "version", str(n))
    assert (profile.data / "PLAYBOOK.md").read_text() == "version 22\n"
    kept = sorted((profile.data / "playbook.d").iterdir())
    assert len(kept) == 20
    assert [p.read_text() for p in kept] == [f"version {n}\n" for n in range(2, 22)]


def test_the_playbook_history_never_prunes_the_version_it_just_saved_after_a_clock_step(
    profile: Profile,
) -> None:
    # Twenty versions kept while the clock ran a year ahead, named by that clock.
    history = profile.data / "playbook.d"
    history.mkdir(parents=True)
    for n in range(20):
        (history / f"PLAYBOOK-20271207T1200{n:02d}.000000Z.md").write_text(f"ahead {n}\n")
    tool = ShellTool(profile.env)
    for text in ("first", "second", "third"):
        done = tool.call(f"looop _ playbook write {text}")
        assert done.returncode == 0, done.err
    kept = {p.name: p.read_text() for p in history.iterdir()}
    assert len(kept) == 20
    # The clock now reads a year earlier: each saved version is kept (the starter
    # playbook, "first", "second"), and the three oldest of those named ahead go.
    assert "first\n" in kept.values() and "second\n" in kept.values()
    assert sorted(t for t in kept.values() if t.startswith("ahead")) == sorted(
        f"ahead {n}\n" for n in range(3, 20)
    )
    assert (profile.data / "PLAYBOOK.md").read_text() == "third\n"


@pytest.mark.parametrize("bad", ["../x", ".x", "a/b", "", "..", "x/..", "é"])
def test_a_bad_id_is_refused_and_nothing_is_written(profile: Profile, bad: str) -> None:
    profile.run("_", "state")  # the data dir as it is before any verb
    profile.data.mkdir(parents=True, exist_ok=True)
    before = tree(profile.root)
    for args in (
        ("_", "goal", "write", bad, "body"),
        ("_", "goal", "archive", bad),
        ("_", "sensor", "write", bad, "#!/bin/sh"),
        ("_", "sensor", "remove", bad),
        ("_", "sensor", "test", bad),
    ):
        out = profile.run(*args)
        assert out.returncode == 2, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert tree(profile.root) == before


def test_a_flag_shaped_or_empty_body_is_never_written(profile: Profile) -> None:
    moved(profile, "_", "playbook", "write", "mine")
    helped = profile.run("_", "playbook", "write", "--help")
    assert helped.returncode == 0 and "Usage:" in helped.stdout
    for args in (
        ("_", "playbook", "write", "--", "--help"),
        ("_", "playbook", "write", "-"),  # stdin is /dev/null: an empty body
        ("_", "playbook", "write"),
        ("_", "goal", "write", "x", "-"),
        ("_", "goal", "write", "x", "--", "-v"),
        ("_", "notify"),
    ):
        out = profile.run(*args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
    assert (profile.data / "PLAYBOOK.md").read_text() == "mine\n"
    assert not (profile.data / "goals" / "x.md").exists()
    assert all("--help" not in line for line in journal(profile))


READER = textwrap.dedent(
    """
    import hashlib, os, sys
    goal, sensor, stop = sys.argv[1:4]
    seen = set()
    while not os.path.exists(stop):
        for path in (goal, sensor):
            try:
                with open(path, "rb") as f:
                    seen.add(f.read())
            except FileNotFoundError:
                pass
    sys.stdout.write("\\n".join(sorted(s.decode() .replace("\\n", "|") for s in seen)))
    """
)


def test_a_reader_never_sees_a_torn_goal_or_sensor_during_60_writes(
    profile: Profile, procs: Processes
) -> None:
    goal = profile.data / "goals" / "g.md"
    sensor = profile.data / "sensors" / "s.sh"
    stop = profile.root / "stop"
    profile.data.mkdir(parents=True, exist_ok=True)
    reader = procs.add(
        subprocess.Popen(
            [sys.executable, "-c", READER, str(goal), str(sensor), str(stop)],
            stdout=subprocess.PIPE,
            text=True,
        )
    )
    big = "x" * 200_000  # many write() calls: a torn read would be likely if writes were in place
    written = set()
    for n in range(30):
        goal_text = f"goal {n} {big}\n"
        sensor_text = f"#!/bin/sh\n# {n} {big}\necho '{{}}'\n"
        written |= {goal_text, sensor_text}
        moved(profile, "_", "goal", "write", "g", "-", stdin=goal_text)
        moved(profile, "_", "sensor", "write", "s", "-", stdin=sensor_text)
    stop.touch()
    seen, _ = reader.communicate(timeout=60)
    assert seen, "the reader saw nothing"
    for text in seen.split("\n"):
        assert text.replace("|", "\n") in written, text[:80]


def test_notify_hands_the_message_over_byte_for_byte_and_runs_nothing(
    profile: Profile, tmp_path: Path
) -> None:
    got = tmp_path / "args"
    recorder = tmp_path / "record-args"
    recorder.write_text(
        f"#!{sys.executable}\nimport sys\n"
        f"open({str(got)!r}, 'wb').write(b'\\0'.join(a.encode() for a in sys.argv[1:]))\n"
    )
    recorder.chmod(0o755)
    profile.write_config(f'[notify]\ncommand = ["{recorder}", "{{message}}"]\n')
    message = "a $(touch pwned) b `touch pwned2`; touch pwned3 'q' \"dq\""
    moved(profile, "_", "notify", message)
    assert got.read_bytes() == message.encode()
    assert not list(tmp_path.rglob("pwned*")) and not list(profile.data.rglob("pwned*"))
    assert journal(profile)[-1].endswith(f" notify: {message}")
    assert events(profile)[-1] == {**events(profile)[-1], "event": "notified", "message": message}


def test_notify_with_a_missing_notifier_is_exit_127_and_still_journaled(profile: Profile) -> None:
    profile.write_config('[notify]\ncommand = ["/nonexistent/notifier", "{message}"]\n')
    out = profile.run("_", "notify", "hello")
    assert out.returncode == 127 and "notifier not found" in out.stderr
    assert journal(profile)[-1].endswith(" notify: hello")


def test_a_verb_on_a_fifo_named_like_a_goal_is_one_line_and_leaves_it(profile: Profile) -> None:
    (profile.data / "goals").mkdir(parents=True)
    fifo = profile.data / "goals" / "f.md"
    os.mkfifo(fifo)
    out = profile.run("_", "goal", "write", "f", "text", timeout=10)
    assert out.returncode == 1 and "FIFO" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
