"""The pulse and the reaper as user services: install, uninstall, start, stop, ask.

This module owns everything looop says to a service manager. It renders the
files shipped in ``packaging/`` (the single source of truth for units and
plists; nothing else writes one) with this installation's absolute ``looop``
path and the profile's data dir, writes them where the user's manager looks
(``$XDG_CONFIG_HOME/systemd/user/`` or ``~/Library/LaunchAgents/``), and then
enables and starts them. ``looop up``/``down``/``status`` come here to act
through the manager when looop is installed, so there is one place that knows
the unit names, labels and commands.

Every ``systemctl`` call goes through ``_systemctl`` and every ``launchctl``
call through ``_launchctl``: one small function each, so the commands looop
issues are easy to see and a test can put a stand-in on ``PATH``.

Three rules shape the rest:

- *Never clobber an edit.* Each rendered file carries a
  ``looop-rendered sha256=...`` line: the hash of the rest of the file as it
  was written. A file whose content no longer matches its hash (or that has
  none, or a link in its place) was changed by the user: install does not
  overwrite it and uninstall does not remove it, unless ``--force`` is given.
  Changes belong in a drop-in, which neither ever touches.
- *Idempotent.* Installing twice changes nothing the second time; a unit whose
  file changed (a new looop path after an upgrade) is restarted, one that did
  not is only started if it is not running.
- *One profile, one set of names.* The default profile gets the plain names
  (``looop.service``, ``looop-reap.service``, ``looop-reap.timer``;
  ``org.looop.pulse``, ``org.looop.reap``). Any other data dir gets the same
  files under names suffixed with its profile id, the hash that also names
  its lock (``looop-<hash>.service``, ``org.looop.pulse.<hash>``), so two
  profiles' units live side by side. Every rendered file sets
  ``LOOOP_DATA_DIR``, the default profile's too: the service manager need not
  see the ``XDG_STATE_HOME`` of the shell that ran install (launchd never
  does), and the pulse must serve the data dir install was asked about.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from looop.errors import LooopError
from looop.log import log_tail
from looop.paths import Paths, looop_bin
from looop.service.units import (
    LAUNCHD,
    MANAGERS,
    PULSE,
    REAP,
    SYSTEMD,
    TIMER,
    agents_dir,
    default_manager,
    installed,
    installed_manager,
    labels,
    launchd_log,
    launchd_log_dir,
    unit_dir,
    unit_names,
)

if TYPE_CHECKING:
    import subprocess


def xml_escape(text: str) -> str:
    """Escape text for a plist <string> (xml.sax would pull in urllib and http)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


MARK = "looop-rendered sha256="
MARK_RE = re.compile(r"^.*looop-rendered sha256=([0-9a-f]{64}).*\n?", re.MULTILINE)

# launchd gives agents a bare PATH; sensors want the user's usual tools.
LAUNCHD_PATH = ("/opt/homebrew/bin", "/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin")

# What `manager_state` reports from systemd (see `systemctl show`).
SYSTEMD_PROPERTIES = ("ActiveState", "SubState", "UnitFileState", "MainPID", "NRestarts", "Result")

# launchctl bootout returns before the job is gone; bootstrapping the label
# again in that window fails ("Bootstrap failed: 5"). Seconds to wait for it.
BOOTOUT_TIMEOUT = 5.0
# Seconds for a pulse launchd started to hold the lock and publish its first
# beat when the caller does not say (systemd waits for READY=1 itself), and
# for a stopped one to let go of the lock.
LAUNCHD_START_TIMEOUT = 120.0
LAUNCHD_STOP_TIMEOUT = 30.0


class ServiceError(LooopError):
    """A service manager refused or is missing; the message says what to do."""


def _domain() -> str:
    return f"gui/{os.getuid()}"


# --- the two commands ---------------------------------------------------------
def _missing(command: str) -> ServiceError:
    manager = LAUNCHD if command == "launchctl" else SYSTEMD
    return ServiceError(
        f"{command} not found: this machine does not seem to run {manager} "
        "(choose with --systemd or --launchd; --dry-run shows the files)"
    )


def _run(argv: Sequence[str], timeout: float | None) -> subprocess.CompletedProcess[str]:
    import subprocess  # imported where used: `looop status` loads this module too

    try:
        return subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
        )
    except FileNotFoundError:
        raise _missing(argv[0]) from None
    except subprocess.TimeoutExpired:
        raise ServiceError(f"{' '.join(argv)} did not answer within {timeout:g}s") from None


