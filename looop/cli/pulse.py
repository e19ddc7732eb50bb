"""The pulse's commands: ``pulse`` (and its ``_ pulse`` alias), ``sense`` and ``status``.

Each body imports the pulse module it calls, so ``looop status --help`` loads
neither the loop nor the sensors. A plain ``looop status [--json]`` or ``looop
sense [-v] [--json]`` does not come here at all: ``looop.__main__`` answers it
without click, with the same ``status.print_report`` or ``sense.print_now``.
"""

from __future__ import annotations

import click

from looop.cli import load_config
from looop.paths import resolve


def _pulse() -> int:
    from looop.pulse import loop as pulse

    paths = resolve()
    return pulse.run_pulse(paths, load_config(paths))


@click.command("pulse")
@click.option("--ended", is_flag=True, hidden=True, help="Record how the last run ended.")
def pulse_command(ended: bool) -> int:
    """Run the pulse in the foreground (what the service runs).

    Takes the profile's lock (exit 1 if a pulse already runs), seeds the data
    dir, beats once, tells the service manager it is ready, then beats every
    `interval` seconds. SIGTERM/SIGINT stop it, SIGHUP reloads the config,
    SIGUSR1 beats now.
    """
    if ended:  # the unit's ExecStopPost: systemd says how the run ended
        import os

        from looop.pulse import record

        env = os.environ
        how = {"result": env.get("SERVICE_RESULT"), "code": env.get("EXIT_CODE")}
        record.write_end(resolve(), **how, status=env.get("EXIT_STATUS"))
        return 0
    return _pulse()


@click.command("pulse")
def agent_pulse_command() -> int:
    """Alias of `looop pulse`."""
    return _pulse()


@click.command("sense")
@click.option("--json", "as_json", is_flag=True, help="Print the beat record as JSON.")
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Each sensor's result, duration, cadence and reason first.",
)
def sense_command(as_json: bool, verbose: bool) -> int:
    """Beat once now and print its summary.

    If a pulse runs, it is asked to beat (the pulse stays the only senser);
    otherwise this takes the lock, beats once and releases it. Every sensor
    runs, those with a cadence (`# looop: every 10m`) too.
    """
    from looop.pulse import sense

    paths = resolve()
    return sense.print_now(paths, load_config(paths), as_json, verbose)


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object.")
def status_command(as_json: bool) -> int:
    """Is the pulse running? Answered from the lock.

    Exit 0 running, 3 not running, 4 unknown (the runtime dir cannot be
    trusted or read).
    """
    from looop.pulse import status

    return status.print_report(resolve(), as_json=as_json)
