"""The workers room's own files in ``sessions/<id>/`` (SPEC §7, §12): prompt, env, argv.

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

Sizes: every file ``start`` writes fits its reader. The task is refused past
``worker.max_prompt_bytes`` before anything is written (``encoded_prompt``);
the environment past what ``take_env`` reads (``encoded_env``); the meta
keeps ``worker.command`` as configured, never the brief. The supervisor
builds the argv (``worker_argv``): placeholders are replaced in the
template only, in one pass, so a brief that mentions ``{id}`` keeps it; a
``{prompt}`` that would make a word longer than Linux's 128 KiB (E2BIG at
exec) names the prompt file instead, with the prompt on stdin; a command
without ``{prompt}`` or ``{prompt_file}`` reads its prompt on stdin.
Rejected: refusing a long ``{prompt}`` (agent CLIs read a file or stdin as
well as any argument), and a substituted argv in the meta (a brief of
megabytes there would make the meta unreadable, the session unknown).
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from looop import fs, jsonfile
from looop.data.sessions import ENV, PROMPT
from looop.errors import LooopError
from looop.workers.contract import CONTRACT

ENV_LIMIT = 4 << 20  # an environment is far smaller; a bigger file is not one
# Linux refuses one argv string of 32 pages or more (MAX_ARG_STRLEN, E2BIG at
# exec), and all of argv and the environment past a quarter of the stack.
ARG_MAX_STRLEN = 128 << 10
ARGV_BUDGET = 512 << 10  # of the whole argv: leaves the environment its room
PLACEHOLDERS = ("{prompt_file}", "{prompt}", "{id}")  # the longest first: one is a prefix


def prompt_text(task: str, checks: list[str] | None = None) -> str:
    """What a worker is given: the contract, then its task, then its post-conditions, if any."""
    checked = "".join(f"    {cmd}\n" for cmd in checks or ())
    tail = f"\n# Checked when you end\n\n{checked}" if checked else ""
    return f"{CONTRACT}\n# Your task\n\n{task.rstrip()}\n{tail}"


def encoded_prompt(task: str, limit: int, checks: list[str] | None = None) -> bytes:
    """The prompt file's bytes; a LooopError past ``worker.max_prompt_bytes`` (``limit``).

    Checked before anything is written. Bytes that were not UTF-8 on the way
    in (an argument, stdin) go back out as they came.
    """
    size = len(task.encode("utf-8", "surrogateescape"))
    if size > limit:
        raise LooopError(
            f"the task is {size} bytes, over worker.max_prompt_bytes ({limit}); nothing started"
        )
    return prompt_text(task, checks).encode("utf-8", "surrogateescape")


def write_prompt(session: Path, prompt: bytes) -> Path:
    return fs.write_whole(session / PROMPT, prompt, mode=0o600)


def encoded_env(env: dict[str, str]) -> bytes:
    """``env.json``'s bytes; a LooopError when its reader (``take_env``) would refuse them."""
    data = json.dumps(env).encode()
    if len(data) > ENV_LIMIT:
        raise LooopError(
            f"the environment is {len(data)} bytes as env.json, over {ENV_LIMIT}; nothing started"
        )
    return data


def write_env(session: Path, env: bytes) -> None:
    fs.write_whole(session / ENV, env, mode=0o600)


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


def substitute(template: list[str], values: dict[str, str]) -> list[str]:
    """``template`` with each placeholder replaced, in one pass over each word.

    Only the template's own text is looked at: a value (the brief) that
    mentions ``{id}`` keeps it, literally.
    """
    out = []
    for word in template:
        parts, i = [], 0
        while (j := word.find("{", i)) >= 0:
            key = next((k for k in PLACEHOLDERS if word.startswith(k, j)), None)
            parts.append(word[i:j] + (values[key] if key else "{"))
            i = j + (len(key) if key else 1)
        parts.append(word[i:])
        out.append("".join(parts))
    return out


def _fits(argv: list[str]) -> bool:
    sizes = [len(word.encode("utf-8", "surrogateescape")) + 1 for word in argv]
    return max(sizes, default=0) <= ARG_MAX_STRLEN and sum(sizes) <= ARGV_BUDGET


def worker_argv(template: list[str], session: Path, wid: str) -> tuple[list[str], bool]:
    """The worker's argv from ``worker.command``, and whether its stdin is the prompt file.

    ``{prompt}`` becomes the prompt itself while the argv stays within what
    exec takes (``ARG_MAX_STRLEN`` a word, ``ARGV_BUDGET`` in all); past
    that it becomes a line naming the prompt file, and the prompt is also
    the worker's stdin. A command with neither ``{prompt}`` nor
    ``{prompt_file}`` gets the prompt on its stdin. Otherwise stdin is empty.
    """
    prompt_file = session / PROMPT
    values = {"{prompt_file}": str(prompt_file), "{id}": wid, "{prompt}": ""}
    named = {k for k in ("{prompt}", "{prompt_file}") if any(k in w for w in template)}
    if "{prompt}" in named:
        try:
            if os.stat(prompt_file).st_size < ARG_MAX_STRLEN:
                values["{prompt}"] = fs.read_small(prompt_file, limit=ARG_MAX_STRLEN).decode(
                    "utf-8", "surrogateescape"
                )
                argv = substitute(template, values)
                if _fits(argv):
                    return argv, False
        except OSError:
            pass  # the worker is pointed at the file, which says for itself what is wrong
        values["{prompt}"] = (
            f"Your brief is too long for a command line. It is in {prompt_file} "
            "and on your standard input: read it there, and follow it."
        )
        return substitute(template, values), True
    return substitute(template, values), not named
