"""What the systemd and launchd drivers share: their one interface, and running a command.

``Driver`` is what looop asks of a service manager, the whole of it: the
pulse's state, start, stop, restart and reload (``up``, ``down``, ``status``
and the rest), where its log is, and installing and uninstalling. The
``systemd`` and ``launchd`` modules each implement it, and the one to use is
chosen once, by ``units.for_manager`` (a manager named, or this platform's)
or ``units.installed_driver`` (the one this profile is installed under);
callers then ask the driver, never which manager it is. What a manager cannot
do is said by the driver (launchd's ``restart`` returns False: the caller
stops and starts), not tested for by name. Rejected: a base class with two
subclasses, which would wrap the modules' functions in objects for nothing;
and ``if manager == SYSTEMD`` at each call site, seven of them once.

Every ``systemctl`` and ``launchctl`` call goes through ``run``: one small
function, so a missing command or one that hangs is reported the same way for
both managers, and a test can put a stand-in on ``PATH``. ``checked`` turns a
refusal into a ``ServiceError`` carrying what the manager said. Two questions
about the pulse are answered here for both drivers and for ``detached``: is a
pulse ready (``ready_pulse``), and does one run that the manager does not own
(``foreign_pulse``).
``subprocess`` is imported where it is used: ``looop status`` loads a driver
to ask for the pulse's state and should not pay for it otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from looop.paths import Paths
from looop.service import ServiceError
from looop.service.units import LAUNCHD, SYSTEMD

if TYPE_CHECKING:
    import subprocess

# What uninstall hands a driver to remove its files with: (files, what to add
# to "kept" for an edited one) -> lines said.
Remover = Callable[[list[Path], str], list[str]]


class PulseLog(NamedTuple):
    """Where the pulse's log is: a file to read, or a command (journalctl) that prints it.

    ``command`` is journalctl's start; ``looop logs`` adds its options.
    """

    where: str  # said to a person: "the journal of looop.service", a path
    file: Path | None = None
    command: list[str] | None = None


class Driver(Protocol):
    """One service manager, as looop uses it (see the module's docstring)."""

    NAME: str

    def state(self, paths: Paths) -> dict[str, Any] | None:
        """The manager's view of the pulse, or None when it cannot be asked. Never raises."""

    def reap_timer(self, paths: Paths) -> dict[str, Any] | None:
        """How the reaper's timer (agent) is: active, next and last run. Never raises."""

    def start(self, paths: Paths, ready_within: float | None = None) -> None:
        """Start the pulse; return once it is ready (holds the lock, first beat published)."""

    def stop(self, paths: Paths) -> None:
        """Stop the pulse; return once it has ended."""

    def restart(self, paths: Paths) -> bool:
        """Restart the pulse in place, once ready again; False when the manager cannot."""

    def reload(self, paths: Paths) -> bool:
        """Have the pulse reload its config, once ready again; False when the manager cannot."""

    def pulse_log(self, paths: Paths) -> PulseLog:
        """Where the pulse's log is, under this manager."""

    def pulse_file(self, paths: Paths) -> Path:
        """Where the pulse's unit or plist is installed."""

    def answers(self) -> None:
        """Before install writes anything: ServiceError unless the manager can take the files."""

    def log_dirs(self) -> list[Path]:
        """Directories the manager writes its jobs' output into: install makes them."""

    def enable(self, paths: Paths, changed: set[str]) -> list[str]:
        """After install wrote the files: have the manager load and enable them."""

    def launch(self, paths: Paths, changed: set[str], start: bool) -> list[str]:
        """After install enabled them: (re)start what needs it, unless ``start`` is false."""

    def notes(self) -> list[str]:
        """What to tell the user after an install (lingering off, say)."""

    def uninstall(self, paths: Paths, remove: Remover) -> tuple[list[str], bool]:
        """Stop and unload this profile's jobs, remove their files with ``remove``.

        The lines said, and False when nothing of this profile's was there.
        """


def missing(command: str) -> ServiceError:
    """The error for a manager command that is not on ``PATH``."""
    manager = LAUNCHD if command == "launchctl" else SYSTEMD
    return ServiceError(
        f"{command} not found: this machine does not seem to run {manager} "
        "(choose with --systemd or --launchd; --dry-run shows the files)"
    )


def run(argv: Sequence[str], timeout: float | None) -> subprocess.CompletedProcess[str]:
    """Run one manager command, capturing its output; ServiceError if missing or hung."""
    import subprocess  # imported where used: `looop status` loads the drivers too

    try:
        return subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
        )
    except FileNotFoundError:
        raise missing(argv[0]) from None
    except subprocess.TimeoutExpired:
        raise ServiceError(f"{' '.join(argv)} did not answer within {timeout:g}s") from None


def said(out: subprocess.CompletedProcess[str]) -> str:
    """What a manager's command said (its stderr, else its stdout), on one line; "" if nothing."""
    return (out.stderr or out.stdout).strip().replace("\n", " · ")


def checked(out: subprocess.CompletedProcess[str], what: str) -> subprocess.CompletedProcess[str]:
    """``out`` if the command succeeded; else a ServiceError with what it said."""
    if out.returncode != 0:
        raise ServiceError(f"{what} failed (exit {out.returncode}): {said(out) or 'no message'}")
    return out


def number(value: Any) -> int | None:
    """An integer a manager printed (a pid, a count), or None when it printed none."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def ready_pulse(paths: Paths) -> int | None:
    """Pid of a pulse that holds the lock and has published a beat of its own, else None.

    What ``looop up`` promises under every manager, and without one: "ready"
    is this, never merely "forked" or "launched".
    """
    from looop.pulse import lock, record

    pid = lock.pulse_holder(paths)
    if not pid:
        return None
    beat = record.read(paths)
    return pid if beat is not None and beat.get("pid") == pid else None


def foreign_pulse(paths: Paths, managed_pid: int | None) -> int | None:
    """Pid of a pulse that holds this profile's lock outside the manager, if any."""
    from looop.pulse import lock

    pid = lock.pulse_holder(paths)
    if pid and pid != managed_pid:
        return pid
    return None
