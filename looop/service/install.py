"""``looop install`` / ``uninstall``: render, write (or remove), then tell the manager.

The orchestration only: ``render`` makes the files and decides what may be
written over, the driver (``units.for_manager``: ``systemd`` or ``launchd``)
enables, starts, stops and disables, and this module puts the two together
in an order that leaves nothing half-done: every file is judged before any
is written, the manager must answer before anything is written
(the driver's ``answers``: a missing ``systemctl``, or one with no user bus to
talk to), a manager that then refuses to load or enable them has the files
this install created removed again, and uninstall stops the jobs before it
removes their files. Half an install would be worse than none: ``looop
up``/``down`` go to the manager as soon as a unit file exists, and a manager
that cannot load the unit cannot stop a pulse either. A pulse that fails to
*start* is different: the unit is installed and correct, and stays (``looop
status`` and the manager say why).

A pulse running outside the manager (``looop up`` before the unit existed)
is handed over: ``control.hand_over`` stops it, the driver starts the
manager's, and install returns once that one is ready (``Driver.start``).

*Idempotent*: installing twice changes nothing the second time (an unchanged
file is not rewritten, and the driver restarts only what changed).
Uninstall removes only files still exactly as looop rendered them (every one
with ``force``) and never touches the data dir or a drop-in.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from looop.errors import os_error_line
from looop.fs import write_whole
from looop.paths import Paths
from looop.service import ServiceError, control
from looop.service.driver import Driver, Remover
from looop.service.render import NEW, UNCHANGED, ours, outside_home, plan, render
from looop.service.units import for_manager, installed, installed_manager


def _cannot(verb: str, path: Path, exc: OSError) -> ServiceError:
    """One line naming the file and the reason: ``cannot write <file>: <why>``.

    When what failed is a directory on the way (a file where ``systemd/``
    should be), the line names that too; a temp file's name never shows.
    """
    failed = exc.filename
    if failed is not None and Path(os.fsdecode(failed)) in path.parents:
        return ServiceError(f"cannot {verb} {path}: {os_error_line(exc)}")
    return ServiceError(f"cannot {verb} {path}: {exc.strerror or exc}")


def _make_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _cannot("create", path, exc) from None


def _prepare_dirs(paths: Paths, driver: Driver) -> None:
    # A sandboxed unit can only write to a data dir outside home if it exists
    # when the unit starts (ReadWritePaths=); making it here is idempotent.
    if outside_home(paths.data_dir):
        _make_dir(paths.data_dir)
    for where in driver.log_dirs():
        _make_dir(where)


def _write(path: Path, text: str) -> None:
    """Write one unit or plist whole; a link at ``path`` is replaced, never its target."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_whole(path, text.encode(), mode=0o644)
    except OSError as exc:
        raise _cannot("write", path, exc) from None


def install(
    paths: Paths,
    manager: str | None = None,
    dry_run: bool = False,
    start: bool = True,
    force: bool = False,
) -> list[str]:
    """Render, write, enable and (unless ``start`` is false) start. Returns lines to print."""
    driver = for_manager(manager)
    chosen = driver.NAME
    items = render(paths, chosen)
    states, lines = plan(items, force)
    notes = []
    for env in ("LOOOP_CONFIG", "LOOOP_RUNTIME_DIR"):
        if os.environ.get(env):
            notes.append(f"note: ${env} is set here but the service will not see it")
    if dry_run:
        out = [f"dry run: {chosen}; nothing written, nothing started"]
        for item, line in zip(items, lines, strict=True):
            out += ["", f"--- {line}", item.text.rstrip("\n")]
        return [*out, "", *notes]
    driver.answers()  # a manager that is missing or does not answer: nothing written
    _prepare_dirs(paths, driver)
    written: list[Path] = []  # what was not there before: removed again if the manager refuses
    try:
        for item in items:
            if states[item.path] != UNCHANGED:
                _write(item.path, item.text)
                if states[item.path] == NEW:
                    written.append(item.path)
        changed = {item.role for item in items if states[item.path] != UNCHANGED}
        lines += driver.enable(paths, changed)
    except ServiceError:
        _roll_back(written)
        raise
    # A pulse `looop up` detached before there was a unit is handed over: it
    # stops, and the manager starts its own (the README's order just works).
    handed = control.hand_over(paths, driver) if start else None
    try:
        lines += driver.launch(paths, changed, start)
        if handed is not None:
            driver.start(paths)  # returns once the manager's pulse is ready: handed over
    except ServiceError as exc:
        if handed is None:
            raise
        raise ServiceError(f"{exc} (the pulse that ran, pid {handed}, was stopped)") from None
    if handed is not None:
        lines.append(f"handed over: the pulse started outside {chosen} (pid {handed}) stopped")
    return [*lines, *notes, *driver.notes()]


def _roll_back(written: list[Path]) -> None:
    """Remove the files this install created, so nothing looks installed that is not."""
    for path in written:
        with contextlib.suppress(OSError):
            path.unlink()


def _remover(force: bool) -> Remover:
    """What a driver's ``uninstall`` removes its files with (see ``_remove``)."""
    return lambda files, kept_note: _remove(files, force, kept_note)


def _remove(files: list[Path], force: bool, kept_note: str = "") -> list[str]:
    """Remove the files looop rendered; keep (and name) any other unless ``force``."""
    lines = []
    for path in files:
        if not installed(path):
            continue
        if not force and not ours(path):
            lines.append(
                f"kept {path}: not as looop wrote it (edited, or not looop's){kept_note}; "
                "remove it yourself, or run `looop uninstall --force`"
            )
            continue
        try:
            path.unlink()
        except OSError as exc:
            raise _cannot("remove", path, exc) from None
        lines.append(f"removed {path}")
    return lines


def uninstall(paths: Paths, manager: str | None = None, force: bool = False) -> list[str]:
    """Stop, disable and remove this profile's files; the data dir is left alone.

    Only files still exactly as looop rendered them are removed (every one
    with ``force``); an edited file, a link, or a file looop never wrote stays
    where it is and the returned lines say so.
    """
    driver = for_manager(manager or installed_manager(paths))
    lines, found = driver.uninstall(paths, _remover(force))
    return [*lines, f"data dir left as it was: {paths.data_dir}"] if found else lines
