"""The systemd driver: every ``systemctl --user`` call looop makes, and what it asks.

Starting, stopping and asking about the pulse (``looop up``/``down``/
``status``), and enabling or disabling the units once install has written or
removed them. Every call goes through ``systemctl`` (and so through
``driver.run``), so the commands looop issues are easy to see.

Installing is idempotent here: a unit whose file changed (a new looop path
after an upgrade) is restarted, one that did not is only started if it is not
running. A pulse running outside systemd is handed over by install before
``launch`` (``control.hand_over``); one that appears meanwhile is named, not fought.

This module never imports the renderer or the installer: ``looop status``
loads it (only when systemd has the pulse installed) to call ``state``.
"""

from __future__ import annotations

import os
from pathlib import Path

from looop.paths import Paths
from looop.service import ServiceError, specifiers
from looop.service.driver import PulseLog, Remover, checked, foreign_pulse, number, run, said
from looop.service.units import (
    PULSE,
    REAP,
    SYSTEMD,
    TIMER,
    installed,
    unit_dir,
    unit_file,
    unit_names,
)

NAME = SYSTEMD

TYPE_CHECKING = False  # not typing's: a worker's start loads this module
if TYPE_CHECKING:
    import subprocess
    from typing import Any

# What `state` reports from systemd (see `systemctl show`).
PROPERTIES = ("ActiveState", "SubState", "UnitFileState", "MainPID", "NRestarts", "Result")


