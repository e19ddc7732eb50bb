"""The config's commands: ``config show|get|set|path``, ``config runner add|list``, ``init``.

What a knob means, its default and how a value is checked and stored belong
to ``looop.config`` and ``looop.config_edit``, what a runner and a preset
are to ``looop.runners``; these commands only call them and print. ``init``
is here because a first run is mostly config: the data dir, the file, a
runner; the service it leaves to ``looop install``.
"""

from __future__ import annotations

import click

from looop.cli import CONTEXT, Group, complete, echo_json, load_config
from looop.errors import UsageError
from looop.paths import resolve
from looop.say import escaped

PRESET_NAMES = (
    "claude",
    "codex",
    "opencode",
    "pi",
)  # ``looop.runners.PRESETS``, kept off --help's path


@click.group("config", cls=Group, context_settings=CONTEXT, invoke_without_command=True)
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


@config_group.group("runner", context_settings=CONTEXT, invoke_without_command=True)
@click.pass_context
def runner_group(ctx: click.Context) -> None:
    """The named runners ([runners.NAME]) a worker may start with."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(runner_list)


@runner_group.command("add")
@click.argument("name")
@click.option("--preset", type=click.Choice(PRESET_NAMES), help="A built-in command.")
@click.option("--command", "argv", metavar="ARGV", help="A command, split like a shell line.")
@click.option("--default", "default", is_flag=True, help="Also set worker.runner = NAME.")
@click.option("--force", is_flag=True, help="Replace a runner of that name.")
def runner_add(name: str, preset: str | None, argv: str | None, default: bool, force: bool) -> None:
    """Write [runners.NAME] into the config file, keeping the rest of it.

    Give --preset (claude, codex, opencode, pi: each tool's documented
    non-interactive command, with a comment citing its documentation) or
    --command. Start a worker with it: looop _ worker start ID --runner NAME.
    """
    from looop import config, config_edit, runners

    if (preset is None) == (argv is None):
        raise UsageError("give one of --preset or --command")
    if preset is not None:
        command, comment = runners.PRESETS[preset].command, runners.PRESETS[preset].comment
    else:
        try:
            parsed = config.parse_text(config.KNOBS["worker.command"], argv or "")
        except ValueError as exc:
            raise UsageError(f"--command: {exc}") from None
        command, comment = parsed, ""  # type: ignore[assignment]
    paths = resolve()
    config_edit.add_runner(paths.config_file, name, command, comment, force, default)
    click.echo(f"runners.{name}.command = {config.format_value(command)}  ({paths.config_file})")
    if default:
        click.echo(f"worker.runner = {name}")


@runner_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def runner_list(as_json: bool) -> None:
    """The runners in the config (* the default), then the presets to add."""
    from looop import config, runners

    cfg = load_config(resolve())
    if as_json:
        echo_json(
            {
                "default": cfg.worker_runner,
                "runners": {name: list(argv) for name, argv in cfg.runners.items()},
                "presets": {p.name: list(p.command) for p in runners.PRESETS.values()},
            }
        )
        return
    for name, argv in cfg.runners.items():
        mark = "*" if name == cfg.worker_runner else " "
        click.echo(escaped(f"{mark} {name:<12} {config.format_value(argv)}"))
    if not cfg.runners:
        click.echo(
            f"no runners: workers run worker.command {config.format_value(cfg.worker_command)}"
        )
    click.echo(f"presets: {', '.join(runners.PRESETS)} (looop config runner add NAME --preset P)")


@click.command("init")
@click.option("--runner", type=click.Choice(PRESET_NAMES), help="Add this preset as the default.")
@click.option("--install/--no-install", default=None, help="Install the pulse as a service.")
@click.option("--force", is_flag=True, help="Replace a runner of that name already there.")
@click.pass_context
def init_command(ctx: click.Context, runner: str | None, install: bool | None, force: bool) -> None:
    """A first run: the data dir, a runner, the service.

    Creates the data dir (seeded with a starter PLAYBOOK, goal and sensor)
    and the config, adds --runner as [runners.NAME] and worker.runner, and
    with --install runs looop install. On a terminal it asks for what no
    flag said; otherwise it asks nothing and never installs without
    --install, nor replaces a runner without --force.
    """
    import sys

    from looop import config_edit, runners
    from looop.data.layout import ensure_layout

    paths = resolve()
    asking = sys.stdin.isatty() and sys.stdout.isatty()
    if runner is None and asking:
        picked = click.prompt(
            "Runner for workers", type=click.Choice([*PRESET_NAMES, "none"]), default="claude"
        )
        runner = None if picked == "none" else picked
    if install is None:
        install = asking and click.confirm("Install the pulse as a user service?", default=False)
    ensure_layout(paths)
    config_edit.write_defaults_if_missing(paths.config_file)
    click.echo(f"data dir: {paths.data_dir}")
    if runner is not None:
        preset = runners.PRESETS[runner]
        config_edit.add_runner(
            paths.config_file, runner, preset.command, preset.comment, force, True
        )
        click.echo(f"runner: {runner} (worker.runner), in {paths.config_file}")
    if install:
        from looop.cli.service import install_command

        ctx.invoke(install_command)
    else:
        click.echo("service: not installed (looop install, or looop up to run it detached)")
