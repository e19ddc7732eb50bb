"""Real systemd user managers for tests: one as root, one as a normal user.

Users run ``systemctl --user`` as themselves, so the unit looop ships has to
start, be watched and be restarted by a normal user's manager, and by root's
(whose sandboxing rules differ). This module starts private managers of both
kinds for a test session and hands tests a small API around them.

Each manager lives in its own cgroup2 subtree, moved there *before* systemd
starts: a manager started in the root cgroup would take the root as its own
and move every process on the machine beneath it. Each has a private
``XDG_RUNTIME_DIR`` and an isolated ``HOME`` / ``XDG_CONFIG_HOME`` /
``XDG_STATE_HOME`` (so looop's default data dir is isolated too), and runs
with ``--log-level=debug``, so tests can read what the manager saw
(``Got notification message ... READY=1``, watchdog timeouts, kills).

Each also runs in its own mount namespace with a private tmpfs on
``/run/systemd``, holding the "booted with systemd" marker that
``systemd --user`` checks, the ``unit-root`` that root's manager makes for
sandboxed units, and a journal socket that is really a socket of this
harness (no journald runs here, and a manager that is not PID 1 has no console
of its own, so its log would otherwise be lost). Nothing is created in the
machine's ``/run``, so runs never trip over each other's markers, and all of
it vanishes with the manager.

The normal user cannot read a root-only home, so its ``looop`` comes from a
virtualenv built once per session in a world-readable directory, from the
system's Python, with the project installed non-editable (the way users get
it). Both managers use that installation.

At the end everything is undone by pid and by path: managers stopped, what is
left in their cgroups killed, the cgroups removed bottom-up, the work
directory removed.

The fixtures are at the bottom; ``tests/conftest.py`` loads this module as a
plugin. A test using them is root-only (``tests/root_only.py``): skipped with
its reason for a normal user, a failure where CI requires root-only tests.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SYSTEMD = Path("/lib/systemd/systemd")
TEST_USER = "looop-test"
PROJECT = Path(__file__).resolve().parents[1]
RUN_SYSTEMD = Path("/run/systemd")  # a private tmpfs here for each manager (see above)
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)
SYSTEM_PYTHON = "/usr/bin/python3"
# Every unit looop installs, for any profile: looop.service, looop-<hash>.service,
# looop-reap.service, looop-reap-<hash>.timer...
LOOOP_UNIT = re.compile(r"looop(?:-[\w-]+)?\.(?:service|timer)")


def unavailable_reason() -> str | None:
    """Why real-systemd tests cannot run here, or None when they can."""
    if not sys.platform.startswith("linux") or not SYSTEMD.exists():
        return f"needs a systemd user manager ({SYSTEMD} is absent on this machine)"
    if os.geteuid() != 0:
        return "needs root to start private user managers (cgroup delegation, a test user)"
    if cgroup2_mount() is None:
        return "needs a cgroup2 file system mounted (none in /proc/mounts)"
    if not RUN_SYSTEMD.is_dir():
        return f"needs {RUN_SYSTEMD} to mount a private tmpfs on"
    return None


def cgroup2_mount() -> Path | None:
    try:
        with open("/proc/mounts") as fh:
            for line in fh:
                fields = line.split()
                if len(fields) > 2 and fields[2] == "cgroup2":
                    return Path(fields[1])
    except OSError:
        pass
    return None


def _ensure_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "--create-home", name], check=True, capture_output=True)
        return pwd.getpwnam(name)


def build_venv(where: Path) -> Path:
    """A virtualenv at ``where`` with looop installed from a copy of the source.

    Built from the system Python so that every user can run it; the source is
    copied first so the build leaves nothing behind in the work tree.
    """
    src = where / "src"
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (PROJECT / name).exists():
            shutil.copy2(PROJECT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("looop", "packaging", "scripts"):
        shutil.copytree(PROJECT / name, src / name, ignore=ignore)
    venv = where / "venv"
    python = SYSTEM_PYTHON if os.path.exists(SYSTEM_PYTHON) else sys.executable
    subprocess.run([python, "-m", "venv", str(venv)], check=True, capture_output=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    out = subprocess.run(
        [*pip, "install", "--no-input", str(src)], capture_output=True, text=True, timeout=600
    )
    if out.returncode != 0:
        raise RuntimeError(f"cannot install looop into {venv}:\n{out.stdout}\n{out.stderr}")
    shutil.rmtree(src)
    for path in [where, *where.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o755)
    return venv


@dataclass
class Manager:
    """One private ``systemd --user`` and the isolated world it runs in."""

    name: str  # "user" (a normal user's manager) or "root"
    user: str  # the account the manager runs as
    uid: int
    gid: int
    base: Path
    venv: Path
    cgroup: Path
    log: Path
    sink: JournalSink
    proc: subprocess.Popen[bytes] | None = None

    # --- the isolated world --------------------------------------------
    @property
    def home(self) -> Path:
        return self.base / "home"

    @property
    def config_home(self) -> Path:
        return self.home / ".config"

    @property
    def state_home(self) -> Path:
        return self.home / ".local" / "state"

    @property
    def runtime_dir(self) -> Path:
        return self.base / "run"

    @property
    def unit_dir(self) -> Path:
        return self.config_home / "systemd" / "user"

    @property
    def data_dir(self) -> Path:
        """looop's default data dir for this world (XDG_STATE_HOME/looop)."""
        return self.state_home / "looop"

    @property
    def looop(self) -> str:
        return str(self.venv / "bin" / "looop")

    @property
    def env(self) -> dict[str, str]:
        """The complete environment of this world; nothing leaks in from ours."""
        return {
            "HOME": str(self.home),
            "USER": self.user,
            "LOGNAME": self.user,
            "SHELL": "/bin/sh",
            "PATH": f"{self.venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "XDG_RUNTIME_DIR": str(self.runtime_dir),
            "XDG_CONFIG_HOME": str(self.config_home),
            "XDG_STATE_HOME": str(self.state_home),
        }

    def paths(self) -> Any:
        """looop's Paths for the default profile of this world."""
        from looop.paths import Paths

        return Paths(self.data_dir, self.data_dir / "config.toml", self.runtime_dir / "looop", True)

    # --- running things as the manager's user --------------------------
    def command(self, argv: list[str], env: dict[str, str] | None = None) -> list[str]:
        """``argv`` as the manager's user, in its environment and its mount namespace.

        Inside the namespace ``systemctl`` sees the same private ``/run/systemd``
        as the manager (it checks the "booted with systemd" marker too).
        """
        full_env = {**self.env, **(env or {})}
        prefix: list[str] = []
        if self.proc is not None:
            prefix = ["nsenter", f"--target={self.proc.pid}", "--mount", "--"]
        if self.uid != 0:
            prefix += ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups"]
            prefix.append("--")
        pairs = [f"{k}={v}" for k, v in full_env.items()]
        return [*prefix, "/usr/bin/env", "-i", *pairs, *argv]

    def run(
        self,
        *argv: str,
        env: dict[str, str] | None = None,
        timeout: float = 60,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        out = subprocess.run(
            self.command(list(argv), env),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if check and out.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} exited {out.returncode}\n{out.stdout}\n{out.stderr}"
            )
        return out

    def systemctl(self, *args: str, check: bool = False, timeout: float = 60) -> Any:
        return self.run("systemctl", "--user", *args, check=check, timeout=timeout)

    def looop_cmd(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run(self.looop, *args, **kw)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        args = ["show", unit, *(f"--property={p}" for p in props)]
        out = self.systemctl(*args, check=True)
        result = {}
        for line in out.stdout.splitlines():
            key, _, value = line.partition("=")
            result[key] = value
        return result

    def prop(self, unit: str, name: str) -> str:
        return self.show(unit, name).get(name, "")

    def main_pid(self, unit: str = "looop.service") -> int:
        return int(self.prop(unit, "MainPID") or 0)

    def unit_pids(self, unit: str = "looop.service") -> list[int]:
        """Every process in the unit's cgroup, read from the cgroup itself."""
        group = self.prop(unit, "ControlGroup")
        if not group:
            return []
        root = cgroup2_mount()
        assert root is not None
        pids: list[int] = []
        directory = root / group.lstrip("/")
        if not directory.is_dir():
            return []
        for procs in directory.rglob("cgroup.procs"):
            with contextlib.suppress(OSError):
                pids += [int(p) for p in procs.read_text().split()]
        return pids

    # --- files in the world --------------------------------------------
    def chown(self, path: Path) -> None:
        """Give ``path`` (and what is below it) to the manager's user."""
        for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
            os.lchown(item, self.uid, self.gid)

    def write(self, path: Path, text: str, mode: int = 0o644) -> Path:
        """Write a file as the manager's user would have (parents included)."""
        missing = []
        parent = path.parent
        while not parent.exists():
            missing.append(parent)
            parent = parent.parent
        path.parent.mkdir(parents=True, exist_ok=True)
        for made in missing:
            os.chown(made, self.uid, self.gid)
        path.write_text(text)
        path.chmod(mode)
        os.chown(path, self.uid, self.gid)
        return path

    def sensor(self, name: str, body: str) -> Path:
        return self.write(self.data_dir / "sensors" / f"{name}.sh", f"#!/bin/sh\n{body}\n", 0o755)

    def drop_in(self, unit: str, text: str, name: str = "test.conf") -> Path:
        """A drop-in for ``unit`` (test-only settings never go in the shipped unit)."""
        return self.write(self.unit_dir / f"{unit}.d" / name, text)

    def read_log(self) -> str:
        """Everything the manager has logged (at debug level) so far."""
        return self.log.read_bytes().decode(errors="replace")

    def log_offset(self) -> int:
        return len(self.read_log())

    def log_since(self, offset: int) -> str:
        return self.read_log()[offset:]

    # --- lifecycle ------------------------------------------------------
    def start(self) -> None:
        self.log.touch()
        argv = self.command([str(SYSTEMD), "--user", "--log-target=journal", "--log-level=debug"])
        # One process all along (each step execs the next): it moves itself
        # into the delegated cgroup (as root) before anything else, enters a
        # mount namespace of its own with a private /run/systemd, drops to the
        # user and becomes the manager. No instant of it runs in the root cgroup.
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    "/bin/sh",
                    "-c",
                    ENTER,
                    "sh",
                    str(self.cgroup / "cgroup.procs"),
                    str(self.sink.path.parent),
                    *argv,
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        self.sink.route(self.proc.pid, self.log)
        deadline = time.monotonic() + 30
        state = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            state = self.systemctl("is-system-running").stdout.strip()
            if state in ("running", "degraded"):
                return
            time.sleep(0.05)
        tail = self.log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{self.name} manager did not come up (state {state!r}):\n{tail}")

    def looop_units(self) -> list[str]:
        """Every looop unit of any profile: loaded in the manager, or with a file here."""
        found = {p.name for p in self.unit_dir.glob("looop*") if LOOOP_UNIT.fullmatch(p.name)}
        listed = self.systemctl("list-units", "--all", "--plain", "--no-legend", "looop*")
        for line in listed.stdout.splitlines():
            words = line.replace("\N{BLACK CIRCLE}", " ").split()
            if words and LOOOP_UNIT.fullmatch(words[0]):
                found.add(words[0])
        return sorted(found)

    def reset(self) -> None:
        """Forget every looop unit and file, of every profile, so the next test starts clean.

        A test that installs a second profile and fails before uninstalling it
        must not leave that profile's pulse running for the rest of the session.
        """
        units = self.looop_units()
        if units:
            self.systemctl("stop", *units, timeout=60)
            self.systemctl("disable", *units)
        for unit in units:
            (self.unit_dir / unit).unlink(missing_ok=True)
        for drop_ins in self.unit_dir.glob("looop*.d"):
            shutil.rmtree(drop_ins, ignore_errors=True)
        for wanted in self.unit_dir.glob("*.wants/looop*"):  # if a disable fell short
            wanted.unlink()
        for leftover in self.unit_dir.glob(".looop*"):
            leftover.unlink()
        self.systemctl("daemon-reload", check=True)
        self.systemctl("reset-failed")
        shutil.rmtree(self.data_dir, ignore_errors=True)
        shutil.rmtree(self.runtime_dir / "looop", ignore_errors=True)
        shutil.rmtree(self.home / ".cache", ignore_errors=True)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        remove_cgroup(self.cgroup)


class JournalSink(threading.Thread):
    """Stands in for journald: receives what the managers log, one file per manager.

    Its socket is bind-mounted as each manager's ``/run/systemd/journal``
    (see ``ENTER``). It reads the native journal protocol and appends each
    ``MESSAGE`` to the log file of the manager that sent it, told apart by the
    sender's pid (``SCM_CREDENTIALS``).
    """

    def __init__(self, path: Path) -> None:
        super().__init__(name="journal-sink", daemon=True)
        self.path = path
        self.routes: dict[int, Any] = {}
        self.guard = threading.Lock()
        self.stopping = False
        path.parent.mkdir(mode=0o755)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            with contextlib.suppress(OSError):  # SO_RCVBUFFORCE: a burst of debug lines
                self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)
            self.sock.settimeout(0.2)
            self.sock.bind(str(path))
            path.chmod(0o666)  # the test user's manager sends here too
        except BaseException:
            self.sock.close()
            raise

    def route(self, pid: int, log: Path) -> None:
        with self.guard:
            self.routes[pid] = open(log, "ab", buffering=0)  # noqa: SIM115 - closed in close()

    def run(self) -> None:
        space = socket.CMSG_SPACE(struct.calcsize("iII"))
        while not self.stopping:
            try:
                data, ancillary, _, _ = self.sock.recvmsg(1 << 20, space)
            except TimeoutError:
                continue
            except OSError:
                if self.stopping:
                    return
                continue
            pid = None
            for level, kind, cdata in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", cdata[: struct.calcsize("iII")])[0]
            message = journal_fields(data).get("MESSAGE")
            with self.guard:
                out = self.routes.get(pid) if pid is not None else None
                if out is not None and message is not None:
                    out.write(message.encode("utf-8", "replace") + b"\n")

    def close(self) -> None:
        self.stopping = True
        if self.is_alive():
            self.join(timeout=2)
        self.sock.close()
        with self.guard:
            for out in self.routes.values():
                out.close()
        self.path.unlink(missing_ok=True)