def systemctl(*args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """``systemctl --user ARGS``: every systemd call looop makes goes through here."""
    return run(["systemctl", "--user", *args], timeout)


def show(unit: str, *props: str) -> dict[str, str]:
    """``systemctl --user show``'s properties of ``unit``; {} when systemd does not answer."""
    return show_units([unit], *props)[0]


def show_units(units: list[str], *props: str) -> list[dict[str, str]]:
    """``show``'s properties of each of ``units``, in order, from one ``systemctl`` call.

    systemd prints one block per unit, separated by an empty line; {} for each
    unit when it does not answer.
    """
    out = systemctl("show", *units, f"--property={','.join(props)}", timeout=5)
    blocks: list[dict[str, str]] = [{}]
    if out.returncode != 0:
        return [{} for _ in units]
    for line in out.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            blocks[-1][key] = value
        elif not line and blocks[-1]:
            blocks.append({})
    return (blocks + [{} for _ in units])[: len(units)]


def answers() -> None:
    """Before install writes anything: is there a user manager to take the units?

    ServiceError saying what systemctl said when not (no user bus: a login
    without a user manager, such as ``su`` or some containers), so install
    never leaves units behind that ``looop down`` would then go to.
    """
    out = systemctl("show-environment", timeout=10)
    if out.returncode != 0:
        detail = said(out) or "no message"
        raise ServiceError(
            f"the systemd user manager does not answer ({detail}); nothing installed. "
            "Run install from a login with a user manager, or start the pulse with looop up"
        )


def enable(paths: Paths, changed: set[str]) -> list[str]:
    """After install wrote the units: reload and enable them."""
    names = unit_names(paths)
    if changed:
        checked(systemctl("daemon-reload"), "systemctl --user daemon-reload")
    wanted = [names[PULSE], names[TIMER]]
    checked(systemctl("enable", *wanted), f"systemctl --user enable {' '.join(wanted)}")
    return [f"enabled {', '.join(wanted)}"]


def launch(paths: Paths, changed: set[str], start: bool) -> list[str]:
    """After install enabled the units: (re)start what needs it, unless ``start`` is false.

    The timer starts even when a pulse outside systemd keeps the pulse's unit
    from starting: the reaper does not need the lock.
    """
    names = unit_names(paths)
    if not start:
        return [f"not started (--no-start): systemctl --user start {names[PULSE]}"]
    main = show(names[PULSE], "MainPID").get("MainPID", "0")
    foreign = foreign_pulse(paths, int(main) if main.isdigit() else None)
    lines = []
    for role in (TIMER, PULSE):
        unit = names[role]
        if role == PULSE and foreign:
            lines.append(
                f"not started: a pulse already runs outside systemd (pid {foreign}); "
                "run looop install again to hand it over"
            )
            continue
        if role not in changed and show(unit, "ActiveState").get("ActiveState") == "active":
            lines.append(f"{unit} already running")
            continue
        verb = "restart" if role in changed else "start"
        _start(unit, verb, "installed, but ")
        lines.append(f"{verb}ed {unit}")
    lines.append("check it with: looop status")
    return lines


def _units_to_stop(paths: Paths) -> list[str]:
    names = unit_names(paths)
    return [names[TIMER], names[PULSE], names[REAP]]


def notes() -> list[str]:
    """After install: a word on lingering, when it is off."""
    if lingering() is not False:
        return []
    return [
        "note: lingering is off, so the pulse stops when you log out; "
        f"to keep it running: {linger_hint()}"
    ]


def uninstall(paths: Paths, remove: Remover) -> tuple[list[str], bool]:
    """Stop and disable the units, ``remove`` their files, then have systemd forget them."""
    files = [unit_file(paths, role) for role in unit_names(paths)]
    if not any(installed(f) for f in files):
        return [f"nothing to uninstall: no looop units in {unit_dir()}"], False
    return [*_disable(paths), *remove(files, ""), *_forget(paths)], True


def _disable(paths: Paths) -> list[str]:
    """Before uninstall removes the units: stop and disable them."""
    units = _units_to_stop(paths)
    systemctl("disable", "--now", *units)
    return [f"stopped and disabled {', '.join(units)}"]


def _forget(paths: Paths) -> list[str]:
    """After uninstall removed the units: reload, clear failures, name kept drop-ins."""
    checked(systemctl("daemon-reload"), "systemctl --user daemon-reload")
    systemctl("reset-failed", *_units_to_stop(paths))
    lines = []
    for role in unit_names(paths):
        unit = unit_file(paths, role)
        drop_ins = unit.with_name(unit.name + ".d")
        if drop_ins.is_dir():
            lines.append(f"kept your drop-ins in {drop_ins}")
    return lines


def _start(unit: str, verb: str = "start", context: str = "") -> None:
    """``systemctl --user start|restart UNIT``; a failure says where to look."""
    out = systemctl(verb, unit)
    if out.returncode != 0:
        raise ServiceError(
            f"{context}{unit} did not start: "
            f"{(out.stderr or out.stdout).strip() or 'no message'}. "
            f"See: systemctl --user status {unit}"
        )


def start(paths: Paths, ready_within: float | None = None) -> None:
    """Start the pulse unit; systemd returns once the pulse sent READY=1 (its first beat).

    The unit's own start timeout bounds the wait, not ``ready_within``.
    """
    _start(unit_names(paths)[PULSE])


def stop(paths: Paths) -> None:
    """Stop the pulse unit; systemd returns once it has stopped."""
    unit = unit_names(paths)[PULSE]
    checked(systemctl("stop", unit), f"systemctl --user stop {unit}")


def restart(paths: Paths) -> bool:
    """Restart the pulse unit; systemd returns once the new pulse sent READY=1."""
    _start(unit_names(paths)[PULSE], "restart")
    return True


def reload(paths: Paths) -> bool:
    """Reload the pulse unit (its ExecReload sends SIGHUP); returns once it is ready again."""
    unit = unit_names(paths)[PULSE]
    checked(systemctl("reload", unit), f"systemctl --user reload {unit}")
    return True


def pulse_file(paths: Paths) -> Path:
    return unit_file(paths, PULSE)


def log_dirs() -> list[Path]:
    return []  # the journal, or a file the unit names and systemd opens itself


def pulse_log(paths: Paths) -> PulseLog:
    """The file the unit's stderr is sent to, else its journal (read by journalctl)."""
    unit = unit_names(paths)[PULSE]
    found = log_file(paths)
    if found is not None:
        said, target = found
        return PulseLog(f"{unit}'s {said}, {target}", file=target)
    return PulseLog(f"the journal of {unit}", command=["journalctl", "--user", "-u", unit])


# `StandardError=` values that send the unit's stderr to a file (systemd.exec(5)).
FILE_OUTPUTS = ("file:", "append:", "truncate:")


def log_file(paths: Paths) -> tuple[str, Path] | None:
    """The file the pulse unit's stderr goes to (the setting, the path), or None for the journal.

    systemd 252 does not say a file output's path over ``show`` (only
    ``StandardError=append``, and ``StandardErrorFileDescriptorName`` is for
    ``fd:``), so the setting is read from ``systemctl cat``: the unit and its
    drop-ins in the order systemd applies them, the last assignment winning.
    ``StandardError=inherit`` (or none) means stderr follows stdout. The path
    may hold specifiers (``%h``, ``%t``...): ``specifiers.expand`` resolves
    them as systemd does, from the user manager's environment.
    """
    unit = unit_names(paths)[PULSE]
    out = systemctl("cat", unit, timeout=5)
    if out.returncode != 0:
        return None
    said_: dict[str, str] = {}
    for raw in out.stdout.splitlines():
        key, sep, value = raw.strip().partition("=")
        if sep and key.strip() in ("StandardOutput", "StandardError"):
            said_[key.strip()] = value.strip()
    key = "StandardError"
    where = said_.get(key, "inherit")
    if where in ("", "inherit"):
        key, where = "StandardOutput", said_.get("StandardOutput", "journal")
    for prefix in FILE_OUTPUTS:
        if where.startswith(prefix):
            env = {**os.environ, **manager_environment()}
            return f"{key}={where}", Path(specifiers.expand(where[len(prefix) :], unit, env))
    return None


def manager_environment() -> dict[str, str]:
    """The user manager's environment (``systemctl --user show-environment``); {} if it is mute."""
    try:
        out = systemctl("show-environment", timeout=5)
    except ServiceError:
        return {}
    found = {}
    for line in out.stdout.splitlines() if out.returncode == 0 else []:
        key, sep, value = line.partition("=")
        if sep:
            found[key] = value
    return found


def state(paths: Paths) -> dict[str, Any] | None:
    """systemd's view of the pulse, or None when it cannot be asked. Never raises.

    Keys: manager, unit, state, enabled, pid, restarts (since systemd loaded
    it), result (how it last ended), reap_timer (``reap_timer``'s answer).
    One ``systemctl show`` for the pulse, the timer and the reaper together:
    ``looop status`` comes here on every call once the unit is installed.
    """
    names = unit_names(paths)
    try:
        pulse, timer, reaper = show_units(
            [names[PULSE], names[TIMER], names[REAP]], *PROPERTIES, *TIMER_PROPERTIES
        )
    except (ServiceError, OSError):
        return None
    if not pulse:
        return None
    pid = number(pulse.get("MainPID"))
    return {
        "manager": SYSTEMD,
        "unit": names[PULSE],
        "state": f"{pulse.get('ActiveState', '?')} ({pulse.get('SubState', '?')})",
        "enabled": pulse.get("UnitFileState", ""),
        "pid": pid or None,
        "restarts": number(pulse.get("NRestarts")),
        "result": pulse.get("Result", ""),
        "reap_timer": _timer_view(names[TIMER], timer, reaper),
    }


# What `reap_timer` asks of the timer (and of the reap service: its Result).
TIMER_PROPERTIES = ("ActiveState", "NextElapseUSecRealtime", "LastTriggerUSec", "Result")


def reap_timer(paths: Paths) -> dict[str, Any] | None:
    """How is the reap timer? ``status`` and ``doctor`` both read this answer. Never raises.

    Keys: unit, state (systemd's ActiveState), active, next_run and last_run
    (Unix times, None when there is none), last_result (the reap service's
    Result: how its last run ended). None when systemd cannot be asked.
    """
    names = unit_names(paths)
    try:
        timer, reaper = show_units([names[TIMER], names[REAP]], *TIMER_PROPERTIES)
    except (ServiceError, OSError):
        return None
    return _timer_view(names[TIMER], timer, reaper)


def _timer_view(unit: str, timer: dict[str, str], reaper: dict[str, str]) -> dict[str, Any] | None:
    if not timer:
        return None
    state = timer.get("ActiveState", "")
    return {
        "unit": unit,
        "state": state or "?",
        "active": state == "active",
        "next_run": _timestamp(timer.get("NextElapseUSecRealtime", "")),
        "last_run": _timestamp(timer.get("LastTriggerUSec", "")),
        "last_result": reaper.get("Result") or None,
    }


def _timestamp(shown: str) -> float | None:
    """A time ``systemctl show`` printed (``Tue 2026-12-08 01:03:58 UTC``), as a Unix time.

    systemctl prints it in the local zone it shares with this process; ""
    (or "n/a") is no time at all.
    """
    import time

    words = shown.split()
    if len(words) < 3:
        return None
    try:
        return time.mktime(time.strptime(f"{words[1]} {words[2]}", "%Y-%m-%d %H:%M:%S"))
    except (ValueError, OverflowError):
        return None


# --- workers: transient units (SPEC §12) ---------------------------------------
# A worker's unit: the supervisor is its main process, and a stop ends the
# whole cgroup. KillMode=mixed sends the stop's SIGTERM to the supervisor
# alone, which ends its worker's process group gently and writes status.json;
# whatever is left in the cgroup then (a child that escaped with setsid)
# gets SIGKILL. TimeoutStopSec bounds the whole stop. Type=exec makes
# systemd-run fail when the supervisor cannot be executed, instead of
# reporting a unit that never ran. A worker its unit supervises alone gets
# these with KillMode=control-group and its own settings (workers.unit).
WORKER_STOP_SEC = 10
WORKER_PROPERTIES = (
    "Type=exec",
    "KillMode=mixed",
    f"TimeoutStopSec={WORKER_STOP_SEC}",
    "SendSIGKILL=yes",
)


def lingering() -> bool | None:
    """Does logind keep this user's manager running after logout? None when it cannot say.

    Without lingering the user manager, and the pulse with it, stops when the
    user's last session ends (``loginctl enable-linger`` keeps it).
    """
    import pwd

    try:
        user = pwd.getpwuid(os.getuid()).pw_name
        out = run(["loginctl", "show-user", user, "--property=Linger", "--value"], 5)
    except (ServiceError, OSError, KeyError):
        return None
    answer = out.stdout.strip()
    if out.returncode != 0 or answer not in ("yes", "no"):
        return None
    return answer == "yes"


def linger_hint() -> str:
    """The command that turns lingering on for this user."""
    import pwd

    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = str(os.getuid())
    return f"loginctl enable-linger {user}"


def manager_socket() -> str:
    """Where this user's manager listens (``systemctl``'s own fallback to the bus)."""
    runtime = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}"
    return os.path.join(runtime, "systemd", "private")


