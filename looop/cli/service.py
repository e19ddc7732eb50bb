"""The service manager's commands: up, down, restart, reload, logs, install, uninstall, doctor.

Each body imports the service module it calls, so listing these commands
(``looop --help``) does not load the installer or python-daemon. ``logs``
lives here because where a log is depends on who runs the process: the
pulse's is the manager's, a worker's is its transcript (``service.logs``
decides and reads both; this module writes what it yields).
"""

from __future__ import annotations

import sys

import click

from looop.cli import CONTEXT, complete, load_config
from looop.paths import resolve
from looop.say import escaped
from looop.style import paint, waiting


@click.command("up")
def up_command() -> None:
    """Start the pulse (through systemd/launchd if installed).

    Without an installed service the pulse is detached.

    Returns once the pulse has taken the lock and published its first beat,
    or says why it did not.
    """
    from looop.service import control

    paths = resolve()
    cfg = load_config(paths)  # a broken config is reported here (exit 78), never as "started"
    with waiting("the pulse's first beat"):
        said = control.up(paths, cfg)
    click.echo(said)


@click.command("down")
@click.option("--keep-workers", is_flag=True, help="Leave live workers running.")
def down_command(keep_workers: bool) -> None:
    """Stop the pulse, then every live worker of this profile.

    The pulse through systemd/launchd when installed, else by SIGTERM; the
    workers through their supervisors, unless --keep-workers.
    """
    from looop.service import control

    with waiting("the pulse and the workers to stop"):
        lines = control.down(resolve(), keep_workers=keep_workers)
    for line in lines:
        click.echo(escaped(line))


@click.command("restart")
def restart_command() -> None:
    """Restart the pulse; workers keep running.

    Through systemd when installed, else stop and start it again.
    """
    from looop.service import control

    paths = resolve()
    cfg = load_config(paths)
    with waiting("the pulse to stop and beat again"):
        lines = control.restart(paths, cfg)
    for line in lines:
        click.echo(escaped(line))


@click.command("reload")
def reload_command() -> None:
    """Make the pulse re-read its config (SIGHUP), without a restart."""
    from looop.service import control

    paths = resolve()
    cfg = load_config(paths)
    with waiting("the pulse to beat on the new config"):
        said = control.reload(paths, cfg)
    click.echo(said)


@click.command("logs", context_settings=CONTEXT)
@click.argument("wid", metavar="[ID]", required=False, shell_complete=complete.worker_ids)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines (until ^C).")
@click.option(
    "-n",
    "lines",
    type=click.IntRange(min=0),
    default=None,
    help="Lines of the end to print first.  [default: 50; with --since, every line since]",
)
@click.option(
    "--since",
    metavar="TIME",
    help="Lines from TIME on: YYYY-MM-DD [HH:MM[:SS]], HH:MM, today, yesterday, -10m, 1h ago.",
)
@click.option(
    "-o",
    "--output",
    type=click.Choice(["short", "json"]),
    default="short",
    show_default=True,
    help="json: one object a line (timestamp, message, source).",
)
def logs_command(
    wid: str | None, follow: bool, lines: int | None, since: str | None, output: str
) -> None:
    """The pulse's log, or worker ID's transcript; stderr names which.

    The pulse's: its unit's journal under systemd (or the file a drop-in's
    StandardError= names, specifiers such as %h and %t expanded), its log
    file under launchd or when `looop up` detached it. A worker's: its
    output.log, followed until the worker ends.
    """
    from looop.service import logs

    when = None if since is None else logs.since_time(since)
    source = logs.locate(resolve(), wid)
    click.echo(f"looop: reading {escaped(source.where)}", err=True)
    out = sys.stdout.buffer
    try:
        for chunk in logs.read(source, lines, follow, when, output == "json"):
            out.write(chunk)
            out.flush()
    except KeyboardInterrupt:
        return  # ^C is how a follow of the pulse's log ends: not an error


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: the checks and ok.")
def doctor_command(as_json: bool) -> int:
    """Check what breaks a setup; each problem with its fix. Exit 1 on any.

    A warning (!) is what breaks only once it is used; it does not fail.
    """
    from looop.cli import echo_json
    from looop.service import doctor

    checks = doctor.run(resolve())
    code = doctor.exit_code(checks)
    if as_json:
        echo_json({"ok": code == 0, "checks": [check.as_dict() for check in checks]})
        return code
    roles = {doctor.OK: "good", doctor.WARNED: "warn", doctor.FAILED: "bad"}
    for check in checks:
        line = check.line()  # escaped: the mark is painted after
        click.echo(paint(line[:1], roles[check.mark]) + line[1:] if check.mark in roles else line)
    return code


@click.command("install")
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
    from looop.service import install

    with waiting("the service to start"):
        lines = install.install(
            resolve(), manager=manager, dry_run=dry_run, start=not no_start, force=force
        )
    for line in lines:
        # A dry run prints the files as they would be written (render refuses
        # a path they could not hold): their text is shown as it is.
        click.echo(line if dry_run else escaped(line))


@click.command("uninstall")
@click.option("--systemd", "manager", flag_value="systemd")
@click.option("--launchd", "manager", flag_value="launchd")
@click.option("--force", is_flag=True, help="Also remove files you edited since install.")
def uninstall_command(manager: str | None, force: bool) -> None:
    """Remove the installed service files (keeps the data).

    Stops and disables the units or agents first; the data dir is left alone.

    A file changed since install (or not written by looop) is kept unless
    --force is given.
    """
    from looop.service import install

    for line in install.uninstall(resolve(), manager=manager, force=force):
        click.echo(escaped(line))
