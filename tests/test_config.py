"""Configuration (SPEC §2): environment > file > default, and exit 78 that names the place.

``config set`` edits the user's own file: comments, order and types survive,
concurrent edits lose nothing, and a FIFO or device named as the config is
never replaced. Ordinary OS errors (read-only, full disk, permission) are one
line, exit 1; the permission case runs as a normal user, since root would
not be refused.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import stat
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import LOOOP, PROJECT, Processes, Profile, as_plain_user, wait_for

from looop import config, config_edit
from looop.knobs import KNOBS, PULSE_READS
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
        ("[worker]\ntimeout = 5\n\n[run]\ntimeout = -1\n", 5, "run.timeout"),
        ("[run]\ntimeout = 5\n[worker]\ntimeout = -1\n", 4, "worker.timeout"),
        ("[worker]\nmax_live = 0\n", 2, "worker.max_live"),
        ("[worker]\nbogus = 1\n", 2, "worker.bogus"),
        ("worker = 5\n", 1, "worker"),
        ('[worker]\ncommand = "claude -p"\n', 2, "worker.command"),
        ("[worker]\ncommand = []\n", 2, "worker.command"),
        ('[worker]\ncommand = ["", "x"]\n', 2, "worker.command"),
        ('[worker]\nsupervisor = "cron"\n', 2, "worker.supervisor"),
        ("interval = 5\nnotify.command = [1]\n", 2, "notify.command"),
        ('[worker]\nstuck_kill = "yes"\n', 2, "worker.stuck_kill"),
        ("[worker]\nstuck_kill = 1\n", 2, "worker.stuck_kill"),
        ("[worker]\nstuck_after = -1\n", 2, "worker.stuck_after"),
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


def test_the_tables_resolve_environment_over_file_over_default(profile: Profile) -> None:
    profile.write_config(
        '[worker]\ncommand = ["agent", "--task", "{prompt_file}"]\nmax_live = 2\n'
        '[notify]\ncommand = ["record", "{message}"]\n'
    )
    loaded = config.load(profile.config, environ={"LOOOP_RUN_TIMEOUT": "9"})
    assert loaded.worker_command == ("agent", "--task", "{prompt_file}")
    assert loaded.worker_max_live == 2
    assert loaded.worker_supervisor == "auto" and loaded.worker_timeout == 0
    assert loaded.run_timeout == 9.0
    assert loaded.notify_command == ("record", "{message}")
    env = {"LOOOP_WORKER_COMMAND": "claude -p '{prompt}' --model \"a b\""}
    assert config.load(profile.config, environ=env).worker_command == (
        "claude",
        "-p",
        "{prompt}",
        "--model",
        "a b",
    )
    assert config.defaults().notify_command is None


def test_a_switch_is_a_toml_boolean_in_the_file_and_a_word_elsewhere(profile: Profile) -> None:
    profile.write_config("[worker]\nstuck_kill = true\nstuck_after = 30\n")
    loaded = config.load(profile.config, environ={})
    assert loaded.worker_stuck_kill is True and loaded.worker_stuck_after == 30.0
    assert (
        config.load(profile.config, environ={"LOOOP_WORKER_STUCK_KILL": "off"}).worker_stuck_kill
        is False
    )
    assert config.defaults().worker_stuck_kill is False
    assert profile.run("config", "get", "worker.stuck_kill").stdout == "true\n"
    assert profile.run("config", "set", "worker.stuck_kill", "no").returncode == 0
    assert "stuck_kill = false" in profile.config.read_text()
    shown = profile.run("config", "show", "--json").stdout
    assert json.loads(shown)["worker.stuck_kill"] is False


def test_a_bad_table_knob_in_the_environment_names_the_variable(profile: Profile) -> None:
    for env, value in [
        ("LOOOP_WORKER_COMMAND", "claude 'unclosed"),
        ("LOOOP_WORKER_SUPERVISOR", "cron"),
        ("LOOOP_WORKER_MAX_LIVE", "0"),
        ("LOOOP_WORKER_STUCK_KILL", "maybe"),
    ]:
        out = profile.run("config", "show", env={**profile.env, env: value})
        assert out.returncode == 78, (env, out.stderr)
        assert out.stderr.startswith(f"looop: ${env}: "), out.stderr
        assert len(out.stderr.strip().splitlines()) == 1


def test_config_set_edits_a_table_and_unsets_an_unset_by_default_knob(profile: Profile) -> None:
    profile.write_config("# mine\n[worker]\ntimeout = 5 # five\n")
    assert profile.run("config", "set", "worker.command", "agent -p '{prompt}'").returncode == 0
    assert profile.run("config", "set", "notify.command", "record {message}").returncode == 0
    text = profile.config.read_text()
    assert text.startswith("# mine\n[worker]\ntimeout = 5 # five\n"), text
    table = tomllib.loads(text)
    assert table["worker"]["command"] == ["agent", "-p", "{prompt}"]
    assert table["notify"]["command"] == ["record", "{message}"]
    got = profile.run("config", "get", "worker.command").stdout.strip()
    assert got == '["agent", "-p", "{prompt}"]'
    assert profile.run("config", "set", "notify.command", "").returncode == 0
    assert "command" not in tomllib.loads(profile.config.read_text()).get("notify", {})
    assert profile.run("config", "get", "notify.command").stdout == "\n"
    refused = profile.run("config", "set", "worker.command", "")
    assert refused.returncode == 78 and "worker.command" in refused.stderr


def test_the_first_run_file_writes_the_tables_and_loads_back_as_the_defaults(
    profile: Profile,
) -> None:
    assert config_edit.write_defaults_if_missing(profile.config)
    table = tomllib.loads(profile.config.read_text())
    assert table["worker"]["command"] == ["claude", "-p", "{prompt}"]
    assert table["run"] == {"timeout": 300}
    assert "notify" not in table  # unset by default: nothing to write
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
    fields = set(config.Config.FIELDS) - {"runners", "warnings"}
    assert fields == {k.attr for k in config.KNOBS.values()}
    assert fields == {
        f for f in config.Config.__annotations__ if f not in ("runners", "warnings", "FIELDS")
    }
    given = {name: getattr(config.defaults(), name) for name in config.Config.FIELDS}
    del given["interval"]
    with pytest.raises(TypeError):  # no defaults of its own
        config.Config(**given)
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


USER_FILE = """\
# my looop
sensor_timeout = 5   # per sensor

