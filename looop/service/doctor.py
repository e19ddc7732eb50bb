"""``looop doctor``: what breaks a setup, each check one line with its fix (SPEC §6).

Every check asks the module that owns the question, the same way the
command it guards would: the runtime dir through ``paths.check_runtime_dir``,
the config through ``config.load``, the installed unit through the file
``looop install`` wrote (``render.installed_command``), the user manager
through ``systemd.manager_answers``, lingering through logind, sensors
through ``data.sensors.discover``, their cadence declaration and their
last snapshot, the worker command (``worker.runner``'s when one is named:
``looop.runners``) through ``workers.start.find_program`` (as ``_ worker
start`` looks it up), file-system notifications by opening the same watch
``_ wait`` opens.
So doctor cannot pass where the command fails.

A check is ``ok`` (✓), a warning (!, with the fix: what breaks only once
something is used, such as a missing worker command before any worker
started), failed (✗, with the fix), or not applicable here (-, with why: no
systemd on this machine, nothing installed). Only a failed check makes
doctor exit 1; ``doctor --json`` prints the same checks as one object.
The reap timer is asked of the installed driver (``reap_timer``), the one
answer ``looop status`` shows too. The user manager and lingering are failures only
where looop depends on them (the pulse is installed under systemd, or
``worker.supervisor = "systemd"``): without one, ``looop up`` and workers run
detached, which is a working setup, not a broken one. Doctor only reads; it
never creates the runtime dir or changes a file. Rejected: a check that
starts a pulse or a worker to see whether it runs (slow, and it would change
the very state being diagnosed).
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from looop import __version__, config, errors, fs
from looop.paths import Paths, RuntimeDirError, check_runtime_dir, child_environment, looop_command
from looop.say import escaped
from looop.service import ServiceError, render, systemd, units
from looop.service.driver import Driver

OK, WARNED, FAILED, NOT_HERE = "✓", "!", "✗", "-"
# Each mark's level, as ``doctor --json`` names it.
LEVELS = {OK: "ok", WARNED: "warning", FAILED: "failure", NOT_HERE: "not-applicable"}
MIN_FREE = 100 << 20  # below this much free space in the data dir, say so (bytes)


@dataclass
class Check:
    mark: str
    what: str
    said: str
    fix: str = ""

    def line(self) -> str:
        """One line, whatever names the check quotes (``say.escaped``)."""
        line = f"{self.mark} {self.what}: {self.said}"
        return escaped(f"{line}; fix: {self.fix}" if self.fix else line)

    def as_dict(self) -> dict[str, object]:
        """One check for ``doctor --json``: name, ok, level, detail (and fix when there is one)."""
        found: dict[str, object] = {
            "name": self.what,
            "ok": self.mark != FAILED,
            "level": LEVELS[self.mark],
            "detail": self.said,
        }
        if self.fix:
            found["fix"] = self.fix
        return found


def run(paths: Paths) -> list[Check]:
    """Every check, in the order a setup depends on them."""
    cfg, checks = _config(paths)
    checks = [_runtime_dir(paths), *checks, _free_space(paths)]
    installed = units.installed_driver(paths)
    checks += _service(paths, installed)
    if installed is not None:
        checks.append(_reap_timer(paths, installed))
    under_systemd = installed is not None and installed.NAME == units.SYSTEMD
    needs_systemd = under_systemd or (cfg is not None and cfg.worker_supervisor == "systemd")
    if sys.platform.startswith("linux"):
        checks += [_user_bus(needs_systemd), _lingering(under_systemd)]
    checks += _sensors(paths)
    if cfg is not None:
        checks.append(_worker_command(paths, cfg))
    checks.append(_notifications(paths))
    return checks


def exit_code(checks: list[Check]) -> int:
    """1 when any check failed, else 0: a warning or a check not applicable here is not one."""
    return errors.FAILED if any(c.mark == FAILED for c in checks) else errors.OK


def _runtime_dir(paths: Paths) -> Check:
    where = paths.runtime_dir
    try:
        if os.path.lexists(where):
            check_runtime_dir(where)
            return Check(OK, "runtime dir", f"{where} (yours, 0700)")
    except RuntimeDirError as exc:
        return Check(
            FAILED,
            "runtime dir",
            str(exc),
            "remove or repair it, or set $LOOOP_RUNTIME_DIR to a 0700 directory of yours",
        )
    except OSError as exc:
        return Check(FAILED, "runtime dir", f"{where}: {exc.strerror}", "check its permissions")
    parent = os.path.dirname(where)
    if os.access(parent, os.W_OK | os.X_OK):
        return Check(OK, "runtime dir", f"{where} (not there yet; looop creates it 0700)")
    return Check(
        FAILED,
        "runtime dir",
        f"{where} does not exist and {parent} is not writable",
        "set $XDG_RUNTIME_DIR or $LOOOP_RUNTIME_DIR to a directory of yours",
    )


def _config(paths: Paths) -> tuple[config.Config | None, list[Check]]:
    where = paths.config_file
    try:
        cfg = config.load(where)
    except config.ConfigError as exc:
        fix = f"edit {where}, or set the key with: looop config set KEY VALUE"
        return None, [Check(FAILED, "config", str(exc), fix)]
    shown = str(where) if os.path.lexists(where) else f"{where} (absent: the defaults)"
    checks = [Check(OK, "config", shown)]
    checks += [Check(FAILED, "config", w, f"edit {where}") for w in cfg.warnings]
    return cfg, checks


def _nearest(path: Path) -> Path:
    """``path``, or its nearest ancestor that exists (a data dir not created yet)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _free_space(paths: Paths) -> Check:
    here = _nearest(paths.data_dir)
    try:
        st = os.statvfs(here)
    except OSError as exc:
        return Check(FAILED, "data dir", f"{here}: {exc.strerror}", "check the data dir")
    free = st.f_bavail * st.f_frsize
    said = f"{paths.data_dir}: {free >> 20} MiB free"
    if not os.access(here, os.W_OK | os.X_OK):
        return Check(FAILED, "data dir", f"{here} is not writable", "make it yours: chown/chmod")
    if free < MIN_FREE:
        return Check(FAILED, "data dir", said, "free some space: snapshots and logs need it")
    return Check(OK, "data dir", said)


