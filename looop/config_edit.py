"""The config's writers: the first-run file, and ``looop config set``'s edit of one knob.

What a knob is, its default, how a value is checked and how the file is
read belong to ``looop.config`` (``KNOBS``, ``parse_text``,
``validate_table``, ``read_file``); this module only edits. It is apart from
``config`` because every command loads the config and none but ``config
set`` edits it: the load path stays small, and the editor's imports
(``tomlkit``, ``fcntl``) stay off it.

The user's file is edited with ``tomlkit`` (comments, key order, formatting
and each value's type survive; ``3600`` stays an integer), validated before
writing, and a file that is already broken is refused, never rewritten.
Rejected: re-rendering the parsed table with ``tomli_w``, which dropped
every comment and turned ``3600`` into ``3600.0``.

The first-run file (``write_defaults_if_missing``, the pulse's start) holds
every knob's default, rendered by ``tomli_w`` and linked into place only
while the name is free.
"""

from __future__ import annotations

import contextlib
import os
import tomllib
from pathlib import Path
from typing import Any

from looop import config, errors, fs

HEADER = "# looop configuration: see `looop config show` for what is in effect.\n"


def write_defaults_if_missing(path: Path) -> bool:
    """Write a config holding the defaults on first run; True if written.

    The name is never overwritten: the file is linked into place only while
    the name is free (a ``config set`` or the user may create it meanwhile).
    """
    if os.path.lexists(path):
        return False
    import tomli_w  # only the first run needs it

    table: dict[str, Any] = {}
    for k in config.KNOBS.values():
        if k.default is None:
            continue  # unset: nothing to write
        *tables, name = k.key.split(".")
        container = table
        for part in tables:
            container = container.setdefault(part, {})
        container[name] = list(k.default) if isinstance(k.default, tuple) else k.default
    body = HEADER + tomli_w.dumps(table)
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
    read_valid(path)  # refuse a broken file, a FIFO or a device before touching anything
    target = Path(os.path.realpath(path))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with _edit_lock(target):
            text = read_valid(path)  # again: another setter may have changed it
            new_text = _edited(path, text, k.key, value)
            # Never write what load would refuse.
            config.validate_table(path, tomllib.loads(new_text), new_text)
            fs.write_whole(path, new_text.encode("utf-8"), mode=_mode_of(target), follow=True)
    except OSError as exc:
        raise _set_failed(path, target, k.key, exc) from None
    return value


def _edit_lock(target: Path) -> contextlib.AbstractContextManager[bool]:
    """Hold the sidecar lock of the config ``target`` (see ``set_value``)."""
    from looop import lockfile

    return lockfile.held(target.with_name(f".{target.name}.lock"))


def _edited(path: Path, text: str, key: str, value: config.Value) -> str:
    """``text`` with ``key`` set to ``value``, everything else as the user wrote it."""
    import tomlkit
    from tomlkit.exceptions import ParseError

    try:
        doc: Any = tomlkit.parse(text or HEADER)
    except ParseError as exc:  # tomllib accepted it; tomlkit disagrees: say so, change nothing
        raise config.ConfigError(str(path), exc.line, None, f"cannot edit: {exc}") from None
    *tables, name = key.split(".")
    container = doc
    for part in tables:
        if value is None and part not in container:
            return tomlkit.dumps(doc)  # unsetting what was never set
        container = container.setdefault(part, tomlkit.table())
    if value is None:
        container.pop(name, None)
    else:
        container[name] = list(value) if isinstance(value, tuple) else value
    return tomlkit.dumps(doc)


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

    An environment variable that overrides the file, and a pulse running
    (``pulse_pid``; 0 while it starts) that reads the file only at start and
    on reload.
    """
    said = []
    env = config.KNOBS[key].env
    if os.environ.get(env):
        said.append(f"note: ${env} is set and overrides the file")
    if pulse_pid == 0:
        said.append("note: a pulse is starting with the config it read; reload it once it runs")
    elif pulse_pid is not None:
        said.append(
            f"note: the pulse (pid {pulse_pid}) reads the config at start and on reload: "
            "looop reload"
        )
    return said
