"""The pulse's knobs: one table of keys, resolved environment > file > default.

``KNOBS`` is the schema and the only place a default is written: ``Config``
has no defaults of its own and is always built by ``load`` or ``defaults``,
and ``sensors.Limits`` is built from a ``Config``. A knob's key may be dotted
(``worker.max_live``) for the tables SPEC §2 names; the file's tables are
walked by the same lookup, so a table arrives as rows of ``KNOBS``, not as a
rewrite of the loader.

A knob is a number (``int``/``float``, bounded), a switch (``bool``; in the
environment also ``1``/``0``, ``yes``/``no``, ``on``/``off``), a choice
(``str`` with ``choices``: ``worker.supervisor``), a name (``str`` without:
``worker.runner``) or an argv (``tuple``: ``worker.command``,
``notify.command``), a non-empty list of strings never handed to a shell. In
the environment and on ``config set``'s command line an argv is split like a
shell line (``LOOOP_WORKER_COMMAND="claude -p '{prompt}'"``), what a person
types; in the file it is a TOML array. A knob whose default is unset
(``notify.command``: the desktop's notifier) is unset again by an empty
value. Rejected: a string command split at run time, which would put a
shell's quoting rules between the user and every worker.

A broken config must stop a service from restart-looping, so every problem in
the file or the environment is a ``ConfigError`` naming the file, the line and
the key, exit 78 (``errors.CONFIG``, in the unit's ``RestartPreventExitStatus=``).
An unknown key on the *command line* is a ``UsageError`` (exit 2): nothing is
wrong with the file. The file is read through ``fs.read_small`` (a FIFO, a
device or a huge file is one error, never a hang), following a symlink: a
config kept in a dotfiles checkout is the user's.

Time knobs are bounded above as well as below (``session_ttl`` at a year,
the others at a day: said in each knob's help). Beyond is a ``ConfigError``,
not a clamp: ``1e308`` is a slip, not a wish, and once accepted it reached
every deadline the pulse computes (``status`` printed a 309-digit "next beat
in"). Below 1 s, ``interval`` is clamped with a warning (SPEC §2).

Writing (first run, ``config set``, ``config runner add``) is ``looop.config_edit``'s;
runners (``[runners.NAME]``) are ``looop.runners``'s, read only when the file has them.
"""

from __future__ import annotations

import os
import re

from looop import errors, fs
from looop.knobs import KNOBS, TABLES, Argv, Knob, Value

TYPE_CHECKING = False  # not typing's: every command loads the config
if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from typing import Any

MIN_INTERVAL = 1.0
HEADER = "# looop configuration: see `looop config show` for what is in effect.\n"
# How a switch is spelled in the environment and on ``config set``'s command line.
SWITCH = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False}
SWITCH |= {"no": False, "off": False}


class ConfigError(errors.LooopError):
    """A config problem, located: ``file:line: key: message`` (exit 78)."""

    exit_code = errors.CONFIG

    def __init__(self, source: str, line: int | None, key: str | None, message: str) -> None:
        self.source, self.line, self.key, self.message = source, line, key, message
        where = source if line is None else f"{source}:{line}"
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


class Config:
    """The knobs in effect. No defaults here: build it with ``load`` or ``defaults``.

    One attribute per knob (``Knob.attr``) and ``warnings``, all given by name: a knob
    missing or unknown is a ``TypeError``. Equal when every value is.
    """

    interval: float
    session_ttl: float
    sensor_timeout: float
    sensor_max_bytes: int
    sensor_concurrency: int
    worker_command: Argv
    worker_runner: str | None
    worker_max_live: int
    worker_timeout: float
    worker_supervisor: str
    worker_max_prompt_bytes: int
    worker_quiet_after: float
    worker_stuck_after: float
    worker_stuck_kill: bool
    run_timeout: float
    wait_timeout: float
    notify_command: Argv | None
    runners: dict[str, Argv]  # the [runners.NAME] tables (``looop.runners``)
    warnings: tuple[str, ...]
    FIELDS: tuple[str, ...] = ()  # every knob's ``attr``, ``runners``, ``warnings``: set below

    def __init__(self, **values: Any) -> None:
        if set(values) != set(self.FIELDS):
            raise TypeError(f"Config needs exactly {', '.join(self.FIELDS)}")
        for name in self.FIELDS:
            setattr(self, name, values[name])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Config) and all(
            getattr(self, name) == getattr(other, name) for name in self.FIELDS
        )

    __hash__ = None  # type: ignore[assignment]  # equal by value, and not frozen

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.FIELDS)
        return f"Config({inner})"


