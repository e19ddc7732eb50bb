"""The shipped service files and ``looop install`` / ``uninstall`` without a real manager.

launchd cannot run here, so the plists are parsed with ``plistlib`` (what
launchd reads is a property list) and every ``launchctl`` call goes to a
stand-in script on ``PATH`` that records its arguments and keeps a little
state (which labels are loaded), the way launchd answers ``print``. The same
install logic serves systemd; its real-manager tests are in test_systemd.py.
"""

from __future__ import annotations

import os
import plistlib
import shutil
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from conftest import LOOOP, Profile

from looop import service, units
from looop.paths import Paths, resolve

SHIPPED = {
    "systemd": ["looop.service", "looop-reap.service", "looop-reap.timer"],
    "launchd": ["org.looop.pulse.plist", "org.looop.reap.plist"],
}
PROJECT = Path(__file__).resolve().parents[1]
LOOOP_BIN = os.path.abspath(LOOOP)

FAKE_LAUNCHCTL = """\
#!/bin/sh
# Stands in for launchctl: logs each call, remembers what is loaded.
state="$FAKE_LAUNCHD_DIR"
echo "$*" >> "$state/calls"
case "$1" in
  print)
    label="${2##*/}"
    if [ -e "$state/loaded/$label" ]; then
      printf '%s = {\\n\\tstate = running\\n\\tpid = 4242\\n\\truns = 3\\n' "$2"
      printf '\\tlast exit code = (never exited)\\n}\\n'
      exit 0
    fi
    echo "Could not find service \\"$label\\" in domain for user gui: $(id -u)" >&2
    exit 113 ;;
  bootstrap)
    label=$(basename "$3" .plist)
    [ -e "$state/loaded/$label" ] && { echo "Bootstrap failed: 5" >&2; exit 5; }
    touch "$state/loaded/$label" ;;
  bootout)
    label="${2##*/}"
    [ -e "$state/loaded/$label" ] || exit 3
    rm -f "$state/loaded/$label" ;;
  enable|kickstart) ;;
  *) echo "unexpected: $*" >&2; exit 64 ;;
esac
exit 0
"""


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

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.profile.run(*args, env=self.env)

    def calls(self) -> list[str]:
        log = self.state / "calls"
        return log.read_text().splitlines() if log.exists() else []

    def loaded(self) -> set[str]:
        return {p.name for p in (self.state / "loaded").iterdir()}

    def plist(self, label: str) -> dict[str, Any]:
        with open(self.agents / f"{label}.plist", "rb") as fh:
            return plistlib.load(fh)


@pytest.fixture
def launchd_home(profile: Profile) -> FakeHome:
    return FakeHome(profile, default_profile=True)


# --- what ships ---------------------------------------------------------------------
def test_every_service_file_is_a_package_resource() -> None:
    root = resources.files("looop.packaging")
    for kind, names in SHIPPED.items():
        for name in names:
            text = root.joinpath(kind, name).read_text()
            assert "@LOOOP_BIN@" in text or name.endswith(".timer"), name


