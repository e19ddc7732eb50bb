"""The workers' commands: ``_ worker start|kill|list``, ``_ kill``, ``reap``, ``cost``.

Also ``looop workers`` (``_ worker list`` under a name a person types), the
hidden ``_ supervise`` that ``_ worker start`` runs (and ``_ ended``, which
a worker's unit runs when it has ended), and a worker's own
``_ claim``, ``_ unclaim`` and ``_ cost``. ``cli.agent`` lists the ``_``
ones lazily and ``cli`` the top-level ones, so a worker taking a lease loads
neither the agent's state nor the service manager. Behaviour lives in
``looop.workers`` (``start``, ``fleet``, ``supervise``, ``reap``) and
``looop.data`` (``claims``, ``cost``); this module parses and prints. A
worker's transcript is shown by ``looop logs ID`` (``cli.service``).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

import click

from looop import say
from looop.cli import (
    CONTEXT,
    JOURNAL,
    Group,
    body,
    complete,
    echo_json,
    load_config,
    seconds_option,
)
from looop.errors import UsageError
from looop.paths import SESSION_ENV, resolve
from looop.say import escaped

if TYPE_CHECKING:
    pass


@click.command("reap")
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@seconds_option("--ttl", help="Override session_ttl (seconds).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def reap_command(dry_run: bool, ttl: float | None, as_json: bool) -> int:
    """Remove dead sessions, stale claims and old runs.

    A dead session older than session_ttl goes with its asks and answers;
    temp files whose writer is gone go too. Exit 1 when something due could
    not be removed, with one line on stderr per file saying why.
    """
    from looop.workers import reap

    paths = resolve()
    return reap.print_run(paths, load_config(paths).session_ttl, ttl, dry_run, as_json)


@click.group("worker", cls=Group, context_settings=CONTEXT)
def worker_group() -> None:
    """Start, kill and list workers (agent sessions looop supervises)."""


@worker_group.command("start")
@click.argument("wid", metavar="ID")
@click.argument("prompt", nargs=-1)
@seconds_option("--timeout", help="End the worker after S seconds (default: worker.timeout).")
@click.option(
    "--verify",
    "checks",
    metavar="CMD",
    multiple=True,
    help="A post-condition: run as `_ run` runs it once the worker ends well; repeatable.",
)
@click.option(
    "--runner",
    metavar="NAME",
    shell_complete=complete.runner_names,
    help="Run [runners.NAME]'s command (default: worker.runner, else worker.command).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
@JOURNAL
def start_command(
    wid: str,
    prompt: tuple[str, ...],
    timeout: float | None,
    checks: tuple[str, ...],
    runner: str | None,
    as_json: bool,
    reason: str | None,
) -> None:
    """Start worker ID on PROMPT (or stdin with -).

    Returns at once and prints its id. The task may be up to
    worker.max_prompt_bytes; a command with neither {prompt} nor
    {prompt_file}, or whose {prompt} would be too long for one argument
    (128 KiB), gets the prompt on its stdin.

    The worker runs the runner's command (--runner, else worker.runner, else
    [worker] command), supervised by a transient systemd user unit where a
    user manager answers, else by a detached supervisor. Where the runner
    prints its spend (Claude Code's JSON result), it goes to cost.jsonl.

    Each --verify CMD runs, once the worker exits 0 or ends itself with
    `_ kill`, through `_ run`'s guard rail and runner ([run] timeout) in the
    data dir; status.json keeps each result, and a failed one shows as
    "verify failed" in every listing. One the guard rail refuses is refused
    here (exit 1, nothing started).
    """
    from looop.workers import start

    paths = resolve()
    cfg = load_config(paths)
    task = body(prompt, "prompt")
    started = start.start(paths, cfg, wid, task, timeout, reason, checks, runner=runner)
    echo_json(started.as_dict()) if as_json else click.echo(started.id)


@worker_group.command("kill")
@click.argument("wid", metavar="ID", shell_complete=complete.worker_ids)
@JOURNAL
def kill_command(wid: str, reason: str | None) -> None:
    """End worker ID and its whole process tree.

    Returns once its status.json says killed.
    """
    from looop.workers import fleet

    click.echo(fleet.kill(resolve(), wid, reason))


@worker_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON list.")
def list_command(as_json: bool) -> None:
    """List workers, their state and a live one's health.

    Under a header row: ID, STATE (its exit code and what its --verify
    found), STARTED, and DETAIL: health (busy, waiting, quiet, stuck) with
    idle time and the pending ask's age, unit, pending ask, and messages
    told and not yet delivered.
    """
    from looop.workers import fleet

    found = fleet.listing(resolve())
    if as_json:
        echo_json(found)
        return
    if not found:
        click.echo("no workers")
        return
    click.echo(say.table(("ID", "STATE", "STARTED", "DETAIL"), [_row(w) for w in found]))


# How a listing paints a worker's state and health: the ones to act on stand out.
_STATE_ROLES = {"starting": "good", "running": "good", "killed": "bad", "dead": "bad"}
_HEALTH_ROLES = {"stuck": "bad", "waiting": "warn"}


def _row(w: dict[str, Any]) -> tuple[say.Cell, ...]:
    """One worker's row in ``workers``: id, state (exit code, verify), started, the rest."""
    from looop.data import health

    started = (
        "-"
        if w["started"] is None
        else time.strftime("%Y-%m-%d %H:%M", time.localtime(w["started"]))
    )
    state, code = w["state"], "" if w["exit_code"] is None else f" exit {w['exit_code']}"
    role = _STATE_ROLES.get(state) or ("bad" if w["exit_code"] not in (None, 0) else None)
    if w["verify"] in ("failed", "passed"):
        code += f", verify {w['verify']}"
        role = "bad" if w["verify"] == "failed" else role
    extras = [
        x
        for x in (
            w["health"] and health.text(w),
            w["unit"],
            w["pending_ask"] and f"asks {w['pending_ask']}",
            w["undelivered"] and f"{w['undelivered']} undelivered",
        )
        if x
    ]
    detail_role = _HEALTH_ROLES.get(str(w["health"]))
    return (w["id"], (state + code, role), started, (", ".join(extras), detail_role))


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
    """End worker ID as done (a worker's last command)."""
    from looop.workers import fleet

    click.echo(fleet.done(resolve(), wid))


@click.command("supervise", hidden=True, context_settings=CONTEXT)
@click.argument("wid", metavar="ID")
def supervise_command(wid: str) -> int:
    """Run worker ID's command and record how it ends (started by _ worker start)."""
    from looop.data import ids
    from looop.workers import supervise

    return supervise.supervise(resolve(), ids.check("worker", wid))


@click.command("ended", hidden=True, context_settings=CONTEXT)
@click.argument("wid", metavar="ID")
def ended_command(wid: str) -> int:
    """Record how worker ID's unit ended (its unit's ExecStopPost=)."""
    from looop.data import ids
    from looop.workers import unit

    return unit.ended(resolve(), ids.check("worker", wid))


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
    """Take the lease claims/NAME.json.

    Exit 1 if another live session holds it.

    A claim whose session is dead or missing (no sessions/ID at all) is
    taken over at once, and a claim file naming no session once it is a few
    seconds old; of two takers exactly one wins. Claiming your own claim
    again stamps it afresh.
    """
    from looop.data import claims

    owner = _owner(session)
    outcome = claims.take(resolve(), name, owner)
    said = "already yours" if outcome == "yours" else outcome
    click.echo(escaped(f"claim {name}: {said}"))


@click.command("unclaim", context_settings=CONTEXT)
@click.argument("name")
@session_option
def unclaim_command(name: str, session: str | None) -> None:
    """Release your lease claims/NAME.json.

    None held is not an error.
    """
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
    """Record spend: append {ts, kind, id, runner, usd} to cost.jsonl.

    A worker session's spend has one source: when its runner already
    reported it (the supervisor read it from the output), nothing is
    written and a note says so (exit 0).
    """
    from looop.data import cost

    if cost.record(resolve(), kind, ident, runner, usd) is None:
        said = f"note: {kind} {ident}'s spend is counted from its runner's output"
        click.echo(escaped(said), err=True)


@click.command("cost", context_settings=CONTEXT)
@click.option("--today", is_flag=True, help="Only today's spend (local date).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def cost_command(today: bool, as_json: bool) -> None:
    """Spend recorded with `_ cost`, summed by day, kind and runner."""
    from looop.data import cost

    report = cost.summary(resolve(), today=today)
    echo_json(report) if as_json else click.echo(cost.formatted(report))