Config.FIELDS = (*(k.attr for k in KNOBS.values()), "runners", "warnings")


def knob(key: str) -> Knob:
    """The knob named ``key`` on a command line; UsageError (exit 2) naming the known ones."""
    found = KNOBS.get(key)
    if found is None:
        raise errors.UsageError(f"unknown key {key!r} (known: {', '.join(KNOBS)})")
    return found


def _key_line(text: str, key: str) -> int | None:
    """The line that sets ``key``: ``key = ...``, a dotted ``key.x = ...`` or a ``[key]`` table.

    A key in a table (``worker.timeout``, a runner's ``command``) is looked
    for inside that table's section, or spelled dotted from an enclosing
    one (``worker.timeout = ...`` at the top), so ``[run] timeout`` is never
    reported on ``[worker] timeout``'s line. Not found: the line of what
    holds it (an inline table).
    """
    parts = key.split(".")
    table: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        header = re.match(r"^\s*\[+([^\]]*)\]", line)
        if header:
            table = [word.strip().strip("\"'") for word in header.group(1).split(".")]
            if table[: len(parts)] == parts:  # [key], or [key.x] inside it
                return number
        elif "=" in line and parts[: len(table)] == table and len(table) < len(parts):
            words = [word.strip().strip("\"'") for word in line.split("=", 1)[0].split(".")]
            if words[: len(parts) - len(table)] == parts[len(table) :]:
                return number
    return _key_line(text, key.rsplit(".", 1)[0]) if len(parts) > 1 else None


def validate(knob: Knob, value: Any) -> Value:
    """Return ``value`` as the knob's type, or raise ValueError saying why not."""
    if knob.kind is tuple:
        return _argv(value)
    if knob.kind is str and not knob.choices:  # a name: worker.runner
        from looop import runners

        return runners.name_value(value)
    if knob.kind is str:
        if not isinstance(value, str) or value not in knob.choices:
            raise ValueError(f"must be one of {', '.join(knob.choices)} (got {value!r})")
        return value
    if knob.kind is bool:
        if not isinstance(value, bool):
            raise ValueError(f"must be true or false (got {value!r})")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        want = "an integer" if knob.kind is int else "a number"
        raise ValueError(f"must be {want} (got {type(value).__name__} {value!r})")
    if knob.kind is int and isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"must be an integer (got {value!r})")
        value = int(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"must be a finite number (got {value!r})")
    if value < knob.minimum:
        raise ValueError(f"must be >= {knob.minimum} (got {value!r})")
    if knob.maximum is not None and value > knob.maximum:
        raise ValueError(f"must be <= {knob.maximum} (got {value!r})")
    return knob.kind(value)


def _argv(value: Any) -> Argv:
    """An argv knob's value: a non-empty list of strings whose first names a program."""
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"must be a list of strings, an argv (got {value!r})")
    if not value or not value[0].strip():
        raise ValueError("must name a program first (got an empty command)")
    if any("\0" in v for v in value):
        raise ValueError("must not contain a NUL character")
    return tuple(value)


def parse_text(knob: Knob, raw: str) -> Value:
    """A value as written on a command line or in the environment, checked by the schema.

    Numbers keep the type they are spelled with (``3600`` an int, ``1.5`` a
    float); an argv is split like a shell line (``claude -p '{prompt}'``),
    and an empty one means unset for a knob whose default is unset.
    """
    if knob.kind is tuple:
        import shlex

        try:
            words = shlex.split(raw)
        except ValueError as exc:
            raise ValueError(f"cannot split {raw!r} like a shell line: {exc}") from None
        if not words and knob.default is None:
            return None
        return _argv(words)
    if knob.kind is str:
        return None if not raw.strip() and knob.default is None else validate(knob, raw.strip())
    if knob.kind is bool:
        word = raw.strip().lower()
        if word not in SWITCH:
            raise ValueError(f"must be true or false (got {raw!r})")
        return SWITCH[word]
    try:
        value: int | float = int(raw.strip())
    except ValueError:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError(f"must be a number (got {raw!r})") from None
    checked = validate(knob, value)
    return value if knob.kind is float else checked


