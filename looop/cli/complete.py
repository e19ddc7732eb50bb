"""Shell completion: ``looop completion bash|zsh|fish`` and the completers of ids and keys.

Click's own completion runs underneath: the script a shell sources calls
``looop`` again with ``_LOOOP_COMPLETE`` set, and click walks the command
tree (the lazy groups list their commands, so every command completes) and
asks a parameter's ``shell_complete`` for its values. The completers here
read the data dir through the readers that own it (``data.goals``,
``pulse.sensors.discover``, ``data.mailbox``, ``data.sessions``) and never
raise: a broken or missing data dir completes nothing rather than printing a
traceback into the user's prompt.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import click
from click.shell_completion import CompletionItem

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_LOOOP_COMPLETE"


def _items(find: Callable[[], Iterable[str]], incomplete: str) -> list[CompletionItem]:
    try:
        return [CompletionItem(v) for v in sorted(set(find())) if v.startswith(incomplete)]
    except Exception:  # a completion must never break the prompt
        return []


def goal_ids(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    from looop.data import goals
    from looop.paths import resolve

    return _items(lambda: goals.ids(resolve()), incomplete)


def sensor_names(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    from looop.paths import resolve
    from looop.pulse import sensors

    return _items(lambda: (p.stem for p in sensors.discover(resolve().sensors)), incomplete)


def ask_ids(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    from looop.data import mailbox
    from looop.paths import resolve

    return _items(
        lambda: (a["id"] for a in mailbox.pending(resolve()) if isinstance(a.get("id"), str)),
        incomplete,
    )


def worker_ids(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    from looop.data import sessions
    from looop.paths import resolve

    return _items(lambda: (s.id for s in sessions.scan(resolve().sessions)), incomplete)


def config_keys(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    from looop import config

    return _items(lambda: config.KNOBS, incomplete)


def script(root: click.Command, shell: str) -> str:
    """The completion script for ``shell``, to be sourced (``eval "$(looop completion bash)"``)."""
    from click.shell_completion import get_completion_class

    found = get_completion_class(shell)
    if found is None:
        raise click.BadParameter(f"choose one of {', '.join(SHELLS)}")
    return found(root, {}, "looop", COMPLETE_VAR).source()
