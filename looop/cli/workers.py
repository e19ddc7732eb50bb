"""The workers' commands: ``reap``, and ``_ claim``, ``_ unclaim``.

``_ claim`` and ``_ unclaim`` are a worker's; ``cli.agent`` lists them lazily
in the ``_`` group, and ``cli`` lists ``reap`` at the top level, so a worker
taking a lease loads neither the agent's state nor the service manager. All
behaviour is ``looop.data.claims``' and ``looop.workers.reap``'s; this module
parses and prints.
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
    """Remove dead sessions older than session_ttl and claims of dead sessions."""
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