def _systemctl(*args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """``systemctl --user ARGS``: every systemd call looop makes goes through here."""
    return _run(["systemctl", "--user", *args], timeout)


def _launchctl(*args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """``launchctl ARGS``: every launchd call looop makes goes through here."""
    return _run(["launchctl", *args], timeout)


def _checked(out: subprocess.CompletedProcess[str], what: str) -> subprocess.CompletedProcess[str]:
    if out.returncode != 0:
        detail = (out.stderr or out.stdout).strip().replace("\n", " · ")
        raise ServiceError(f"{what} failed (exit {out.returncode}): {detail or 'no message'}")
    return out


# --- rendering ----------------------------------------------------------------
class Rendered(NamedTuple):
    role: str
    path: Path  # where it is installed
    text: str


def template_text(relative: str) -> str:
    """A file shipped in ``packaging/``: inside the wheel as data (``looop/packaging/``).

    Imported from a source checkout (``python -m pytest`` puts it first on
    ``sys.path``) the package has no such data; the files are then the
    checkout's own ``packaging/``, beside the package.
    """
    from importlib import resources  # only install needs it; status stays light

    shipped = resources.files("looop").joinpath("packaging", relative)
    if not shipped.is_file():
        checkout = Path(__file__).resolve().parents[2] / "packaging" / relative
        if checkout.is_file():
            return checkout.read_text(encoding="utf-8")
    return shipped.read_text(encoding="utf-8")


def _looop_bin() -> str:
    found = looop_bin()
    if not found or not os.path.isabs(found):
        raise ServiceError("cannot tell where the looop executable is; run it by its full path")
    return found


def _outside_home(path: Path) -> bool:
    home = Path.home()
    return path != home and home not in path.parents


def _systemd_word(value: str) -> str:
    """One program path or assignment value in a unit file: specifiers and quotes escaped.

    ``$`` is left as it is: systemd expands variables only in a command's
    arguments, never in the program path itself nor in ``Environment=`` or
    ``ReadWritePaths=``, which is all looop renders; ``$$`` there would stay
    two dollars.
    """
    value = value.replace("%", "%%")
    if re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _substitute(text: str, values: dict[str, str]) -> str:
    """Replace ``@NAME@`` placeholders; a line holding only an empty one disappears."""
    for name, value in values.items():
        token = f"@{name}@"
        if not value:
            text = re.sub(rf"^[ \t]*{re.escape(token)}[ \t]*\n", "", text, flags=re.MULTILINE)
        text = text.replace(token, value)
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise ServiceError(f"template has placeholders looop does not know: {sorted(set(left))}")
    return text


def _stamp(text: str, xml: bool) -> str:
    """Add the ``looop-rendered`` line holding the hash of everything else."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    if xml:
        head, _, rest = text.partition("\n")
        line = f"<!-- {MARK}{digest} (looop install will not overwrite an edited copy) -->"
        return f"{head}\n{line}\n{rest}"
    line = f"# {MARK}{digest} (put changes in a drop-in: systemctl --user edit)"
    return f"{line}\n{text}"


def pristine(text: str) -> bool:
    """True when a rendered file is exactly as looop wrote it."""
    found = MARK_RE.search(text)
    if found is None:
        return False
    rest = text[: found.start()] + text[found.end() :]
    return hashlib.sha256(rest.encode()).hexdigest() == found.group(1)


def render_systemd(paths: Paths, binary: str | None = None) -> list[Rendered]:
    binary = binary or _looop_bin()
    data = str(paths.data_dir)
    env = f"Environment={_systemd_word('LOOOP_DATA_DIR=' + data)}"
    rw = f"ReadWritePaths=-{_systemd_word(data)}" if _outside_home(paths.data_dir) else ""
    values = {
        "LOOOP_BIN": _systemd_word(binary),
        "PROFILE": data.replace("%", "%%"),
        "ENVIRONMENT": env,
        "READ_WRITE_PATHS": rw,
    }
    names = unit_names(paths)
    templates = {
        PULSE: "systemd/looop.service",
        REAP: "systemd/looop-reap.service",
        TIMER: "systemd/looop-reap.timer",
    }
    where = unit_dir()
    return [
        Rendered(role, where / names[role], _stamp(_substitute(template_text(tpl), values), False))
        for role, tpl in templates.items()
    ]


def render_launchd(paths: Paths, binary: str | None = None) -> list[Rendered]:
    binary = binary or _looop_bin()
    path_dirs = [os.path.dirname(binary), *LAUNCHD_PATH]
    search_path = ":".join(dict.fromkeys(path_dirs))
    env = f"\t\t<key>LOOOP_DATA_DIR</key>\n\t\t<string>{xml_escape(str(paths.data_dir))}</string>"
    names = labels(paths)
    rendered = []
    for role, tpl in (
        (PULSE, "launchd/org.looop.pulse.plist"),
        (REAP, "launchd/org.looop.reap.plist"),
    ):
        values = {
            "LABEL": names[role],
            "LOOOP_BIN": xml_escape(binary),
            "PATH": xml_escape(search_path),
            "ENVIRONMENT": env,
            "LOG_FILE": xml_escape(str(launchd_log(paths, role))),
        }
        text = _stamp(_substitute(template_text(tpl), values), True)
        rendered.append(Rendered(role, agents_dir() / f"{names[role]}.plist", text))
    return rendered


def render(paths: Paths, manager: str, binary: str | None = None) -> list[Rendered]:
    if manager == SYSTEMD:
        return render_systemd(paths, binary)
    if manager == LAUNCHD:
        return render_launchd(paths, binary)
    raise ServiceError(f"unknown service manager {manager!r} (known: {', '.join(MANAGERS)})")


# --- writing files ------------------------------------------------------------
NEW, UNCHANGED, UPDATE, EDITED = "new", "unchanged", "update", "edited"


def _installed_text(path: Path) -> tuple[bool, str | None]:
    """(whether anything is installed at ``path``, its text if looop may have written it).

    The text is None for what looop never writes: a link (the user placed it),
    something that is not a readable text file.
    """
    if not installed(path):
        return False, None
    if path.is_symlink():
        return True, None
    try:
        return True, path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return False, None
    except (OSError, UnicodeDecodeError):
        return True, None


def _ours(path: Path) -> bool:
    """True when ``path`` is a file exactly as looop rendered it."""
    text = _installed_text(path)[1]
    return text is not None and pristine(text)


def _compare(item: Rendered) -> str:
    present, current = _installed_text(item.path)
    if not present:
        return NEW
    if current == item.text:
        return UNCHANGED
    return UPDATE if current is not None and pristine(current) else EDITED


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.looop-{os.getpid()}")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)  # replaces a symlink itself, never its target
    finally:
        tmp.unlink(missing_ok=True)


def _plan(items: list[Rendered], force: bool) -> tuple[dict[Path, str], list[str]]:
    states = {item.path: _compare(item) for item in items}
    edited = [str(p) for p, s in states.items() if s == EDITED]
    if edited and not force:
        raise ServiceError(
            "not overwriting a file changed since looop installed it: "
            + ", ".join(edited)
            + ". Keep your changes in a drop-in (systemctl --user edit) or a copy, "
            "or run `looop install --force` to replace them"
        )
    lines = []
    for item in items:
        state = states[item.path]
        label = {NEW: "write", UNCHANGED: "unchanged", UPDATE: "update", EDITED: "overwrite"}
        lines.append(f"{label[state]} {item.path}")
    return states, lines


# --- install / uninstall ------------------------------------------------------
def _resolve_manager(manager: str | None) -> str:
    chosen = manager or default_manager()
    if chosen not in MANAGERS:
        raise ServiceError(f"unknown service manager {chosen!r} (known: {', '.join(MANAGERS)})")
    return chosen


def _foreign_pulse(paths: Paths, managed_pid: int | None) -> int | None:
    """Pid of a pulse that holds this profile's lock outside the manager, if any."""
    from looop.pulse import lock

    pid = lock.pulse_holder(paths)
    if pid and pid != managed_pid:
        return pid
    return None


def _prepare_data_dir(paths: Paths) -> None:
    # A sandboxed unit can only write to a data dir outside home if it exists
    # when the unit starts (ReadWritePaths=); making it here is idempotent.
    if _outside_home(paths.data_dir):
        try:
            paths.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ServiceError(f"cannot create data dir {paths.data_dir}: {exc.strerror}") from exc


def install(
    paths: Paths,
    manager: str | None = None,
    dry_run: bool = False,
    start: bool = True,
    force: bool = False,
) -> list[str]:
    """Render, write, enable and (unless ``start`` is false) start. Returns lines to print."""
    chosen = _resolve_manager(manager)
    items = render(paths, chosen)
    states, lines = _plan(items, force)
    notes = []
    for env in ("LOOOP_CONFIG", "LOOOP_RUNTIME_DIR"):
        if os.environ.get(env):
            notes.append(f"note: ${env} is set here but the service will not see it")
    if dry_run:
        out = [f"dry run: {chosen}; nothing written, nothing started"]
        for item, line in zip(items, lines, strict=True):
            out += ["", f"--- {line}", item.text.rstrip("\n")]
        return [*out, "", *notes]
    command = "systemctl" if chosen == SYSTEMD else "launchctl"
    import shutil

    if shutil.which(command) is None:  # say so before writing anything
        raise _missing(command)
    _prepare_data_dir(paths)
    for item in items:
        if states[item.path] != UNCHANGED:
            _write(item.path, item.text)
    changed = {item.role for item in items if states[item.path] != UNCHANGED}
    if chosen == SYSTEMD:
        lines += _enable_systemd(paths, changed, start)
    else:
        lines += _enable_launchd(paths, items, changed, start)
    return [*lines, *notes]


def _enable_systemd(paths: Paths, changed: set[str], start: bool) -> list[str]:
    names = unit_names(paths)
    if changed:
        _checked(_systemctl("daemon-reload"), "systemctl --user daemon-reload")
    wanted = [names[PULSE], names[TIMER]]
    _checked(_systemctl("enable", *wanted), f"systemctl --user enable {' '.join(wanted)}")
    lines = [f"enabled {', '.join(wanted)}"]
    if not start:
        return [*lines, f"not started (--no-start): systemctl --user start {names[PULSE]}"]
    main = _systemd_show(names[PULSE], "MainPID").get("MainPID", "0")
    foreign = _foreign_pulse(paths, int(main) if main.isdigit() else None)
    if foreign:
        return [
            *lines,
            f"not started: a pulse already runs outside systemd (pid {foreign}); "
            f"stop it (kill {foreign}), then: systemctl --user start {names[PULSE]}",
        ]
    for role in (TIMER, PULSE):
        unit = names[role]
        if (
            role not in changed
            and _systemd_show(unit, "ActiveState").get("ActiveState") == "active"
        ):
            lines.append(f"{unit} already running")
            continue
        verb = "restart" if role in changed else "start"
        out = _systemctl(verb, unit)
        if out.returncode != 0:
            raise ServiceError(
                f"installed, but {unit} did not start: "
                f"{(out.stderr or out.stdout).strip() or 'no message'}. "
                f"See: systemctl --user status {unit}"
            )
        lines.append(f"{verb}ed {unit}")
    lines.append("check it with: looop status")
    return lines


# --- launchd jobs ---------------------------------------------------------------
def _launchd_print(label: str, timeout: float | None = None) -> dict[str, str] | None:
    """What ``launchctl print`` says of a loaded job (state, pid, runs...); None if not loaded."""
    out = _launchctl("print", f"{_domain()}/{label}", timeout=timeout)
    if out.returncode != 0:
        return None
    return dict(re.findall(r"^\s*([a-z ]+?) = (.*?)\s*$", out.stdout, re.MULTILINE))


def _launchd_loaded(label: str) -> bool:
    return _launchd_print(label) is not None


def _launchd_pid(label: str) -> int | None:
    job = _launchd_print(label)
    return _int(job.get("pid")) if job else None


def _bootout(label: str) -> None:
    """Unload a job and return once launchd has let go of it.

    ``launchctl bootout`` can return while the job is still being torn down
    (its exit status then says little), and bootstrapping the same label in
    that window fails, so launchd's own answer counts: the label is gone once
    ``launchctl print`` no longer finds it.
    """
    target = f"{_domain()}/{label}"
    out = _launchctl("bootout", target)
    deadline = time.monotonic() + BOOTOUT_TIMEOUT
    while _launchd_loaded(label):
        if time.monotonic() >= deadline:
            detail = (out.stderr or out.stdout).strip().replace("\n", " · ")
            raise ServiceError(
                f"launchctl bootout {target}: still loaded after {BOOTOUT_TIMEOUT:g}s"
                + (f" ({detail})" if detail else "")
                + "; try again"
            )
        time.sleep(0.1)


def _enable_launchd(
    paths: Paths, items: list[Rendered], changed: set[str], start: bool
) -> list[str]:
    launchd_log_dir().mkdir(parents=True, exist_ok=True)
    names = labels(paths)
    for item in items:
        target = f"{_domain()}/{names[item.role]}"
        _checked(_launchctl("enable", target), f"launchctl enable {target}")
    lines = [f"enabled {', '.join(names[item.role] for item in items)}"]
    if not start:
        return [*lines, "not started (--no-start): loaded at next login, or now by: looop up"]
    foreign = _foreign_pulse(paths, _launchd_pid(names[PULSE]))
    if foreign:
        return [
            *lines,
            f"not started: a pulse already runs outside launchd (pid {foreign}); "
            f"stop it (kill {foreign}), then: looop up",
        ]
    for item in items:
        label = names[item.role]
        loaded = _launchd_loaded(label)
        if loaded and item.role not in changed:
            lines.append(f"{label} already loaded")
            continue
        if loaded:
            _bootout(label)
        _checked(
            _launchctl("bootstrap", _domain(), str(item.path)),
            f"launchctl bootstrap {_domain()} {item.path}",
        )
        lines.append(f"loaded {label}")
    return lines


def _remove(files: list[Path], force: bool, kept_note: str = "") -> list[str]:
    """Remove the files looop rendered; keep (and name) any other unless ``force``."""
    lines = []
    for path in files:
        if not installed(path):
            continue
        if not force and not _ours(path):
            lines.append(
                f"kept {path}: not as looop wrote it (edited, or not looop's){kept_note}; "
                "remove it yourself, or run `looop uninstall --force`"
            )
            continue
        try:
            path.unlink()
        except OSError as exc:
            raise ServiceError(f"cannot remove {path}: {exc.strerror}") from exc
        lines.append(f"removed {path}")
    return lines


def uninstall(paths: Paths, manager: str | None = None, force: bool = False) -> list[str]:
    """Stop, disable and remove this profile's files; the data dir is left alone.

    Only files still exactly as looop rendered them are removed (every one
    with ``force``); an edited file, a link, or a file looop never wrote stays
    where it is and the returned lines say so.
    """
    chosen = _resolve_manager(manager or installed_manager(paths) or default_manager())
    lines: list[str] = []
    if chosen == SYSTEMD:
        names = unit_names(paths)
        files = [unit_dir() / n for n in names.values()]
        if not any(installed(f) for f in files):
            return [f"nothing to uninstall: no looop units in {unit_dir()}"]
        units = [names[TIMER], names[PULSE], names[REAP]]
        _systemctl("disable", "--now", *units)
        lines.append(f"stopped and disabled {', '.join(units)}")
        lines += _remove(files, force)
        _checked(_systemctl("daemon-reload"), "systemctl --user daemon-reload")
        _systemctl("reset-failed", *units)
        for n in names.values():
            if (unit_dir() / f"{n}.d").is_dir():
                lines.append(f"kept your drop-ins in {unit_dir() / (n + '.d')}")
    else:
        files = []
        for label in labels(paths).values():
            files.append(agents_dir() / f"{label}.plist")
            if _launchd_loaded(label):
                _bootout(label)
                lines.append(f"unloaded {label}")
        if not lines and not any(installed(f) for f in files):
            return [f"nothing to uninstall: no looop agents in {agents_dir()}"]
        lines += _remove(files, force, kept_note=", and launchd loads it at next login")
    lines.append(f"data dir left as it was: {paths.data_dir}")
    return lines


# --- for up / down / status ---------------------------------------------------
def _require_installed(paths: Paths, manager: str | None) -> str:
    found = manager or installed_manager(paths)
    if found is None:
        raise ServiceError("looop is not installed as a service for this profile (looop install)")
    return found


def _pulse_ready(paths: Paths) -> bool:
    """A pulse holds the lock and has published a beat of its own."""
    from looop.pulse import lock, record

    pid = lock.pulse_holder(paths)
    if not pid:
        return False
    beat = record.read(paths)
    return beat is not None and beat.get("pid") == pid


def _log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _launchd_start(paths: Paths, ready_within: float) -> None:
    """Load or kickstart the pulse agent, then wait until it is ready (``looop up``'s promise)."""
    label = labels(paths)[PULSE]
    job = _launchd_print(label)
    foreign = _foreign_pulse(paths, _int(job.get("pid")) if job else None)
    if foreign:
        raise ServiceError(
            f"a pulse already runs outside launchd (pid {foreign}); "
            f"stop it (kill {foreign}), then try again"
        )
    log = launchd_log(paths, PULSE)
    since = _log_size(log)
    if job is not None:
        _checked(_launchctl("kickstart", f"{_domain()}/{label}"), f"launchctl kickstart {label}")
    else:
        plist = agents_dir() / f"{label}.plist"
        _checked(_launchctl("bootstrap", _domain(), str(plist)), f"launchctl bootstrap {plist}")
    deadline = time.monotonic() + ready_within
    while not _pulse_ready(paths):
        if time.monotonic() >= deadline:
            said = log_tail(log, since)
            raise ServiceError(
                f"{label} did not become ready within {ready_within:g}s "
                "(no pulse holds the lock with a beat published)"
                + (f": {said}" if said else "")
                + f". See its log: {log}"
            )
        time.sleep(0.05)


def _launchd_stop(paths: Paths) -> None:
    """Unload the pulse agent (the plist stays for the next login) and wait for it to end."""
    from looop.pulse import lock

    label = labels(paths)[PULSE]
    job = _launchd_print(label)
    if job is None:
        return
    _bootout(label)
    pid = _int(job.get("pid"))
    deadline = time.monotonic() + LAUNCHD_STOP_TIMEOUT
    while pid and lock.holder_pid(paths) == pid:
        if time.monotonic() >= deadline:
            raise ServiceError(
                f"pid {pid} still holds the lock {LAUNCHD_STOP_TIMEOUT:g}s after launchd "
                f"unloaded {label}"
            )
        time.sleep(0.05)


def manager_start(
    paths: Paths, manager: str | None = None, ready_within: float | None = None
) -> None:
    """Start the pulse through its manager; returns once it is ready, else raises ServiceError.

    Ready means what ``looop up`` promises: the pulse holds the lock and has
    published its first beat. systemd's ``start`` waits for the pulse's
    READY=1, which comes exactly then (bounded by the unit's
    ``TimeoutStartSec=``); launchd only launches, so this waits up to
    ``ready_within`` seconds (default ``LAUNCHD_START_TIMEOUT``). ``manager``
    is the one the pulse is installed with (``units.installed_manager``);
    looked up when not given.
    """
    if _require_installed(paths, manager) == SYSTEMD:
        unit = unit_names(paths)[PULSE]
        out = _systemctl("start", unit)
        if out.returncode != 0:
            raise ServiceError(
                f"{unit} did not start: {(out.stderr or out.stdout).strip() or 'no message'}. "
                f"See: systemctl --user status {unit}"
            )
        return
    _launchd_start(paths, ready_within or LAUNCHD_START_TIMEOUT)


def manager_stop(paths: Paths, manager: str | None = None) -> None:
    """Stop the pulse through its manager; returns once it has stopped.

    ``manager`` as for ``manager_start``.
    """
    if _require_installed(paths, manager) == SYSTEMD:
        unit = unit_names(paths)[PULSE]
        _checked(_systemctl("stop", unit), f"systemctl --user stop {unit}")
        return
    _launchd_stop(paths)


def _systemd_show(unit: str, *props: str) -> dict[str, str]:
    out = _systemctl("show", unit, f"--property={','.join(props)}", timeout=5)
    if out.returncode != 0:
        return {}
    found = {}
    for line in out.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            found[key] = value
    return found


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def manager_state(paths: Paths, manager: str | None = None) -> dict[str, Any] | None:
    """The manager's view of the pulse, or None when it cannot be asked. Never raises.

    ``manager`` as for ``manager_start``. Keys: manager, unit (or label),
    state, enabled (systemd), pid, restarts (restarts since the manager loaded
    it), result (systemd: how it last ended) or last_exit (launchd).
    """
    try:
        chosen = manager or installed_manager(paths)
        if chosen == SYSTEMD:
            unit = unit_names(paths)[PULSE]
            props = _systemd_show(unit, *SYSTEMD_PROPERTIES)
            if not props:
                return None
            pid = _int(props.get("MainPID"))
            return {
                "manager": SYSTEMD,
                "unit": unit,
                "state": f"{props.get('ActiveState', '?')} ({props.get('SubState', '?')})",
                "enabled": props.get("UnitFileState", ""),
                "pid": pid or None,
                "restarts": _int(props.get("NRestarts")),
                "result": props.get("Result", ""),
            }
        if chosen == LAUNCHD:
            label = labels(paths)[PULSE]
            fields = _launchd_print(label, timeout=5)
            if fields is None:
                return {"manager": LAUNCHD, "label": label, "state": "not loaded"}
            return {
                "manager": LAUNCHD,
                "label": label,
                "state": fields.get("state", "?"),
                "pid": _int(fields.get("pid")),
                "restarts": max(0, runs - 1) if (runs := _int(fields.get("runs"))) else None,
                "last_exit": fields.get("last exit code", ""),
            }
    except (ServiceError, OSError):
        return None
    return None
