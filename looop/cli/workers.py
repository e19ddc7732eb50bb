"""The workers' commands: ``reap``, ``cost``, and ``_ claim``, ``_ unclaim``, ``_ cost``.

``_ claim``, ``_ unclaim`` and ``_ cost`` are a worker's; ``cli.agent`` lists
them lazily in the ``_`` group, and ``cli`` lists ``reap`` and ``cost`` at
the top level, so a worker taking a lease loads neither the agent's state
nor the service manager. All behaviour is ``looop.data.claims``',
``looop.data.cost``'s and ``looop.workers.reap``'s; this module parses and
prints.
"""

from __future__ import annotations

import os

import click

from looop.cli import CONTEXT, echo_json, load_config, seconds_option
from looop.errors import UsageError
from looop.paths import resolve

SESSION_ENV = "LOOOP_SESSION_ID"


@click.command("reap")
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@seconds_option("--ttl", help="Override session_ttl (seconds).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def reap_command(dry_run: bool, ttl: float | None, as_json: bool) -> int:
    """Remove dead sessions older than session_ttl (and their asks), stale claims and runs."""
    from looop.workers import reap

    paths = resolve()
    cfg = load_config(paths)
    result = reap.reap(paths, ttl=cfg.session_ttl if ttl is None else ttl, dry_run=dry_run)
    echo_json(result.as_dict()) if as_json else click.echo(result.summary())
    return result.exit_code


def _owner(session: str | None) -> str:
    owner = session if session is not None else os.environ.get(SESSION_ENV)
    if not owner:
        raise UsageError(f"give --session ID or set ${SESSION_ENV}")
    return owner


session_option = click.option(
    "--session", metavar="ID", help=f"The owner (default ${SESSION_ENV})."
)


@click.command("claim", context_settings=CONTEXT)
@click.argument("name")
@session_option
def claim_command(name: str, session: str | None) -> None:
    """Take the lease claims/NAME.json; exit 1 if another live session holds it.

    A claim whose session is dead (or missing, past a minute's grace) is
    taken over; of two takers exactly one wins.
    """
    from looop.data import claims

    owner = _owner(session)
    outcome = claims.take(resolve(), name, owner)
    click.echo(f"claim {name}: already yours" if outcome == "yours" else f"claim {name}: {outcome}")


@click.command("unclaim", context_settings=CONTEXT)
@click.argument("name")
@session_option
def unclaim_command(name: str, session: str | None) -> None:
    """Release your own lease claims/NAME.json (none held is not an error)."""
    from looop.data import claims

    owner = _owner(session)
    released = claims.release(resolve(), name, owner)
    click.echo(f"claim {name}: released" if released else f"claim {name}: none held")


@click.command("cost", context_settings=CONTEXT)
@click.argument("kind")
@click.argument("ident", metavar="ID")
@click.argument("runner")
@click.argument("usd")
def agent_cost_command(kind: str, ident: str, runner: str, usd: str) -> None:
    """Record spend: append {ts, kind, id, runner, usd} to cost.jsonl."""
    from looop.data import cost

    cost.record(resolve(), kind, ident, runner, usd)


@click.command("cost", context_settings=CONTEXT)
@click.option("--today", is_flag=True, help="Only today's spend (local date).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def cost_command(today: bool, as_json: bool) -> None:
    """Spend recorded with `_ cost`, summed by day, kind and runner."""
    from looop.data import cost

    report = cost.summary(resolve(), today=today)
    echo_json(report) if as_json else click.echo(cost.formatted(report))
