"""``looop doctor`` (SPEC §6): each check one line, ✓ or ✗ with the fix; exit 1 on any ✗.

Run as the installed binary against a profile of its own. The healthy case
under a real user manager (an installed unit, a user bus that answers) is
in test_systemd.py; here the detached world, and every way it is broken.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from conftest import Profile, make_session

from looop.service import render

HEALTHY = '[worker]\ncommand = ["sleep", "{prompt_file}"]\n'


def doctor(profile: Profile, **env: str) -> tuple[int, list[str]]:
    out = profile.run("doctor", env={**profile.env, **env})
    assert out.stderr == "", out.stderr
    return out.returncode, out.stdout.splitlines()


def failed(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("✗")]


@pytest.fixture
def healthy(profile: Profile, tmp_path: Path) -> Profile:
    profile.write_config(HEALTHY)
    profile.sensor("fine", "echo '{\"signal\": 1}'")
    assert profile.run("sense").returncode == 0
    # No user manager answers for this profile: the detached world, which works.
    profile.env["XDG_RUNTIME_DIR"] = str(tmp_path / "no-manager")
    return profile


def test_doctor_on_a_healthy_profile_exits_0_with_every_check_passed_or_not_needed(
    healthy: Profile,
) -> None:
    code, lines = doctor(healthy)
    assert code == 0, lines
    assert failed(lines) == []
    assert all(line[:2] in ("✓ ", "- ") for line in lines), lines
    said = "\n".join(lines)
    for check in ("runtime dir", "config", "data dir", "sensor fine.sh", "worker command"):
        assert f"✓ {check}: " in said, said
    assert "- service: not installed" in said


def test_a_sensor_without_the_run_bit_is_named_with_its_fix(healthy: Profile) -> None:
    script = healthy.sensor("lazy", "echo '{}'", mode=0o644)
    code, lines = doctor(healthy)
    assert code == 1
    assert failed(lines) == [f"✗ sensor lazy.sh: is not executable; fix: chmod +x {script}"]


def test_a_sensor_without_a_shebang_is_named_with_its_fix(healthy: Profile) -> None:
    script = healthy.data / "sensors" / "bare.sh"
    script.write_text("echo '{}'\n")
    script.chmod(0o755)
    code, lines = doctor(healthy)
    assert code == 1
    [line] = failed(lines)
    assert line.startswith("✗ sensor bare.sh: has no #! line; fix: ") and str(script) in line


def test_a_sensor_whose_last_reading_was_not_json_is_named(healthy: Profile) -> None:
    healthy.sensor("chatty", "echo hello")
    assert "failed: chatty" in healthy.run("sense").stdout
    code, lines = doctor(healthy)
    assert code == 1
    [line] = failed(lines)
    assert line.startswith("✗ sensor chatty.sh: printed something that is not one JSON value")
    assert "looop _ sensor test chatty" in line


def test_an_installed_unit_pointing_at_a_removed_venv_is_stale(
    healthy: Profile, tmp_path: Path
) -> None:
    gone = tmp_path / "old-venv" / "bin" / "looop"  # never created: the venv was removed
    [unit] = [r for r in render.render_systemd(healthy.paths, [str(gone)]) if r.role == "pulse"]
    # This profile's own unit name (not the default profile's looop.service).
    installed = Path(healthy.env["XDG_CONFIG_HOME"]) / "systemd" / "user" / unit.path.name
    installed.parent.mkdir(parents=True)
    installed.write_text(unit.text)
    code, lines = doctor(healthy)
    assert code == 1
    stale = [line for line in failed(lines) if "installed systemd pulse" in line]
    assert stale == [
        f"✗ installed systemd pulse {installed}: runs {gone}, which does not exist "
        "(a removed or moved venv?); fix: run looop install again from the looop you use "
        "(it rewrites the command)"
    ]
    # Installed under systemd, the pulse now needs a user manager, and none answers.
    assert any(line.startswith("✗ user manager: no systemd user manager") for line in lines)


def test_no_user_bus_fails_when_workers_are_forced_onto_systemd(healthy: Profile) -> None:
    healthy.write_config(HEALTHY + 'supervisor = "systemd"\n')
    code, lines = doctor(healthy)
    assert code == 1
    [line] = failed(lines)
    socket = Path(healthy.env["XDG_RUNTIME_DIR"]) / "systemd" / "private"
    assert line.startswith(f"✗ user manager: no systemd user manager answers at {socket}; fix: ")
    assert "XDG_RUNTIME_DIR" in line


def test_a_worker_command_not_on_path_is_named(healthy: Profile) -> None:
    healthy.write_config('[worker]\ncommand = ["no-such-agent-cli", "{prompt}"]\n')
    code, lines = doctor(healthy)
    assert code == 1
    [line] = failed(lines)
    assert line.startswith("✗ worker command: 'no-such-agent-cli' is not on PATH; fix: ")


def test_a_broken_config_is_named_with_file_line_and_key(healthy: Profile) -> None:
    healthy.write_config('interval = "often"\n')
    code, lines = doctor(healthy)
    assert code == 1
    [line] = failed(lines)
    assert line.startswith(f"✗ config: {healthy.config}:1: interval: ")


def test_a_runtime_dir_that_is_a_symlink_is_refused(healthy: Profile, tmp_path: Path) -> None:
    shutil.rmtree(healthy.runtime)  # the healthy profile's sense made a real one
    os.symlink(tmp_path, healthy.runtime)
    code, lines = doctor(healthy)
    assert code == 1
    [line] = [x for x in failed(lines) if "runtime dir" in x]
    assert f"runtime dir {healthy.runtime} is a symlink" in line and "fix: " in line


def test_a_fresh_install_passes_with_a_missing_worker_command_a_warning_until_workers_are_used(
    profile: Profile, tmp_path: Path
) -> None:
    """No config at all (the default worker command, claude, is not installed here)."""
    env = {"XDG_RUNTIME_DIR": str(tmp_path / "no-manager"), "PATH": "/usr/bin:/bin"}
    code, lines = doctor(profile, **env)
    assert code == 0, lines
    [warning] = [line for line in lines if line.startswith("! ")]
    assert warning.startswith("! worker command: 'claude' is not on PATH (matters once a worker")
    assert "fix: install it, or point looop at it: looop config set worker.command" in warning

    out = profile.run("doctor", "--json", env={**profile.env, **env})
    report = json.loads(out.stdout)
    assert out.returncode == 0 and report["ok"] is True
    assert all({"name", "ok", "level", "detail"} <= set(c) for c in report["checks"])
    [worker] = [c for c in report["checks"] if c["name"] == "worker command"]
    assert (worker["ok"], worker["level"]) == (True, "warning") and "fix" in worker
    assert [c["level"] for c in report["checks"]].count("failure") == 0

    # A worker was started once (its session is there, long ended): now it is a failure.
    make_session(profile.data / "sessions", "w1", ended=time.time() - 60)
    code, lines = doctor(profile, **env)
    assert code == 1
    assert failed(lines) == [
        line.replace(" (matters once a worker starts)", "").replace("! ", "✗ ", 1)
        for line in [warning]
    ]
    out = profile.run("doctor", "--json", env={**profile.env, **env})
    report = json.loads(out.stdout)
    assert out.returncode == 1 and report["ok"] is False
    [worker] = [c for c in report["checks"] if c["name"] == "worker command"]
    assert (worker["ok"], worker["level"]) == (False, "failure")

    # So it is once a runner is configured, before any worker ran.
    shutil.rmtree(profile.data / "sessions")
    profile.write_config('[runners.mine]\ncommand = ["sleep", "{prompt}"]\n')
    code, lines = doctor(profile, **env)
    assert code == 1 and [x[:35] for x in failed(lines)] == ["✗ worker command: 'claude' is not o"]
