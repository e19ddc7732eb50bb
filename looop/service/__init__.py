"""The service manager's room: looop as a user service, or detached without one.

One module per concern, so that each question has one home and ``looop
status`` loads only what it asks:

- ``units``: names and places (unit names, labels, where each file lives,
  which manager has this profile installed, and the one choice of its
  driver: ``for_manager``). Needs only ``os``/``pathlib``.
- ``render``: the files shipped in ``packaging/`` made into this profile's
  units and plists, and the policy for what install may write over.
- ``driver``: the one interface both drivers implement (``Driver``), and
  what they share (running a manager's command, its failure as a
  ``ServiceError``, whether a pulse is ready, a pulse the manager does not
  own).
- ``systemd`` / ``launchd``: every ``systemctl`` / ``launchctl`` call, and
  what looop asks each manager (``systemd`` also runs and stops the
  workers' transient units). ``status`` imports the one it needs and
  nothing of the installer.
- ``install``: install and uninstall, over ``render`` and a driver.
- ``control``: what ``looop up`` / ``down`` do: through the installed
  manager, else a detached pulse.
- ``detached``: the python-daemon detach and its readiness wait, for a
  pulse and for a worker's supervisor where there is no manager.
- ``logs``: where the pulse's (or a worker's) log is, and reading it: its
  end, from a time on, as JSON, followed on file notifications.
- ``specifiers``: systemd's ``%h``, ``%t``... in a unit's file output,
  expanded as systemd does (``looop logs`` reads that file).
- ``doctor``: ``looop doctor``, what breaks a setup and how to fix each.
"""

from __future__ import annotations

from looop.errors import LooopError

__all__ = [
    "ServiceError",
    "control",
    "detached",
    "doctor",
    "driver",
    "install",
    "launchd",
    "logs",
    "render",
    "specifiers",
    "systemd",
    "units",
]


class ServiceError(LooopError):
    """A service manager refused or is missing, or a pulse did not start or stop (exit 1).

    The message says what to do. One error for the whole room: ``up`` through
    a manager and ``up`` detached fail the same way, with the same exit.
    """
