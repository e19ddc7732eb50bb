"""A worker whose systemd unit is its supervisor: no looop process lives as long as it does.

Under a systemd user manager, a worker that needs nothing watched while it
runs is the transient unit's main process itself (``_ worker start`` asks
``properties`` for the unit's settings):

* **Start.** The unit runs the supervisor (``workers.supervise``), which
  takes the session over as it always does (the environment from
  ``env.json``, its pid into the meta, the argv from the template, the
  prompt on stdin where the argv does not carry it) and then *execs* the
  worker in its own place: the unit's main pid, the meta's ``pid`` and the
  worker are one process. Rejected: the worker's argv as the unit's
  ``ExecStart`` directly, which would put the caller's environment (its
  API keys) into the unit's properties or a file systemd reads, and leave
  the meta without a pid unless the start asked the manager again.
* **Its tree and its time.** ``KillMode=control-group``: a stop ends every
  process of the unit's cgroup, a ``setsid`` escapee included;
  ``RuntimeMaxSec=`` is ``--timeout`` (``worker.timeout``).
* **Its output.** ``StandardOutput=``/``StandardError=append:output.log``:
  systemd writes it, nobody copies it. The cap (``workers.transcript``) is
  applied after the fact, when the worker has ended (``ended``); meanwhile
  the file's mtime is its sign of life, as before (``data.health``).
* **Its end.** ``ExecStopPost=`` runs ``looop _ ended ID`` (``ended``), which
  reads ``$SERVICE_RESULT``, ``$EXIT_CODE`` and ``$EXIT_STATUS``, records a
  spend the runner printed (``workers.spend``, read from the transcript),
  caps the transcript, writes ``status.json`` and pokes ``sessions/``. It
  runs however the main process ended, SIGKILL included, before a ``systemctl
  stop`` returns.
* **Who ended it.** A stop says nothing to the main process that a worker
  could not also do to itself, so ``_ worker kill`` / ``down`` and a worker's
  own ``_ kill`` leave ``ENDED_BY`` (``kill`` or ``done``) in the session
  before they stop the unit (``mark``), and ``ended`` reads it.

A worker that must be watched while it runs keeps a supervisor process
(``workers.supervise``): one started with ``--verify`` (its checks run
after it ended, while the session still reads running, and an
``ExecStopPost=`` would be cut off at the unit's stop timeout) or with
``worker.stuck_kill`` (someone must be awake to see it turn stuck).
"""

from __future__ import annotations

import os

from looop import fs
from looop.data import sessions
from looop.data.sessions import ENDED_BY, State
from looop.errors import TIMED_OUT
from looop.paths import Paths

TYPE_CHECKING = False  # not typing's: a start loads this module
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

KILL, DONE = "kill", "done"  # ENDED_BY's values


def supervises(meta: dict[str, Any]) -> bool:
    """Can the unit supervise this worker alone (no checks to run, no stuck watch)?"""
    return not meta.get("verify") and meta.get("stuck_kill") is not True


def properties(session: Path, meta: dict[str, Any], ended: list[str]) -> list[str]:
    """The unit's settings for a worker it supervises; ``ended``: the argv of ``_ ended ID``."""
    from looop.service.systemd import WORKER_PROPERTIES

    log = str(session / sessions.OUTPUT)
    timeout = meta.get("timeout") or 0
    return [
        *(prop for prop in WORKER_PROPERTIES if not prop.startswith("KillMode=")),
        "KillMode=control-group",
        f"StandardOutput=append:{log}",
        f"StandardError=append:{log}",
        f"RuntimeMaxSec={timeout:g}s" if timeout > 0 else "RuntimeMaxSec=infinity",
        "ExecStopPost=" + " ".join(unit_word(word) for word in ended),
    ]


def unit_word(word: str) -> str:
    """One word of a unit's command line, quoted, its ``$`` kept from the manager's expansion."""
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$")
    return f'"{escaped}"'


def mark(session: Path, how: str) -> None:
    """Say in the session who is ending its unit (``KILL`` or ``DONE``), before the stop."""
    fs.write_whole(session / ENDED_BY, how.encode(), mode=0o600)


def ended(paths: Paths, wid: str) -> int:
    """``looop _ ended ID``: record how the unit's worker ended (its ``ExecStopPost=``)."""
    session = paths.sessions / wid
    found = sessions.inspect(session)
    if found.status is not None and found.status.get("state") in State.ENDED:
        sessions.poke(paths.sessions)  # the supervisor said it already (a worker not run)
        return 0
    state, code, reason = ending(_ended_by(session), os.environ)
    meta = found.meta or {}
    template = [str(word) for word in meta.get("cmd") or ()]
    runner = meta.get("runner") or os.path.basename(template[0] if template else "worker")
    from looop.workers import spend, transcript

    log = session / sessions.OUTPUT
    try:
        notes = spend.read_file(paths, wid, str(runner), log, transcript.CAP)
        sessions.write_status(session, state, code, reason=reason)
    finally:
        sessions.poke(paths.sessions)
    try:
        out = transcript.Writer(log, fresh=False)  # capped, now that nobody else writes it
    except OSError:
        return 0  # the transcript is the worker's business; its status is written
    try:
        for said in notes:
            out.note(said)
        out.note(f"{state} (exit {code}, {reason})")
    finally:
        out.close()
    return 0


def _ended_by(session: Path) -> str:
    try:
        return fs.read_small(session / ENDED_BY, limit=16).decode("ascii", "replace")
    except OSError:
        return ""


def ending(by: str, env: dict[str, str] | os._Environ[str]) -> tuple[str, int, str]:
    """The status of a unit's worker: ``(state, exit_code, reason)``, as the supervisor's.

    ``by``: ``ENDED_BY``'s value; ``env``: the ``ExecStopPost=`` environment.
    """
    import signal  # not at the top: a start loads this module, and ``signal`` loads ``enum``

    if by == DONE:
        return State.EXITED, 0, "done"
    if by == KILL:
        return State.KILLED, 128 + signal.SIGTERM, signal.SIGTERM.name
    if env.get("SERVICE_RESULT") == "timeout":
        return State.KILLED, TIMED_OUT, "timeout"
    how, what = env.get("EXIT_CODE", ""), env.get("EXIT_STATUS", "")
    if how == "exited" and what.isdigit():
        return State.EXITED, int(what), "exit"
    number = getattr(signal, f"SIG{what}", None)
    if how in ("killed", "dumped") and number is not None:
        return State.EXITED, 128 + int(number), "exit"
    return State.EXITED, 126, "not run"  # it never ran: its supervisor could not start
