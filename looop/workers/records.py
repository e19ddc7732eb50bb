"""The workers room's own files in ``sessions/<id>/`` (SPEC §7, §12): the prompt and the env.

``prompt.md`` (the worker contract, then the task) and ``env.json``, the
caller's environment on its way to the supervisor. Their names, like every
session file's, are ``looop.data.sessions``'s, which also writes and judges
``meta.json`` and ``status.json``: one owner for the session's format, while
what a worker is told and what it inherits stay in this room.

Who writes what: ``_ worker start`` writes the prompt, the environment and a
first meta whose ``pid`` is null (the session is "starting"); the
supervisor, once it runs, takes the environment, rewrites the meta with its
own pid and start time (under systemd nobody else knows that pid without
asking the manager again, which ``start`` does not wait for), and it writes
the status on every way out. ``kill`` writes a status only for a supervisor
that died without one.

The environment travels in a file of mode 0600 that the supervisor reads and
removes at once, rather than as ``systemd-run --setenv`` arguments, because
it holds the caller's secrets (API keys): arguments are visible to every
user in ``ps``, and a transient unit's properties are kept for its life.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from looop import fs, jsonfile
from looop.data.sessions import ENV, PROMPT
from looop.workers.contract import CONTRACT

ENV_LIMIT = 4 << 20  # an environment is far smaller; a bigger file is not one


def prompt_text(task: str) -> str:
    """What a worker is given: the contract, then its task."""
    return f"{CONTRACT}\n# Your task\n\n{task.rstrip()}\n"


def write_prompt(session: Path, task: str) -> Path:
    return fs.write_whole(session / PROMPT, prompt_text(task).encode(), mode=0o600)


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
