"""What looop installs for a profile, under which names, and where.

Kept apart from the rest of ``looop.service`` (which renders, writes and
drives the service managers) because ``looop status`` must know whether
looop is installed without loading any of that: this module needs only
``os``, ``pathlib`` and the package's ``ServiceError``, and loads a driver
(``for_manager``) only when one is asked for. The default profile
gets the plain names; any other data dir gets them suffixed with its profile
id, the hash that also names its lock, so two profiles' units live side by
side. The reap timer's state in words (``timer_said``) is here too, so that
``status`` and ``doctor`` say it alike without loading a driver to do so.
"""

from __future__ import annotations

import os
import sys

from looop.paths import Paths, as_path
from looop.service import ServiceError

TYPE_CHECKING = False  # not typing's: `looop status` imports this module
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from looop.service.driver import Driver

SYSTEMD, LAUNCHD = "systemd", "launchd"
MANAGERS = (SYSTEMD, LAUNCHD)
PULSE, REAP, TIMER = "pulse", "reap", "timer"


def default_manager() -> str:
    return LAUNCHD if sys.platform == "darwin" else SYSTEMD


def manager_named(name: str | None) -> str:
    """The manager a command means: the one named, else this platform's; ServiceError if unknown."""
    chosen = name or default_manager()
    if chosen not in MANAGERS:
        raise ServiceError(f"unknown service manager {chosen!r} (known: {', '.join(MANAGERS)})")
    return chosen


def for_manager(name: str | None) -> Driver:
    """The driver of the manager named (this platform's for None): ``systemd`` or ``launchd``.

    The one place the choice is made; ServiceError for a manager looop does not know.
    """
    if manager_named(name) == LAUNCHD:
        from looop.service import launchd

        return launchd
    from looop.service import systemd

    return systemd


def installed_driver(paths: Paths) -> Driver | None:
    """The driver of the manager this profile's pulse is installed under, else None."""
    manager = installed_manager(paths)
    return None if manager is None else for_manager(manager)


def profile_suffix(paths: Paths) -> str:
    """'' for the default profile, else the profile id that also names its lock."""
    return "" if paths.default_profile else paths.profile.removeprefix("looop-")


def unit_names(paths: Paths) -> dict[str, str]:
    """systemd unit names of this profile, by role."""
    s = profile_suffix(paths)
    pulse = f"looop-{s}" if s else "looop"
    reap = f"looop-reap-{s}" if s else "looop-reap"
    return {PULSE: f"{pulse}.service", REAP: f"{reap}.service", TIMER: f"{reap}.timer"}


def worker_unit(paths: Paths, wid: str) -> str:
    """The transient unit a worker runs as: ``looop-worker-<ID>``, plus the profile suffix."""
    s = profile_suffix(paths)
    return f"looop-worker-{wid}-{s}.service" if s else f"looop-worker-{wid}.service"


def labels(paths: Paths) -> dict[str, str]:
    """launchd labels of this profile, by role."""
    s = profile_suffix(paths)
    tail = f".{s}" if s else ""
    return {PULSE: f"org.looop.pulse{tail}", REAP: f"org.looop.reap{tail}"}


def _unit_dir() -> str:
    home = os.path.expanduser("~")
    config_home = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    return os.path.join(config_home, "systemd", "user")


def _agents_dir() -> str:
    return os.path.join(os.path.expanduser("~"), "Library", "LaunchAgents")


def unit_dir() -> Path:
    return as_path(_unit_dir())


def unit_file(paths: Paths, role: str) -> Path:
    """Where this profile's systemd unit for ``role`` is installed."""
    return unit_dir() / unit_names(paths)[role]


def agents_dir() -> Path:
    return as_path(_agents_dir())


def plist_file(paths: Paths, role: str) -> Path:
    """Where this profile's launchd plist for ``role`` is installed."""
    return agents_dir() / f"{labels(paths)[role]}.plist"


def launchd_log_dir() -> Path:
    return as_path(os.path.expanduser("~")) / "Library" / "Logs" / "looop"


def launchd_log(paths: Paths, role: str) -> Path:
    """Where launchd writes the output of this profile's agent for ``role``."""
    suffix = profile_suffix(paths)
    return launchd_log_dir() / (f"{role}-{suffix}.log" if suffix else f"{role}.log")


def installed(path: str | os.PathLike[str]) -> bool:
    """Is something installed at ``path``? The one rule looop uses for its files.

    Anything there counts, a symlink included (dangling or not): the manager
    sees a file by that name, so looop must neither pretend it is absent nor
    write over it unasked. Whether it is still the file looop wrote is a
    separate question (``looop.service.render.pristine``).
    """
    return os.path.lexists(path)


def installed_manager(paths: Paths) -> str | None:
    """Which manager has this profile's pulse installed: "systemd", "launchd" or None."""
    # Strings, not ``unit_file``'s paths: ``looop status`` asks, and never loads pathlib.
    candidates = {
        SYSTEMD: os.path.join(_unit_dir(), unit_names(paths)[PULSE]),
        LAUNCHD: os.path.join(_agents_dir(), f"{labels(paths)[PULSE]}.plist"),
    }
    first = default_manager()
    for name in (first, *(m for m in MANAGERS if m != first)):
        if installed(candidates[name]):
            return name
    return None


def timer_said(timer: dict[str, Any]) -> str:
    """The reap timer (a driver's ``reap_timer`` answer) on one line: ``status``'s and ``doctor``'s.

    Active with its next and last run, or NOT ACTIVE and what that means.
    """
    import time

    from looop import say

    unit = timer["unit"]
    if not timer["active"]:
        state = timer["state"]
        return f"{unit} NOT ACTIVE ({state}): dead sessions are not reaped; see looop doctor"
    now, said = time.time(), [f"{unit} active"]
    if isinstance(timer["next_run"], int | float):
        said.append(f"next run in {say.duration(max(0.0, timer['next_run'] - now))}")
    if isinstance(timer["last_run"], int | float):
        result = timer["last_result"] or "?"
        said.append(f"last run {say.duration(now - timer['last_run'])} ago: {result}")
    else:
        said.append("not run yet")
    return ", ".join(said)
