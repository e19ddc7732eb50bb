"""Where looop keeps things: the data dir, the config file and the runtime dir.

Every other module asks this one; nobody else reads ``LOOOP_DATA_DIR`` or
``XDG_*``. The runtime dir is checked before use because it holds the lock that
keeps the pulse single: a directory somebody else owns or can write to (a
pre-created ``/tmp/looop-<uid>``) would let them fake or steal that lock, so
it is refused rather than repaired.

It also answers where this installation's ``looop`` is (``looop_command``
for what units run, ``looop_bin`` for sensors): the same question of "where",
asked of the installation instead of the profile; and so the environment
that tells a sensor or a worker where things are (``child_environment``).

The lock is per *profile*: its name is a hash of the resolved data dir, so two
data dirs never share a lock, and the same data dir maps to the same name from
the service manager and from every shell.
"""

from __future__ import annotations

import os
import stat
import sys

from looop.errors import LooopError

TYPE_CHECKING = False  # not typing's: every command builds a Paths
if TYPE_CHECKING:
    from pathlib import Path


def as_path(text: str) -> Path:
    """``text`` as a ``pathlib.Path``, imported only by the commands that ask for one.

    ``pathlib`` (with ``fnmatch``, ``re`` and ``urllib.parse``, which it
    loads) costs ``looop status`` more than its whole answer, so the probes
    work on strings and never call this.
    """
    from pathlib import Path

    return Path(text)


class RuntimeDirError(LooopError):
    """The runtime dir exists but is not safe to use."""


class Paths:
    """The resolved directories of one profile.

    A plain slotted class rather than a dataclass: every command builds one,
    including the ``status`` probe, which should not pay for importing
    ``dataclasses``. It builds nothing it is not asked for: the three
    directories are kept as strings (``root``, ``config_text``,
    ``runtime_dir``), the runtime dir's files are strings too, and the
    ``pathlib.Path`` of the data dir and the config file is made on first
    use, so the probes, which read the runtime dir and print the data dir,
    never load ``pathlib``.
    """

    __slots__ = ("_config", "_data", "config_text", "default_profile", "root", "runtime_dir")

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        config_file: str | os.PathLike[str],
        runtime_dir: str | os.PathLike[str],
        default_profile: bool,
    ) -> None:
        self.root, self.config_text = os.fspath(data_dir), os.fspath(config_file)
        self.runtime_dir, self.default_profile = os.fspath(runtime_dir), default_profile
        self._data: Path | None = None
        self._config: Path | None = None

    def __repr__(self) -> str:
        return (
            f"Paths(data_dir={self.root!r}, config_file={self.config_text!r}, "
            f"runtime_dir={self.runtime_dir!r}, default_profile={self.default_profile!r})"
        )

    @property
    def data_dir(self) -> Path:
        if self._data is None:
            self._data = as_path(self.root)
        return self._data

    @property
    def config_file(self) -> Path:
        if self._config is None:
            self._config = as_path(self.config_text)
        return self._config

    # --- data dir layout ---------------------------------------------------
    @property
    def playbook(self) -> Path:
        return self.data_dir / "PLAYBOOK.md"

    @property
    def goals(self) -> Path:
        return self.data_dir / "goals"

    @property
    def sensors(self) -> Path:
        return self.data_dir / "sensors"

    @property
    def snapshots(self) -> Path:
        """The published generation: a symlink swapped atomically each beat."""
        return self.data_dir / "snapshots"

    @property
    def generations(self) -> Path:
        """Where snapshot generations are built before being swapped in."""
        return self.data_dir / ".snapshots"

    @property
    def sessions(self) -> Path:
        return self.data_dir / "sessions"

    @property
    def claims(self) -> Path:
        return self.data_dir / "claims"

    @property
    def asks(self) -> Path:
        return self.data_dir / "asks"

    @property
    def answers(self) -> Path:
        return self.data_dir / "answers"

    @property
    def reports(self) -> Path:
        return self.data_dir / "reports"

    @property
    def schedules(self) -> Path:
        return self.data_dir / "schedules"

    @property
    def journal(self) -> Path:
        return self.data_dir / "journal.md"

    @property
    def events(self) -> Path:
        return self.data_dir / "events.jsonl"

    @property
    def runs(self) -> Path:
        return self.data_dir / "runs"

    @property
    def cost(self) -> Path:
        return self.data_dir / "cost.jsonl"

    @property
    def playbook_history(self) -> Path:
        return self.data_dir / "playbook.d"

    # --- runtime dir (volatile, per profile) ------------------------------
    @property
    def profile(self) -> str:
        """Short stable name of this data dir, used for its runtime files."""
        from looop.digest import sha256  # only a command that uses the runtime dir pays for it

        digest = sha256(os.fsencode(self.root)).hexdigest()[:16]
        return f"looop-{digest}"

    @property
    def lock_file(self) -> str:
        return os.path.join(self.runtime_dir, f"{self.profile}.lock")

    @property
    def pid_file(self) -> str:
        return os.path.join(self.runtime_dir, f"{self.profile}.pid")

    @property
    def datadir_file(self) -> str:
        return os.path.join(self.runtime_dir, f"{self.profile}.datadir")

    @property
    def beat_file(self) -> str:
        return os.path.join(self.runtime_dir, f"{self.profile}.beat.json")


