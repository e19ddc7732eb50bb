"""Writing the config: the first-run file, and the user's own file edited, nothing else touched.

``looop config set`` stores one knob, ``looop config runner add`` (and
``looop init``) one runner, a preset's comment above its command; both go
through ``_edit``. What a knob is, its default, how a value is checked and
how the file is read belong to ``looop.config`` (``KNOBS``, ``parse_text``,
``validate_table``, ``read_file``), what a runner is to ``looop.runners``;
this module only writes. It is apart from ``config`` because every command
loads the config and only these edit it: the load path stays small, and the
editor's imports (``tomlkit``, ``fcntl``, ``tomli_w`` for the first-run file,
rendered whole and linked into place only while the name is free) stay off
it.

The user's file is edited with ``tomlkit`` (comments, key order, formatting
and each value's type survive; ``3600`` stays an integer), validated before
writing, and a file that is already broken is refused, never rewritten.
Rejected: re-rendering the parsed table with ``tomli_w``, which dropped
every comment and turned ``3600`` into ``3600.0``.
"""

from __future__ import annotations

import contextlib
import os
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from looop import config, errors, fs
from looop.knobs import PULSE_READS


def write_defaults_if_missing(path: Path) -> bool:
    """Write a config holding the defaults on first run; True if written.

    The name is never overwritten: the file is linked into place only while
    the name is free (a ``config set`` or the user may create it meanwhile).
    """
    if os.path.lexists(path):
        return False
    import tomli_w  # only the first run needs it; every command reads the config

    table: dict[str, Any] = {}
    for k in config.KNOBS.values():
        if k.default is None:
            continue  # unset: nothing to write
        *tables, name = k.key.split(".")
        container = table
        for part in tables:
            container = container.setdefault(part, {})
        container[name] = list(k.default) if isinstance(k.default, tuple) else k.default
    body = config.HEADER + tomli_w.dumps(table)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fs.write_whole(path, body.encode("utf-8"), exclusive=True)
    except FileExistsError:
        return False
    return True


def read_valid(path: Path) -> str:
    """The config's text, refused (ConfigError) unless ``load`` would accept it."""
    table, text = config.read_file(path)
    config.validate_table(path, table, text)
    return text


def set_value(path: Path, key: str, raw: str) -> config.Value:
    """``looop config set``: store one knob in the user's file, keeping everything else.

    Raises UsageError for an unknown key, ConfigError (exit 78) for a bad
    value or a config that is broken or not a regular file (a FIFO or a
    device named by ``LOOOP_CONFIG`` is refused before anything is opened
    for writing, and never replaced), and LooopError (exit 1) naming the
    file for an ordinary OS error (read-only file system, disk full,
    permission). Returns the value stored, typed as written; an empty value
    for a knob whose default is unset (``notify.command``) removes the key.

    Concurrent ``set``s are serialised by an flock on a sidecar lock file,
    ``.<name>.lock`` beside the real (symlink-resolved) config, which is
    never renamed or removed, so every setter locks the same inode; the edit
    (read, change, write) happens under it. Rejected: an flock on the config
    itself. The write replaces the config by rename, so a second setter that
    opened the old inode before the rename gets the lock on that dead inode
    once the first lets go, while a third setter opens the new inode and
    locks it at the same time: two edits run at once and one is lost.
    Locking and then checking that the name still holds the locked inode
    (retrying if not) would fix that, but has nothing to lock while the file
    does not exist yet; the sidecar needs no retry loop, and the directory
    must be writable for the rename anyway.
    """
    k = config.knob(key)
    try:
        value = config.parse_text(k, raw)
    except ValueError as exc:
        raise config.ConfigError(str(path), None, k.key, str(exc)) from None
    _edit(path, k.key, lambda doc: _set(doc, k.key, value))
    return value


def add_runner(
    path: Path, name: str, command: config.Argv, comment: str, replace: bool, default: bool
) -> None:
    """``looop config runner add``: ``[runners.NAME]`` with ``command``, ``comment`` above it.

    An existing runner of that name is replaced only with ``replace``
    (LooopError, exit 1, otherwise); ``default`` also sets ``worker.runner``.
    Everything else in the file stays as the user wrote it; the errors are
    ``set_value``'s.
    """
    import tomlkit

    from looop import runners

    runners.check_name(name)
    config.validate(config.KNOBS["worker.command"], list(command))

    def change(doc: Any) -> None:
        tables = doc.setdefault(runners.TABLE, tomlkit.table(is_super_table=True))
        if name in tables and not replace:
            raise errors.LooopError(f"runner {name} is already in {path}; --force replaces it")
        table = tomlkit.table()
        for line in comment.splitlines():
            table.add(tomlkit.comment(line))
        table["command"] = list(command)
        tables[name] = table
        if default:
            _set(doc, "worker.runner", name)

    _edit(path, f"{runners.TABLE}.{name}", change)


