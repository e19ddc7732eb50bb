"""The workers' commands: ``reap`` today; starting and killing workers come here next."""

from __future__ import annotations

import click

from looop.cli import echo_json, load_config, seconds_option
from looop.paths import resolve


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
