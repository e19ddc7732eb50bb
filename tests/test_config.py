"""Configuration (SPEC §2): environment > file > default, and exit 78 that names the place.

A config that is not a small regular file is one error, never a hang; an
unknown key on the command line is a usage error.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Profile

from looop import config
from looop.pulse import sensors


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
    assert config.load(profile.config, environ={}) == config.defaults()


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


def test_the_defaults_are_written_once_in_the_knob_table() -> None:
    assert config.as_table(config.defaults()) == {k.key: k.default for k in config.KNOBS.values()}
    fields = {f.name: f for f in dataclasses.fields(config.Config) if f.name != "warnings"}
    assert set(fields) == {k.attr for k in config.KNOBS.values()}
    assert all(f.default is dataclasses.MISSING for f in fields.values())
    assert all(f.default is dataclasses.MISSING for f in dataclasses.fields(sensors.Limits))


def make_fifo(path: Path) -> None:
    os.mkfifo(path)


def make_directory(path: Path) -> None:
    path.mkdir()


def make_oversized(path: Path) -> None:
    path.write_bytes(b"# " + b"x" * (1 << 20) + b"\n")


@pytest.mark.parametrize(
    ("make", "what"),
    [
        (make_fifo, "is a FIFO, not a regular file"),
        (make_directory, "is a directory, not a regular file"),
        (make_oversized, "is larger than 1 MiB"),
    ],
)
def test_a_config_that_is_not_a_small_regular_file_is_one_error_and_no_hang(
    profile: Profile, make: Callable[[Path], None], what: str
) -> None:
    profile.data.mkdir(parents=True)
    make(profile.config)
    for args in (("config", "show"), ("config", "get", "interval"), ("sense",)):
        out = profile.run(*args, timeout=20)
        assert out.returncode == 78, (args, out.stderr)
        assert out.stderr.strip() == f"looop: {profile.config}: {what}"


def test_a_config_naming_dev_zero_is_one_error_not_a_memory_error(profile: Profile) -> None:
    out = profile.run("config", "show", env={**profile.env, "LOOOP_CONFIG": "/dev/zero"})
    assert out.returncode == 78
    assert out.stderr.strip() == "looop: /dev/zero: is a character device, not a regular file"


def test_a_missing_config_is_still_the_defaults(profile: Profile) -> None:
    out = profile.run("config", "show", "--json")
    assert out.returncode == 0, out.stderr
    assert not profile.config.exists()


def test_an_unknown_key_on_the_command_line_is_a_usage_error(profile: Profile) -> None:
    profile.write_config("interval = 30\n")
    for key in ("nope", "worker.max_live"):
        got = profile.run("config", "get", key)
        put = profile.run("config", "set", key, "1")
        assert (got.returncode, put.returncode) == (2, 2)
        assert got.stderr == put.stderr
        known = ", ".join(config.KNOBS)
        assert got.stderr.strip() == f"looop: unknown key {key!r} (known: {known})"
    assert profile.config.read_text() == "interval = 30\n"
