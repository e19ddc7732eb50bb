"""A person's screens: ``looop watch``.

Parses and hands over: the screen is ``looop.screen``'s. The terminal
library (Rich) is imported by ``looop.screen.live`` alone, and only for the
live screen: ``--once`` prints ``looop.screen.frame.plain`` without it.
"""

from __future__ import annotations

import shutil

import click

from looop.cli import CONTEXT
from looop.paths import resolve


@click.command("watch", context_settings=CONTEXT)
@click.option("--once", is_flag=True, help="Print one plain frame (no escapes) and exit.")
def watch_command(once: bool) -> None:
    """A live view of the profile: pulse, sensors, workers, asks, journal.

    It redraws when a file it shows changes. Keys: up/down select an ask or
    a worker, a answers the ask, k kills the worker, l follows its log, q
    quits. --once prints the same text once, sized to $COLUMNS x $LINES or
    the terminal (80x24 without either).
    """
    paths = resolve()
    if once:
        from looop.screen import frame, view

        width, height = shutil.get_terminal_size()
        state = view.read(paths)
        ui = frame.Ui()
        frame.settle(state, ui)
        click.echo(frame.plain(state, ui, width, height), nl=False)
        return
    from looop.screen import live

    live.run(paths)
