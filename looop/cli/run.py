"""``looop _ run``: parse and hand over to ``looop.agent.run``; its exit status is the command's."""

from __future__ import annotations

import click

from looop.cli import CONTEXT, load_config, seconds_option
from looop.paths import resolve


@click.command("run", context_settings={**CONTEXT, "ignore_unknown_options": True})
@click.option("--reason", metavar="TEXT", help="Why, for the journal and the record.")
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
