"""A beat's cost stays bounded as the data dir grows (issue 9).

The pulse is run against a big data dir (2,000 goals, a 50 MiB journal) with
a real notify socket and ``WATCHDOG_USEC``: what is asserted is behaviour (the
watchdog pings keep their period through the beats), never a time taken; the
figures are printed by ``bench/bench_probes.py``.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess

import pytest
from conftest import NotifyPeer, Processes, Profile, wait_for
from datasets import GOALS, big_data_dir

from looop.pulse import probes

PERIOD = 2.0  # WATCHDOG_USEC=2000000


def pings_through_beats(profile: Profile, procs: Processes, peer: NotifyPeer) -> list[float]:
    """Run the pulse for three beats past READY=1; the times of its WATCHDOG=1 pings."""
    pulse = procs.add(
        profile.popen(
            "pulse",
            env={
                **profile.env,
                "NOTIFY_SOCKET": str(peer.path),
                "WATCHDOG_USEC": str(int(PERIOD * 1_000_000)),
                "LOOOP_INTERVAL": "1",
            },
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    )
    wait_for(lambda: peer.first("READY=1"), timeout=60)
    record = next(profile.runtime.glob("*.beat.json"))
    wait_for(lambda: json.loads(record.read_text() or "{}").get("number", 0) >= 4, timeout=60)
    assert pulse.poll() is None, "the pulse died during the beats"
    return peer.times("WATCHDOG=1")


def assert_period_kept(pings: list[float]) -> None:
    assert len(pings) >= 3, f"only {len(pings)} watchdog pings over four beats"
    gaps = [round(b - a, 2) for a, b in itertools.pairwise(pings)]
    assert max(gaps) <= PERIOD, f"a gap between WATCHDOG=1 pings exceeds {PERIOD}s: {gaps}"


def no_user_sensors(profile: Profile) -> None:
    profile.run("sense")  # seed the layout, then take the starter sensor away
    for script in (profile.data / "sensors").glob("*.sh"):
        script.unlink()


def test_watchdog_pings_keep_their_period_through_beats_of_2000_goals_and_a_50_mib_journal(
    profile: Profile, procs: Processes, peer: NotifyPeer
) -> None:
    big_data_dir(profile.data)
    no_user_sensors(profile)
    assert_period_kept(pings_through_beats(profile, procs, peer))
    ages = profile.snapshot("sys-goals")["detail"]["since_acted"]
    assert len(ages) == GOALS + 1  # and the starter goal
    # The journal's tail names goals: they are aged, whatever the scan's bound.
    assert sum(age is not None for age in ages.values()) > 100


def test_a_journal_ending_in_one_long_line_of_joined_ids_does_not_stall_the_beat(
    profile: Profile, procs: Processes, peer: NotifyPeer
) -> None:
    # The tokeniser's worst case: a line as long as the scan made of one run
    # of ids (every word is a goal, every span a candidate).
    joined = ".".join(f"g{i % GOALS}" for i in range(40_000))
    big_data_dir(profile.data, last_line=f"- 2026-12-02 10:00 {joined}\n")
    no_user_sensors(profile)
    assert_period_kept(pings_through_beats(profile, procs, peer))
    assert profile.snapshot("sys-goals")["detail"]["since_acted"]["g7"] is not None


IDS = ["setup", "setup.md", "my-goal", "a", "a.b", "x-1", "g10", "g1", "v2.0-rc", "ü-goal"]
TEXTS = [
    "worked on goals/setup.md and my-goal",
    "unrelated: setupxy, quietly, my-goals, xa",
    "a.b.c and a-b, g10g1 g1.g10 (g10)",
    "v2.0-rc.1 then ü-goal; über-ü-goal",
    "-a- .a. a_b _a x-1x x-1-x",
    "",
]


@pytest.mark.parametrize("text", TEXTS)
def test_a_line_names_exactly_the_ids_a_whole_word_match_finds(text: str) -> None:
    wanted = dict.fromkeys(IDS)
    expected = {gid for gid in IDS if re.search(rf"\b{re.escape(gid)}\b", text)}
    assert probes.mentions(text, wanted) == expected


# --- every time knob has an upper bound a real user could want ---------------

BOUNDS = {"interval": 86400, "sensor_timeout": 86400, "session_ttl": 31536000}


@pytest.mark.parametrize("key", sorted(BOUNDS))
def test_config_set_refuses_a_time_knob_beyond_its_bound_and_keeps_the_file(
    profile: Profile, key: str
) -> None:
    profile.write_config("# mine\ninterval = 30\n")
    before = profile.config.read_bytes()
    for raw in ("1e308", str(BOUNDS[key] + 1)):
        out = profile.run("config", "set", key, raw)
        assert out.returncode == 78, out
        assert out.stderr.count("\n") == 1 and out.stderr.startswith("looop: "), out.stderr
        assert f"{key}: must be <= {BOUNDS[key]}" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
        assert profile.config.read_bytes() == before
    assert profile.run("config", "set", key, str(BOUNDS[key])).returncode == 0
    assert profile.run("config", "get", key).stdout.strip() == str(BOUNDS[key])


@pytest.mark.parametrize("key", sorted(BOUNDS))
def test_a_config_file_with_a_time_knob_of_1e308_stops_sense_and_pulse_with_exit_78_naming_the_line(
    profile: Profile, key: str
) -> None:
    profile.write_config(f"# looop\n\n{key} = 1e308\n")
    for command in (["sense"], ["pulse"], ["config", "show"]):
        out = profile.run(*command, timeout=30)
        assert out.returncode == 78, (command, out)
        assert f"{profile.config}:3: {key}: must be <= {BOUNDS[key]}" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr


@pytest.mark.parametrize("key", sorted(BOUNDS))
def test_an_environment_knob_of_1e308_is_refused_naming_the_variable(
    profile: Profile, key: str
) -> None:
    variable = f"LOOOP_{key.upper()}"
    out = profile.run("sense", env={**profile.env, variable: "1e308"})
    assert out.returncode == 78, out
    assert f"${variable}: {key}: must be <= {BOUNDS[key]}" in out.stderr, out.stderr


def test_config_show_says_each_time_knobs_bound(profile: Profile) -> None:
    shown = profile.run("config", "show").stdout
    for key, bound in BOUNDS.items():
        line = next(x for x in shown.splitlines() if x.startswith(f"{key} ="))
        assert str(bound) in line.split("#", 1)[1], line


# --- a goals/ that is a dangling link ----------------------------------------

DANGLING = "is a symlink to a missing directory: remove the link or create its target"


def test_a_goals_dir_that_is_a_dangling_link_is_named_with_its_fix_by_sense_and_state(
    profile: Profile,
) -> None:
    assert profile.run("sense").returncode == 0
    goals = profile.data / "goals"
    for entry in goals.rglob("*"):
        if entry.is_file():
            entry.unlink()
    (goals / "archive").rmdir()
    goals.rmdir()
    goals.symlink_to(profile.root / "notes-not-mounted" / "goals")

    sensed = profile.run("sense")
    assert sensed.returncode != 0
    assert sensed.stderr == f"looop: {goals}: {DANGLING}\n", sensed.stderr
    assert goals.is_symlink() and not goals.exists(), "the user's link was replaced"

    state = profile.run("_", "state")
    assert state.returncode == 0, state.stderr
    assert f"problem     goals {DANGLING}" in state.stdout.splitlines(), state.stdout
    problems = profile.state()["problems"]
    assert {"path": "goals", "why": DANGLING} in problems, problems


def test_a_goals_dir_that_becomes_a_dangling_link_under_a_beat_is_reported_by_the_goals_probe(
    profile: Profile,
) -> None:
    assert profile.run("sense").returncode == 0
    paths = profile.paths
    goals = profile.data / "goals"
    goals.rename(profile.root / "goals-moved")
    goals.symlink_to(profile.root / "notes-not-mounted")
    reading = probes.sys_goals(paths)
    assert reading["detail"]["since_acted"] == {}
    assert reading["detail"]["problems"] == [{"path": "goals", "why": DANGLING}]
