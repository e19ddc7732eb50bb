"""The root agent's verbs (SPEC §11): ``_ goal``, ``_ sensor``, ``_ playbook``, ``_ schedule``,
``_ notify``.

Behaviour is ``looop.agent.verbs``'s (and ``pulse.beat``'s for ``_ sensor
test``); this module parses, applies the one body rule (``cli.body``) and
prints one line saying what was done.
"""

from __future__ import annotations

import click

from looop.cli import CONTEXT, JOURNAL, Group, body, complete, echo_json, load_config
from looop.paths import resolve


@click.group("goal", cls=Group, context_settings=CONTEXT)
def goal_group() -> None:
    """Write or archive a goal (goals/ID.md)."""


@goal_group.command("write", context_settings=CONTEXT)
@click.argument("goal_id", metavar="ID", shell_complete=complete.goal_ids)
@click.argument("words", nargs=-1, metavar="[BODY...|-]")
@JOURNAL
def goal_write(goal_id: str, words: tuple[str, ...], reason: str | None) -> None:
    """Write goals/ID.md from BODY, or from stdin with `-`."""
    from looop.agent import verbs
    from looop.data import ids

    ids.check("goal", goal_id)  # before the body: a bad id never reads stdin
    click.echo(verbs.goal_written(resolve(), goal_id, body(words, "goal"), reason))


@goal_group.command("archive", context_settings=CONTEXT)
@click.argument("goal_id", metavar="ID", shell_complete=complete.goal_ids)
@JOURNAL
def goal_archive(goal_id: str, reason: str | None) -> None:
    """Move goals/ID.md into goals/archive/.

    Never over a goal archived under the same id.
    """
    from looop.agent import verbs

    target = verbs.archive_goal(resolve(), goal_id, reason)
    click.echo(f"archived goal {goal_id} ({target})")


@click.group("sensor", cls=Group, context_settings=CONTEXT)
def sensor_group() -> None:
    """Write, remove or test a sensor (sensors/NAME.sh)."""


@sensor_group.command("write", context_settings=CONTEXT)
@click.argument("name", shell_complete=complete.sensor_names)
@click.argument("words", nargs=-1, metavar="[SCRIPT...|-]")
@JOURNAL
def sensor_write(name: str, words: tuple[str, ...], reason: str | None) -> None:
    """Write sensors/NAME.sh (executable) from SCRIPT.

    Or from stdin with `-`.
    """
    from looop.agent import verbs
    from looop.data import ids, sensors

    ids.check("sensor", name)
    written = verbs.write_sensor(resolve(), name, body(words, "script"), reason)
    declared = sensors.cadence(written)
    every = "" if declared.every is None else f", runs every {sensors.every_text(declared.every)}"
    click.echo(f"wrote sensor {name} ({written}){every}")
    if declared.warning is not None:  # written all the same: it runs every beat
        from looop.log import log

        log.warning(declared.warning)


@sensor_group.command("remove", context_settings=CONTEXT)
@click.argument("name", shell_complete=complete.sensor_names)
@JOURNAL
def sensor_remove(name: str, reason: str | None) -> None:
    """Remove sensors/NAME.sh."""
    from looop.agent import verbs

    verbs.remove_sensor(resolve(), name, reason)
    click.echo(f"removed sensor {name}")


@sensor_group.command("test", context_settings=CONTEXT)
@click.argument("name", shell_complete=complete.sensor_names)
@click.option("--json", "as_json", is_flag=True, help="The whole reading as JSON.")
def sensor_test(name: str, as_json: bool) -> int:
    """Run sensor NAME now and print its reading.

    Exactly as a beat would run it, whatever its cadence; publishes nothing.
    Then says its cadence (`# looop: every 10m`) and when the pulse would
    next run it (on stderr; `cadence` in the JSON).
    """
    import json
    import time

    from looop.agent import verbs
    from looop.pulse import beat, cadence

    paths = resolve()
    cfg = load_config(paths)
    script = verbs.sensor_script(paths, name)
    (reading,) = beat.user_readings(paths, cfg, [script])
    report = reading.as_dict()
    report["cadence"] = cadence.outlook(paths, cfg.interval, script, time.time())
    if as_json:
        echo_json(report)
    else:
        click.echo(json.dumps(report["value"], ensure_ascii=False))
        if report["stderr"]:
            click.echo(report["stderr"], err=True)
        if report["cadence"]["every"] is not None or report["cadence"]["warning"]:
            click.echo(f"cadence: {report['cadence']['said']}", err=True)  # none: nothing to say
    return 0 if reading.ok else 1


