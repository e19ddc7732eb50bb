"""The tests' one harness: an isolated looop profile, the installed ``looop`` as a process.

Every test gets its own data dir, runtime dir and config through the
environment, so nothing touches the real home. ``procs`` ends, by pid, every
background process a test started, even when the test fails. ``dists`` is
the project built once a run, from a fresh clone's files, for the tests of
what the wheel and sdist carry.

What more than one test module needs lives here too, once: ``wait_for``
(poll for a state, never sleep for one), building a worker session on disk
(``session_files``, ``make_session``), a snapshot of a tree (``tree``), the
events of a profile (``events``), and a service manager's notify socket
(``NotifyPeer``, the ``peer`` fixture). A test module imports from here,
never from another test module.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pytest

# Real systemd user managers (fixtures user_manager, root_manager, any_manager),
# and the `root` marker: root-only tests skip with a reason for a normal user,
# and fail instead where LOOOP_TEST_ROOT_REQUIRED is set (CI).
pytest_plugins = ["systemd_harness", "root_only"]

PROJECT = Path(__file__).resolve().parents[1]
LOOOP = str(Path(sys.executable).parent / "looop")
if not os.path.exists(LOOOP):  # pragma: no cover - an unusual install layout
    LOOOP = shutil.which("looop") or "looop"
LOOOP_BIN = os.path.abspath(LOOOP)


@dataclass
class Profile:
    """One isolated looop profile: its directories and the environment naming them."""

    root: Path
    data: Path
    runtime: Path
    env: dict[str, str] = field(default_factory=dict)

    @property
    def config(self) -> Path:
        return self.data / "config.toml"

    @property
    def paths(self) -> Any:
        """This profile's ``looop.paths.Paths`` (lock, pid and beat-record names)."""
        from looop.paths import Paths

        return Paths(Path(os.path.realpath(self.data)), self.config, self.runtime, False)

    def run(self, *args: str, timeout: float = 60, **kw: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [LOOOP, *args],
            env=kw.pop("env", self.env),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            **kw,
        )

    def popen(self, *args: str, **kw: Any) -> subprocess.Popen[str]:
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        return subprocess.Popen(
            [LOOOP, *args], env=kw.pop("env", self.env), text=True, stdin=subprocess.DEVNULL, **kw
        )

    def sensor(self, name: str, body: str, mode: int = 0o755) -> Path:
        path = self.data / "sensors" / f"{name}.sh"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n" + body + "\n")
        path.chmod(mode)
        return path

    def write_config(self, text: str) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        self.config.write_text(text)

    def snapshot(self, name: str) -> Any:
        return json.loads((self.data / "snapshots" / f"{name}.json").read_text())

    def state(self) -> dict[str, Any]:
        out = self.run("_", "state", "--json")
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)


