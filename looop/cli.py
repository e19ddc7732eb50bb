"""The ``looop`` command line: parse, call one function below, print, return the exit code.

No behaviour lives here; every command calls into the module that owns it, so
tests reach the same code without a terminal. Failures are exceptions that
carry their exit code (``looop.errors``); the one handler in
``looop.__main__`` prints them. ``run`` keeps click's own reports of a bad
command line (exit 2) and hands ^C to that handler instead of click's
"Aborted!" (exit 1).
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from looop import __version__
from looop.errors import TIMED_OUT, UsageError
from looop.log import FORMATS, log
from looop.paths import Paths, resolve

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def run(args: list[str]) -> int:
    """Parse and run one command line; return the command's exit code."""
    try:
        code = cli.main(args, prog_name="looop", standalone_mode=False)
    except click.ClickException as exc:  # a bad command line: click says what (exit 2)
        exc.show()
        return exc.exit_code
    except click.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):
            raise KeyboardInterrupt from None  # the top-level handler's exit 130
        click.echo("Aborted!", err=True)
        return 1
    return code if isinstance(code, int) else 0


def load_config(paths: Paths) -> Any:
    from looop import config

    loaded = config.load(paths.config_file)
    for warning in loaded.warnings:
        log.warning(warning)
    return loaded


def echo_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=False, default=str))


def finite_seconds(ctx: click.Context, param: click.Parameter, value: float | None) -> Any:
    """Option callback: FloatRange lets nan through (no comparison holds) and takes inf."""
    if value is None or value < float("inf"):  # false for nan and for inf
        return value
    param.type.fail(f"{value} is not a finite number of seconds.", param, ctx)


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="looop")
@click.option(
    "--log-format",
    type=click.Choice(FORMATS),
    default="auto",
    show_default=True,
    help="journal: <N> priority prefixes; human: terminal lines; json: NDJSON.",
)
def cli(log_format: str) -> None:
    """A tiny control loop for one person's work.

    The pulse senses the world on a beat (runs sensors/*.sh, publishes their
    readings as snapshots, keeps a world hash fresh); a root agent blocked on
    `looop _ wait` wakes the moment something changed.
    """
    log.configure(log_format)


# --- the pulse -------------------------------------------------------------
def _pulse() -> int:
    from looop.pulse import loop as pulse

    paths = resolve()
    return pulse.run_pulse(paths, load_config(paths))


@cli.command("pulse")
def pulse_command() -> int:
    """Run the pulse in the foreground (what the service runs).

    Takes the profile's lock (exit 1 if a pulse already runs), seeds the data
    dir, beats once, tells the service manager it is ready, then beats every
    `interval` seconds. SIGTERM/SIGINT stop it, SIGHUP reloads the config,
    SIGUSR1 beats now.
    """
    return _pulse()


@cli.command("sense")
@click.option("--json", "as_json", is_flag=True, help="Print the beat record as JSON.")
def sense_command(as_json: bool) -> int:
    """Beat once now and print its summary.

    If a pulse runs, it is asked to beat (the pulse stays the only senser);
    otherwise this takes the lock, beats once and releases it.
    """
    from looop.pulse import loop as pulse

    paths = resolve()
    outcome = pulse.sense_now(paths, load_config(paths))
    if as_json:
        echo_json(outcome.record)
    else:
        click.echo(outcome.summary)
    return 1 if outcome.record.get("publish_error") else 0


@cli.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def status_command(as_json: bool) -> int:
    """Is the pulse running? Answered from the lock.

    Exit 0 running, 3 not running, 4 unknown (the runtime dir cannot be
    trusted or read).
    """
    from looop.pulse import status

    return status.print_report(resolve(), as_json=as_json)


def _start_stop(start: bool) -> None:
    from looop.service import detached as daemon

    paths = resolve()
    # For `up`, a broken config is reported here (exit 78), never as "started".
    click.echo(daemon.up(paths, load_config(paths)) if start else daemon.down(paths))


@cli.command("up")
def up_command() -> None:
    """Start the pulse: through systemd/launchd when installed, else detached.

    Returns once the pulse has taken the lock and published its first beat,
    or says why it did not.
    """
    _start_stop(start=True)


@cli.command("down")
def down_command() -> None:
    """Stop the pulse: through systemd/launchd when installed, else by SIGTERM."""
    _start_stop(start=False)


@cli.command("install")
@click.option("--systemd", "manager", flag_value="systemd", help="Install the systemd user units.")
@click.option("--launchd", "manager", flag_value="launchd", help="Install the launchd agents.")
@click.option("--dry-run", is_flag=True, help="Print what would be written; change nothing.")
@click.option("--no-start", is_flag=True, help="Install and enable, but do not start now.")
@click.option("--force", is_flag=True, help="Overwrite files you edited since install.")
def install_command(manager: str | None, dry_run: bool, no_start: bool, force: bool) -> None:
    """Install the pulse (and the reap timer) as a user service.

    Renders the unit or plist files shipped with looop with this
    installation's absolute path (and LOOOP_DATA_DIR for a non-default
    profile), then enables and starts them. Safe to run again.
    """
    from looop.service import manager as service

    for line in service.install(
        resolve(), manager=manager, dry_run=dry_run, start=not no_start, force=force
    ):
        click.echo(line)