def remove_stale_cgroups(root: Path) -> None:
    """Remove subtrees left by an earlier test run that was killed before cleaning up."""
    for top in root.glob("looop-test-*-*"):
        owner = top.name.split("-")[2]
        if owner.isdigit() and not os.path.exists(f"/proc/{owner}"):
            with contextlib.suppress(RuntimeError, OSError):
                remove_cgroup(top)


def journal_fields(data: bytes) -> dict[str, str]:
    """Parse one datagram of the native journal protocol."""
    fields: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        if end < 0:
            end = len(data)
        line = data[pos:end]
        if b"=" in line:
            key, _, value = line.partition(b"=")
            fields[key.decode(errors="replace")] = value.decode(errors="replace")
            pos = end + 1
        else:  # KEY\n<64-bit little-endian size><bytes>\n
            size = struct.unpack("<Q", data[end + 1 : end + 9])[0]
            value = data[end + 9 : end + 9 + size]
            fields[line.decode(errors="replace")] = value.decode(errors="replace")
            pos = end + 9 + size + 1
    return fields


ENTER = """\
echo $$ > "$1" || exit 1
journal=$2
shift 2
exec unshare --mount --propagation private -- /bin/sh -c '
    mount -t tmpfs -o mode=0755,size=64m looop-test /run/systemd &&
    mkdir /run/systemd/system /run/systemd/journal &&
    mount --bind "$0" /run/systemd/journal &&
    exec "$@"' "$journal" "$@"
"""


