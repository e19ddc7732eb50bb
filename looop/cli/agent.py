"""The root agent's plumbing: the ``_`` group with ``state`` and ``wait``.

Both print the agent's format (``state.formatted``); a plain ``looop _ state
[--json]`` is answered by ``looop.__main__`` without click, with the same
function, as ``status`` is. ``wait`` without ``--timeout`` takes the config's
``[wait] timeout`` (read only then), and ``--for`` names kinds from
``agent.wait.CATEGORIES`` (an unknown one is a usage error, exit 2).

``_ pulse`` (an alias of ``looop pulse``) is listed here but lives with the
pulse's commands in ``cli.pulse``, loaded only when called; ``ask``,
``answer``, ``asks``, ``tell`` and ``told`` likewise in ``cli.mailbox``,
and the verbs (``goal``, ``sensor``, ``playbook``, ``schedule``,
``notify``) in ``cli.verbs``, and a worker's ``claim``, ``unclaim`` and
``cost`` in ``cli.workers``.
"""

from __future__ import annotations

from typing import Any

import click

from looop.cli import CONTEXT, LazyGroup, seconds_option
from looop.paths import resolve


@click.group(
    "_",
    cls=LazyGroup,
    context_settings=CONTEXT,
    lazy={
        "pulse": "looop.cli.pulse:agent_pulse_command",
        "ask": "looop.cli.mailbox:ask_command",
        "answer": "looop.cli.mailbox:answer_command",
        "asks": "looop.cli.mailbox:asks_command",
        "tell": "looop.cli.mailbox:tell_command",
        "told": "looop.cli.mailbox:told_command",
        "goal": "looop.cli.verbs:goal_group",
        "sensor": "looop.cli.verbs:sensor_group",
        "playbook": "looop.cli.verbs:playbook_group",
        "schedule": "looop.cli.verbs:schedule_group",
        "notify": "looop.cli.verbs:notify_command",
        "run": "looop.cli.run:run_command",
        "worker": "looop.cli.workers:worker_group",
        "kill": "looop.cli.workers:done_command",
        "supervise": "looop.cli.workers:supervise_command",
        "ended": "looop.cli.workers:ended_command",
        "claim": "looop.cli.workers:claim_command",
        "unclaim": "looop.cli.workers:unclaim_command",
        "cost": "looop.cli.workers:agent_cost_command",
    },
)
def agent_group() -> None:
    """The root agent's plumbing: state, wait, mailbox, verbs."""


@agent_group.command("state")
@click.option("--json", "as_json", is_flag=True, help="One JSON object (the agent's format).")
def state_command(as_json: bool) -> None:
    """Print the world as the root agent sees it (a pure read)."""
    from looop.agent import state

    click.echo(state.formatted(state.collect(resolve()), as_json))


def _wait_kinds(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[Any]:
    """``--for``'s completer, loaded only when a shell completes."""
    from looop.cli import complete

    return complete.wait_kinds(ctx, param, incomplete)


@agent_group.command("wait")
@click.option("--json", "as_json", is_flag=True, help="One JSON object (the agent's format).")
@seconds_option(
    "--timeout", help="Give up after S seconds (exit 124); default: wait.timeout (0: never)."
)
@click.option(
    "--since",
    metavar="CURSOR",
    help="Changes after the output that printed CURSOR (its `cursor`), not after now.",
)
@click.option(
    "--for",
    "wake_for",
    metavar="CATS",
    multiple=True,
    shell_complete=_wait_kinds,
    help="Wake only for these kinds of change (comma-separated, repeatable): "
    "asks, workers, goals, playbook, snapshots, schedules.",
)
def wait_command(
    as_json: bool, timeout: float | None, since: str | None, wake_for: tuple[str, ...]
) -> int:
    """Block until there is something to act on, then print the state.

    Wakes on a pending ask, a change of the world hash, a worker starting or
    ending, a schedule coming due, or the pulse not running; `changed` says
    which of asks, goals, playbook, snapshots, workers, schedules, pulse-down
    moved. With --since, returns at once for anything that changed after the
    output carrying CURSOR, and an ask pending then does not wake it again.
    With --for, other changes do not wake it, but `changed` and the cursor
    still cover them. Exits 3 when the pulse is down, 124 when nothing came
    within the timeout (wait again with the same cursor).
    """
    from looop.agent import wait

    return wait.command(resolve(), as_json, timeout, since, wake_for)