def test_the_wheel_carries_the_service_files(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        if (PROJECT / name).exists():
            shutil.copy2(PROJECT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__")
    for name in ("looop", "packaging"):
        shutil.copytree(PROJECT / name, src / name, ignore=ignore)
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(src)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    (wheel,) = tmp_path.glob("looop-*.whl")
    members = set(zipfile.ZipFile(wheel).namelist())
    for kind, names in SHIPPED.items():
        for name in names:
            assert f"looop/packaging/{kind}/{name}" in members


def test_shipped_pulse_unit_has_the_service_contract() -> None:
    text = resources.files("looop.packaging").joinpath("systemd", "looop.service").read_text()
    settings = [line.strip() for line in text.splitlines() if not line.startswith("#")]
    for wanted in (
        "Type=notify",
        "NotifyAccess=main",
        "ExecStart=@LOOOP_BIN@ pulse",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "Restart=on-failure",
        "RestartPreventExitStatus=78",
        "KillMode=mixed",
        "WantedBy=default.target",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
    ):
        assert wanted in settings, wanted
    assert any(s.startswith("WatchdogSec=") for s in settings)
    for breaks_something in ("MemoryDenyWriteExecute=yes", "PrivateNetwork=yes", "PrivateTmp=yes"):
        assert breaks_something not in settings


def test_shipped_reap_timer_is_hourly_and_persistent() -> None:
    root = resources.files("looop.packaging").joinpath("systemd")
    timer = root.joinpath("looop-reap.timer").read_text().splitlines()
    assert "OnCalendar=hourly" in timer and "Persistent=true" in timer
    assert any(line.startswith("RandomizedDelaySec=") for line in timer)
    reap = root.joinpath("looop-reap.service").read_text().splitlines()
    assert "Type=oneshot" in reap and "ExecStart=@LOOOP_BIN@ reap" in reap


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
    assert "LOOOP_DATA_DIR" not in pulse["EnvironmentVariables"]  # the default profile

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


def test_dry_run_renders_the_absolute_path_and_touches_nothing(launchd_home: FakeHome) -> None:
    out = launchd_home.run("install", "--launchd", "--dry-run")

    assert out.returncode == 0, out.stderr
    assert f"<string>{LOOOP_BIN}</string>" in out.stdout
    assert "<string>pulse</string>" in out.stdout and "<string>reap</string>" in out.stdout
    assert "@LOOOP_BIN@" not in out.stdout
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
    assert service.pristine(plist.read_text())
    uid = os.getuid()
    after = launchd_home.calls()[calls:]
    reload = [f"bootout gui/{uid}/org.looop.pulse", f"bootstrap gui/{uid} {plist}"]
    assert [c for c in after if c.startswith(("bootout", "bootstrap"))] == reload


def test_a_file_looop_wrote_is_updated_without_force(
    launchd_home: FakeHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An older looop's rendering (another path) is replaced; it was never edited."""
    for key, value in launchd_home.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("LOOOP_DATA_DIR", raising=False)
    for item in service.render(resolve(), "launchd", binary="/old/place/bin/looop"):
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
    for key, value in launchd_home.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("LOOOP_DATA_DIR", raising=False)
    paths = resolve()
    assert units.installed_manager(paths) is None
    assert service.manager_state(paths) is None
    assert launchd_home.run("install", "--launchd", "--no-start").returncode == 0
    assert units.installed_manager(paths) == "launchd"
    assert service.manager_state(paths) == {
        "manager": "launchd",
        "label": "org.looop.pulse",
        "state": "not loaded",
    }
    uid = os.getuid()

    service.manager_start(paths)
    assert launchd_home.calls()[-1].startswith(f"bootstrap gui/{uid} ")
    state = service.manager_state(paths)
    assert state is not None
    assert (state["state"], state["pid"], state["restarts"]) == ("running", 4242, 2)

    service.manager_start(paths)  # already loaded: kickstart, not a second bootstrap
    assert launchd_home.calls()[-1] == f"kickstart gui/{uid}/org.looop.pulse"

    service.manager_stop(paths)
    assert launchd_home.calls()[-1] == f"bootout gui/{uid}/org.looop.pulse"
    assert "org.looop.pulse" not in launchd_home.loaded()


def test_uninstall_launchd_unloads_and_removes_but_keeps_data(launchd_home: FakeHome) -> None:
    assert launchd_home.run("install", "--launchd").returncode == 0
    data = Path(launchd_home.env["XDG_STATE_HOME"]) / "looop"
    data.mkdir(parents=True, exist_ok=True)
    (data / "PLAYBOOK.md").write_text("mine\n")

    out = launchd_home.run("uninstall", "--launchd")

    assert out.returncode == 0, out.stderr
    assert launchd_home.loaded() == set()
    assert list(launchd_home.agents.iterdir()) == []
    assert (data / "PLAYBOOK.md").read_text() == "mine\n"


# --- systemd without a manager ----------------------------------------------------
def test_systemd_dry_run_renders_units_with_the_absolute_path(launchd_home: FakeHome) -> None:
    out = launchd_home.run("install", "--systemd", "--dry-run")
    assert out.returncode == 0, out.stderr
    assert f"ExecStart={LOOOP_BIN} pulse" in out.stdout
    assert f"ExecStart={LOOOP_BIN} reap" in out.stdout
    assert "@" + "LOOOP_BIN@" not in out.stdout
    unit_dir = Path(launchd_home.env["XDG_CONFIG_HOME"]) / "systemd" / "user"
    assert f"write {unit_dir / 'looop.service'}" in out.stdout
    assert not unit_dir.exists()


def test_unknown_placeholders_are_refused() -> None:
    with pytest.raises(service.ServiceError, match="@NOPE@"):
        service._substitute("a=@NOPE@\n", {"LOOOP_BIN": "/x"})


def test_install_without_the_managers_command_writes_nothing(profile: Profile) -> None:
    env = {**profile.env, "PATH": str(profile.root / "empty-bin")}
    out = profile.run("install", "--launchd", env=env)
    assert out.returncode == 1
    assert "launchctl not found" in out.stderr
    assert not (profile.root / "home" / "Library").exists()