def remove_cgroup(top: Path) -> None:
    """Kill what is left in a cgroup subtree, then remove it bottom-up."""
    if not top.is_dir():
        return
    for _ in range(50):
        dirs = sorted((d for d in top.rglob("*") if d.is_dir()), key=lambda d: -len(d.parts))
        left = False
        for directory in [*dirs, top]:
            with contextlib.suppress(OSError):
                for pid in (directory / "cgroup.procs").read_text().split():
                    left = True
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)
        for directory in [*dirs, top]:
            with contextlib.suppress(OSError):
                directory.rmdir()
        if not top.exists():
            return
        time.sleep(0.1 if left else 0.05)
    raise RuntimeError(f"cannot remove cgroup {top}")


class Harness:
    """Session-wide: the test user, the virtualenv, the journal stand-in, the managers."""

    def __init__(self) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="looop-systemd-"))
        self.work.chmod(0o755)
        self.venv: Path | None = None
        self.managers: dict[str, Manager] = {}
        self.sink: JournalSink | None = None

    def _venv(self) -> Path:
        if self.venv is None:
            self.venv = build_venv(self.work / "install")
        return self.venv

    def _sink(self) -> JournalSink:
        if self.sink is None:
            self.sink = JournalSink(self.work / "journal" / "socket")
            self.sink.start()
        return self.sink

    def manager(self, name: str) -> Manager:
        if name in self.managers:
            return self.managers[name]
        venv = self._venv()
        sink = self._sink()
        if name == "root":
            user, uid, gid = "root", 0, 0
        else:
            entry = _ensure_user(TEST_USER)
            user, uid, gid = entry.pw_name, entry.pw_uid, entry.pw_gid
        base = self.work / name
        base.mkdir(mode=0o700)
        os.chown(base, uid, gid)
        for sub in ("home", "run"):
            (base / sub).mkdir(mode=0o700)
            os.chown(base / sub, uid, gid)
        root = cgroup2_mount()
        assert root is not None
        remove_stale_cgroups(root)
        cgroup = root / f"looop-test-{os.getpid()}-{name}"
        cgroup.mkdir()
        if uid != 0:  # delegate the subtree to the user
            for item in [cgroup, *cgroup.iterdir()]:
                os.chown(item, uid, gid)
        log = self.work / f"{name}.log"
        manager = Manager(name, user, uid, gid, base, venv, cgroup, log, sink)
        self.managers[name] = manager
        manager.start()
        return manager

    def close(self) -> None:
        for manager in self.managers.values():
            with contextlib.suppress(Exception):
                manager.stop()
        if self.sink is not None:
            self.sink.close()
        if os.environ.get("LOOOP_KEEP_SYSTEMD_LOGS"):
            print(f"systemd test files kept in {self.work}", file=sys.stderr)
        else:
            shutil.rmtree(self.work, ignore_errors=True)


