"""The shipped service files and ``looop install`` / ``uninstall`` without a real manager.

launchd cannot run here, so the plists are parsed with ``plistlib`` (what
launchd reads is a property list) and every ``launchctl`` call goes to a
stand-in script on ``PATH`` that records its arguments and keeps a little
state (which labels are loaded), the way launchd answers ``print``. The same
install logic serves systemd; its real-manager tests are in test_systemd.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import plistlib
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    LOOOP,
    LOOOP_BIN,
    PROJECT,
    Dists,
    Processes,
    Profile,
    as_plain_user,
    pid_alive,
    unit_settings,
    wait_for,
)

from looop.paths import Paths, resolve
from looop.pulse import lock, record
from looop.service import ServiceError, launchd, render, units
from looop.service import install as installer
from looop.service.render import template_text

SHIPPED = {
    "systemd": ["looop.service", "looop-reap.service", "looop-reap.timer"],
    "launchd": ["org.looop.pulse.plist", "org.looop.reap.plist"],
}

FAKE_LAUNCHCTL = r"""#!/bin/sh
# Stands in for launchctl: logs each call and remembers what is loaded, one
# file per label holding the pid of the job it started, if any. With
# $FAKE_LAUNCHD_SPAWN set, loading or kickstarting the pulse runs that shell
# command in the background as the job (it can exec a real `looop pulse`).
# The user's domain itself (print gui/<uid>) always answers.
# bootout is asynchronous, as launchd's is: the label stays loaded for
# $FAKE_LAUNCHD_BOOTOUT_DELAY more seconds ("never": it stays loaded).
state="$FAKE_LAUNCHD_DIR"
echo "$*" >> "$state/calls"
spawn() {
  case "$1" in org.looop.pulse*) ;; *) return 0 ;; esac
  [ -n "$FAKE_LAUNCHD_SPAWN" ] || return 0
  pid=$(cat "$state/loaded/$1")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && return 0
  sh -c "$FAKE_LAUNCHD_SPAWN" </dev/null >/dev/null 2>&1 &
  echo $! > "$state/loaded/$1"
  echo $! >> "$state/spawned"
}
case "$1" in
  print)
    if [ "$2" = "gui/$(id -u)" ]; then printf '%s = {\n\ttype = User\n}\n' "$2"; exit 0; fi
    label="${2##*/}"
    if [ -e "$state/loaded/$label" ]; then
      pid=$(cat "$state/loaded/$label")
      printf '%s = {\n\tstate = running\n\tpid = %s\n\truns = 3\n' "$2" "${pid:-4242}"
      printf '\tlast exit code = (never exited)\n}\n'
      exit 0
    fi
    echo "Could not find service \"$label\" in domain for user gui: $(id -u)" >&2
    exit 113 ;;
  bootstrap)
    label=$(basename "$3" .plist)
    [ -e "$state/loaded/$label" ] && { echo "Bootstrap failed: 5: Input/output error" >&2; exit 5; }
    : > "$state/loaded/$label"
    spawn "$label" ;;
  kickstart)
    label="${2##*/}"
    [ -e "$state/loaded/$label" ] || { echo "Could not find service \"$label\"" >&2; exit 113; }
    spawn "$label" ;;
  bootout)
    label="${2##*/}"
    [ -e "$state/loaded/$label" ] || exit 3
    pid=$(cat "$state/loaded/$label")
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
    delay="${FAKE_LAUNCHD_BOOTOUT_DELAY:-0.3}"
    [ "$delay" = never ] && exit 0
    (sleep "$delay"; rm -f "$state/loaded/$label") </dev/null >/dev/null 2>&1 & ;;
  enable) ;;
  *) echo "unexpected: $*" >&2; exit 64 ;;
esac
exit 0
"""

# Stands in for systemctl: records each call in "calls" beside it and succeeds.
FAKE_SYSTEMCTL = '#!/bin/sh\necho "$*" >> "$(dirname "$0")/calls"\nexit 0\n'


# --- a home with a stand-in launchctl ------------------------------------------------
class FakeHome:
    def __init__(self, profile: Profile, default_profile: bool) -> None:
        self.profile = profile
        self.home = Path(profile.env["HOME"])
        self.state = profile.root / "launchd"
        (self.state / "loaded").mkdir(parents=True)
        bindir = profile.root / "fakebin"
        bindir.mkdir()
        fake = bindir / "launchctl"
        fake.write_text(FAKE_LAUNCHCTL)
        fake.chmod(0o755)
        self.env = dict(profile.env)
        self.env["PATH"] = f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}"
        self.env["FAKE_LAUNCHD_DIR"] = str(self.state)
        if default_profile:
            del self.env["LOOOP_DATA_DIR"]

    @property
    def agents(self) -> Path:
        return self.home / "Library" / "LaunchAgents"

    @property
    def data(self) -> Path:
        """The default profile's data dir in this home."""
        return Path(self.env["XDG_STATE_HOME"]) / "looop"

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.profile.run(*args, env=self.env)

    def use(self, monkeypatch: pytest.MonkeyPatch) -> Paths:
        """Make this home the test process's environment; its Paths."""
        for key, value in self.env.items():
            monkeypatch.setenv(key, value)
        if "LOOOP_DATA_DIR" not in self.env:
            monkeypatch.delenv("LOOOP_DATA_DIR", raising=False)
        return resolve()

    def calls(self) -> list[str]:
        log = self.state / "calls"
        return log.read_text().splitlines() if log.exists() else []

    def loaded(self) -> set[str]:
        return {p.name for p in (self.state / "loaded").iterdir()}

    def plist(self, label: str) -> dict[str, Any]:
        with open(self.agents / f"{label}.plist", "rb") as fh:
            return plistlib.load(fh)

    def spawn_pulses(self) -> Path:
        """From now on launchd "runs" the pulse agent: a real ``looop pulse``.

        Its output goes to the log file the plist names, as launchd's would.
        """
        log = self.home / "Library" / "Logs" / "looop" / "pulse.log"
        self.env["FAKE_LAUNCHD_SPAWN"] = (
            f"exec {shlex.quote(LOOOP_BIN)} pulse >> {shlex.quote(str(log))} 2>&1"
        )
        return log

    def spawned(self) -> list[int]:
        log = self.state / "spawned"
        return [int(p) for p in log.read_text().split()] if log.exists() else []

    def end_spawned(self) -> None:
        for pid in self.spawned():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for pid in self.spawned():
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            if pid_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def launchd_home(profile: Profile) -> Iterator[FakeHome]:
    home = FakeHome(profile, default_profile=True)
    try:
        yield home
    finally:
        home.end_spawned()


