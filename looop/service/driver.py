"""What the systemd and launchd drivers share: running a manager's command.

Every ``systemctl`` and ``launchctl`` call goes through ``run``: one small
function, so a missing command or one that hangs is reported the same way for
both managers, and a test can put a stand-in on ``PATH``. ``checked`` turns a
refusal into a ``ServiceError`` carrying what the manager said. Two questions
about the pulse are answered here for both drivers and for ``detached``: is a
pulse ready (``ready_pulse``), and does one run that the manager does not own
(``foreign_pulse``).
``subprocess`` is imported where it is used: ``looop status`` loads a driver
to ask for the pulse's state and should not pay for it otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from looop.paths import Paths
from looop.service import ServiceError
from looop.service.units import LAUNCHD, SYSTEMD

if TYPE_CHECKING:
    import subprocess


def missing(command: str) -> ServiceError:
    """The error for a manager command that is not on ``PATH``."""
    manager = LAUNCHD if command == "launchctl" else SYSTEMD
    return ServiceError(
        f"{command} not found: this machine does not seem to run {manager} "
        "(choose with --systemd or --launchd; --dry-run shows the files)"
    )


def run(argv: Sequence[str], timeout: float | None) -> subprocess.CompletedProcess[str]:
    """Run one manager command, capturing its output; ServiceError if missing or hung."""
    import subprocess  # imported where used: `looop status` loads the drivers too

    try:
        return subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout,
        )
    except FileNotFoundError:
        raise missing(argv[0]) from None
    except subprocess.TimeoutExpired:
        raise ServiceError(f"{' '.join(argv)} did not answer within {timeout:g}s") from None


def said(out: subprocess.CompletedProcess[str]) -> str:
    """What a manager's command said (its stderr, else its stdout), on one line; "" if nothing."""
    return (out.stderr or out.stdout).strip().replace("\n", " · ")


def checked(out: subprocess.CompletedProcess[str], what: str) -> subprocess.CompletedProcess[str]:
    """``out`` if the command succeeded; else a ServiceError with what it said."""
    if out.returncode != 0:
        raise ServiceError(f"{what} failed (exit {out.returncode}): {said(out) or 'no message'}")
    return out


def number(value: Any) -> int | None:
    """An integer a manager printed (a pid, a count), or None when it printed none."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def ready_pulse(paths: Paths) -> int | None:
    """Pid of a pulse that holds the lock and has published a beat of its own, else None.

    What ``looop up`` promises under every manager, and without one: "ready"
    is this, never merely "forked" or "launched".
    """
    from looop.pulse import lock, record

    pid = lock.pulse_holder(paths)
    if not pid:
        return None
    beat = record.read(paths)
    return pid if beat is not None and beat.get("pid") == pid else None


def foreign_pulse(paths: Paths, managed_pid: int | None) -> int | None:
    """Pid of a pulse that holds this profile's lock outside the manager, if any."""
    from looop.pulse import lock

    pid = lock.pulse_holder(paths)
    if pid and pid != managed_pid:
        return pid
    return None