# how often, in seconds
interval = 30
session_ttl    =    100
"""


def test_config_set_keeps_comments_order_and_formatting(profile: Profile) -> None:
    profile.write_config(USER_FILE)
    out = profile.run("config", "set", "interval", "45")
    assert out.returncode == 0, out.stderr
    assert profile.config.read_text() == USER_FILE.replace("interval = 30", "interval = 45")
    out = profile.run("config", "set", "sensor_timeout", "7")
    assert out.returncode == 0, out.stderr
    edited = USER_FILE.replace("interval = 30", "interval = 45").replace("= 5 ", "= 7 ")
    assert profile.config.read_text() == edited
    assert profile.run("config", "set", "sensor_max_bytes", "100").returncode == 0
    assert profile.config.read_text() == edited + "sensor_max_bytes = 100\n"


def test_config_set_keeps_the_type_the_value_was_written_with(profile: Profile) -> None:
    profile.write_config("interval = 60\n")
    assert profile.run("config", "set", "interval", "3600").returncode == 0
    assert profile.run("config", "set", "sensor_timeout", "1.5").returncode == 0
    assert profile.run("config", "set", "sensor_max_bytes", "4096").returncode == 0
    table = tomllib.loads(profile.config.read_text())
    assert table["interval"] == 3600 and type(table["interval"]) is int
    assert table["sensor_timeout"] == 1.5 and type(table["sensor_timeout"]) is float
    assert type(table["sensor_max_bytes"]) is int
    assert "interval = 3600\n" in profile.config.read_text()
    assert profile.run("config", "get", "interval").stdout.strip() == "3600"


def test_config_set_on_a_missing_file_writes_a_new_one(profile: Profile) -> None:
    out = profile.run("config", "set", "interval", "90")
    assert out.returncode == 0, out.stderr
    assert tomllib.loads(profile.config.read_text()) == {"interval": 90}
    assert stat.S_IMODE(profile.config.stat().st_mode) == 0o644


@pytest.mark.parametrize("mode", [0o600, 0o640])
def test_config_set_keeps_the_files_mode(profile: Profile, mode: int) -> None:
    profile.write_config("interval = 30\n")
    profile.config.chmod(mode)
    assert profile.run("config", "set", "interval", "45").returncode == 0
    assert stat.S_IMODE(profile.config.stat().st_mode) == mode


def test_config_set_refuses_to_rewrite_a_broken_file(profile: Profile) -> None:
    broken = "# mine\ninterval = 30\nthis is not toml\n"
    profile.write_config(broken)
    out = profile.run("config", "set", "interval", "45")
    assert out.returncode == 78
    assert f"{profile.config}:3:" in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert profile.config.read_text() == broken


def test_concurrent_config_sets_of_different_keys_lose_no_update(
    profile: Profile, procs: Processes
) -> None:
    profile.write_config("# shared by three setters\ninterval = 1\n")
    keys = ("interval", "session_ttl", "sensor_timeout")
    for round_ in range(20):
        values = {key: 100 * round_ + n + 1 for n, key in enumerate(keys)}
        setters = [
            procs.add(profile.popen("config", "set", key, str(value)))
            for key, value in values.items()
        ]
        for setter in setters:
            _, err = setter.communicate(timeout=60)
            assert setter.returncode == 0, err
        table = tomllib.loads(profile.config.read_text())
        assert {key: table.get(key) for key in keys} == values, f"round {round_}"
    assert profile.config.read_text().startswith("# shared by three setters\n")


def test_an_unknown_key_on_the_command_line_is_a_usage_error(profile: Profile) -> None:
    profile.write_config("interval = 30\n")
    for key in ("nope", "worker.nope", "nope.max_live"):
        got = profile.run("config", "get", key)
        put = profile.run("config", "set", key, "1")
        assert (got.returncode, put.returncode) == (2, 2)
        assert got.stderr == put.stderr
        known = ", ".join(config.KNOBS)
        assert got.stderr.strip() == f"looop: unknown key {key!r} (known: {known})"
    assert profile.config.read_text() == "interval = 30\n"


def make_char_device(path: Path) -> None:
    os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # what /dev/null is


@pytest.mark.parametrize(
    ("make", "is_kind", "what"),
    [
        (make_fifo, stat.S_ISFIFO, "a FIFO"),
        pytest.param(
            make_char_device,
            stat.S_ISCHR,
            "a character device",
            marks=pytest.mark.root("makes a device node"),
        ),
    ],
)
def test_config_set_refuses_a_fifo_or_device_named_by_looop_config_and_leaves_it(
    profile: Profile,
    tmp_path: Path,
    make: Callable[[Path], None],
    is_kind: Callable[[int], bool],
    what: str,
) -> None:
    node = tmp_path / "node"
    make(node)
    before = node.lstat()
    env = {**profile.env, "LOOOP_CONFIG": str(node)}
    out = profile.run("config", "set", "interval", "45", env=env, timeout=20)
    assert out.returncode != 0
    assert out.stderr.strip() == f"looop: {node}: is {what}, not a regular file"
    after = node.lstat()
    assert is_kind(after.st_mode)
    assert (after.st_ino, after.st_rdev) == (before.st_ino, before.st_rdev)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["node", "home"])


def test_config_set_tells_that_a_running_pulse_must_be_reloaded(
    profile: Profile, procs: Processes
) -> None:
    quiet = profile.run("config", "set", "interval", "30")
    assert quiet.returncode == 0 and "note:" not in quiet.stderr
    pulse = procs.add(profile.popen("pulse"))
    wait_for(lambda: profile.run("status").returncode == 0)
    out = profile.run("config", "set", "interval", "45")
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip() == (
        f"note: the pulse (pid {pulse.pid}) reads the config at start and on reload: looop reload"
    )
    # A knob the pulse does not read needs no reload: no note.
    other = profile.run("config", "set", "worker.max_live", "4")
    assert (other.returncode, other.stderr) == (0, "")


def test_the_knobs_said_to_need_a_reload_are_the_ones_the_pulse_reads() -> None:
    code = "".join(path.read_text() for path in (PROJECT / "looop" / "pulse").glob("*.py"))
    read = set(re.findall(r"\b(?:cfg|config)\.([a-z_]+)\b", code)) & set(
        knob.attr for knob in KNOBS.values()
    )
    assert read == {KNOBS[key].attr for key in PULSE_READS}


def one_line_exit_1(out: subprocess.CompletedProcess[str], cfg: Path, reason: str) -> None:
    assert out.returncode == 1, out.stderr
    assert out.stderr.strip() == f"looop: cannot set interval: {cfg}: {reason}"


@pytest.mark.root("mounts a small tmpfs")
def test_config_set_on_a_read_only_file_system_is_one_line(profile: Profile, tiny_fs: Path) -> None:
    cfg = tiny_fs / "config.toml"
    cfg.write_text("interval = 30\n")
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_fs)], check=True)
    out = profile.run(
        "config", "set", "interval", "45", env={**profile.env, "LOOOP_CONFIG": str(cfg)}
    )
    one_line_exit_1(out, cfg, "Read-only file system")
    assert cfg.read_text() == "interval = 30\n"


@pytest.mark.root("mounts a small tmpfs")
def test_config_set_on_a_full_disk_is_one_line_and_loses_nothing(
    profile: Profile, tiny_fs: Path
) -> None:
    cfg = tiny_fs / "config.toml"
    cfg.write_text("interval = 30\n")
    with open(tiny_fs / "filler", "wb", buffering=0) as fh, pytest.raises(OSError, match="space"):
        while True:
            fh.write(b"\0" * 4096)
    out = profile.run(
        "config", "set", "interval", "45", env={**profile.env, "LOOOP_CONFIG": str(cfg)}
    )
    one_line_exit_1(out, cfg, "No space left on device")
    assert cfg.read_text() == "interval = 30\n"
    assert sorted(p.name for p in tiny_fs.iterdir()) == [
        ".config.toml.lock",
        "config.toml",
        "filler",
    ]


def test_config_set_without_permission_is_one_line(profile: Profile) -> None:
    profile.write_config("interval = 30\n")
    profile.data.chmod(0o555)  # the config's directory: no new file can be made there
    try:
        out = subprocess.run(
            [*as_plain_user(), LOOOP, "config", "set", "interval", "45"],
            env=profile.env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    finally:
        profile.data.chmod(0o755)
    one_line_exit_1(out, profile.config, "Permission denied")
    assert profile.config.read_text() == "interval = 30\n"


def test_config_set_refuses_a_fifo_at_its_lock_and_does_not_hang(profile: Profile) -> None:
    profile.write_config("interval = 30\n")
    lock = profile.data / ".config.toml.lock"
    os.mkfifo(lock)
    out = profile.run("config", "set", "interval", "45", timeout=20)
    assert out.returncode == 1
    assert out.stderr.strip() == f"looop: cannot set interval: {lock}: is a FIFO, not a lock file"
    assert profile.config.read_text() == "interval = 30\n" and stat.S_ISFIFO(lock.lstat().st_mode)
