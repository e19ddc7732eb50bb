"""Where the pulse's log is: ``looop logs`` without a worker ID.

Whoever runs the pulse decides where its stderr goes, so the answer comes
from the same place ``up`` asks (``units.installed_manager``):

- **systemd**: the unit's journal, read with ``journalctl --user -u UNIT``
  (looop runs journalctl in its place, so ``-f`` ends on ^C as journalctl's
  does), unless the unit or a drop-in sends stderr to a file
  (``StandardError=append:...``), which is then read like any log file;
- **launchd**: the agent's log file (the plist's ``StandardErrorPath``);
- **neither** (``looop up`` detached it): ``pulse.log`` in the data dir.

Files are read with ``log.tail`` and ``log.follow``, the same reader as a
worker's transcript. Rejected: copying the journal into a file of our own
(two logs to keep in step, and journald already keeps, rotates and
prioritises the lines).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from looop.paths import Paths
from looop.service import detached, units


@dataclass
class PulseLog:
    """A file to read, or a command (journalctl) that prints the log itself."""

    where: str  # said to a person: "the journal of looop.service", a path
    file: Path | None = None
    command: list[str] | None = None


def pulse_log(paths: Paths, lines: int, follow: bool) -> PulseLog:
    manager = units.installed_manager(paths)
    if manager == units.SYSTEMD:
        from looop.service import systemd

        unit = units.unit_names(paths)[units.PULSE]
        target = systemd.log_file(paths)
        if target is not None:
            return PulseLog(f"{unit}'s StandardError file {target}", file=target)
        argv = ["journalctl", "--user", "-u", unit, "-n", str(lines), "--no-pager"]
        return PulseLog(f"the journal of {unit}", command=[*argv, *(["-f"] if follow else [])])
    if manager == units.LAUNCHD:
        log = units.launchd_log(paths, units.PULSE)
        return PulseLog(str(log), file=log)
    log = detached.log_file(paths)
    return PulseLog(str(log), file=log)