def systemd_bool(value: str) -> bool:
    """A unit file boolean as systemd reads it."""
    lowered = value.lower()
    if lowered in ("yes", "true", "on", "1", "y", "t"):
        return True
    if lowered in ("no", "false", "off", "0", "n", "f"):
        return False
    raise ValueError(f"not a systemd boolean: {value!r}")


def enabled(settings: dict[str, list[str]], key: str) -> bool:
    """Is a boolean option on? The last assignment wins; an absent one is off."""
    values = settings.get(key)
    return bool(values) and systemd_bool(values[-1])


# --- what ships ---------------------------------------------------------------------
def test_every_service_file_is_a_package_resource_of_the_installed_looop() -> None:
    # -I: the installed package, never a checkout that happens to be the cwd.
    read = (
        "import sys; from importlib import resources; "
        "print(resources.files('looop').joinpath('packaging', *sys.argv[1:]).read_text())"
    )
    for kind, names in SHIPPED.items():
        for name in names:
            out = subprocess.run(
                [sys.executable, "-I", "-c", read, kind, name], capture_output=True, text=True
            )
            assert out.returncode == 0, out.stderr
            # print() added a newline to the file's own text.
            assert out.stdout == (PROJECT / "packaging" / kind / name).read_text() + "\n", name


def test_a_fresh_clone_builds_a_wheel_and_sdist_carrying_every_service_file(
    dists: Dists,
) -> None:
    wheel, sdist = dists.wheel, dists.sdist
    members = set(zipfile.ZipFile(wheel).namelist())
    with tarfile.open(sdist) as tar:
        in_sdist = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    for kind, names in SHIPPED.items():
        for name in names:
            assert f"looop/packaging/{kind}/{name}" in members
            assert f"packaging/{kind}/{name}" in in_sdist
    assert not any(m.startswith("packaging/") for m in members)  # never a top-level package


def test_pytest_collects_from_a_fresh_clone_where_packaging_is_pypis(
    dists: Dists,
) -> None:
    clone = dists.clone
    which = subprocess.run(
        [sys.executable, "-c", "import packaging; print(packaging.__file__)"],
        cwd=clone,
        capture_output=True,
        text=True,
    )
    assert which.returncode == 0, which.stderr
    found = Path(which.stdout.strip())
    assert clone not in found.parents and found.parent.name == "packaging"
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert collected.returncode == 0, collected.stdout + collected.stderr
    assert "tests/test_packaging.py::" in collected.stdout


def test_shipped_pulse_unit_has_the_service_contract() -> None:
    text = template_text("systemd/looop.service")
    settings = unit_settings(text)
    for key, value in {
        "Type": "notify",
        "NotifyAccess": "main",
        "ExecStart": "@LOOOP_COMMAND@ pulse",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        # Every end, a crash too, is recorded for `looop status`; starting the pulse starts
        # the reap timer (whatever road starts it).
        "ExecStopPost": "-@LOOOP_COMMAND@ pulse --ended",
        "Wants": "@REAP_TIMER@",
        "Restart": "on-failure",
        "RestartPreventExitStatus": "78",
        "KillMode": "mixed",
        "WantedBy": "default.target",
        "ProtectSystem": "strict",
    }.items():
        assert settings.get(key, [None])[-1] == value, (key, settings.get(key))
    assert enabled(settings, "NoNewPrivileges")
    assert settings.get("WatchdogSec")
    # Each of these breaks sensors (JIT runtimes, the network, shared temp files)
    # or fails to start under one of the two managers (TESTING.md).
    for breaks_something in (
        "MemoryDenyWriteExecute",
        "PrivateNetwork",
        "PrivateTmp",
        "ProtectKernelTunables",
        "ProtectKernelLogs",
        "PrivateDevices",
        "ProtectClock",
        "ProtectKernelModules",
    ):
        assert not enabled(settings, breaks_something), breaks_something
    assert "CapabilityBoundingSet" not in settings


def test_unit_settings_reads_booleans_as_systemd_does() -> None:
    settings = unit_settings(
        "[Service]\nPrivateTmp=true\n# PrivateNetwork=yes\nNoNewPrivileges=1\n"
    )
    assert enabled(settings, "PrivateTmp") and enabled(settings, "NoNewPrivileges")
    assert not enabled(settings, "PrivateNetwork")
    assert not enabled(unit_settings("PrivateTmp=on\nPrivateTmp=off\n"), "PrivateTmp")


def test_shipped_reap_timer_is_hourly_and_persistent() -> None:
    timer = template_text("systemd/looop-reap.timer").splitlines()
    assert "OnCalendar=hourly" in timer and "Persistent=true" in timer
    assert any(line.startswith("RandomizedDelaySec=") for line in timer)
    reap = template_text("systemd/looop-reap.service").splitlines()
    assert "Type=oneshot" in reap and "ExecStart=@LOOOP_COMMAND@ reap" in reap


# --- launchd: plists --------------------------------------------------------------
def test_install_launchd_writes_plists_launchd_can_read(launchd_home: FakeHome) -> None:
    out = launchd_home.run("install", "--launchd")
    assert out.returncode == 0, out.stderr

    pulse = launchd_home.plist("org.looop.pulse")
    assert pulse["Label"] == "org.looop.pulse"
    assert pulse["ProgramArguments"] == [LOOOP_BIN, "pulse"]
    assert os.path.isabs(pulse["ProgramArguments"][0])
    assert pulse["RunAtLoad"] is True
    assert pulse["KeepAlive"] == {"SuccessfulExit": False}
    assert pulse["ProcessType"] in ("Standard", "Background", "Adaptive", "Interactive")
    for key in ("StandardOutPath", "StandardErrorPath"):
        assert os.path.isabs(pulse[key]) and Path(pulse[key]).parent.is_dir()
    assert isinstance(pulse["EnvironmentVariables"], dict)
    assert os.path.dirname(LOOOP_BIN) in pulse["EnvironmentVariables"]["PATH"].split(":")
    # Named even for the default profile: launchd never sees the shell's XDG_STATE_HOME.
    assert pulse["EnvironmentVariables"]["LOOOP_DATA_DIR"] == str(launchd_home.data)

    reap = launchd_home.plist("org.looop.reap")
    assert reap["Label"] == "org.looop.reap"
    assert reap["ProgramArguments"] == [LOOOP_BIN, "reap"]
    assert isinstance(reap["StartInterval"], int) and reap["StartInterval"] == 3600
    assert "KeepAlive" not in reap

    uid = os.getuid()
    for label in ("org.looop.pulse", "org.looop.reap"):
        plist = launchd_home.agents / f"{label}.plist"
        assert f"bootstrap gui/{uid} {plist}" in launchd_home.calls()
    assert launchd_home.loaded() == {"org.looop.pulse", "org.looop.reap"}


