"""The workers' commands: ``_ worker start|kill|list``, ``_ kill``, ``logs``, ``reap``.

Also ``looop workers`` (``_ worker list`` under a name a person types) and
the hidden ``_ supervise`` that ``_ worker start`` runs. Behaviour lives in
``looop.workers`` (``start``, ``fleet``, ``supervise``, ``transcript``,
``reap``); this module parses and prints.
"""

from __future__ import annotations

import os
import sys
import time

import click

from looop.cli import CONTEXT, body, complete, echo_json, load_config, seconds_option
from looop.errors import LooopError
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


@click.group("worker", cls=click.Group, context_settings=CONTEXT)
def worker_group() -> None:
    """Start, kill and list workers (agent sessions looop supervises)."""


@worker_group.command("start")
@click.argument("wid", metavar="ID")
@click.argument("prompt", nargs=-1)
@seconds_option("--timeout", help="End the worker after S seconds (default: worker.timeout).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def start_command(wid: str, prompt: tuple[str, ...], timeout: float | None, as_json: bool) -> None:
    """Start worker ID on PROMPT (or stdin with -) and return at once; prints its id.

    The worker runs [worker] command, supervised by a transient systemd user
    unit where a user manager answers, else by a detached supervisor.
    """
    from looop.workers import start

    paths = resolve()
    cfg = load_config(paths)
    started = start.start(paths, cfg, wid, body(prompt, "prompt"), timeout)
    echo_json(started.as_dict()) if as_json else click.echo(started.id)


@worker_group.command("kill")
@click.argument("wid", metavar="ID", shell_complete=complete.worker_ids)
def kill_command(wid: str) -> None:
    """End worker ID and its whole process tree; returns once its status says so."""
    from looop.workers import fleet

    click.echo(fleet.kill(resolve(), wid))


@worker_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON list.")
def list_command(as_json: bool) -> None:
    """List workers: id, state, alive, started, exit code, unit, pending ask."""
    from looop.workers import fleet

    found = fleet.listing(resolve())
    if as_json:
        echo_json(found)
        return
    if not found:
        click.echo("no workers")
        return
    for w in found:
        started = (
            "-"
            if w["started"] is None
            else time.strftime("%Y-%m-%d %H:%M", time.localtime(w["started"]))
        )
        code = "" if w["exit_code"] is None else f" exit {w['exit_code']}"
        extras = [x for x in (w["unit"], w["pending_ask"] and f"asks {w['pending_ask']}") if x]
        tail = f"  ({', '.join(extras)})" if extras else ""
        click.echo(f"{w['id']:<20} {w['state'] + code:<16} since {started}{tail}")


workers_command = click.Command(
    "workers",
    callback=list_command.callback,
    params=list_command.params,
    help="List workers (the same as looop _ worker list).",
    context_settings=CONTEXT,
)


@click.command("kill", context_settings=CONTEXT)
@click.argument("wid", metavar="ID", shell_complete=complete.worker_ids)
def done_command(wid: str) -> None:
    """End worker ID as done: what a worker runs, last, when its task is done."""
    from looop.workers import fleet

    click.echo(fleet.done(resolve(), wid))


@click.command("supervise", hidden=True, context_settings=CONTEXT)
@click.argument("wid", metavar="ID")
def supervise_command(wid: str) -> int:
    """Run worker ID's command and record how it ends (started by _ worker start)."""
    from looop.data import ids
    from looop.workers import supervise

    return supervise.supervise(resolve(), ids.check("worker", wid))


@click.command("logs", context_settings=CONTEXT)
@click.argument("wid", metavar="ID", shell_complete=complete.worker_ids)
@click.option("-f", "--follow", is_flag=True, help="Keep printing until the worker ends.")
@click.option(
    "-n",
    "lines",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="Lines of the end to print first.",
)
def logs_command(wid: str, follow: bool, lines: int) -> None:
    """Print worker ID's transcript (its output.log)."""
    from looop.data import ids, sessions
    from looop.workers import transcript

    paths = resolve()
    session = paths.sessions / ids.check("worker", wid)
    log = session / transcript.NAME
    if not os.path.lexists(session):
        raise LooopError(f"no worker {wid}")
    if not os.path.lexists(log):
        raise LooopError(f"worker {wid} has no transcript yet ({log})")
    out = sys.stdout.buffer
    if not follow:
        out.write(transcript.tail(log, lines))
        return

    def ended() -> bool:
        return sessions.inspect(session).liveness != sessions.ALIVE

    for chunk in transcript.follow(log, lines, ended):
        out.write(chunk)
        out.flush()
