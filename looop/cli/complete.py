"""Shell completion: ``looop completion bash|zsh|fish`` and the completers of ids and keys.

Click's own completion runs underneath: the script a shell sources calls
``looop`` again with ``_LOOOP_COMPLETE`` set, and click walks the command
tree (the lazy groups list their commands, so every command completes) and
asks a parameter's ``shell_complete`` for its values. The completers of ids
take them from ``data.candidates`` (which says which ids a TAB may offer and
why), the same finders ``looop.__main__`` answers the common TABs with
before click is loaded (``looop.__main__.COMPLETED``: which argument completes which kind;
tests/test_fast_path.py holds the two to the same output). The completers
never raise: a broken or missing data dir completes nothing rather than
printing a traceback into the user's prompt. ``command_names`` completes the words of
``looop help COMMAND...`` by walking the same tree, ``wait_kinds`` the comma-separated
kinds of ``_ wait --for``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import click
from click.shell_completion import CompletionItem

from looop.data import candidates

SHELLS = ("bash", "zsh", "fish")
COMPLETE_VAR = "_LOOOP_COMPLETE"


def _items(find: Callable[[], Iterable[str]], incomplete: str) -> list[CompletionItem]:
    try:
        return [CompletionItem(v) for v in sorted(set(find())) if v.startswith(incomplete)]
    except Exception:  # a completion must never break the prompt
        return []


def _ids(find: Callable[[], Iterable[str]], incomplete: str) -> list[CompletionItem]:
    """The ids a verb would take (``data.candidates.matching``): nothing else is offered."""
    return [CompletionItem(v) for v in candidates.matching(find, incomplete)]


def goal_ids(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    return _ids(candidates.goal_ids, incomplete)


def sensor_names(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    return _ids(candidates.sensor_names, incomplete)


def schedule_names(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    return _ids(candidates.schedule_names, incomplete)


def ask_ids(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    return _ids(candidates.ask_ids, incomplete)


def worker_ids(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    return _ids(candidates.worker_ids, incomplete)


def config_keys(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    from looop import config

    return _items(lambda: config.KNOBS, incomplete)


def runner_names(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """The config's runners (``looop.runners``); a broken config completes none."""
    from looop import config
    from looop.paths import resolve

    return _items(lambda: config.load(resolve().config_file).runners, incomplete)


def wait_kinds(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """``_ wait --for asks,<TAB>``: the kinds of change, after those already typed."""
    from looop.agent.wait import CATEGORIES

    done, _, last = incomplete.rpartition(",")
    typed = set(done.split(","))
    head = f"{done}," if done else ""
    return _items(lambda: (head + k for k in CATEGORIES if k not in typed), head + last)


def command_names(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    """``looop help WORDS <TAB>``: the visible subcommands of the command WORDS name.

    Only the names that match ``incomplete`` are looked up (to see whether
    they are hidden), so a lazy group imports no more than a command line
    completing the same word would.
    """

    def find() -> list[str]:
        command: click.Command | None = ctx.find_root().command
        sub = click.Context(command, info_name="looop") if command else ctx
        for word in ctx.params.get(param.name or "") or ():
            if not isinstance(command, click.Group):
                return []
            command = command.get_command(sub, word)
            if command is None:
                return []
            sub = click.Context(command, info_name=word, parent=sub)
        if not isinstance(command, click.Group):
            return []
        group = command
        names = [name for name in group.list_commands(sub) if name.startswith(incomplete)]
        return [name for name in names if not getattr(group.get_command(sub, name), "hidden", 1)]

    return _items(find, incomplete)


def script(root: click.Command, shell: str) -> str:
    """The completion script for ``shell``, to be sourced (``eval "$(looop completion bash)"``)."""
    from click.shell_completion import get_completion_class

    found = get_completion_class(shell)
    if found is None:
        raise click.BadParameter(f"choose one of {', '.join(SHELLS)}")
    return found(root, {}, "looop", COMPLETE_VAR).source()
