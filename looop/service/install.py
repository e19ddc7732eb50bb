"""``looop install`` / ``uninstall``: render, write (or remove), then tell the manager.

The orchestration only: ``render`` makes the files and decides what may be
written over, the driver (``systemd`` or ``launchd``) enables, starts, stops
and disables, and this module puts the two together in an order that leaves
nothing half-done: every file is judged before any is written, the manager's
command must exist before anything is written, and uninstall stops the jobs
before it removes their files.

*Idempotent*: installing twice changes nothing the second time (an unchanged
file is not rewritten, and the driver restarts only what changed).
Uninstall removes only files still exactly as looop rendered them (every one
with ``force``) and never touches the data dir or a drop-in.
"""

from __future__ import annotations

import os
from pathlib import Path

from looop.paths import Paths
from looop.service import ServiceError, launchd, systemd
from looop.service.driver import missing
from looop.service.render import UNCHANGED, ours, outside_home, plan, render
from looop.service.units import (
    MANAGERS,
    SYSTEMD,
    agents_dir,
    default_manager,
    installed,
    installed_manager,
    labels,
    unit_dir,
    unit_names,
)


def _resolve_manager(manager: str | None) -> str:
    chosen = manager or default_manager()
    if chosen not in MANAGERS:
        raise ServiceError(f"unknown service manager {chosen!r} (known: {', '.join(MANAGERS)})")
    return chosen


def _prepare_data_dir(paths: Paths) -> None:
    # A sandboxed unit can only write to a data dir outside home if it exists
    # when the unit starts (ReadWritePaths=); making it here is idempotent.
    if outside_home(paths.data_dir):
        try:
            paths.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ServiceError(f"cannot create data dir {paths.data_dir}: {exc.strerror}") from exc


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
    command = "systemctl" if chosen == SYSTEMD else "launchctl"
    import shutil

    if shutil.which(command) is None:  # say so before writing anything
        raise missing(command)
    _prepare_data_dir(paths)
    for item in items:
        if states[item.path] != UNCHANGED:
            _write(item.path, item.text)
    changed = {item.role for item in items if states[item.path] != UNCHANGED}
    driver = systemd if chosen == SYSTEMD else launchd
    lines += driver.enable(paths, changed, start)
    return [*lines, *notes]


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
        files = [unit_dir() / n for n in unit_names(paths).values()]
        if not any(installed(f) for f in files):
            return [f"nothing to uninstall: no looop units in {unit_dir()}"]
        lines += systemd.disable(paths)
        lines += _remove(files, force)
        lines += systemd.forget(paths)
    else:
        files = [agents_dir() / f"{label}.plist" for label in labels(paths).values()]
        lines += launchd.unload(paths)
        if not lines and not any(installed(f) for f in files):
            return [f"nothing to uninstall: no looop agents in {agents_dir()}"]
        lines += _remove(files, force, kept_note=", and launchd loads it at next login")
    lines.append(f"data dir left as it was: {paths.data_dir}")
    return lines
