"""An ordinary OS error is one line, never a traceback (SPEC §6).

Whatever command meets a permission problem, a path that is not a directory
or a file where a directory should be, the one handler in ``looop.__main__``
prints ``looop: <file>: <reason>`` on stderr and exits 1. Config files on a
read-only or full file system are covered in test_config; the installer's own
refusal of an unwritable unit dir in test_packaging; here are the generic
paths that reach the handler, and its two quiet cases: ^C (exit 130) and a
reader that closed stdout early.

Root enters every directory, so the permission cases run as the normal user
``looop-test`` when the tests run as root, with a looop installed where that
user can run it (``systemd_harness.build_venv``); run as a normal user, they
run as that user.
"""

from __future__ import annotations

import errno
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import LOOOP, Processes, Profile, wait_for
from systemd_harness import TEST_USER, _ensure_user, build_venv


def assert_one_line(out: subprocess.CompletedProcess[str], code: int, *named: str) -> None:
    """The command failed with ``code`` and said why on exactly one line naming ``named``."""
    assert "Traceback" not in out.stderr, out.stderr
    assert out.returncode == code, out.stderr
    assert out.stderr.startswith("looop: "), out.stderr
    assert out.stderr.endswith("\n") and out.stderr.count("\n") == 1, out.stderr
    for text in named:
        assert text in out.stderr, out.stderr


def test_sense_where_the_data_dir_is_a_file_says_so_in_one_line(profile: Profile) -> None:
    profile.data.write_text("not a directory\n")
    env = dict(profile.env, LOOOP_CONFIG=str(profile.root / "config.toml"))
    out = profile.run("sense", env=env)
    assert_one_line(out, 1, str(profile.data), os.strerror(errno.EEXIST))
    assert profile.data.read_text() == "not a directory\n"


def test_install_where_the_unit_dir_cannot_be_created_says_so_in_one_line(
    profile: Profile,
) -> None:
    # XDG_CONFIG_HOME is a file, so systemd/user cannot be made under it; a
    # systemctl that succeeds lets install get as far as writing.
    config_home = profile.root / "config-home"
    config_home.write_text("")
    bin_dir = profile.root / "bin"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "systemctl").chmod(0o755)
    env = dict(
        profile.env,
        XDG_CONFIG_HOME=str(config_home),
        PATH=f"{bin_dir}{os.pathsep}{profile.env.get('PATH', '/usr/bin:/bin')}",
    )
    out = profile.run("install", "--systemd", "--no-start", env=env)
    assert_one_line(out, 1, str(config_home / "systemd"), os.strerror(errno.ENOTDIR))


def test_interrupting_a_command_exits_130_without_a_traceback(
    profile: Profile, procs: Processes
) -> None:
    pulse = procs.add(profile.popen("pulse"))
    wait_for(lambda: profile.run("status").returncode == 0 or pulse.poll() is not None)
    assert pulse.poll() is None, pulse.stderr.read() if pulse.stderr else ""
    ready = profile.root / "armed"
    waiter = procs.add(
        profile.popen(
            "_", "wait", "--timeout", "60", env=dict(profile.env, LOOOP_TEST_WAIT_READY=str(ready))
        )
    )
    wait_for(lambda: ready.exists() or waiter.poll() is not None)
    waiter.send_signal(signal.SIGINT)
    _, err = waiter.communicate(timeout=30)
    assert waiter.returncode == 130, err
    assert "Traceback" not in err and err.strip() == "", err


def test_a_reader_that_closes_stdout_early_gets_a_quiet_exit(profile: Profile) -> None:
    for args in (["status", "--json"], ["_", "state", "--json"], ["config", "show"]):
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            out = subprocess.run(
                [LOOOP, *args],
                env=profile.env,
                stdout=write_end,
                stderr=subprocess.PIPE,
                text=True,
                timeout=60,
            )
        finally:
            os.close(write_end)
        assert (out.returncode, out.stderr) == (1, ""), args


@dataclass
class NormalUser:
    """Runs the installed looop as a user who is not root."""

    looop: str
    uid: int
    as_user: list[str]  # the prefix that runs a command as that user

    def run(self, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.as_user, "env", "-i", *(f"{k}={v}" for k, v in env.items()), self.looop, *args],
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )


@pytest.fixture(scope="module")
def normal_user() -> Iterator[NormalUser]:
    if os.geteuid() != 0:
        yield NormalUser(LOOOP, os.geteuid(), [])
        return
    uid = _ensure_user(TEST_USER).pw_uid
    where = Path(tempfile.mkdtemp(prefix="looop-errors-venv-"))
    try:
        where.chmod(0o755)  # this session's venv lives under a root-only home
        venv = build_venv(where / "install")
        yield NormalUser(str(venv / "bin" / "looop"), uid, ["runuser", "-u", TEST_USER, "--"])
    finally:
        shutil.rmtree(where, ignore_errors=True)


@pytest.fixture
def locked_out(normal_user: NormalUser) -> Iterator[tuple[Path, dict[str, str]]]:
    """A data dir the normal user cannot enter, and that user's environment for it."""
    base = Path(tempfile.mkdtemp(prefix="looop-errors-"))
    data = base / "data"
    try:
        base.chmod(0o755)
        home, run = base / "home", base / "run"
        for path in (home, run):
            path.mkdir(mode=0o700)
            os.chown(path, normal_user.uid, pwd.getpwuid(normal_user.uid).pw_gid)
        data.mkdir()
        data.chmod(0)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "LANG": "C",
            "LOOOP_DATA_DIR": str(data),
            "LOOOP_RUNTIME_DIR": str(run / "looop"),
        }
        yield data, env
    finally:
        data.chmod(0o700)
        shutil.rmtree(base, ignore_errors=True)


def test_state_on_a_data_dir_the_user_cannot_enter_says_so_in_one_line(
    normal_user: NormalUser, locked_out: tuple[Path, dict[str, str]]
) -> None:
    data, env = locked_out
    for args in (["_", "state"], ["_", "state", "--json"]):
        out = normal_user.run(env, *args)
        assert_one_line(out, 1, str(data), os.strerror(errno.EACCES))
        assert out.stdout == ""


def test_wait_on_a_data_dir_the_user_cannot_enter_says_so_in_one_line(
    normal_user: NormalUser, locked_out: tuple[Path, dict[str, str]]
) -> None:
    data, env = locked_out
    out = normal_user.run(env, "_", "wait", "--timeout", "1")
    assert_one_line(out, 1, str(data), os.strerror(errno.EACCES))
    assert out.stdout == ""


def test_a_module_that_cannot_be_loaded_is_one_line(profile: Profile, tmp_path: Path) -> None:
    """An import failing inside a command (its file unreadable) is a line, not a traceback."""
    site = tmp_path / "site"
    site.mkdir()
    # Python loads sitecustomize at start-up; it makes looop.tree fail to import.
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['looop.tree'] = None\n")
    env = dict(profile.env, PYTHONPATH=str(site))
    out = subprocess.run(
        [LOOOP, "reap"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert_one_line(out, 1, "cannot load looop.tree")