def test_a_plist_template_as_shipped_is_no_job_launchd_could_load() -> None:
    # `launchctl load` of the template itself must register nothing: a
    # lenient parse of it (plistlib skips the placeholder's bare line) finds
    # no Label, which launchd requires, and no program to run.
    for name in ("org.looop.pulse.plist", "org.looop.reap.plist"):
        raw = (PROJECT / "packaging" / "launchd" / name).read_bytes()
        job = plistlib.loads(raw)
        assert not {"Label", "Program", "ProgramArguments"} & set(job), (name, job)
        assert b"is not a job" in raw and b"until install writes them" in raw, name


def test_dry_run_renders_the_absolute_path_and_touches_nothing(launchd_home: FakeHome) -> None:
    out = launchd_home.run("install", "--launchd", "--dry-run")

    assert out.returncode == 0, out.stderr
    assert f"<string>{LOOOP_BIN}</string>" in out.stdout
    assert "<string>pulse</string>" in out.stdout and "<string>reap</string>" in out.stdout
    assert "@LOOOP_COMMAND@" not in out.stdout
    assert not launchd_home.agents.exists()
    assert launchd_home.calls() == []


def test_a_non_default_profile_gets_its_own_labels(profile: Profile) -> None:
    home = FakeHome(profile, default_profile=False)
    data = str(profile.data)
    out = home.run("install", "--launchd")
    assert out.returncode == 0, out.stderr
    suffix = Paths(profile.data, profile.config, profile.runtime, False).profile[len("looop-") :]
    pulse = home.plist(f"org.looop.pulse.{suffix}")
    reap = home.plist(f"org.looop.reap.{suffix}")
    assert pulse["EnvironmentVariables"]["LOOOP_DATA_DIR"] == data
    assert reap["EnvironmentVariables"]["LOOOP_DATA_DIR"] == data
    assert pulse["StandardOutPath"] != reap["StandardOutPath"]


def test_a_non_default_profiles_unit_names_itself_in_its_comment(profile: Profile) -> None:
    home = FakeHome(profile, default_profile=False)
    out = home.run("install", "--systemd", "--dry-run")
    assert out.returncode == 0, out.stderr
    unit = Paths(profile.data, profile.config, profile.runtime, False).profile
    assert unit != "looop"
    assert f"systemctl --user edit {unit}.service" in out.stdout
    assert "systemctl --user edit looop.service" not in out.stdout


