"""The files the workers' room writes into ``sessions/<id>/`` (SPEC §7, §12).

``prompt.md`` (the worker contract, then the task), ``meta.json`` (``id``,
``pid``, ``started``, ``cmd``, and ``unit``, ``timeout``, ``supervisor``),
``status.json`` (``state``, ``exit_code``, ``ended``, and why) and
``env.json``, the caller's environment on its way to the supervisor; and
``sessions/.changed``, rewritten whenever a session starts or ends, so
``_ wait`` (which watches ``sessions/``) wakes at once. Every
one is written whole (``fs.write_whole``), so a reader or the reaper never
sees half a record; how they are *read* and judged is
``looop.data.sessions``'s, the one judgment.

Who writes what: ``_ worker start`` writes the prompt, the environment and a
first meta whose ``pid`` is null (the session is "starting"); the
supervisor, once it runs, rewrites the meta with its own pid and start time
(under systemd nobody else knows that pid without asking the manager again,
which ``start`` does not wait for), and it writes the status on every way
out. ``kill`` writes a status only for a supervisor that died without one.

The environment travels in a file of mode 0600 that the supervisor reads and
removes at once, rather than as ``systemd-run --setenv`` arguments, because
it holds the caller's secrets (API keys): arguments are visible to every
user in ``ps``, and a transient unit's properties are kept for its life.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from looop import fs, jsonfile
from looop.paths import Paths
from looop.workers.contract import CONTRACT

PROMPT, META, STATUS, ENV = "prompt.md", "meta.json", "status.json", "env.json"
CHANGED = ".changed"  # sessions/.changed: touched when a session starts or ends
ENV_LIMIT = 4 << 20  # an environment is far smaller; a bigger file is not one


def _encode(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, indent=2, ensure_ascii=False) + "\n").encode()


def prompt_text(task: str) -> str:
    """What a worker is given: the contract, then its task."""
    return f"{CONTRACT}\n# Your task\n\n{task.rstrip()}\n"


def write_prompt(session: Path, task: str) -> Path:
    return fs.write_whole(session / PROMPT, prompt_text(task).encode(), mode=0o600)


def write_meta(session: Path, meta: dict[str, Any]) -> None:
    fs.write_whole(session / META, _encode(meta), mode=0o644)


def read_meta(session: Path) -> dict[str, Any] | None:
    try:
        return jsonfile.read_object(session / META)
    except OSError:
        return None


def write_status(session: Path, state: str, exit_code: int | None, **why: Any) -> dict[str, Any]:
    status = {"state": state, "exit_code": exit_code, "ended": time.time(), **why}
    fs.write_whole(session / STATUS, _encode(status), mode=0o644)
    return status


def clear_status(session: Path) -> None:
    """A new run of a dead session's id starts without the old run's status."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(session / STATUS)


def write_env(session: Path, env: dict[str, str]) -> None:
    fs.write_whole(session / ENV, json.dumps(env).encode(), mode=0o600)


def take_env(session: Path) -> dict[str, str] | None:
    """The environment ``start`` left for the supervisor, removed as it is read."""
    path = session / ENV
    try:
        env = jsonfile.read_object(path, limit=ENV_LIMIT)
    except OSError:
        return None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    return {str(k): str(v) for k, v in env.items()}


def poke(paths: Paths) -> None:
    """Say that a session started or ended, in the one place ``_ wait`` watches."""
    with contextlib.suppress(OSError):  # the next beat's sys-sessions says it anyway
        fs.write_whole(paths.sessions / CHANGED, f"{time.time()}\n".encode())
