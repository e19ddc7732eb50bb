"""JSON object records: the one reader of a ``*.json`` file looop wrote, and its number check.

Sessions' ``meta.json`` and ``status.json``, claims, asks and answers, run
records, the beat record and the agent's state files are each one JSON
object in a small file. Rooms read them with their own ``json.loads``, some
strict and some lax, so a record that one reader refused another took in.
Here is the one strict reader:

* **Through ``fs.read_small``**: no link followed, never blocking on a FIFO,
  regular files only, at most ``limit`` bytes (``read_object``); or from a
  file the caller holds open (``read_object_fd``, the reaper's claim).
* **A JSON object of finite numbers only.** ``NaN`` and ``Infinity``, which
  Python's ``json`` reads, and numbers too big to be finite (``1e999``) are
  not JSON: a record holding one is refused, so no such value reaches a
  judgment (a session's ``ended``) or an output. ``finite`` is the same
  check for one value read out of a record (a bool is not a number).
* **One error shape.** A file that cannot be read raises ``OSError`` with the
  file named (``FileNotFoundError`` as is, so "absent" stays distinguishable
  from "unreadable"); one that holds something else raises ``fs.BadFile``
  saying so ("is not valid JSON", "is not a JSON object", "holds a
  non-finite number").
  ``parse_object`` is the quiet form for a line of a ledger: None.

Rejected: returning None for every failure from the file reader (a caller
could no longer tell a missing record from an unreadable one, which the
reaper must never delete blind), and a schema library (an import every hot
path would pay for, for records of a handful of keys).
"""

from __future__ import annotations

import json
import math
import os

from looop import fs

TYPE_CHECKING = False  # not typing's: the hot paths reading records should not pay for it
if TYPE_CHECKING:
    from typing import Any


class _NotFinite(ValueError):
    pass


def read_object(
    path: str | os.PathLike[str], *, dir_fd: int | None = None, limit: int = fs.SMALL
) -> dict[str, Any]:
    """The JSON object in the small regular file ``path``; OSError naming it otherwise."""
    return _object(fs.read_small(path, limit=limit, dir_fd=dir_fd), path)


def read_object_fd(
    fd: int, *, path: str | os.PathLike[str] = "<fd>", limit: int = fs.SMALL
) -> tuple[dict[str, Any], os.stat_result]:
    """The JSON object in the open file ``fd`` (read from its start) and its ``fstat``."""
    data, st = fs.read_small_fd(fd, limit=limit, path=path)
    return _object(data, path), st


def parse_object(data: bytes) -> dict[str, Any] | None:
    """The JSON object of finite numbers in ``data``; None for anything else."""
    try:
        return _load(data)
    except ValueError:
        return None


def finite(value: object) -> float | None:
    """``value`` as a float when it is a real, finite number (not a bool); else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int too big for a float
        return None
    return number if math.isfinite(number) else None


def _object(data: bytes, path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        return _load(data)
    except ValueError as exc:
        raise fs.BadFile(path, str(exc)) from None


def _load(data: bytes) -> dict[str, Any]:
    """The object in ``data``; ValueError saying, as a file's problem, why it is not one."""
    try:
        # ``json.loads`` for bytes, with one decoder made once instead of one per call;
        # an object's text begins with ``{`` and, in UTF-8 alone, no NUL after it.
        utf8 = data[:1] == b"{" and data[1:2] != b"\0"
        text = data.decode("utf-8" if utf8 else json.detect_encoding(data), "surrogatepass")
        text = text.strip(_WHITESPACE)  # what ``decode`` skips, without its two regex matches
        value, end = _DECODER.raw_decode(text)
        if end != len(text):
            raise ValueError("extra data")
    except _NotFinite:
        raise
    except (ValueError, RecursionError):  # bad syntax, bad UTF-8, too deep, too many digits
        raise ValueError("is not valid JSON") from None
    if not isinstance(value, dict):
        raise ValueError("is not a JSON object")
    return value


def _not_finite(name: str) -> Any:
    raise _NotFinite("holds a non-finite number")  # NaN, Infinity: Python's, not JSON's


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotFinite("holds a non-finite number")  # 1e999
    return value


_WHITESPACE = " \t\n\r"  # JSON's whitespace: no other character
_DECODER = json.JSONDecoder(parse_constant=_not_finite, parse_float=_finite_float)
