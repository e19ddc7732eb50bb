"""The launchd driver: every ``launchctl`` call looop makes, and what it asks.

``print`` (is a job loaded, its pid and state), ``bootstrap`` and
``kickstart`` (start), ``bootout`` (stop, unload) and ``enable``, all in the
user's ``gui/<uid>`` domain and all through ``launchctl`` (and so through
``driver.run``).

launchd differs from systemd in two ways that shape this module:

- *It only launches.* There is no readiness protocol, so ``start`` waits
  itself for what ``looop up`` promises: a pulse holding the lock with its
  first beat published, or says why not with the tail of the agent's log.
- *bootout is asynchronous.* ``launchctl bootout`` returns while the job is
  still being torn down, and bootstrapping the label in that window fails
  ("Bootstrap failed: 5"), so ``bootout`` waits until ``print`` no longer
  finds the label.

This module never imports the renderer or the installer: ``looop status``
loads it (only when launchd has the pulse installed) to call ``state``.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from looop.log import log_tail
from looop.paths import Paths
from looop.service import ServiceError
from looop.service.driver import (
    PulseLog,
    Remover,
    checked,
    foreign_pulse,
    number,
    ready_pulse,
    run,
    said,
)
from looop.service.units import (
    LAUNCHD,
    PULSE,
    REAP,
    agents_dir,
    installed,
    labels,
    launchd_log,
    launchd_log_dir,
    plist_file,
)

NAME = LAUNCHD

if TYPE_CHECKING:
    import subprocess

# launchctl bootout returns before the job is gone; bootstrapping the label
# again in that window fails ("Bootstrap failed: 5"). Seconds to wait for it.
BOOTOUT_TIMEOUT = 5.0
# Seconds for a pulse launchd started to hold the lock and publish its first
# beat when the caller does not say (systemd waits for READY=1 itself), and
# for a stopped one to let go of the lock.
START_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0


def _domain() -> str:
    return f"gui/{os.getuid()}"


def launchctl(*args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """``launchctl ARGS``: every launchd call looop makes goes through here."""
    return run(["launchctl", *args], timeout)


def job(label: str, timeout: float | None = None) -> dict[str, str] | None:
    """What ``launchctl print`` says of a loaded job (state, pid, runs...); None if not loaded."""
    out = launchctl("print", f"{_domain()}/{label}", timeout=timeout)
    if out.returncode != 0:
        return None
    return dict(re.findall(r"^\s*([a-z ]+?) = (.*?)\s*$", out.stdout, re.MULTILINE))


def loaded(label: str) -> bool:
    return job(label) is not None


def _pid(label: str) -> int | None:
    found = job(label)
    return number(found.get("pid")) if found else None


def bootout(label: str) -> None:
    """Unload a job and return once launchd has let go of it.

    ``launchctl bootout`` can return while the job is still being torn down
    (its exit status then says little), and bootstrapping the same label in
    that window fails, so launchd's own answer counts: the label is gone once
    ``launchctl print`` no longer finds it.
    """
    target = f"{_domain()}/{label}"
    out = launchctl("bootout", target)
    deadline = time.monotonic() + BOOTOUT_TIMEOUT
    while loaded(label):
        if time.monotonic() >= deadline:
            detail = said(out)
            raise ServiceError(
                f"launchctl bootout {target}: still loaded after {BOOTOUT_TIMEOUT:g}s"
                + (f" ({detail})" if detail else "")
                + "; try again"
            )
        time.sleep(0.1)


def _bootstrap(paths: Paths, role: str) -> None:
    """Load the installed plist of ``role`` into the user's domain."""
    plist = plist_file(paths, role)
    checked(
        launchctl("bootstrap", _domain(), str(plist)), f"launchctl bootstrap {_domain()} {plist}"
    )


def answers() -> None:
    """Before install writes anything: is there a user domain to load the agents into?

    ``launchctl print gui/<uid>`` fails in a login without one (ssh with
    nobody logged in at the console); ServiceError saying what it said.
    """
    out = launchctl("print", _domain(), timeout=10)
    if out.returncode != 0:
        detail = said(out) or "no message"
        raise ServiceError(
            f"launchd has no {_domain()} domain here ({detail}); nothing installed. "
            "Run install from a logged-in session, or start the pulse with looop up"
        )


def enable(paths: Paths, changed: set[str]) -> list[str]:
    """After install wrote the plists: enable them."""
    names = labels(paths)
    for label in names.values():
        target = f"{_domain()}/{label}"
        checked(launchctl("enable", target), f"launchctl enable {target}")
    return [f"enabled {', '.join(names.values())}"]


def launch(paths: Paths, changed: set[str], start: bool) -> list[str]:
    """After install enabled the plists: (re)load what needs it, unless ``start`` is false.

    The reaper is loaded even when a pulse outside launchd keeps the pulse's
    agent from loading: it does not need the lock.
    """
    names = labels(paths)
    if not start:
        return ["not started (--no-start): loaded at next login, or now by: looop up"]
    foreign = foreign_pulse(paths, _pid(names[PULSE]))
    lines = []
    for role, label in names.items():
        if role == PULSE and foreign:
            lines.append(
                f"not started: a pulse already runs outside launchd (pid {foreign}); "
                "run looop install again to hand it over"
            )
            continue
        is_loaded = loaded(label)
        if is_loaded and role not in changed:
            lines.append(f"{label} already loaded")
            continue
        if is_loaded:
            bootout(label)
        _bootstrap(paths, role)
        lines.append(f"loaded {label}")
    return lines


