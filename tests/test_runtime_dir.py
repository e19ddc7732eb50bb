"""The runtime dir (SPEC §1) is refused unless it is a private directory of ours."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest
from conftest import Profile

from looop import paths


def _other_uid() -> int:
    for name in ("nobody", "daemon"):
        try:
            uid = pwd.getpwnam(name).pw_uid
        except KeyError:
            continue
        if uid != os.getuid():
            return uid
    pytest.skip("no other user to own the directory")


@pytest.mark.parametrize(
    "attack",
    [
        pytest.param("other-owner", marks=pytest.mark.root("gives a directory to another user")),
        "mode-0777",
        "symlink",
    ],
)
def test_hostile_runtime_dir_is_refused(profile: Profile, attack: str) -> None:
    real = profile.root / "real-run"
    real.mkdir(mode=0o700)
    if attack == "other-owner":
        profile.runtime.mkdir(mode=0o700)
        os.chown(profile.runtime, _other_uid(), -1)
        expect = "owned by uid"
    elif attack == "mode-0777":
        profile.runtime.mkdir()
        profile.runtime.chmod(0o777)
        expect = "mode 0777"
    else:
        profile.runtime.symlink_to(real)
        expect = "symlink"
    out = profile.run("sense")
    assert out.returncode != 0
    assert expect in out.stderr and str(profile.runtime) in out.stderr
    assert list(real.iterdir()) == [], "looop wrote into the link's target"
    status = profile.run("status")
    assert status.returncode == 4, status.stdout + status.stderr


def test_runtime_dir_is_created_private(profile: Profile) -> None:
    assert profile.run("sense").returncode == 0
    st = profile.runtime.stat()
    assert st.st_mode & 0o777 == 0o700
    lock = next(profile.runtime.glob("*.lock"))
    assert lock.stat().st_mode & 0o777 == 0o600
    marker = next(profile.runtime.glob("*.datadir"))
    assert marker.read_text().strip() == str(profile.data)


def test_resolution_order(monkeypatch: pytest.MonkeyPatch, tmp_path: os.PathLike[str]) -> None:
    for var in ("LOOOP_DATA_DIR", "LOOOP_CONFIG", "LOOOP_RUNTIME_DIR", "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_STATE_HOME", f"{tmp_path}/state")
    resolved = paths.resolve()
    assert resolved.data_dir == Path(f"{tmp_path}/state/looop")
    assert resolved.default_profile
    assert resolved.config_file == resolved.data_dir / "config.toml"
    monkeypatch.setenv("XDG_RUNTIME_DIR", f"{tmp_path}/xdg")
    assert paths.resolve().runtime_dir == f"{tmp_path}/xdg/looop"
    monkeypatch.setenv("LOOOP_DATA_DIR", f"{tmp_path}/other")
    other = paths.resolve()
    assert not other.default_profile
    default_again = paths.Paths(resolved.data_dir, resolved.config_file, other.runtime_dir, True)
    assert os.path.dirname(other.lock_file) == os.path.dirname(default_again.lock_file)
    assert other.lock_file != default_again.lock_file, "two data dirs share a lock"
    monkeypatch.setenv("LOOOP_RUNTIME_DIR", f"{tmp_path}/rt")
    assert paths.resolve().runtime_dir == f"{tmp_path}/rt"
    # One data dir reached through a symlink is one profile with one lock.
    (tmp_path / "other").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "other")
    monkeypatch.setenv("LOOOP_DATA_DIR", f"{tmp_path}/link")
    assert os.path.basename(paths.resolve().lock_file) == os.path.basename(other.lock_file)