def test_paths_with_markup_survive_rendering(profile: Profile) -> None:
    weird = profile.root / "a & b <c> 'd' \"e\" %f"
    home = FakeHome(profile, default_profile=False)
    home.env["LOOOP_DATA_DIR"] = str(weird)
    assert home.run("install", "--launchd").returncode == 0
    (plist,) = home.agents.glob("org.looop.pulse.*.plist")
    with open(plist, "rb") as fh:
        assert plistlib.load(fh)["EnvironmentVariables"]["LOOOP_DATA_DIR"] == str(weird)
    dry = home.run("install", "--systemd", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    quoted = str(weird).replace("%", "%%").replace('"', '\\"')
    assert f'Environment="LOOOP_DATA_DIR={quoted}"' in dry.stdout


def test_dollar_signs_are_rendered_literally(
    launchd_home: FakeHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    """systemd never expands ``$`` in the program path, Environment= or ReadWritePaths=.

    So ``$`` is written as is: ``$$`` there would reach the pulse as two
    dollars (test_systemd.py starts such a unit for real).
    """
    launchd_home.use(monkeypatch)
    weird = launchd_home.profile.root / "a $b ${c} $$d"
    monkeypatch.setenv("LOOOP_DATA_DIR", str(weird))
    binary = f"{weird}/bin/looop"
    (pulse,) = [
        i for i in render.render(resolve(), "systemd", command=[binary]) if i.role == "pulse"
    ]
    settings = unit_settings(pulse.text)
    assert settings["ExecStart"] == [f'"{binary}" pulse']
    assert settings["Environment"] == [f'"LOOOP_DATA_DIR={weird}"']
    assert f'-"{weird}"' in settings["ReadWritePaths"]


# --- values a service file cannot hold ----------------------------------------------
# Each is refused by install, dry run included: a unit file is read line by line
# and must be UTF-8, and XML cannot carry most control characters (a CR comes
# back as a newline), so no escaping keeps such a path one value for both.
HOSTILE = {
    "a newline": ("\n", "a newline (\\n)"),
    "a carriage return": ("\r", "a carriage return (\\r)"),
    "a tab": ("\t", "a tab (\\t)"),
    "an escape": ("\x1b", "a control character (\\x1b)"),
    "DEL": ("\x7f", "a control character (\\x7f)"),
    "invalid UTF-8": (os.fsdecode(b"\xff"), "a byte that is not UTF-8 (\\xff)"),
}
INJECTED = "ExecStartPre=touch pwned"


def fake_systemctl(profile: Profile, script: str = FAKE_SYSTEMCTL) -> Path:
    """A stand-in ``systemctl`` on the profile's PATH; returns the file its calls go to."""
    bindir = profile.root / "fakebin"
    bindir.mkdir(exist_ok=True)
    fake = bindir / "systemctl"
    fake.write_text(script)
    fake.chmod(0o755)
    profile.env["PATH"] = f"{bindir}:{os.environ.get('PATH', '/usr/bin:/bin')}"
    return bindir / "calls"


def assert_refused(out: subprocess.CompletedProcess[str], what: str, named: str) -> None:
    """One ``looop:`` line naming the value and the character, and nothing rendered."""
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert out.stdout == ""
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    assert lines[0].startswith(f"looop: {what} "), lines[0]
    assert f"contains {named}" in lines[0], lines[0]


def nothing_installed(profile: Profile) -> bool:
    home = Path(profile.env["HOME"])
    unit_dir = Path(profile.env["XDG_CONFIG_HOME"]) / "systemd" / "user"
    return not unit_dir.exists() and not (home / "Library").exists()


@pytest.mark.parametrize("manager", ["systemd", "launchd"])
@pytest.mark.parametrize("hostile", HOSTILE)
def test_a_data_dir_a_service_file_cannot_hold_is_refused_by_install(
    hostile: str, manager: str, profile: Profile
) -> None:
    char, named = HOSTILE[hostile]
    calls = fake_systemctl(profile)
    profile.env["LOOOP_DATA_DIR"] = f"{profile.root}/data{char}{INJECTED}"

    for args in (["--dry-run"], ["--no-start"], []):
        out = profile.run("install", f"--{manager}", *args)
        assert_refused(out, "the data dir", named)

    assert nothing_installed(profile)
    assert not calls.exists()


@pytest.mark.parametrize("manager", ["systemd", "launchd"])
@pytest.mark.parametrize("hostile", HOSTILE)
def test_a_looop_executable_a_service_file_cannot_hold_is_refused_by_install(
    hostile: str, manager: str, profile: Profile
) -> None:
    char, named = HOSTILE[hostile]
    calls = fake_systemctl(profile)
    bindir = os.path.join(os.fsencode(profile.root), os.fsencode(f"bin{char}{INJECTED}"))
    os.mkdir(bindir)
    binary = os.path.join(bindir, b"looop")
    os.symlink(LOOOP_BIN, binary)  # run by this path, it is the command a unit would run

    for args in (["--dry-run"], []):
        out = subprocess.run(
            [binary, "install", f"--{manager}", *args],
            env=profile.env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert_refused(out, "the looop command", named)

    assert nothing_installed(profile)
    assert not calls.exists()


@pytest.mark.parametrize("hostile", HOSTILE)
def test_rendering_refuses_every_value_a_service_file_cannot_hold(
    hostile: str, launchd_home: FakeHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The renderer itself: each value it writes, whoever calls it."""
    char, named = HOSTILE[hostile]
    paths = launchd_home.use(monkeypatch)
    for manager in ("systemd", "launchd"):
        with pytest.raises(ServiceError, match=re.escape(f"contains {named}")):
            render.render(paths, manager, command=[LOOOP_BIN, f"-x{char}"])
    # The launchd agents' log file is under HOME.
    monkeypatch.setenv("HOME", f"{launchd_home.home}{char}{INJECTED}")
    with pytest.raises(ServiceError, match=r"^the log file .*" + re.escape(f"contains {named}")):
        render.render(paths, "launchd", command=[LOOOP_BIN])
    assert render.render(paths, "systemd", command=[LOOOP_BIN])  # the units do not name it


def directives(text: str) -> list[str]:
    """Every line of a unit that the manager reads as a directive: its key, in order."""
    return [key for key, values in unit_settings(text).items() for _ in values]


def test_odd_but_printable_paths_render_to_the_same_directives_and_plist_keys(
    launchd_home: FakeHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What install accepts stays one value: same directives, same plist keys and strings."""
    launchd_home.use(monkeypatch)
    monkeypatch.setenv("LOOOP_DATA_DIR", str(launchd_home.profile.root / "plain"))
    paths = resolve()
    plain = {m: render.render(paths, m, command=[LOOOP_BIN]) for m in ("systemd", "launchd")}
    odd = f"{launchd_home.profile.root}/a b \"c\" 'd' %e $f \\g é \u2028 {INJECTED} <h/>"
    monkeypatch.setenv("LOOOP_DATA_DIR", odd)
    binary = f"{odd}/bin/looop"
    paths = resolve()
    for before, after in zip(
        plain["systemd"], render.render(paths, "systemd", [binary]), strict=True
    ):
        assert directives(after.text) == directives(before.text), after.path
    for before, after in zip(
        plain["launchd"], render.render(paths, "launchd", [binary]), strict=True
    ):
        was, now = plistlib.loads(before.text.encode()), plistlib.loads(after.text.encode())
        assert now.keys() == was.keys()
        assert now["ProgramArguments"] == [binary, *was["ProgramArguments"][1:]]
        assert now["EnvironmentVariables"]["LOOOP_DATA_DIR"] == odd


# --- launchd: idempotence and edits -----------------------------------------------
def test_install_twice_changes_nothing(launchd_home: FakeHome) -> None:
    assert launchd_home.run("install", "--launchd").returncode == 0
    plist = launchd_home.agents / "org.looop.pulse.plist"
    before = plist.read_bytes(), plist.stat().st_mtime_ns
    calls = len(launchd_home.calls())

    again = launchd_home.run("install", "--launchd")

    assert again.returncode == 0, again.stderr
    assert f"unchanged {plist}" in again.stdout
    assert (plist.read_bytes(), plist.stat().st_mtime_ns) == before
    new_calls = launchd_home.calls()[calls:]
    assert not [c for c in new_calls if c.startswith(("bootstrap", "bootout"))]
    assert launchd_home.loaded() == {"org.looop.pulse", "org.looop.reap"}


def test_an_edited_plist_is_not_clobbered_without_force(launchd_home: FakeHome) -> None:
    assert launchd_home.run("install", "--launchd").returncode == 0
    plist = launchd_home.agents / "org.looop.pulse.plist"
    edited = plist.read_text().replace("<integer>30</integer>", "<integer>99</integer>")
    plist.write_text(edited)
    calls = len(launchd_home.calls())

    refused = launchd_home.run("install", "--launchd")

    assert refused.returncode == 1
    assert "not overwriting" in refused.stderr and str(plist) in refused.stderr
    assert plist.read_text() == edited
    assert launchd_home.calls()[calls:] == []

    forced = launchd_home.run("install", "--launchd", "--force")

    assert forced.returncode == 0, forced.stderr
    assert "<integer>99</integer>" not in plist.read_text()
    assert render.pristine(plist.read_text())
    uid = os.getuid()
    after = launchd_home.calls()[calls:]
    reload = [f"bootout gui/{uid}/org.looop.pulse", f"bootstrap gui/{uid} {plist}"]
    assert [c for c in after if c.startswith(("bootout", "bootstrap"))] == reload


def test_a_file_looop_wrote_is_updated_without_force(
    launchd_home: FakeHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An older looop's rendering (another path) is replaced; it was never edited."""
    paths = launchd_home.use(monkeypatch)
    for item in render.render(paths, "launchd", command=["/old/place/bin/looop"]):
        item.path.parent.mkdir(parents=True, exist_ok=True)
        item.path.write_text(item.text)

    out = launchd_home.run("install", "--launchd", "--no-start")

    assert out.returncode == 0, out.stderr
    assert "update" in out.stdout
    assert launchd_home.plist("org.looop.pulse")["ProgramArguments"][0] == LOOOP_BIN
    assert not [c for c in launchd_home.calls() if c.startswith("bootstrap")]  # --no-start


def test_a_file_without_the_mark_is_not_ours_to_replace(launchd_home: FakeHome) -> None:
    launchd_home.agents.mkdir(parents=True)
    mine = launchd_home.agents / "org.looop.pulse.plist"
    mine.write_text("<?xml version='1.0'?><plist version='1.0'><dict/></plist>\n")
    out = launchd_home.run("install", "--launchd")
    assert out.returncode == 1 and "not overwriting" in out.stderr
    assert mine.read_text().startswith("<?xml version='1.0'?>")
    assert not (launchd_home.agents / "org.looop.reap.plist").exists()  # nothing half-done


# --- launchd: start, stop, state, uninstall ------------------------------------------
def test_manager_calls_go_through_launchctl(
    launchd_home: FakeHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = launchd_home.use(monkeypatch)
    assert units.installed_manager(paths) is None
    assert launchd_home.run("install", "--launchd", "--no-start").returncode == 0
    assert units.installed_manager(paths) == "launchd"
    reaper = {"unit": "org.looop.reap", "active": False, "state": "not loaded"}
    assert launchd.state(paths) == {
        "manager": "launchd",
        "label": "org.looop.pulse",
        "state": "not loaded",
        "reap_timer": {**reaper, "next_run": None, "last_run": None, "last_result": None},
    }
    uid = os.getuid()

    # Loaded, but no pulse ever beats (this launchctl runs nothing): not "started".
    # The reaper is loaded first: a pulse started through launchd has its reaper.
    with pytest.raises(ServiceError, match="did not become ready"):
        launchd.start(paths, ready_within=0.2)
    plist = launchd_home.agents / "org.looop.pulse.plist"
    reap_plist = launchd_home.agents / "org.looop.reap.plist"
    starts = [f"bootstrap gui/{uid} {reap_plist}", f"bootstrap gui/{uid} {plist}"]
    assert launchd.reap_timer(paths)["active"] is True  # type: ignore[index]
    assert [c for c in launchd_home.calls() if c.startswith(("bootstrap", "kickstart"))] == starts
    state = launchd.state(paths)
    assert state is not None
    assert (state["state"], state["pid"], state["restarts"]) == ("running", 4242, 2)

    with pytest.raises(ServiceError):  # already loaded: kickstart, no second bootstrap
        launchd.start(paths, ready_within=0.2)
    starts.append(f"kickstart gui/{uid}/org.looop.pulse")
    assert [c for c in launchd_home.calls() if c.startswith(("bootstrap", "kickstart"))] == starts

    launchd.stop(paths)
    assert f"bootout gui/{uid}/org.looop.pulse" in launchd_home.calls()
    assert "org.looop.pulse" not in launchd_home.loaded()


def test_up_through_launchd_returns_once_the_pulse_has_beaten(
    launchd_home: FakeHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = launchd_home.use(monkeypatch)
    launchd_home.spawn_pulses()
    assert launchd_home.run("install", "--launchd", "--no-start").returncode == 0
    sensor = launchd_home.data / "sensors" / "slow.sh"
    sensor.parent.mkdir(parents=True)
    sensor.write_text("#!/bin/sh\nsleep 1\necho '{\"signal\": 1}'\n")
    sensor.chmod(0o755)

    up = launchd_home.run("up")

    assert up.returncode == 0, up.stderr
    assert "launchd" in up.stdout
    # `up` after `install --no-start` (what that line tells the user) loads the reaper too.
    assert launchd_home.loaded() == {"org.looop.pulse", "org.looop.reap"}
    (pid,) = launchd_home.spawned()
    # `up` has returned: the launched pulse holds the lock and its first beat is out.
    assert lock.holder_pid(paths) == pid
    beat = record.read(paths)
    assert beat is not None and beat["pid"] == pid and beat["number"] == 1
    status = launchd_home.run("status", "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["pid"] == pid

    down = launchd_home.run("down")

    assert down.returncode == 0, down.stderr
    assert lock.holder_pid(paths) is None
    assert launchd_home.run("status").returncode == 3


@pytest.mark.parametrize("pulse", ["broken config", "never started"])
def test_up_through_launchd_says_why_the_pulse_is_not_running(
    pulse: str, launchd_home: FakeHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = launchd_home.home / "Library" / "Logs" / "looop" / "pulse.log"
    if pulse == "broken config":
        launchd_home.spawn_pulses()
        launchd_home.data.mkdir(parents=True)
        (launchd_home.data / "config.toml").write_text('interval = "soon"\n')
    assert launchd_home.run("install", "--launchd", "--no-start").returncode == 0
    paths = launchd_home.use(monkeypatch)

    with pytest.raises(ServiceError) as failed:
        launchd.start(paths, ready_within=2.0)

    message = str(failed.value)
    assert "org.looop.pulse did not become ready" in message and str(log) in message
    if pulse == "broken config":  # what the pulse said is in the message
        assert "interval" in message and "config.toml" in message
    assert lock.holder_pid(paths) is None


def test_install_launchd_hands_a_pulse_running_outside_over_to_launchd(
    launchd_home: FakeHome, monkeypatch: pytest.MonkeyPatch, procs: Processes
) -> None:
    """The README's order: ``looop up`` (here a pulse by hand), then ``looop install``."""
    paths = launchd_home.use(monkeypatch)
    launchd_home.spawn_pulses()
    outside = procs.add(launchd_home.profile.popen("pulse", env=launchd_home.env))
    wait_for(lambda: (record.read(paths) or {}).get("pid") == outside.pid)

    out = launchd_home.run("install", "--launchd")

    assert out.returncode == 0, out.stderr
    assert f"handed over: the pulse started outside launchd (pid {outside.pid}) stopped" in (
        out.stdout
    )
    assert outside.wait(timeout=15) == 0  # stopped cleanly, by SIGTERM
    (pid,) = launchd_home.spawned()
    # install has returned: launchd's pulse holds the lock with its first beat out.
    assert lock.holder_pid(paths) == pid and (record.read(paths) or {}).get("pid") == pid
    assert launchd_home.loaded() == {"org.looop.pulse", "org.looop.reap"}
    assert "handed over" not in launchd_home.run("install", "--launchd").stdout


def test_a_changed_plist_is_bootstrapped_once_bootout_has_finished(
    launchd_home: FakeHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    """launchd's bootout returns before the job is gone; bootstrap in between fails."""
    assert launchd_home.run("install", "--launchd").returncode == 0
    plist = launchd_home.agents / "org.looop.pulse.plist"
    plist.write_text(plist.read_text().replace("<integer>30</integer>", "<integer>99</integer>"))
    launchd_home.env["FAKE_LAUNCHD_BOOTOUT_DELAY"] = "1"
    calls = len(launchd_home.calls())

    forced = launchd_home.run("install", "--launchd", "--force")

    assert forced.returncode == 0, forced.stderr
    target = f"gui/{os.getuid()}/org.looop.pulse"
    after = launchd_home.calls()[calls:]
    booted = after.index(f"bootout {target}")
    loaded = after.index(f"bootstrap gui/{os.getuid()} {plist}")
    assert booted < loaded and f"print {target}" in after[booted:loaded]
    assert launchd_home.loaded() == {"org.looop.pulse", "org.looop.reap"}

    # A bootout that never completes is reported, not followed by a doomed bootstrap.
    paths = launchd_home.use(monkeypatch)
    monkeypatch.setenv("FAKE_LAUNCHD_BOOTOUT_DELAY", "never")
    monkeypatch.setattr(launchd, "BOOTOUT_TIMEOUT", 0.3)
    plist.write_text(plist.read_text().replace("<integer>30</integer>", "<integer>99</integer>"))
    with pytest.raises(ServiceError, match="still loaded"):
        installer.install(paths, "launchd", force=True)
    assert not launchd_home.calls()[-1].startswith("bootstrap")


def test_uninstall_launchd_unloads_and_removes_but_keeps_data(launchd_home: FakeHome) -> None:
    assert launchd_home.run("install", "--launchd").returncode == 0
    data = launchd_home.data
    data.mkdir(parents=True, exist_ok=True)
    (data / "PLAYBOOK.md").write_text("mine\n")

    out = launchd_home.run("uninstall", "--launchd")

    assert out.returncode == 0, out.stderr
    assert launchd_home.loaded() == set()
    assert list(launchd_home.agents.iterdir()) == []
    assert (data / "PLAYBOOK.md").read_text() == "mine\n"


def test_uninstall_keeps_an_edited_plist_unless_forced(launchd_home: FakeHome) -> None:
    assert launchd_home.run("install", "--launchd").returncode == 0
    pulse = launchd_home.agents / "org.looop.pulse.plist"
    reap = launchd_home.agents / "org.looop.reap.plist"
    edited = pulse.read_text().replace("<integer>30</integer>", "<integer>99</integer>")
    pulse.write_text(edited)

    out = launchd_home.run("uninstall", "--launchd")

    assert out.returncode == 0, out.stderr
    assert pulse.read_text() == edited
    assert f"kept {pulse}" in out.stdout and "--force" in out.stdout
    assert not reap.exists() and f"removed {reap}" in out.stdout
    assert launchd_home.loaded() == set()

    forced = launchd_home.run("uninstall", "--launchd", "--force")

    assert forced.returncode == 0, forced.stderr
    assert not pulse.exists() and f"removed {pulse}" in forced.stdout


def test_uninstall_leaves_files_looop_did_not_write(
    launchd_home: FakeHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plist without looop's mark, and a link in place of one, belong to the user."""
    launchd_home.agents.mkdir(parents=True)
    pulse = launchd_home.agents / "org.looop.pulse.plist"
    pulse.write_text("<?xml version='1.0'?><plist version='1.0'><dict/></plist>\n")
    assert launchd_home.run("install", "--launchd").returncode == 1  # refused: not ours
    elsewhere = launchd_home.home / "my-reap.plist"
    (rendered_reap,) = [
        item
        for item in render.render(launchd_home.use(monkeypatch), "launchd", command=[LOOOP_BIN])
        if item.role == "reap"
    ]
    elsewhere.write_text(rendered_reap.text)
    reap = launchd_home.agents / "org.looop.reap.plist"
    reap.symlink_to(elsewhere)

    out = launchd_home.run("uninstall", "--launchd")

    assert out.returncode == 0, out.stderr
    assert f"kept {pulse}" in out.stdout and f"kept {reap}" in out.stdout
    assert pulse.read_text().startswith("<?xml version='1.0'?>")
    assert reap.is_symlink() and elsewhere.exists()


# --- systemd without a manager ----------------------------------------------------
def test_systemd_dry_run_renders_units_with_the_absolute_path(launchd_home: FakeHome) -> None:
    out = launchd_home.run("install", "--systemd", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert f"ExecStart={LOOOP_BIN} pulse" in out.stdout
    assert f"ExecStart={LOOOP_BIN} reap" in out.stdout
    assert "@LOOOP_COMMAND@" not in out.stdout
    unit_dir = Path(launchd_home.env["XDG_CONFIG_HOME"]) / "systemd" / "user"
    assert f"write {unit_dir / 'looop.service'}" in out.stdout
    assert not unit_dir.exists()


def test_unknown_placeholders_are_refused() -> None:
    with pytest.raises(ServiceError, match="@NOPE@"):
        render.substitute("a=@NOPE@\n", {"LOOOP_COMMAND": "/x"})


def test_install_without_the_managers_command_writes_nothing(profile: Profile) -> None:
    env = {**profile.env, "PATH": str(profile.root / "empty-bin")}
    out = profile.run("install", "--launchd", env=env)
    assert out.returncode == 1
    assert "launchctl not found" in out.stderr
    assert not (profile.root / "home" / "Library").exists()


@pytest.mark.parametrize(
    "blocked", ["a file where systemd/ should be", "a unit dir not writable", "a dir as the unit"]
)
def test_install_into_an_unwritable_unit_dir_says_which_file_and_why(blocked: str) -> None:
    # A world-readable place of its own: the normal user must reach the venv and this.
    base = Path(tempfile.mkdtemp(prefix="looop-unitdir-"))
    try:
        base.chmod(0o755)
        home, config = base / "home", base / "config"
        home.mkdir()
        bindir = base / "bin"
        bindir.mkdir()
        (bindir / "systemctl").write_text(FAKE_SYSTEMCTL)
        (bindir / "systemctl").chmod(0o755)
        unit_dir = config / "systemd" / "user"
        extra: list[str] = []
        if blocked == "a file where systemd/ should be":
            config.mkdir()
            (config / "systemd").write_text("not a directory\n")
            reason = f"{config / 'systemd' / 'user'}: Not a directory"
        elif blocked == "a unit dir not writable":
            unit_dir.mkdir(parents=True)
            unit_dir.chmod(0o555)
            reason = "Permission denied"
        else:
            (unit_dir / "looop.service").mkdir(parents=True)
            extra = ["--force"]  # without it the directory is refused as "not ours"
            reason = "is a directory"
        env = {
            "PATH": f"{bindir}:/usr/bin:/bin",
            "HOME": str(home),
            "XDG_CONFIG_HOME": str(config),
        }
        out = subprocess.run(
            [*as_plain_user(), LOOOP, "install", "--systemd", "--no-start", *extra],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        assert out.returncode == 1, (out.stdout, out.stderr)
        lines = out.stderr.splitlines()
        assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
        assert lines[0].startswith(f"looop: cannot write {unit_dir / 'looop.service'}: ")
        assert reason in lines[0]
        # The manager was asked whether it answers, and nothing was enabled for
        # files never written.
        assert (bindir / "calls").read_text().splitlines() == ["--user show-environment"]
    finally:
        shutil.rmtree(base, ignore_errors=True)


# --- up and down tell the truth -------------------------------------------------------
# A manager that has the unit loaded but not running (it never started the pulse).
FAKE_SYSTEMCTL_INACTIVE = """#!/bin/sh
echo "$*" >> "$(dirname "$0")/calls"
case "$2" in
  show) printf 'ActiveState=inactive\\nSubState=dead\\nUnitFileState=enabled\\nMainPID=0\\n' ;;
esac
exit 0
"""
# No user manager to talk to (a login without one: ssh, a container, su).
FAKE_SYSTEMCTL_NO_BUS = """#!/bin/sh
echo "$*" >> "$(dirname "$0")/calls"
echo "Failed to connect to bus: No medium found" >&2
exit 1
"""
# A manager that answers but cannot load units.
FAKE_SYSTEMCTL_NO_RELOAD = """#!/bin/sh
echo "$*" >> "$(dirname "$0")/calls"
[ "$2" = daemon-reload ] && { echo "Failed to reload daemon: Access denied" >&2; exit 1; }
exit 0
"""


def test_down_stops_a_pulse_started_by_hand_while_the_unit_is_installed(
    profile: Profile, procs: Processes
) -> None:
    calls = fake_systemctl(profile, FAKE_SYSTEMCTL_INACTIVE)
    installed = profile.run("install", "--systemd", "--no-start")
    assert installed.returncode == 0, installed.stderr
    unit = units.unit_names(profile.paths)["pulse"]
    outside = procs.add(profile.popen("pulse"))
    wait_for(lambda: (record.read(profile.paths) or {}).get("pid") == outside.pid)

    down = profile.run("down")

    assert down.returncode == 0, down.stderr
    assert f"--user stop {unit}" in calls.read_text().splitlines()
    assert f"pid {outside.pid}" in down.stdout and "systemd" in down.stdout
    assert outside.wait(timeout=30) == 0
    assert lock.holder(profile.paths) is None


def test_down_stops_a_pulse_started_by_hand_while_the_agent_is_installed(
    launchd_home: FakeHome, monkeypatch: pytest.MonkeyPatch, procs: Processes
) -> None:
    paths = launchd_home.use(monkeypatch)
    assert launchd_home.run("install", "--launchd", "--no-start").returncode == 0
    outside = procs.add(launchd_home.profile.popen("pulse", env=launchd_home.env))
    wait_for(lambda: (record.read(paths) or {}).get("pid") == outside.pid)

    down = launchd_home.run("down")

    assert down.returncode == 0, down.stderr
    assert f"pid {outside.pid}" in down.stdout and "launchd" in down.stdout
    assert outside.wait(timeout=30) == 0
    assert lock.holder(paths) is None


@pytest.mark.parametrize("manager", ["no user bus", "no daemon-reload"])
def test_a_failed_install_leaves_no_unit_and_down_still_stops_a_detached_pulse(
    manager: str, profile: Profile
) -> None:
    script = FAKE_SYSTEMCTL_NO_BUS if manager == "no user bus" else FAKE_SYSTEMCTL_NO_RELOAD
    calls = fake_systemctl(profile, script)
    unit_dir = Path(profile.env["XDG_CONFIG_HOME"]) / "systemd" / "user"
    up = profile.run("up", timeout=120)
    assert up.returncode == 0, up.stderr
    pid = lock.pulse_holder(profile.paths)
    assert pid
    try:
        failed = profile.run("install", "--systemd")

        assert failed.returncode == 1, failed.stdout
        lines = failed.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("looop: "), failed.stderr
        said = "No medium found" if manager == "no user bus" else "Access denied"
        assert said in lines[0]
        assert not unit_dir.exists() or list(unit_dir.iterdir()) == []
        assert units.installed_manager(profile.paths) is None
        made = calls.read_text().splitlines()
        if manager == "no user bus":  # asked first, so nothing was written
            assert made == ["--user show-environment"]

        down = profile.run("down")

        assert down.returncode == 0, down.stderr
        assert down.stdout.strip() == f"stopped (pid {pid})"
        assert calls.read_text().splitlines() == made  # down did not go to the manager
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert lock.holder(profile.paths) is None


# --- what a unit runs -----------------------------------------------------------------
def rendered_commands(dry_run: str) -> dict[str, list[str]]:
    """The pulse's command in a dry run's output: ExecStart= words, or ProgramArguments."""
    found: dict[str, list[str]] = {}
    for line in dry_run.splitlines():
        if line.startswith("ExecStart=") and line.endswith(" pulse"):
            found["systemd"] = shlex.split(line.removeprefix("ExecStart="))
    if "<plist" in dry_run:
        start = dry_run.index("<?xml")
        first = dry_run[start : dry_run.index("</plist>", start) + len("</plist>")]
        found["launchd"] = plistlib.loads(first.encode())["ProgramArguments"]
    return found


def link_dependencies(into: Path) -> Path:
    """Links to looop's dependencies (and theirs) as this environment has them, not to looop.

    For a Python that must get looop from its user site only: the running
    environment has the dependencies (the test extra installed them), but where
    depends on who runs the suite (a venv, the system's site), and it has a
    looop of its own.
    """
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    into.mkdir()
    todo, seen = ["looop"], {"looop"}
    while todo:
        for spec in metadata.distribution(todo.pop()).requires or []:
            req = Requirement(spec)
            name = canonicalize_name(req.name)
            if name in seen or (req.marker and not req.marker.evaluate({"extra": ""})):
                continue
            seen.add(name)
            todo.append(name)
            dist = metadata.distribution(name)
            base = Path(str(dist.locate_file("")))
            for top in {Path(str(f)).parts[0] for f in dist.files or []} - {".."}:
                if (base / top).exists() and not (into / top).exists():
                    (into / top).symlink_to(base / top)
    return into


def test_python_m_looop_install_from_a_user_install_renders_a_command_that_runs(
    dists: Dists, tmp_path: Path
) -> None:
    """``pip install --user`` with ``~/.local/bin`` off PATH, then ``python -m looop install``.

    The pulse's command must run as the service manager runs it: this
    installation's script while it exists, else ``<python> -P -m looop``,
    from a working directory whose ``looop/`` folder must not stand in for
    the package.
    """
    wheel = dists.wheel
    home = tmp_path / "home"
    home.mkdir()
    # A Python whose user site is live (a venv's is not, unless it sees the system's).
    python_dir = tmp_path / "python"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", python_dir],
        check=True,
        timeout=60,
    )
    python = str(python_dir / "bin" / "python")
    # The dependencies, from no one's site but a directory of their own (see link_dependencies).
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "dependencies.pth").write_text(f"{link_dependencies(tmp_path / 'deps')}\n")
    env = {"HOME": str(home), "PATH": "/usr/bin:/bin", "XDG_CONFIG_HOME": str(home / ".config")}
    pip = [sys.executable, "-m", "pip", "--python", python, "install", "-q", "--user"]
    out = subprocess.run(
        [*pip, "--no-deps", "--no-index", str(wheel)],
        env={**os.environ, "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    user_site = subprocess.run(
        [python, "-c", "import site; print(site.getusersitepackages())"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert (Path(user_site) / "looop").is_dir()
    script = home / ".local" / "bin" / "looop"
    assert os.access(script, os.X_OK)
    decoy = tmp_path / "cwd"
    (decoy / "looop").mkdir(parents=True)
    (decoy / "looop" / "__init__.py").write_text("raise SystemExit('the decoy looop ran')\n")
    (decoy / "looop" / "__main__.py").write_text("raise SystemExit('the decoy looop ran')\n")

    def commands() -> dict[str, list[str]]:
        found = {}
        for manager in ("systemd", "launchd"):
            dry = subprocess.run(
                [python, "-m", "looop", "install", "--dry-run", f"--{manager}"],
                env=env,
                cwd=home,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert dry.returncode == 0, dry.stderr
            found.update(rendered_commands(dry.stdout))
        assert found["systemd"] == found["launchd"]
        return found

    def runs(command: list[str]) -> None:
        assert command[-1] == "pulse"
        out = subprocess.run(
            [*command[:-1], "version"],
            env=env,
            cwd=decoy,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert (out.returncode, out.stdout.strip()) == (0, "looop 0.1.0"), out.stderr

    # The script exists (only PATH does not name its dir): the unit runs it.
    with_script = commands()
    assert with_script["systemd"] == [str(script), "pulse"]
    runs(with_script["systemd"])
    runs(with_script["launchd"])

    # No script at all: this interpreter runs the package, and the decoy stays out.
    script.unlink()
    without = commands()
    assert without["systemd"] == [python, "-P", "-m", "looop", "pulse"]
    runs(without["systemd"])
    runs(without["launchd"])
    imported = subprocess.run(
        [*without["systemd"][:2], "-c", "import looop; print(looop.__file__)"],
        env=env,
        cwd=decoy,
        capture_output=True,
        text=True,
        check=True,
    )
    assert Path(imported.stdout.strip()).parent == Path(user_site) / "looop"


FAKE_SYSTEMCTL_SHOW = """#!/bin/sh
case "$2" in
  show) printf 'ActiveState=inactive\\nSubState=dead\\nUnitFileState=enabled\\nMainPID=0\\n' ;;
esac
exit 0
"""
STATUS_MODULES = """
import sys
from looop.__main__ import main
sys.argv = ["looop", "status", "--json"]
try:
    main()
except SystemExit:
    pass
print(" ".join(sorted(m for m in sys.modules if m.startswith("looop") or m == "click")))
"""


@pytest.mark.parametrize("manager", ["systemd", "launchd"])
def test_status_asks_the_installed_managers_driver_and_never_loads_the_installer(
    manager: str, launchd_home: FakeHome
) -> None:
    if manager == "systemd":
        fake = launchd_home.profile.root / "fakebin" / "systemctl"
        fake.write_text(FAKE_SYSTEMCTL_SHOW)
        fake.chmod(0o755)
        unit = Path(launchd_home.env["XDG_CONFIG_HOME"]) / "systemd" / "user" / "looop.service"
        unit.parent.mkdir(parents=True)
        unit.write_text("[Service]\n")
    else:
        assert launchd_home.run("install", "--launchd", "--no-start").returncode == 0
    out = subprocess.run(
        [sys.executable, "-I", "-c", STATUS_MODULES],
        env=launchd_home.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    report, _, modules_line = out.stdout.rstrip("\n").rpartition("\n")
    modules = set(modules_line.split())
    assert json.loads(report)["service"]["manager"] == manager
    assert f"looop.service.{manager}" in modules, modules
    for heavy in ("looop.service.render", "looop.service.install", "looop.service.control"):
        assert heavy not in modules, modules
    assert "click" not in modules