@cli.command("uninstall")
@click.option("--systemd", "manager", flag_value="systemd")
@click.option("--launchd", "manager", flag_value="launchd")
@click.option("--force", is_flag=True, help="Also remove files you edited since install.")
def uninstall_command(manager: str | None, force: bool) -> None:
    """Stop and remove the installed service files; the data dir is left alone.

    A file changed since install (or not written by looop) is kept unless
    --force is given.
    """
    from looop.service import manager as service

    for line in service.uninstall(resolve(), manager=manager, force=force):
        click.echo(line)


@cli.command("reap")
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@click.option(
    "--ttl",
    type=click.FloatRange(min=0),
    callback=finite_seconds,
    help="Override session_ttl (seconds).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def reap_command(dry_run: bool, ttl: float | None, as_json: bool) -> int:
    """Remove dead sessions older than session_ttl and claims of dead sessions."""
    from looop.workers import reap

    paths = resolve()
    cfg = load_config(paths)
    result = reap.reap(paths, ttl=cfg.session_ttl if ttl is None else ttl, dry_run=dry_run)
    echo_json(result.as_dict()) if as_json else click.echo(result.summary())
    return result.exit_code


# --- the root agent's contract ---------------------------------------------
@cli.group("_", context_settings=CONTEXT)
def agent_group() -> None:
    """Plumbing for the root agent: state, wait, pulse."""


@agent_group.command("state")
@click.option("--json", "as_json", is_flag=True, help="One JSON object (the agent's format).")
def state_command(as_json: bool) -> None:
    """Print the world as the root agent sees it (a pure read)."""
    from looop.agent import state

    data = state.collect(resolve())
    echo_json(data) if as_json else click.echo(state.render(data))


@agent_group.command("wait")
@click.option("--json", "as_json", is_flag=True, help="One JSON object (the agent's format).")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    callback=finite_seconds,
    help="Give up after S seconds (exit 124).",
)
def wait_command(as_json: bool, timeout: float | None) -> int:
    """Block until there is something to act on, then print the state.

    Wakes on a pending ask, a change of the world hash, or the pulse not
    running; `changed` says which of asks, goals, playbook, snapshots,
    pulse-down moved.
    """
    from looop.agent import state, wait

    data = wait.wait(resolve(), timeout=timeout)
    if data is None:
        return TIMED_OUT
    echo_json(data) if as_json else click.echo(state.render(data))
    # The agent is blocked on this exit: once the answer is out, skip the
    # interpreter's teardown (about 10 ms of freeing modules).
    sys.stdout.flush()
    os._exit(0)


@agent_group.command("pulse")
def agent_pulse_command() -> int:
    """Alias of `looop pulse`."""
    return _pulse()


# --- config ------------------------------------------------------------------
@cli.group("config", context_settings=CONTEXT, invoke_without_command=True)
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
        click.echo(f"{key} = {config.format_value(value)}    # {knob.help}; env {knob.env}")


@config_group.command("get")
@click.argument("key")
def config_get(key: str) -> None:
    """The value in effect for KEY."""
    from looop import config

    if key not in config.KNOBS:
        raise UsageError(f"unknown key {key!r} (known: {', '.join(config.KNOBS)})")
    click.echo(config.format_value(config.as_table(load_config(resolve()))[key]))


@config_group.command("set", context_settings={"ignore_unknown_options": True})
@click.argument("key")
@click.argument("value")
def config_set(key: str, value: str) -> None:
    """Store KEY = VALUE in the config file."""
    from looop import config

    paths = resolve()
    stored = config.set_value(paths.config_file, key, value)
    click.echo(f"{key} = {config.format_value(stored)}  ({paths.config_file})")
    env = config.KNOBS[key].env
    if os.environ.get(env):
        click.echo(f"note: ${env} is set and overrides the file", err=True)


@config_group.command("path")
def config_path() -> None:
    """Where the config file is."""
    click.echo(str(resolve().config_file))


# --- small ones --------------------------------------------------------------
@cli.command("version")
def version_command() -> None:
    """Print looop's version."""
    click.echo(f"looop {__version__}")


@cli.command("help")
@click.argument("command", nargs=-1)
@click.pass_context
def help_command(ctx: click.Context, command: tuple[str, ...]) -> None:
    """Show help for looop or for COMMAND."""
    group: click.Command = cli
    info_ctx = click.Context(cli, info_name="looop")
    for name in command:
        if not isinstance(group, click.Group) or name not in group.commands:
            raise UsageError(f"no such command: {' '.join(command)}")
        group = group.commands[name]
        info_ctx = click.Context(group, info_name=name, parent=info_ctx)
    click.echo(group.get_help(info_ctx))