def _edit(path: Path, key: str, change: Callable[[Any], None]) -> None:
    """Apply ``change`` to the user's file (a ``tomlkit`` document) under the edit lock.

    The file is refused if it is broken, a FIFO or a device, before anything
    is opened for writing, and read again under the lock (another editor may
    have changed it); what ``load`` would refuse is never written.
    """
    read_valid(path)
    target = Path(os.path.realpath(path))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with _edit_lock(target):
            doc = _document(path, read_valid(path))
            change(doc)
            new_text = _dumps(doc)
            config.validate_table(path, tomllib.loads(new_text), new_text)
            fs.write_whole(path, new_text.encode("utf-8"), mode=_mode_of(target), follow=True)
    except OSError as exc:
        raise _set_failed(path, target, key, exc) from None


def _edit_lock(target: Path) -> contextlib.AbstractContextManager[bool]:
    """Hold the sidecar lock of the config ``target`` (see ``set_value``)."""
    from looop import lockfile

    return lockfile.held(target.with_name(f".{target.name}.lock"))


def _document(path: Path, text: str) -> Any:
    """The user's file as a ``tomlkit`` document (a new file: the header only)."""
    import tomlkit
    from tomlkit.exceptions import ParseError

    try:
        return tomlkit.parse(text or config.HEADER)
    except ParseError as exc:  # tomllib accepted it; tomlkit disagrees: say so, change nothing
        raise config.ConfigError(str(path), exc.line, None, f"cannot edit: {exc}") from None


def _dumps(doc: Any) -> str:
    import tomlkit

    return tomlkit.dumps(doc)


def _set(doc: Any, key: str, value: config.Value) -> None:
    """``key`` set to ``value`` in ``doc`` (None: removed), everything else untouched."""
    import tomlkit

    *tables, name = key.split(".")
    container = doc
    for part in tables:
        if value is None and part not in container:
            return  # unsetting what was never set
        container = container.setdefault(part, tomlkit.table())
    if value is None:
        container.pop(name, None)
    else:
        container[name] = list(value) if isinstance(value, tuple) else value


def _mode_of(target: Path) -> int:
    """The config's permission bits, kept by the rewrite; a new file gets 0644."""
    try:
        return os.stat(target).st_mode & 0o777
    except FileNotFoundError:
        return 0o644


def _set_failed(path: Path, target: Path, key: str, exc: OSError) -> errors.LooopError:
    """One line naming the config and the reason.

    The lock and temp files (``.<name>.*``) are looop's own, and a failed
    ``write`` (disk full) names no file at all: those are reported as the
    config the user named.
    """
    named = exc.filename
    ours = not isinstance(exc, fs.BadFile) and (
        named is None or os.path.basename(os.fspath(named)).startswith(f".{target.name}.")
    )
    shown = OSError(exc.errno, exc.strerror, os.fspath(path)) if ours else exc
    return errors.LooopError(f"cannot set {key}: {errors.os_error_line(shown)}")


def notes(key: str, pulse_pid: int | None) -> list[str]:
    """What to tell the user after setting ``key`` (SPEC §2), one note a line.

    An environment variable that overrides the file, and, for a knob the
    pulse reads (``knobs.PULSE_READS``), a pulse running (``pulse_pid``; 0
    while it starts) that reads the file only at start and on reload.
    """
    said = []
    env = config.KNOBS[key].env
    if os.environ.get(env):
        said.append(f"note: ${env} is set and overrides the file")
    if key not in PULSE_READS:
        return said  # read by each command as it runs: nothing to reload
    if pulse_pid == 0:
        said.append("note: a pulse is starting with the config it read; reload it once it runs")
    elif pulse_pid is not None:
        said.append(
            f"note: the pulse (pid {pulse_pid}) reads the config at start and on reload: "
            "looop reload"
        )
    return said
