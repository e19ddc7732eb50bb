"""The service manager's commands: ``up``, ``down``, ``install`` and ``uninstall``.

Each body imports the service module it calls, so listing these commands
(``looop --help``) does not load the installer or python-daemon.
"""

from __future__ import annotations

import click

from looop.cli import load_config
from looop.paths import resolve


@click.command("up")
def up_command() -> None:
    """Start the pulse: through systemd/launchd when installed, else detached.

    Returns once the pulse has taken the lock and published its first beat,
    or says why it did not.
    """
    from looop.service import control

    paths = resolve()
    # A broken config is reported here (exit 78), never as "started".
    click.echo(control.up(paths, load_config(paths)))


@click.command("down")
@click.option("--keep-workers", is_flag=True, help="Leave live workers running.")
def down_command(keep_workers: bool) -> None:
    """Stop the pulse, then every live worker of this profile.

    The pulse through systemd/launchd when installed, else by SIGTERM; the
    workers through their supervisors, unless --keep-workers.
    """
    from looop.service import control

    for line in control.down(resolve(), keep_workers=keep_workers):
        click.echo(line)


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

    for line in install.install(
        resolve(), manager=manager, dry_run=dry_run, start=not no_start, force=force
    ):
        click.echo(line)


@click.command("uninstall")
@click.option("--systemd", "manager", flag_value="systemd")
@click.option("--launchd", "manager", flag_value="launchd")
@click.option("--force", is_flag=True, help="Also remove files you edited since install.")
def uninstall_command(manager: str | None, force: bool) -> None:
    """Stop and remove the installed service files; the data dir is left alone.

    A file changed since install (or not written by looop) is kept unless
    --force is given.
    """
    from looop.service import install

    for line in install.uninstall(resolve(), manager=manager, force=force):
        click.echo(line)