def read_file(path: Path) -> tuple[dict[str, Any], str]:
    """The raw table and text of the config file; ({}, "") when it is missing."""
    try:
        text = fs.read_small(path, follow=True).decode("utf-8")
    except FileNotFoundError:
        return {}, ""
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), None, None, f"not UTF-8 text ({exc.reason})") from exc
    except fs.BadFile as exc:  # a FIFO, a device, a directory, too large: says which
        raise ConfigError(str(path), None, None, exc.strerror or str(exc)) from None
    except OSError as exc:
        raise ConfigError(str(path), None, None, f"cannot read: {exc.strerror}") from exc
    import tomllib  # only when there is a file to parse

    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = int(match.group(1)) if match else None
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise ConfigError(str(path), line, None, f"invalid TOML: {message}") from exc
    return table, text


def _leaves(table: dict[str, Any]) -> Iterator[tuple[str, str, Any]]:
    """(dotted key, the name as written in its table, value) of every knob set in the file."""
    for key, value in table.items():
        if key == "runners":
            continue  # not knobs: ``runner_tables``
        if key in TABLES:
            if not isinstance(value, dict):
                yield key, key, value  # reported as unknown: only its keys are settings
                continue
            for sub, subvalue in value.items():
                yield f"{key}.{sub}", f"{key}.{sub}", subvalue
        else:
            yield key, key, value


def validate_table(path: Path, table: dict[str, Any], text: str) -> dict[str, Value]:
    values: dict[str, Value] = {}
    for key, name, raw in _leaves(table):
        found = KNOBS.get(key)
        if found is None:
            known = ", ".join(KNOBS)
            inner = ", ".join(k.split(".", 1)[1] for k in KNOBS if k.startswith(f"{key}."))
            why = f"must be a table (keys: {inner})"
            message = why if key in TABLES else f"unknown key (known: {known})"
            raise ConfigError(str(path), _key_line(text, name), key, message)
        try:
            values[key] = validate(found, raw)
        except ValueError as exc:
            raise ConfigError(str(path), _key_line(text, name), key, str(exc)) from None
    if "runners" in table or "worker.runner" in values:
        from looop import runners

        defined = runner_tables(path, table, text)
        runners.check_default(str(path), _key_line(text, "worker.runner"), values, defined)
    return values


def runner_tables(path: Path, table: dict[str, Any], text: str) -> dict[str, Argv]:
    """The file's runners, ``{name: argv}`` (``looop.runners``); ConfigError locating a problem."""
    if "runners" not in table:
        return {}
    from looop import runners

    return runners.validate_table(str(path), table["runners"], lambda key: _key_line(text, key))


def _build(values: dict[str, Value], runners: dict[str, Argv]) -> Config:
    warnings: list[str] = []
    given: Any = values.get("interval", KNOBS["interval"].default)
    interval = float(given)
    if interval < MIN_INTERVAL:
        warnings.append(f"interval {interval:g}s is below the minimum; using {MIN_INTERVAL:g}s")
        values["interval"] = MIN_INTERVAL
    merged: dict[str, Any] = {}
    for k in KNOBS.values():
        value: Any = values.get(k.key, k.default)
        merged[k.attr] = None if value is None else k.kind(value)  # 3600 -> 3600.0 for a float
    return Config(**merged, runners=runners, warnings=tuple(warnings))


def defaults() -> Config:
    """Every knob at its default."""
    return _build({}, {})


def load(path: Path, environ: dict[str, str] | None = None) -> Config:
    """Resolve every knob: environment > file > default. Raises ConfigError."""
    env = os.environ if environ is None else environ
    table, text = read_file(path)
    values = validate_table(path, table, text)
    found = runner_tables(path, table, text)
    for k in KNOBS.values():
        raw_env = env.get(k.env)
        if raw_env is None or raw_env.strip() == "":
            continue
        try:
            values[k.key] = parse_text(k, raw_env)
        except ValueError as exc:
            raise ConfigError(f"${k.env}", None, k.key, str(exc)) from None
    if env.get(KNOBS["worker.runner"].env, "").strip():
        from looop import runners

        runners.check_default(f"${KNOBS['worker.runner'].env}", None, values, found)
    return _build(values, found)


def load_logged(path: Path) -> Config:
    """``load``, with each warning (a value clamped into range) logged: what commands use."""
    loaded = load(path)
    if loaded.warnings:
        from looop.log import log

        for warning in loaded.warnings:
            log.warning(warning)
    return loaded


def format_value(value: Value) -> str:
    """A knob's value as people and scripts expect it: 259200, not 2.592e+05.

    An argv prints as a TOML (and JSON) array, a choice as itself, unset as nothing.
    """
    if value is None:
        return ""
    if isinstance(value, tuple):
        import json

        return json.dumps(list(value), ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def as_table(config: Config) -> dict[str, Value]:
    return {k.key: getattr(config, k.attr) for k in KNOBS.values()}
