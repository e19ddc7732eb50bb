"""``looop _ run``: parse and hand over to ``looop.agent.run``; its exit status is the command's.

Options are options, the command is the command: looop's own options come
first, and the command is everything from its first word (or from ``--``)
on, whatever dashes it holds (``_ run ls -la``, ``_ run -- grep --count x``).
A dash-word before the command that is not one of ``_ run``'s options
(``--timout 5``) is a usage error (exit 2), never the first words of the
command: an agent's typo must not run as ``sh -c "--timout 5 ..."``, and an
option after the command's first word belongs to the command. Rejected:
click's ``ignore_unknown_options``, which passed a misspelt option on as
part of the command.
"""

from __future__ import annotations

import click

from looop.cli import CONTEXT, load_config, seconds_option
from looop.paths import resolve


class RunCommand(click.Command):
    """A command whose unknown option says where the command starts."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            hint = "_ run's options come first; the command goes after --"
            raise click.UsageError(f"{exc.format_message()} ({hint})", ctx) from None


@click.command(
    "run", cls=RunCommand, context_settings={**CONTEXT, "allow_interspersed_args": False}
)
@click.option(
    "--reason",
    "--journal",
    "reason",
    metavar="TEXT",
    help="Why, for the journal and the record.",
)
@seconds_option("--timeout", help="End the command after S seconds (default [run] timeout).")
@click.option("--allow-dangerous", is_flag=True, help="Run a command the guard rail refuses.")
@click.argument("words", nargs=-1, required=True, metavar="-- COMMAND...")
def run_command(
    reason: str | None, timeout: float | None, allow_dangerous: bool, words: tuple[str, ...]
) -> int:
    """Run ONE command (sh -c) in the data dir.

    Recorded in runs/; exits with its status.
    """
    from looop.agent import run

    paths = resolve()
    limit = load_config(paths).run_timeout if timeout is None else timeout
    return run.run(paths, words, reason, limit, allow_dangerous)