@pytest.fixture
def profile(tmp_path: Path) -> Profile:
    data = tmp_path / "data"
    runtime = tmp_path / "run"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("LOOOP_", "NOTIFY_", "WATCHDOG_"))
    }
    env.pop("JOURNAL_STREAM", None)
    env.update(
        LOOOP_DATA_DIR=str(data),
        LOOOP_RUNTIME_DIR=str(runtime),
        HOME=str(tmp_path / "home"),
        XDG_CONFIG_HOME=str(tmp_path / "home" / ".config"),
        XDG_STATE_HOME=str(tmp_path / "home" / ".local" / "state"),
    )
    (tmp_path / "home").mkdir()
    return Profile(tmp_path, data, runtime, env)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests sharing one costly resource run on the same worker, one after another.

    The systemd tests share the real user managers of ``systemd_harness``, and
    the tests of what the wheel and sdist carry share the ``dists`` built once.
    """
    for item in items:
        if item.get_closest_marker("systemd") is not None:
            item.add_marker(pytest.mark.xdist_group("systemd"))
        elif "dists" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("dists"))


class Processes:
    """Background processes started by a test, ended by pid at teardown."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[Any]] = []

    def add(self, proc: subprocess.Popen[Any]) -> subprocess.Popen[Any]:
        self.started.append(proc)
        return proc

    def end_all(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for proc in self.started:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def procs() -> Iterator[Processes]:
    tracker = Processes()
    try:
        yield tracker
    finally:
        tracker.end_all()


def strace_prefix(*options: str) -> list[str]:
    """A command prefix running what follows under strace with ``options`` (its trace discarded).

    How the tests make a system call fail (``-e inject=...``) or kill a
    process at one; skips the test where strace is not installed.
    """
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is needed to make a system call fail")
    return [strace, "-qq", "-o", os.devnull, *options]


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.02) -> Any:
    """Poll until ``predicate()`` is truthy; fail the test with a clear message if never."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s: {predicate}")
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` is a running process (a zombie awaiting its reaper is dead)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def live_with_env(entry: str) -> list[int]:
    """Live processes whose environment holds ``entry`` (``NAME=value``), from /proc."""
    needle = entry.encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                environ = fh.read().split(b"\0")
        except OSError:
            continue
        if needle in environ and pid_alive(int(name)):
            found.append(int(name))
    return sorted(found)


def as_plain_user() -> list[str]:
    """A command prefix under which permission bits bind, even for root.

    Root passes every permission check through CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH; dropping both from the bounding set makes uid 0 obey
    mode bits like any owner, which is what a real user meets, while it can
    still run the looop installed in root's own home.
    """
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv is not None, "setpriv (util-linux) is needed to test permissions as root"
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]


# --- worker sessions on disk -------------------------------------------------------
DAY = 86400.0
TTL = "3600"  # the reaper's --ttl in the tests that reap


def backdate(path: Path, age: float) -> None:
    """Set the mtime of ``path`` and everything below it ``age`` seconds back (no link followed)."""
    when = time.time() - age
    for root, dirs, files in os.walk(path, topdown=False, followlinks=False):
        for name in dirs + files:
            os.utime(os.path.join(root, name), (when, when), follow_symlinks=False)
    os.utime(path, (when, when), follow_symlinks=False)


def session_files(d: Path, meta: object | None = None, status: object | None = None) -> Path:
    """A session directory ``d`` holding ``meta.json`` and ``status.json`` as given.

    A str is written as it is, anything else as JSON; None writes no file.
    """
    d.mkdir(parents=True, exist_ok=True)
    for name, value in (("meta.json", meta), ("status.json", status)):
        if value is not None:
            (d / name).write_text(value if isinstance(value, str) else json.dumps(value))
    return d


def make_session(
    sessions: Path,
    sid: str,
    *,
    pid: int = 999_999_999,
    started: float | None = None,
    ended: float | None = None,
    exit_code: int = 0,
    meta: str | None = None,
    age: float | None = None,
) -> Path:
    """``sessions/<sid>`` with meta (or the raw ``meta`` text) and, if ``ended``, a status."""
    (sessions / sid).mkdir(parents=True)
    if meta is None:
        meta = json.dumps(
            {"id": sid, "pid": pid, "started": started or time.time() - 30 * DAY, "cmd": "work"}
        )
    status = None
    if ended is not None:
        status = {"state": "exited", "exit_code": exit_code, "ended": ended}
    d = session_files(sessions / sid, meta, status)
    (d / "transcript.log").write_text(f"{sid} did things\n")
    if age is not None:
        backdate(d, age)
    return d


def start_sleeper(procs: Processes) -> subprocess.Popen[bytes]:
    return procs.add(subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL))


def gone_pid() -> int:
    """The pid of a process that has ended and been collected."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def reap_json(profile: Profile, *args: str) -> tuple[int, dict[str, Any]]:
    out = profile.run("reap", "--json", *args)
    assert out.stdout, out.stderr
    return out.returncode, json.loads(out.stdout)


# --- what a test compares before and after ------------------------------------------
def tree(root: Path) -> dict[str, str]:
    """Every entry under ``root``, no link followed: a file's digest, a link's target, a dir."""
    found: dict[str, str] = {}
    if not root.exists():
        return found
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                found[rel] = "link -> " + os.readlink(path)
            elif path.is_dir():
                found[rel] = "dir"
            else:
                found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def events(profile: Profile, kind: str | None = None) -> list[dict[str, Any]]:
    """The profile's ``events.jsonl``, in order; only those of ``kind`` when given."""
    path = profile.data / "events.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    found = [json.loads(line) for line in lines if line.strip()]
    return found if kind is None else [e for e in found if e["event"] == kind]


# --- a service manager's files and notify socket ----------------------------------
def unit_settings(text: str) -> dict[str, list[str]]:
    """Every assignment in a unit file, by key, in order (comments and sections skipped).

    Lines end where systemd ends them (a newline, a CR or a NUL), not where
    ``str.splitlines`` would (U+2028 and friends are ordinary text to systemd).
    """
    settings: dict[str, list[str]] = {}
    for raw in re.split(r"\r\n|[\r\n\0]", text):
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, sep, value = line.partition("=")
        if sep:
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


