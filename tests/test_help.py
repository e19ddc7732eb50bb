"""The CLI a person meets first: bare ``looop``, the version, help that fits 80 columns."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid

import pytest
from conftest import LOOOP, Profile

from looop import __version__

# Every group a person lists with --help (``looop --help`` itself is the manual).
GROUPS = [["_"], ["config"], ["_", "worker"], ["_", "goal"], ["_", "sensor"], ["_", "playbook"]]


def _commands(listing: str) -> list[str]:
    """The lines of a --help's Commands: section."""
    _, _, rest = listing.partition("Commands:\n")
    return [line for line in rest.splitlines() if line.startswith("  ")]


def test_bare_looop_prints_a_short_overview_pointing_at_help_and_exits_0(profile: Profile) -> None:
    out = profile.run()
    assert out.returncode == 0 and out.stderr == ""
    assert (
        out.stdout.splitlines()[0]
        == f"looop {__version__}: a tiny control loop for one person's work."
    )
    assert "looop help" in out.stdout and "looop CMD --help" in out.stdout
    assert len(out.stdout.splitlines()) < 15


def test_version_and_dash_dash_version_print_one_string(profile: Profile) -> None:
    said = {profile.run(*args).stdout for args in (["version"], ["--version"], ["-V"])}
    assert said == {f"looop {__version__}\n"}


@pytest.mark.parametrize("group", GROUPS, ids=" ".join)
def test_no_command_description_is_cut_short_at_80_columns(
    profile: Profile, group: list[str]
) -> None:
    out = profile.run(*group, "--help", env={**profile.env, "COLUMNS": "80"})
    assert out.returncode == 0, out.stderr
    lines = _commands(out.stdout)
    assert lines, out.stdout
    for line in out.stdout.splitlines():
        assert len(line) <= 80, line
    assert [line for line in lines if line.endswith("...")] == []


def test_the_agent_groups_help_in_an_80_column_tmux_pane_shows_every_description_whole(
    profile: Profile,
) -> None:
    tmux = shutil.which("tmux")
    if tmux is None:
        pytest.fail("tmux is needed for this test (the README's test set-up installs it)")
    session = f"looop-help-{uuid.uuid4().hex[:8]}"
    socket = ["-L", session]  # a tmux server of this test's own
    env = " ".join(f"{k}={v!r}" for k, v in profile.env.items() if k.startswith(("LOOOP", "HOME")))
    command = f"env {env} {LOOOP} _ --help; echo DONE-{session}; sleep 60"
    subprocess.run(
        [tmux, *socket, "new-session", "-d", "-s", session, "-x", "80", "-y", "60", command],
        check=True,
    )
    try:
        deadline = time.monotonic() + 30
        pane = ""
        while f"DONE-{session}" not in pane and time.monotonic() < deadline:
            time.sleep(0.1)
            pane = subprocess.run(
                [tmux, *socket, "capture-pane", "-p", "-t", session],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        width = subprocess.run(
            [tmux, *socket, "display", "-p", "-t", session, "#{pane_width}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    finally:
        subprocess.run([tmux, *socket, "kill-server"], capture_output=True)
    assert width == "80"
    assert f"DONE-{session}" in pane, pane
    lines = _commands(pane)
    names = {line.split()[0] for line in lines if not line.startswith("   ")}
    assert {"state", "wait", "ask", "answer", "goal", "worker", "run"} <= names, pane
    assert [line for line in lines if line.rstrip().endswith("...")] == [], pane