def _default_data_dir() -> str:
    home = os.path.expanduser("~")
    state_home = os.environ.get("XDG_STATE_HOME") or os.path.join(home, ".local", "state")
    return os.path.join(state_home, "looop")


def default_runtime_dir() -> str:
    """The runtime dir for this user when ``LOOOP_RUNTIME_DIR`` is not set.

    It must be the same from every context the user has (service manager,
    terminal, cron, ssh), so on Linux ``/run/user/<uid>`` is preferred over a
    temp dir when ``XDG_RUNTIME_DIR`` is missing, and on macOS the per-user temp
    dir comes from ``confstr`` rather than ``$TMPDIR``, which launchd agents and
    terminals can see differently.
    """
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return os.path.join(xdg, "looop")
    uid = os.getuid()
    run_user = f"/run/user/{uid}"
    try:
        st = os.stat(run_user)
        if stat.S_ISDIR(st.st_mode) and st.st_uid == uid:
            return os.path.join(run_user, "looop")
    except OSError:
        pass
    if sys.platform == "darwin":
        base = _darwin_user_temp_dir()
        if base:
            return os.path.join(base, "looop")
    import tempfile  # only this last resort needs it; keep start-up light

    return os.path.join(tempfile.gettempdir(), f"looop-{uid}")


def _darwin_user_temp_dir() -> str | None:
    """``confstr(_CS_DARWIN_USER_TEMP_DIR)``: the same for launchd and a terminal.

    Python may not know the name, so libc is asked by number (65537, from
    <unistd.h>) when ``os.confstr`` refuses it.
    """
    try:
        return os.confstr("CS_DARWIN_USER_TEMP_DIR")
    except (ValueError, OSError):
        pass
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        buf = ctypes.create_string_buffer(1024)
        size = libc.confstr(65537, buf, len(buf))
    except (OSError, AttributeError):
        return None
    return buf.value.decode() if 0 < size <= len(buf) else None


def _absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def resolve() -> Paths:
    """Resolve the three directories from the environment (first set wins)."""
    env_data = os.environ.get("LOOOP_DATA_DIR")
    # Resolved, so that one data dir reached through a symlink is still one
    # profile with one lock (two locks would let two pulses run on it).
    data_dir = os.path.realpath(_absolute(env_data or _default_data_dir()))
    default_profile = data_dir == os.path.realpath(_absolute(_default_data_dir()))
    env_cfg = os.environ.get("LOOOP_CONFIG")
    config_file = _absolute(env_cfg) if env_cfg else os.path.join(data_dir, "config.toml")
    env_rt = os.environ.get("LOOOP_RUNTIME_DIR")
    runtime_dir = _absolute(env_rt) if env_rt else default_runtime_dir()
    return Paths(data_dir, config_file, runtime_dir, default_profile)