# --- pytest glue -----------------------------------------------------------
TEST_DROP_IN = """\
[Service]
StandardOutput=append:{log}
StandardError=append:{log}
WatchdogSec=2
RestartSec=0.2
"""


@pytest.fixture(scope="session")
def systemd_harness() -> Iterator[Harness]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(reason)
    harness = Harness()
    try:
        yield harness
    finally:
        harness.close()


def _world(harness: Harness, name: str) -> Iterator[Manager]:
    manager = harness.manager(name)
    manager.reset()
    try:
        yield manager
    finally:
        manager.reset()


@pytest.fixture
def user_manager(systemd_harness: Harness) -> Iterator[Manager]:
    """A normal user's manager (what users run), with a clean looop world."""
    yield from _world(systemd_harness, "user")


@pytest.fixture
def root_manager(systemd_harness: Harness) -> Iterator[Manager]:
    """Root's user manager, with a clean looop world."""
    yield from _world(systemd_harness, "root")


@pytest.fixture(params=["user", "root"])
def any_manager(request: pytest.FixtureRequest, systemd_harness: Harness) -> Iterator[Manager]:
    """Each test using this runs under a normal user's manager and under root's."""
    yield from _world(systemd_harness, request.param)


def unit_log(manager: Manager, unit: str = "looop.service") -> Path:
    return manager.base / f"{unit}.out"


def add_test_drop_in(manager: Manager, unit: str = "looop.service") -> Path:
    """Unit output to a file (no journal here), short watchdog and restart delay."""
    log = unit_log(manager, unit)
    manager.write(log, "")
    return manager.drop_in(unit, TEST_DROP_IN.format(log=log))


def notifications(log_text: str, pid: int) -> list[str]:
    """Notification messages the manager got from ``pid``, in order (from its debug log)."""
    pattern = re.compile(rf"Got notification message from PID {pid} \((.*)\)")
    return [m.group(1) for m in pattern.finditer(log_text)]
