"""The pulse's knobs: one table of keys, resolved environment > file > default.

A broken config must stop a service from restart-looping, so every problem is
a ``ConfigError`` carrying the file, the line and the key; the CLI prints it
as one line and exits 78 (``EX_CONFIG``), which the unit lists in
``RestartPreventExitStatus=``. The file is read with ``tomllib`` and written
with ``tomli_w``; the schema lives here once and both the loader and
``looop config set`` validate through it.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from looop.errors import LooopError

EX_CONFIG = 78


@dataclass(frozen=True)
class Knob:
    key: str
    env: str
    default: int | float
    kind: type  # int or float: float knobs also take integers
    help: str
    minimum: int = 0


KNOBS: dict[str, Knob] = {
    k.key: k
    for k in (
        Knob("interval", "LOOOP_INTERVAL", 60, float, "seconds between beat starts (>= 1)"),
        Knob(
            "session_ttl",
            "LOOOP_SESSION_TTL",
            259200,
            float,
            "age in seconds after which a dead session is reaped",
        ),
        Knob("sensor_timeout", "LOOOP_SENSOR_TIMEOUT", 60, float, "seconds per sensor; 0 = none"),
        Knob("sensor_max_bytes", "LOOOP_SENSOR_MAX_BYTES", 8192, int, "output cap; 0 = no cap"),
        Knob(
            "sensor_concurrency",
            "LOOOP_SENSOR_CONCURRENCY",
            8,
            int,
            "sensors run at once",
            minimum=1,
        ),
    )
}

MIN_INTERVAL = 1.0


class ConfigError(LooopError):
    """A config problem, located: ``file:line: key: message``."""

    exit_code = EX_CONFIG

    def __init__(self, source: str, line: int | None, key: str | None, message: str):
        self.source, self.line, self.key, self.message = source, line, key, message
        where = source if line is None else f"{source}:{line}"
        super().__init__(f"{where}: {key}: {message}" if key else f"{where}: {message}")


@dataclass(frozen=True)
class Config:
    interval: float = 60.0
    session_ttl: float = 259200.0
    sensor_timeout: float = 60.0
    sensor_max_bytes: int = 8192
    sensor_concurrency: int = 8
    warnings: tuple[str, ...] = field(default=(), compare=False)


def _key_line(text: str, key: str) -> int | None:
    """The line that sets ``key``: ``key = ...``, a dotted ``key.x = ...`` or a ``[key]`` table."""
    name = rf"[\"']?{re.escape(key)}[\"']?"
    pattern = re.compile(rf"^\s*(?:{name}\s*[=.]|\[+\s*{name}\s*[\].])")
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            return number
    return None


def validate(knob: Knob, value: Any) -> int | float:
    """Return ``value`` as the knob's type, or raise ValueError saying why not."""
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
    return knob.kind(value)


def parse_env_value(knob: Knob, raw: str) -> int | float:
    try:
        value: int | float = int(raw.strip())
    except ValueError:
        try:
            value = float(raw.strip())
        except ValueError:
            raise ValueError(f"must be a number (got {raw!r})") from None
    return validate(knob, value)


def read_file(path: Path) -> tuple[dict[str, Any], str]:
    """The raw table and text of the config file; ({}, "") when it is missing."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return {}, ""
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), None, None, f"not UTF-8 text ({exc.reason})") from exc
    except OSError as exc:
        raise ConfigError(str(path), None, None, f"cannot read: {exc.strerror}") from exc
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"\(at line (\d+), column \d+\)", str(exc))
        line = int(match.group(1)) if match else None
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        raise ConfigError(str(path), line, None, f"invalid TOML: {message}") from exc
    return table, text


def _validate_table(path: Path, table: dict[str, Any], text: str) -> dict[str, int | float]:
    values: dict[str, int | float] = {}
    for key, raw in table.items():
        knob = KNOBS.get(key)
        if knob is None:
            known = ", ".join(KNOBS)
            raise ConfigError(str(path), _key_line(text, key), key, f"unknown key (known: {known})")
        try:
            values[key] = validate(knob, raw)
        except ValueError as exc:
            raise ConfigError(str(path), _key_line(text, key), key, str(exc)) from None
    return values


def load(path: Path, environ: dict[str, str] | None = None) -> Config:
    """Resolve every knob: environment > file > default. Raises ConfigError."""
    env = os.environ if environ is None else environ
    table, text = read_file(path)
    values = _validate_table(path, table, text)
    for knob in KNOBS.values():
        raw_env = env.get(knob.env)
        if raw_env is None or raw_env.strip() == "":
            continue
        try:
            values[knob.key] = parse_env_value(knob, raw_env)
        except ValueError as exc:
            raise ConfigError(f"${knob.env}", None, knob.key, str(exc)) from None
    warnings: list[str] = []
    interval = float(values.get("interval", KNOBS["interval"].default))
    if interval < MIN_INTERVAL:
        warnings.append(f"interval {interval:g}s is below the minimum; using {MIN_INTERVAL:g}s")
        values["interval"] = MIN_INTERVAL
    merged = {k.key: k.kind(values.get(k.key, k.default)) for k in KNOBS.values()}
    return Config(**merged, warnings=tuple(warnings))


def write_defaults_if_missing(path: Path) -> bool:
    """Write a config holding the defaults on first run; True if written."""
    if path.exists() or path.is_symlink():
        return False
    defaults = {k.key: k.default for k in KNOBS.values()}
    return _write_table(path, defaults, replace=False)


def set_value(path: Path, key: str, raw: str) -> int | float:
    """``looop config set``: validate and store one knob, keeping the others."""
    knob = KNOBS.get(key)
    if knob is None:
        raise ConfigError(str(path), None, key, f"unknown key (known: {', '.join(KNOBS)})")
    try:
        value = parse_env_value(knob, raw)
    except ValueError as exc:
        raise ConfigError(str(path), None, key, str(exc)) from None
    table, text = read_file(path)
    _validate_table(path, table, text)  # refuse to rewrite a file that is already broken
    table[key] = value
    _write_table(path, table)
    return value


def _write_table(path: Path, table: dict[str, Any], replace: bool = True) -> bool:
    """Write atomically (temp file + rename) so a crash never leaves half a config.

    A symlinked config (a dotfiles checkout) is written through the link, not
    replaced by a file. With ``replace=False`` an existing file wins: the new
    one is linked into place only if the name is still free. Returns whether
    the file was written.
    """
    import tomli_w  # only writers need it; every command reads the config

    target = Path(os.path.realpath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    body = "# looop configuration: see `looop config show` for what is in effect.\n"
    body += tomli_w.dumps(table)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, target)
            return True
        try:
            os.link(tmp, target)
        except FileExistsError:
            return False
        except OSError:  # no hard links here (vfat, some network mounts)
            try:
                with open(target, "x", encoding="utf-8") as fh:
                    fh.write(body)
            except FileExistsError:
                return False
        return True
    finally:
        tmp.unlink(missing_ok=True)


def format_value(value: float) -> str:
    """A knob's value as people and scripts expect it: 259200, not 2.592e+05."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def as_table(config: Config) -> dict[str, int | float]:
    return {k: getattr(config, k) for k in KNOBS}
