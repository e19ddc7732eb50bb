"""The ``looop`` command line: the root group, its global options, and lazy loading of the rest.

The CLI only parses and prints: every command calls into the module that owns
its behaviour, so tests reach the same code without a terminal. Failures are
exceptions that carry their exit code (``looop.errors``); the one handler in
``looop.__main__`` prints them. ``run`` keeps click's own reports of a bad
command line (exit 2) and hands ^C to that handler instead of click's
"Aborted!" (exit 1).

The commands live in one module per audience: ``cli.pulse`` (pulse, ``_
pulse``, sense, status), ``cli.service`` (up, down, restart, reload, logs,
doctor, install, uninstall), ``cli.agent`` (the ``_`` group: state, wait),
``cli.mailbox`` (``_ ask``, ``_ answer``, ``_ asks``), ``cli.verbs`` (``_
goal``, ``_ sensor``, ``_ playbook``, ``_ schedule``, ``_ notify``), ``cli.run`` (``_
run``), ``cli.workers`` (``_ worker start|kill|list``, workers, reap, cost,
and a worker's ``_ claim``, ``_ unclaim``, ``_ cost``, ``_ kill``) and
``cli.config`` (the config group), ``cli.screen`` (``watch``, a person's
screen); ``cli.complete`` holds the shell
completers they attach to their arguments, ``cli.manpage`` renders the man
page from them, and ``cli.__main__`` (``python -m looop.cli``) runs a
command line through click alone, without ``looop.__main__``'s fast path.
This module holds what every
one of them shares: the root group (a bare ``looop`` prints ``OVERVIEW``;
its ``--help`` is the manual, ``RootGroup``), ``help`` (the manual is
``agent.manual``'s; ``--json`` its tables, checked against ``registered``,
the commands click knows), ``version`` and
``completion``, and the small helpers below (``body``, the verbs' one rule
for a body given as words or on stdin). ``LazyGroup`` (click's "lazily
loading subcommands" pattern) imports a command's module only when that
command is looked up, so ``looop status --help`` or ``looop reap`` loads
its own audience's module and not the service manager's or the agent's.

Listing commands (``looop _ --help``, ``looop help --json``, the man page)
looks every one of them up and so imports every audience's module: the
short help shown there is the first sentence of the command's own
docstring, kept in one place and short enough for an 80-column terminal
(tests/test_help.py). Rejected: a copy of each short help in the lazy
table, which would let ``--help`` list without importing but would drift
from the docstrings; listing is not a hot path (``looop status`` is, and
``looop.__main__`` answers it, and ``looop --help``, without click).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import click

from looop import __version__, say
from looop.errors import UsageError
from looop.log import FORMATS, log
from looop.paths import Paths
from looop.style import CHOICES, choose

# The modules of the CLI, and what this module gives them to share.
__all__ = [
    "CONTEXT",
    "JOURNAL",
    "Group",
    "LazyGroup",
    "RootGroup",
    "agent",
    "body",
    "cli",
    "complete",
    "config",
    "dispatch",
    "echo_json",
    "load_config",
    "mailbox",
    "manpage",
    "pulse",
    "registered",
    "run",
    "screen",
    "seconds_option",
    "service",
    "verbs",
    "workers",
]

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

# Every verb's reason for the journal (SPEC §11): one option, the same everywhere.
JOURNAL = click.option("--journal", "reason", metavar="TEXT", help="The reason, for the journal.")


class Group(click.Group):
    """A group that answers a misspelt subcommand with the closest one (exit 2, as click's).

    ``looop stauts`` says ``No such command 'stauts'. Did you mean 'status'?``;
    the candidates are the visible subcommands (``difflib``'s close matches),
    the lazy ones too, which click's own suggestion (from 8.2) does not see.
    """

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            name = args[0] if args else ""
            if "did you mean" in exc.format_message().lower():  # click's own (8.2 on)
                raise
            if not name or name.startswith("-") or self.get_command(ctx, name) is not None:
                raise
            import difflib

            for close in difflib.get_close_matches(name, self.list_commands(ctx), n=3):
                found = self.get_command(ctx, close)
                if found is not None and not found.hidden:
                    exc.message += f" Did you mean {close!r}?"
                    break
            raise


class LazyGroup(Group):
    """A group whose subcommands named in ``lazy`` (``name: "module:attribute"``) load on use."""

    def __init__(self, *args: Any, lazy: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.lazy])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self.lazy.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, attribute = target.split(":")
        command = getattr(importlib.import_module(module), attribute)
        if not isinstance(command, click.Command):
            raise TypeError(f"{target} is not a click command")
        return command


class RootGroup(LazyGroup):
    """The root group, whose ``--help`` (``-h``) is the manual, as ``looop help`` prints it.

    An agent handed a tool reaches for ``looop --help`` first, and the list
    of commands click would print there says nothing of the loop or the
    verbs; ``looop COMMAND --help`` stays that command's own help.
    """

    def get_help_option(self, ctx: click.Context) -> click.Option | None:
        option = super().get_help_option(ctx)
        if option is not None:
            option.callback = _print_manual
            option.help = "Print the manual (the same as `looop help`) and exit."
        return option


def _print_manual(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value and not ctx.resilient_parsing:
        from looop.agent import manual

        click.echo(manual.text(), nl=False)
        ctx.exit()


def _choose_colour(ctx: click.Context, when: str) -> None:
    """``--color``: ``style``'s choice, and click's (whose ``echo`` strips colour from a pipe)."""
    choose(when)
    ctx.color = {"always": True, "never": False}.get(when)


def dispatch(args: list[str]) -> int:
    """Parse and run one command line; return the command's exit code."""
    try:
        code = cli.main(args, prog_name="looop", standalone_mode=False)
    except click.ClickException as exc:  # a bad command line: click says what (exit 2)
        exc.show()
        return exc.exit_code
    except click.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):
            raise KeyboardInterrupt from None  # the top-level handler's exit 130
        click.echo("Aborted!", err=True)
        return 1
    return code if isinstance(code, int) else 0


def load_config(paths: Paths) -> Any:
    from looop import config

    return config.load_logged(paths.config_file)


def echo_json(value: Any) -> None:
    say.print_json(value)


def body(words: tuple[str, ...], what: str) -> str:
    """The one body rule of the verbs and ``_ answer`` (SPEC §11).

    The words joined by spaces, or stdin with ``-`` (or no words and stdin
    not a terminal). An empty body is refused, and so is a lone word shaped
    like a flag (``-x``, ``--help`` after ``--``: a dash, then no space): the
    reference once wrote ``--help`` into a PLAYBOOK. Both are usage errors
    (exit 2), nothing written. ``-5 degrees outside`` is a body. Stdin is
    read as ``looop.__main__`` reads all input (UTF-8, U+FFFD for a byte that
    is not), and a NUL is U+FFFD too: a body may become an argument (a
    worker's ``{prompt}``, a notifier's ``{message}``), and no argument holds one.
    """
    import sys

    if words == ("-",) or (not words and not sys.stdin.isatty()):
        text = sys.stdin.read().replace("\0", "\ufffd")
    elif len(words) == 1 and words[0].startswith("-") and len(words[0].split()) == 1:
        raise UsageError(f"refusing {words[0]!r} as the {what}: it looks like an option")
    else:
        text = " ".join(words)
    if not text.strip():
        raise UsageError(f"empty {what}: give it as arguments, or on stdin with -")
    return text


def _finite_seconds(ctx: click.Context, param: click.Parameter, value: float | None) -> Any:
    """Option callback: FloatRange lets nan through (no comparison holds) and takes inf."""
    if value is None or value < float("inf"):  # false for nan and for inf
        return value
    param.type.fail(f"{value} is not a finite number of seconds.", param, ctx)


def seconds_option(name: str, help: str) -> Callable[[Any], Any]:
    """A duration option (``--timeout``, ``--ttl``): a finite, non-negative number of seconds.

    ``FloatRange`` alone lets ``nan`` through (no comparison holds) and takes ``inf``.
    """
    return click.option(name, type=click.FloatRange(min=0), callback=_finite_seconds, help=help)


@click.group(
    cls=RootGroup,
    context_settings=CONTEXT,
    invoke_without_command=True,
    lazy={
        "pulse": "looop.cli.pulse:pulse_command",
        "sense": "looop.cli.pulse:sense_command",
        "status": "looop.cli.pulse:status_command",
        "up": "looop.cli.service:up_command",
        "down": "looop.cli.service:down_command",
        "install": "looop.cli.service:install_command",
        "uninstall": "looop.cli.service:uninstall_command",
        "reap": "looop.cli.workers:reap_command",
        "workers": "looop.cli.workers:workers_command",
        "logs": "looop.cli.service:logs_command",
        "restart": "looop.cli.service:restart_command",
        "reload": "looop.cli.service:reload_command",
        "doctor": "looop.cli.service:doctor_command",
        "cost": "looop.cli.workers:cost_command",
        "_": "looop.cli.agent:agent_group",
        "config": "looop.cli.config:config_group",
        "init": "looop.cli.config:init_command",
        "watch": "looop.cli.screen:watch_command",
    },
)
@click.version_option(__version__, "-V", "--version", message=f"looop {__version__}")
@click.option(
    "--log-format",
    type=click.Choice(FORMATS),
    default="auto",
    show_default=True,
    help="journal: <N> priority prefixes; human: terminal lines; json: NDJSON.",
)
@click.option(
    "--color",
    type=click.Choice(CHOICES),
    default="auto",
    show_default=True,
    expose_value=False,
    is_eager=True,
    callback=lambda ctx, param, value: _choose_colour(ctx, value),
    help="Colour a person's output: auto (a terminal, unless NO_COLOR is set), always, never.",
)
@click.pass_context
def cli(ctx: click.Context, log_format: str) -> None:
    """A tiny control loop for one person's work.

    The pulse senses the world on a beat (runs sensors/*.sh, publishes their
    readings as snapshots, keeps a world hash fresh); a root agent blocked on
    `looop _ wait` wakes the moment something changed.
    """
    log.configure(log_format)
    if ctx.invoked_subcommand is None:
        click.echo(OVERVIEW.format(version=__version__))


# What a bare `looop` prints (exit 0): where to start, not every command.
OVERVIEW = """\
looop {version}: a tiny control loop for one person's work.

  looop up          start the pulse (looop install: as a user service)
  looop status      is it running, and how are its beats?
  looop logs        the pulse's log (-f to follow)
  looop doctor      what is wrong with this setup, and how to fix it
  looop sense -v    beat once now and show each sensor's result
  looop help        the manual a root agent works from (so is looop --help)
  looop CMD --help  one command's options"""


@cli.command("version")
def version_command() -> None:
    """Print looop's version."""
    click.echo(f"looop {__version__}")


@cli.command("completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion_command(shell: str) -> None:
    """Print a shell completion script.

    Load it with: eval "$(looop completion bash)".
    """
    from looop.cli import complete

    click.echo(complete.script(cli, shell))


def _command_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """``looop help <TAB>``'s completer, loaded only when a shell completes."""
    from looop.cli import complete

    return complete.command_names(ctx, param, incomplete)


@cli.command("help")
@click.option("--json", "as_json", is_flag=True, help="The manual's tables as one JSON object.")
@click.argument("command", nargs=-1, shell_complete=_command_names)
@click.pass_context
def help_command(ctx: click.Context, as_json: bool, command: tuple[str, ...]) -> None:
    """The manual (the root agent's contract), or COMMAND's help."""
    if as_json:
        if command:
            raise UsageError("help --json prints the whole manual's tables: give no COMMAND")
        from looop.agent import helpjson

        echo_json(helpjson.structure(registered(cli)))
        return
    if not command:
        from looop.agent import manual

        click.echo(manual.text(), nl=False)
        return
    group: click.Command = cli
    info_ctx = click.Context(cli, info_name="looop")
    for name in command:
        found = group.get_command(info_ctx, name) if isinstance(group, click.Group) else None
        if found is None:
            raise UsageError(f"no such command: {' '.join(command)}")
        group = found
        info_ctx = click.Context(group, info_name=name, parent=info_ctx)
    click.echo(group.get_help(info_ctx))


def registered(root: click.Group) -> list[str]:
    """Every visible command under ``root`` that runs, as typed after ``looop`` (``_ goal write``).

    The groups are expanded, never listed: ``looop config`` is its subcommands.
    """
    from looop.cli import manpage

    top = manpage.context(root, "looop", None)
    return [
        ctx.command_path.split(" ", 1)[1]
        for command, ctx in manpage.walk(root, top)
        if not isinstance(command, click.Group)
    ]