class NotifyPeer:
    """A bound AF_UNIX datagram socket collecting (time, fields) from the pulse."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, list[str]]] = []
        self.wall: list[float] = []  # time.time() of each message, for comparing with records
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            self.wall.append(time.time())
            self.messages.append((time.monotonic(), data.decode().splitlines()))

    def first(self, field: str) -> tuple[float, list[str]] | None:
        for when, fields in list(self.messages):
            if field in fields:
                return when, fields
        return None

    def times(self, field: str) -> list[float]:
        return [when for when, fields in list(self.messages) if field in fields]

    def wait_for(self, field: str, *, after: float, within: float) -> bool:
        """Whether ``field`` arrives after ``after`` (monotonic) before ``within`` seconds pass.

        For asserting an absence, which needs a window; a presence is
        ``wait_for(lambda: peer.first(field))``.
        """
        try:
            wait_for(lambda: any(t > after for t in self.times(field)), within)
        except AssertionError:
            return False
        return True

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def peer(tmp_path: Path) -> Iterator[NotifyPeer]:
    listener = NotifyPeer(tmp_path / "notify.sock")
    yield listener
    listener.close()


@pytest.fixture
def tiny_fs() -> Iterator[Path]:
    """A 1 MiB tmpfs of its own, unmounted at the end."""
    where = Path(tempfile.mkdtemp(prefix="looop-tinyfs-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)
        where.rmdir()


def fresh_clone(into: Path) -> Path:
    """The project's files as a fresh clone has them (tracked, or new and not ignored).

    An unpacked sdist has no git: its files are what a clone has, less what
    running its tests left behind.
    """
    if not (PROJECT / ".git").exists():
        left = shutil.ignore_patterns("__pycache__", "*.py[cod]", ".pytest_cache", "build", "dist")
        shutil.copytree(PROJECT, into, ignore=left, dirs_exist_ok=True)
        return into
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = PROJECT / name
        if source.is_file():  # a file deleted but not yet committed is not in a clone
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    return into


class Dists(NamedTuple):
    clone: Path
    wheel: Path
    sdist: Path
    log: str  # what the build printed (its warnings)


@pytest.fixture(scope="session")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    """A fresh clone, and the wheel and sdist ``python -m build`` made from it, once a run.

    Tests may run Python in the clone (its ``__pycache__`` then appears) but
    must change nothing else in it.
    """
    clone = fresh_clone(tmp_path_factory.mktemp("clone"))
    out = subprocess.run(
        [sys.executable, "-m", "build", "-o", str(clone / "dist"), str(clone)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=clone,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    (wheel,) = (clone / "dist").glob("looop-*.whl")
    (sdist,) = (clone / "dist").glob("looop-*.tar.gz")
    return Dists(clone, wheel, sdist, out.stdout + out.stderr)


# --- workers and runs a test left behind --------------------------------------------
def configure_workers(profile: Profile, command: list[str], **extra: object) -> None:
    """``[worker]`` with ``command``, detached supervisors, and any other worker knobs."""
    lines = ["[worker]", f"command = {json.dumps(command)}", 'supervisor = "detached"']
    lines += [f"{key} = {json.dumps(value)}" for key, value in extra.items()]
    profile.write_config("\n".join(lines) + "\n")


@pytest.fixture
def fleet(profile: Profile) -> Iterator[Profile]:
    """The profile; whatever its workers left running is ended at the end (down, then by group)."""
    try:
        yield profile
    finally:
        profile.run("down", timeout=120)
        for meta in (profile.data / "sessions").glob("*/meta.json"):
            with contextlib.suppress(ValueError, OSError):
                pgid = json.loads(meta.read_text()).get("pgid")
                if pgid:
                    os.killpg(pgid, signal.SIGKILL)
        for pids in (profile.data / "reports").glob("*.pids"):
            for line in pids.read_text().splitlines():
                with contextlib.suppress(ProcessLookupError, ValueError, IndexError):
                    os.kill(int(line.split()[1]), signal.SIGKILL)


def run_records(profile: Profile) -> list[dict[str, Any]]:
    """Every ``_ run`` record of the profile, by name."""
    runs = profile.data / "runs"
    return [json.loads(p.read_text()) for p in sorted(runs.glob("*.json"))] if runs.exists() else []


def group_gone(pgid: int) -> bool:
    """No process is left in the process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return True
    return False


@contextlib.contextmanager
def detached_pulse(profile: Profile, interval: str) -> Iterator[Profile]:
    """A pulse detached by ``looop up`` beating every ``interval`` seconds, downed at the end."""
    profile.env["LOOOP_INTERVAL"] = interval
    up = profile.run("up", timeout=120)
    assert up.returncode == 0, up.stderr
    try:
        yield profile
    finally:
        profile.run("down", timeout=60)