def check_runtime_dir(path: str) -> None:
    """Raise RuntimeDirError unless ``path`` is a real 0700 directory we own."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise RuntimeDirError(f"runtime dir {path} is a symlink; refusing to use it")
    if not stat.S_ISDIR(st.st_mode):
        raise RuntimeDirError(f"runtime dir {path} is not a directory")
    if st.st_uid != os.getuid():
        raise RuntimeDirError(
            f"runtime dir {path} is owned by uid {st.st_uid}, not by you (uid {os.getuid()}); "
            "refusing to use it"
        )
    if st.st_mode & 0o077:
        raise RuntimeDirError(
            f"runtime dir {path} has mode {stat.S_IMODE(st.st_mode):04o}; it must not be "
            "accessible to group or others (expected 0700)"
        )


def ensure_runtime_dir(paths: Paths) -> str:
    """Create the runtime dir 0700 if missing, then verify it is safe.

    Also writes ``<profile>.datadir`` (whole, 0600, only when it does not
    already say this data dir) so a person listing the runtime dir can tell
    which lock belongs to which data dir.
    """
    rt = paths.runtime_dir
    try:
        os.makedirs(os.path.dirname(rt), exist_ok=True)
        os.mkdir(rt, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise RuntimeDirError(f"cannot create runtime dir {rt}: {exc.strerror}") from exc
    check_runtime_dir(rt)
    from looop import fs  # only starters of a pulse or a sense get here; status stays light

    marker = paths.datadir_file
    data = os.fsencode(paths.root) + b"\n"  # a path: its bytes, UTF-8 or not
    try:
        try:
            same = fs.read_small(marker) == data
        except FileNotFoundError:
            same = False
        if not same:
            fs.write_whole(marker, data, mode=0o600)
    except OSError as exc:
        raise RuntimeDirError(f"cannot write {marker}: {fs.why(exc)}") from exc
    return rt


def _runnable(path: str) -> bool:
    """An executable regular file (a directory is "executable" too, and runs nothing)."""
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _installed_script() -> str | None:
    """The ``looop`` script of the installation this package belongs to, if it has one.

    In order: the command being run (``looop ...`` started by its script);
    the scripts dir of the scheme pip installed this package under (the user
    scheme's ``~/.local/bin`` when the package lives in the user site, else
    the interpreter's default scheme, a venv's ``bin/`` included); the script
    beside ``sys.executable``. ``PATH`` is never asked: the ``looop`` it
    finds may be another installation's.
    """
    argv0 = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if argv0 and os.path.basename(argv0) == "looop" and _runnable(argv0):
        return argv0
    import site
    import sysconfig  # only install and the sensors' environment get here

    package = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
    user_site = site.getusersitepackages() if site.ENABLE_USER_SITE is not False else ""
    if user_site and os.path.realpath(user_site) == package:
        scheme = sysconfig.get_preferred_scheme("user")
        scripts = sysconfig.get_path("scripts", scheme)
    else:
        scripts = sysconfig.get_path("scripts")
    for candidate in (
        os.path.join(scripts, "looop"),
        os.path.join(os.path.dirname(sys.executable), "looop"),
    ):
        if _runnable(candidate):
            return candidate
    return None


def looop_command() -> list[str]:
    """The argv that runs this looop, whatever ``PATH`` holds: what units and plists run.

    The installation's own ``looop`` script when it has one
    (``_installed_script``); else ``<this python> -P -m looop``, which runs
    this package from wherever the service manager starts it. ``-P`` keeps
    the working directory (a unit's is the home dir) off ``sys.path``, so a
    ``looop/`` folder there cannot stand in for the package; ``-I`` and
    ``-s`` are not used, because they drop the user site a ``pip install
    --user`` lives in.

    Rejected: trusting ``sys.argv[0]`` (run as ``python -m looop`` it is the
    package's ``__main__.py``, which is not executable) and ``PATH`` (another
    installation's looop, or none under a service manager).
    """
    script = _installed_script()
    if script is not None:
        return [script]
    return [sys.executable, "-P", "-m", "looop"]


def looop_bin() -> str:
    """One path for sensors to call looop back with: ``LOOOP_BIN``.

    A single executable, unlike ``looop_command``: a sensor runs
    ``"$LOOOP_BIN" status``. This installation's script when it has one;
    else the ``looop`` on ``PATH`` (the best a single path can do for an
    installation without scripts, such as ``python -m looop`` from a
    ``--target`` dir); else "" (the sensor's own ``looop`` lookup decides).
    Never the interpreter alone, which would run ``python status``.
    """
    script = _installed_script()
    if script is not None:
        return script
    import shutil

    return shutil.which("looop") or ""


# The service manager's channel belongs to the pulse alone: a sensor or a
# worker that ran systemd-notify must not be able to mark the service ready
# or feed its watchdog.
WITHHELD_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
# A worker's own id, set in its environment; what ``_ ask``, ``_ claim`` and
# ``_ kill`` default to.
SESSION_ENV = "LOOOP_SESSION_ID"


def child_environment(paths: Paths, base: dict[str, str] | os._Environ[str]) -> dict[str, str]:
    """The environment looop gives what it runs for the user (sensors, workers).

    ``base`` without the service manager's channel, plus where looop is and
    where the shared directories are (SPEC §3): ``LOOOP_DATA_DIR``,
    ``LOOOP_BIN``, ``LOOOP_CONFIG``, ``LOOOP_CLAIMS_DIR``, ``LOOOP_REPORTS_DIR``.
    """
    env = {k: v for k, v in base.items() if k not in WITHHELD_ENV}
    env.update(
        LOOOP_DATA_DIR=paths.root,
        LOOOP_BIN=looop_bin(),
        LOOOP_CONFIG=paths.config_text,
        LOOOP_CLAIMS_DIR=str(paths.claims),
        LOOOP_REPORTS_DIR=str(paths.reports),
    )
    return env