def manager_answers() -> bool:
    """Does a systemd user manager answer for this user? A connect, no process started.

    The manager's private socket is what ``systemctl --user`` falls back to;
    a socket file left by a manager that has gone refuses the connection.
    """
    import socket

    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(manager_socket())
    except OSError:
        return False
    finally:
        probe.close()
    return True


def run_transient(
    unit: str,
    argv: list[str],
    env: dict[str, str],
    properties: tuple[str, ...] | list[str] = WORKER_PROPERTIES,
) -> None:
    """Start ``argv`` as the transient service ``unit`` (collected once it ends).

    Returns once the supervisor has been executed; ServiceError saying what
    systemd-run said when it could not be. The manager expands ``$NAME`` in
    a unit's command, so each ``$`` of ``argv`` is sent doubled (a literal one).
    """
    setenv = [f"--setenv={key}={value}" for key, value in env.items()]
    props = [f"--property={prop}" for prop in properties]
    argv = [word.replace("$", "$$") for word in argv]
    out = run(
        [
            "systemd-run",
            "--user",
            "--collect",
            "--quiet",
            f"--unit={unit}",
            *props,
            *setenv,
            "--",
            *argv,
        ],
        timeout=30,
    )
    checked(out, f"systemd-run --user --unit={unit}")


def stop_units(units: list[str]) -> None:
    """Stop ``units`` together; returns once systemd has stopped every one.

    A unit that has already gone (collected once its worker ended) is not an
    error: the caller judges the sessions afterwards, not this exit status.
    """
    if units:
        systemctl("stop", *units, timeout=WORKER_STOP_SEC + 30)


def unit_active(unit: str) -> bool:
    """Is ``unit`` loaded and not yet stopped?"""
    state = show(unit, "ActiveState").get("ActiveState", "")
    return state in ("active", "activating", "deactivating", "reloading")
