"""The config's commands: the ``config`` group with ``show``, ``get``, ``set`` and ``path``.

What a knob means, its default and how a value is checked and stored belong
to ``looop.config``; these commands only call it and print.
"""

from __future__ import annotations

import click

from looop.cli import CONTEXT, complete, echo_json, load_config
from looop.paths import resolve


@click.group("config", context_settings=CONTEXT, invoke_without_command=True)
@click.pass_context
def config_group(ctx: click.Context) -> None:
    """Read and edit the config (environment > file > default)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(config_show)


@config_group.command("show")
@click.option("--json", "as_json", is_flag=True)
def config_show(as_json: bool) -> None:
    """Every knob with the value in effect."""
    from looop import config

    paths = resolve()
    table = config.as_table(load_config(paths))
    if as_json:
        echo_json(table)
        return
    for key, value in table.items():
        knob = config.KNOBS[key]
        shown = config.format_value(value) if value is not None else "(unset)"
        click.echo(f"{key} = {shown}    # {knob.help}; env {knob.env}")


@config_group.command("get")
@click.argument("key", shell_complete=complete.config_keys)
def config_get(key: str) -> None:
    """The value in effect for KEY."""
    from looop import config

    knob = config.knob(key)  # an unknown KEY is a usage error (exit 2)
    click.echo(config.format_value(config.as_table(load_config(resolve()))[knob.key]))


@config_group.command("set", context_settings={"ignore_unknown_options": True})
@click.argument("key", shell_complete=complete.config_keys)
@click.argument("value")
def config_set(key: str, value: str) -> None:
    """Store KEY = VALUE in the config file."""
    from looop import config, config_edit
    from looop.pulse.lock import pulse_holder

    paths = resolve()
    stored = config_edit.set_value(paths.config_file, key, value)
    shown = config.format_value(stored) if stored is not None else "(unset)"
    click.echo(f"{key} = {shown}  ({paths.config_file})")
    for note in config_edit.notes(key, pulse_holder(paths)):
        click.echo(note, err=True)


@config_group.command("path")
def config_path() -> None:
    """Where the config file is."""
    click.echo(str(resolve().config_file))