def _service(paths: Paths, installed: Driver | None) -> list[Check]:
    """The installed unit's or plist's command: there, executable, and this looop."""
    if installed is None:
        return [Check(NOT_HERE, "service", "not installed (looop install runs the pulse as one)")]
    path = installed.pulse_file(paths)
    what = f"installed {installed.NAME} pulse {path}"
    try:
        command = render.installed_command(path, installed.NAME)
    except (OSError, ServiceError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return [Check(FAILED, what, f"cannot be read: {why}", "looop install --force")]
    if not command:
        return [Check(FAILED, what, "has no command to run", "looop install --force")]
    program = command[0]
    again = "run looop install again from the looop you use (it rewrites the command)"
    if not os.path.exists(program):
        said = f"runs {program}, which does not exist (a removed or moved venv?)"
        return [Check(FAILED, what, said, again)]
    if not os.access(program, os.X_OK):
        return [Check(FAILED, what, f"runs {program}, which is not executable", again)]
    ours = looop_command()
    if [os.path.realpath(w) if i == 0 else w for i, w in enumerate(command)] != [
        os.path.realpath(w) if i == 0 else w for i, w in enumerate(ours)
    ]:
        said = f"runs {' '.join(command)}, not this looop ({' '.join(ours)}, {__version__})"
        return [Check(FAILED, what, said, again)]
    return [Check(OK, what, f"runs this looop ({program}, {__version__})")]


def _reap_timer(paths: Paths, installed: Driver) -> Check:
    """The reaper's timer (launchd: its agent) is active, and its last run did not fail."""
    timer = installed.reap_timer(paths)
    if timer is None:
        return Check(NOT_HERE, "reap timer", f"{installed.NAME} cannot be asked")
    unit = timer["unit"]
    start = f"systemctl --user start {unit}" if installed.NAME == units.SYSTEMD else "looop up"
    if not timer["active"]:
        said = f"{unit} is not active ({timer['state']}): dead sessions and stale claims stay"
        return Check(FAILED, "reap timer", said, start)
    result = timer["last_result"]
    if timer["last_run"] is not None and result not in (None, "success", "0"):
        said = f"{unit} is active, but the reaper's last run failed ({result})"
        return Check(WARNED, "reap timer", said, "looop reap --dry-run shows why")
    return Check(OK, "reap timer", units.timer_said(timer))


def _user_bus(needed: bool) -> Check:
    if shutil.which("systemctl") is None:
        return Check(NOT_HERE, "user manager", "no systemctl here: looop runs detached")
    if systemd.manager_answers():
        return Check(OK, "user manager", f"systemd answers at {systemd.manager_socket()}")
    said = f"no systemd user manager answers at {systemd.manager_socket()}"
    fix = (
        "log in with a session that starts one (ssh or a desktop login, not su), "
        "or set XDG_RUNTIME_DIR=/run/user/$(id -u)"
    )
    if needed:
        return Check(FAILED, "user manager", said, fix)
    return Check(NOT_HERE, "user manager", f"{said}; the pulse and workers run detached")


def _lingering(installed: bool) -> Check:
    linger = systemd.lingering()
    if linger is None:
        return Check(NOT_HERE, "lingering", "logind cannot be asked (loginctl show-user)")
    if linger:
        return Check(OK, "lingering", "on: the pulse keeps running after you log out")
    said = "off: the user manager, and the pulse with it, stops when you log out"
    if installed:
        return Check(FAILED, "lingering", said, systemd.linger_hint())
    return Check(NOT_HERE, "lingering", f"{said} (matters once the pulse is installed)")


def _sensors(paths: Paths) -> list[Check]:
    from looop.data import sensors

    try:
        found = sensors.discover(paths.sensors)
    except OSError as exc:
        why = errors.os_error_line(exc)
        fix = f"check the permissions and the disk of {paths.sensors}"
        return [Check(FAILED, "sensors", f"cannot be listed: {why}", fix)]
    if not found:
        return [Check(NOT_HERE, "sensors", f"none in {paths.sensors}")]
    checks = []
    for script in found:
        what = f"sensor {script.name}"
        try:
            fd, _ = fs.open_regular(script, follow=True)
            try:
                head = os.read(fd, 2)
            finally:
                os.close(fd)
        except OSError as exc:
            checks.append(Check(FAILED, what, f"cannot be read: {exc}", f"fix or remove {script}"))
            continue
        if head != b"#!":
            fix = f"make its first line name its interpreter, e.g. #!/bin/sh, in {script}"
            checks.append(Check(FAILED, what, "has no #! line", fix))
            continue
        if not os.access(script, os.X_OK):
            checks.append(Check(FAILED, what, "is not executable", f"chmod +x {script}"))
            continue
        name = sensors.snapshot_name(script)
        if _last_reading_not_json(paths.snapshots / f"{name}.json"):
            said = "printed something that is not one JSON value at its last beat"
            test = f"looop _ sensor test {sensors.name(script)}"
            fix = f"print one JSON object; see what it prints: {test}"
            checks.append(Check(FAILED, what, said, fix))
            continue
        declared = sensors.cadence(script)
        if declared.warning is not None:
            fix = f"write it as # looop: every 10m (or 30s, 2h, 1d) in {script}"
            checks.append(Check(FAILED, what, declared.warning, fix))
            continue
        said = "has a #! line and the run bit"
        if declared.every is not None:
            said += f", runs every {sensors.every_text(declared.every)}"
        checks.append(Check(OK, what, said))
    return checks


def _last_reading_not_json(snapshot: Path) -> bool:
    import json

    try:
        value = json.loads(fs.read_small(snapshot, follow=True))
    except (OSError, ValueError):
        return False  # no reading yet (or one the beat will replace): nothing to say
    signal = value.get("signal") if isinstance(value, dict) else None
    return isinstance(signal, dict) and signal.get("invalid_json") is True


def _worker_command(paths: Paths, cfg: config.Config) -> Check:
    """The default worker command's program: ``worker.runner``'s, else ``worker.command``'s."""
    from looop import runners
    from looop.workers import start

    name, command = runners.command_for(cfg, None)  # the config's load checked the name
    what = "worker command" if name is None else f"runner {name}"
    try:
        found = start.find_program(command, child_environment(paths, os.environ))
    except errors.LooopError as exc:
        how = "looop config set worker.command ..."
        if name is not None:
            how = f"looop config runner add {name} --force --command ..."
        fix = f"install it, or point looop at it: {how}"
        if not _workers_used(paths, cfg):
            return Check(WARNED, what, f"{exc} (matters once a worker starts)", fix)
        return Check(FAILED, what, str(exc), fix)
    return Check(OK, what, f"{command[0]} is {found}")


def _workers_used(paths: Paths, cfg: config.Config) -> bool:
    """Has this profile used workers: a session there (live or not yet reaped), or a runner set?

    Until then a missing worker command is a warning: a fresh install has
    nothing that needs it. A ``worker.command`` the user set counts as set.
    """
    from looop.knobs import KNOBS

    chosen = cfg.worker_runner is not None or bool(cfg.runners)
    if chosen or cfg.worker_command != KNOBS["worker.command"].default:
        return True
    try:
        with os.scandir(paths.sessions) as entries:
            return any(True for _ in entries)
    except OSError:
        return False


def _notifications(paths: Paths) -> Check:
    from looop import watch

    try:
        opened = watch.open_watch([watch.Dir(_nearest(paths.data_dir), "doctor")])
    except OSError as exc:
        return Check(FAILED, "file watch", str(exc), "raise fs.inotify.max_user_instances")
    try:
        name = opened.name
    finally:
        opened.close()
    if name in ("poll", "none"):
        return Check(
            FAILED,
            "file watch",
            "no file-system notifications: _ wait falls back to polling (slower to wake)",
            "raise fs.inotify.max_user_instances / max_user_watches (sysctl)",
        )
    return Check(OK, "file watch", f"{name}: _ wait wakes at once")