def notes() -> list[str]:
    return []


def uninstall(paths: Paths, remove: Remover) -> tuple[list[str], bool]:
    """Unload every job of this profile, then ``remove`` the plists.

    A job still loaded with its plist gone is unloaded all the same.
    """
    files = [plist_file(paths, role) for role in labels(paths)]
    lines = []
    for label in labels(paths).values():
        if loaded(label):
            bootout(label)
            lines.append(f"unloaded {label}")
    if not lines and not any(installed(f) for f in files):
        return [f"nothing to uninstall: no looop agents in {agents_dir()}"], False
    return [*lines, *remove(files, ", and launchd loads it at next login")], True


def pulse_file(paths: Paths) -> Path:
    return plist_file(paths, PULSE)


def log_dirs() -> list[Path]:
    return [launchd_log_dir()]  # where the plists send the agents' output


def pulse_log(paths: Paths) -> PulseLog:
    """The agent's log file (the plist's ``StandardErrorPath``)."""
    log = launchd_log(paths, PULSE)
    return PulseLog(str(log), file=log)


def restart(paths: Paths) -> bool:
    """False: launchd has no restart that waits for readiness (the caller stops and starts)."""
    return False


def reload(paths: Paths) -> bool:
    """False: launchd has no reload (the caller signals the pulse itself)."""
    return False


def _log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def start(paths: Paths, ready_within: float | None = None) -> None:
    """Load or kickstart the pulse agent, then wait until it is ready (``looop up``'s promise).

    Waits up to ``ready_within`` seconds (default ``START_TIMEOUT``).
    """
    ready_within = ready_within or START_TIMEOUT
    label = labels(paths)[PULSE]
    found = job(label)
    foreign = foreign_pulse(paths, number(found.get("pid")) if found else None)
    if foreign:
        raise ServiceError(
            f"a pulse already runs outside launchd (pid {foreign}); "
            f"stop it (kill {foreign}), then try again"
        )
    _load_reaper(paths)
    log = launchd_log(paths, PULSE)
    since = _log_size(log)
    if found is not None:
        checked(launchctl("kickstart", f"{_domain()}/{label}"), f"launchctl kickstart {label}")
    else:
        _bootstrap(paths, PULSE)
    deadline = time.monotonic() + ready_within
    while not ready_pulse(paths):
        if time.monotonic() >= deadline:
            said = log_tail(log, since)
            raise ServiceError(
                f"{label} did not become ready within {ready_within:g}s "
                "(no pulse holds the lock with a beat published)"
                + (f": {said}" if said else "")
                + f". See its log: {log}"
            )
        time.sleep(0.05)


def _load_reaper(paths: Paths) -> None:
    """Load the reap agent when its plist is installed but launchd does not have it.

    So every road to a running pulse (``looop up`` after ``install
    --no-start``, after a ``down``) leaves the reaper loaded too.
    """
    label = labels(paths)[REAP]
    if installed(plist_file(paths, REAP)) and not loaded(label):
        _bootstrap(paths, REAP)


def stop(paths: Paths) -> None:
    """Unload the pulse agent (the plist stays for the next login) and wait for it to end."""
    from looop.pulse import lock

    label = labels(paths)[PULSE]
    found = job(label)
    if found is None:
        return
    bootout(label)
    pid = number(found.get("pid"))
    deadline = time.monotonic() + STOP_TIMEOUT
    while pid and lock.holder_pid(paths) == pid:
        if time.monotonic() >= deadline:
            raise ServiceError(
                f"pid {pid} still holds the lock {STOP_TIMEOUT:g}s after launchd unloaded {label}"
            )
        time.sleep(0.05)


def state(paths: Paths) -> dict[str, Any] | None:
    """launchd's view of the pulse, or None when it cannot be asked. Never raises.

    Keys: manager, label, state, pid, restarts (runs since launchd loaded it,
    less the first), last_exit, reap_timer (``reap_timer``'s answer).
    """
    label = labels(paths)[PULSE]
    try:
        fields = job(label, timeout=5)
    except (ServiceError, OSError):
        return None
    if fields is None:
        return {
            "manager": LAUNCHD,
            "label": label,
            "state": "not loaded",
            "reap_timer": reap_timer(paths),
        }
    return {
        "manager": LAUNCHD,
        "label": label,
        "state": fields.get("state", "?"),
        "pid": number(fields.get("pid")),
        "restarts": max(0, runs - 1) if (runs := number(fields.get("runs"))) else None,
        "last_exit": fields.get("last exit code", ""),
        "reap_timer": reap_timer(paths),
    }


def reap_timer(paths: Paths) -> dict[str, Any] | None:
    """How is the reap agent? The same keys as systemd's ``reap_timer``. Never raises.

    A loaded agent is an active one (launchd runs it every ``StartInterval``);
    launchd does not say when it runs next, so ``next_run`` is None.
    """
    label = labels(paths)[REAP]
    try:
        fields = job(label, timeout=5)
    except (ServiceError, OSError):
        return None
    return {
        "unit": label,
        "state": "not loaded" if fields is None else fields.get("state", "loaded"),
        "active": fields is not None,
        "next_run": None,
        "last_run": None,
        "last_result": (fields or {}).get("last exit code") or None,
    }
