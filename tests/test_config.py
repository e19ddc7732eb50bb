"""Configuration (SPEC §2): environment > file > default, and exit 78 that names the place."""

from __future__ import annotations

import pytest
from conftest import Profile

from looop import config


def test_a_wrong_type_exits_78_naming_file_line_and_key(profile: Profile) -> None:
    profile.write_config('# mine\nsensor_timeout = 5\ninterval = "abc"\n')
    out = profile.run("sense")
    assert out.returncode == 78
    assert f"{profile.config}:3: interval:" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("text", "line", "key"),
    [
        ("interval = 5\nsensor_timeout = -1\n", 2, "sensor_timeout"),
        ("interval = 5\n\nbogus = 1\n", 3, "bogus"),
        ("interval = true\n", 1, "interval"),
        ("sensor_concurrency = 0\n", 1, "sensor_concurrency"),
        ("sensor_max_bytes = 1.5\n", 1, "sensor_max_bytes"),
        ("interval = 5\n[pulse]\nx = 1\n", 2, "pulse"),
    ],
)
def test_invalid_values_are_located(profile: Profile, text: str, line: int, key: str) -> None:
    profile.write_config(text)
    out = profile.run("config", "show")
    assert out.returncode == 78
    assert f"{profile.config}:{line}: {key}:" in out.stderr


def test_bad_toml_names_the_line(profile: Profile) -> None:
    profile.write_config("interval = 5\nthis is not toml\n")
    out = profile.run("sense")
    assert out.returncode == 78
    assert f"{profile.config}:2:" in out.stderr and "invalid TOML" in out.stderr


def test_interval_zero_is_clamped_with_a_warning(profile: Profile) -> None:
    profile.write_config("interval = 0\n")
    out = profile.run("config", "get", "interval")
    assert out.returncode == 0
    assert out.stdout.strip() == "1"
    assert "interval 0s is below the minimum; using 1s" in out.stderr
    sensed = profile.run("sense")
    assert sensed.returncode == 0 and "below the minimum" in sensed.stderr
    loaded = config.load(profile.config, environ={})
    assert loaded.interval == 1.0
    assert loaded.warnings and "below the minimum" in loaded.warnings[0]


def test_environment_overrides_the_file(profile: Profile) -> None:
    profile.write_config("interval = 30\n")
    assert profile.run("config", "get", "interval").stdout.strip() == "30"
    env = dict(profile.env, LOOOP_INTERVAL="7")
    assert profile.run("config", "get", "interval", env=env).stdout.strip() == "7"
    bad = dict(profile.env, LOOOP_INTERVAL="soon")
    out = profile.run("config", "get", "interval", env=bad)
    assert out.returncode == 78 and "$LOOOP_INTERVAL" in out.stderr


def test_missing_config_uses_defaults_and_is_written_on_first_run(profile: Profile) -> None:
    assert not profile.config.exists()
    assert profile.run("config", "get", "sensor_max_bytes").stdout.strip() == "8192"
    assert profile.run("config", "get", "session_ttl").stdout.strip() == "259200"
    assert profile.run("sense").returncode == 0
    assert config.load(profile.config, environ={}) == config.Config()


def test_config_set_validates_and_keeps_other_keys(profile: Profile) -> None:
    profile.write_config("interval = 30\n")
    out = profile.run("config", "set", "sensor_timeout", "12")
    assert out.returncode == 0, out.stderr
    assert profile.run("config", "get", "sensor_timeout").stdout.strip() == "12"
    assert profile.run("config", "get", "interval").stdout.strip() == "30"
    refused = profile.run("config", "set", "sensor_timeout", "-3")
    assert refused.returncode == 78
    assert profile.run("config", "get", "sensor_timeout").stdout.strip() == "12"
    assert profile.run("config", "path").stdout.strip() == str(profile.config)


def test_config_set_writes_through_a_symlinked_config(profile: Profile) -> None:
    real = profile.root / "dotfiles" / "looop.toml"
    real.parent.mkdir()
    real.write_text("interval = 30\n")
    profile.data.mkdir(parents=True)
    profile.config.symlink_to(real)
    assert profile.run("config", "set", "interval", "45").returncode == 0
    assert profile.config.is_symlink()
    assert "interval = 45" in real.read_text()