@click.group("playbook", cls=Group, context_settings=CONTEXT)
def playbook_group() -> None:
    """Write PLAYBOOK.md (earlier versions kept in playbook.d/)."""


@playbook_group.command("write", context_settings=CONTEXT)
@click.argument("words", nargs=-1, metavar="[BODY...|-]")
@JOURNAL
def playbook_write(words: tuple[str, ...], reason: str | None) -> None:
    """Write PLAYBOOK.md from BODY, or from stdin with `-`."""
    from looop.agent import verbs

    kept = verbs.write_playbook(resolve(), body(words, "playbook"), reason)
    click.echo("wrote PLAYBOOK.md" + (f" (previous kept as {kept})" if kept else ""))


@click.group("schedule", cls=Group, context_settings=CONTEXT)
def schedule_group() -> None:
    """Write, remove or list a schedule: a wake at a time."""


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    from looop import say

    try:
        return None if value is None else say.seconds(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


@schedule_group.command("write", context_settings=CONTEXT)
@click.argument("name", shell_complete=complete.schedule_names)
@click.option(
    "--in", "after", metavar="DURATION", callback=_duration, help="Due in 90s, 10m, 2h, 1d."
)
@click.option("--at", "at", metavar="TIME", help="Due at 2026-12-08T09:00 (local; +01:00, Z).")
@click.option(
    "--every", metavar="DURATION", callback=_duration, help="Due each period (1s to 10 years)."
)
@click.option("--note", metavar="TEXT", help="What to look at when it is due.")
@JOURNAL
def schedule_write(
    name: str,
    after: float | None,
    at: str | None,
    every: float | None,
    note: str | None,
    reason: str | None,
) -> None:
    """Wake the loop at a time: --in, --at, or --every (with either: the first).

    Replaces a schedule of that name. A one-shot stays due in `_ state` until
    removed; an --every one re-arms itself at each instant.
    """
    import time

    from looop.agent import verbs
    from looop.data import ids, schedules

    ids.check("schedule", name)
    now = time.time()
    when = None if at is None else schedules.instant(at, now)
    schedule = schedules.new(name, now, after, when, every, note)
    verbs.write_schedule(resolve(), schedule, reason)
    first = schedule.next(now)
    click.echo(f"wrote schedule {name} (due {_local(first)})")


def _local(when: float | None) -> str:
    import time

    return "-" if when is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))


@schedule_group.command("remove", context_settings=CONTEXT)
@click.argument("name", shell_complete=complete.schedule_names)
@JOURNAL
def schedule_remove(name: str, reason: str | None) -> None:
    """Remove schedule NAME: done with, or no longer wanted."""
    from looop.agent import verbs

    verbs.remove_schedule(resolve(), name, reason)
    click.echo(f"removed schedule {name}")


@schedule_group.command("list", context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="One JSON list.")
def schedule_list(as_json: bool) -> None:
    """Every schedule: when it was last due, when it is next, its note."""
    import time

    from looop.data import schedules
    from looop.say import duration, escaped

    now = time.time()
    found = [s.as_dict(now) for s in schedules.listing(resolve())]
    if as_json:
        echo_json(found)
        return
    for s in found:
        every = f"  every {duration(s['every'])}" if s["every"] else ""
        note = f"  {s['note']}" if s["note"] else ""
        line = f"{s['name']}  due {_local(s['due'])}  next {_local(s['next'])}{every}{note}"
        click.echo(escaped(line))


@click.command("notify", context_settings=CONTEXT)
@click.argument("words", nargs=-1, metavar="MESSAGE...")
@JOURNAL
def notify_command(words: tuple[str, ...], reason: str | None) -> None:
    """Tell the human MESSAGE.

    Journals it and hands it to [notify] command (never a shell).
    """
    from looop.agent import verbs

    paths = resolve()
    message = body(words, "message")
    click.echo(verbs.notify(paths, message, load_config(paths).notify_command, reason))
