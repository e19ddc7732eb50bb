"""The live workers of a profile: list them, kill one, end one as done, stop them all.

Every question of liveness is ``data.sessions``'s one judgment. Ending a
worker always goes through its supervisor (a process, or its unit alone:
``workers.unit``), which ends the worker's process group (a unit: its
cgroup) and writes ``status.json``:

* ``kill`` (``_ worker kill ID``): under systemd ``systemctl --user stop`` of
  its unit (the supervisor gets SIGTERM; the unit's stop then ends whatever
  is left in its cgroup, a ``setsid`` escapee included); detached, SIGTERM to
  the supervisor. Returns once the session is judged ended. A session that
  has already ended is not an error; one whose supervisor died without a
  status (SIGKILL) gets one written here, ``killed``, so every way out ends
  with a status. A detached worker whose supervisor was killed outright
  runs on in its recorded process group (``data.sessions`` judges it
  running): having no supervisor left, that group is ended here, SIGTERM
  then SIGKILL after the supervisor's grace, and the status written.
* ``done`` (a worker's own ``_ kill ID``): SIGUSR1 to the supervisor, which
  ends the worker's group and records ``exited``, exit 0, ``reason: done``
  once its post-conditions (``workers.verify``) are checked: the wait for
  the end allows for them. A worker its unit supervises alone
  (``workers.unit``) has no supervisor to tell: its unit is stopped, the
  session first marked ``done``, as a kill marks it ``kill``.
  The caller is usually inside that group and ends with it.
* ``stop_all`` (``looop down``): every live worker at once, the units in one
  ``systemctl stop``; a ``sessions/`` it cannot list fails it, naming why.

A supervisor that is still starting (no pid in its meta yet) is waited for,
briefly, before it is signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from typing import Any

from looop import group, jsonfile, proc
from looop.data import ids, journal, mailbox, sessions
from looop.data.sessions import State
from looop.errors import LooopError
from looop.paths import Paths
from looop.workers import unit, verify
from looop.workers.supervise import DONE, GRACE

# How long an end may take: the supervisor's grace for its group, then the
# unit's own stop timeout, then slack.
END_WITHIN = GRACE + 10 + 10
POLL = 0.02


def listing(paths: Paths) -> list[dict[str, Any]]:
    """Every session as ``Session.as_dict``'s row, with its pending ask."""
    return sessions.rows(sessions.scan(paths.sessions), mailbox.pending(paths))


def _judged(paths: Paths, wid: str) -> sessions.Session:
    ids.check("worker", wid)
    session = sessions.inspect(paths.sessions / wid)
    if session.meta is None:
        if not os.path.lexists(session.path):
            raise LooopError(f"no worker {wid}")
        raise LooopError(f"worker {wid}: {session.why}; not touched")
    return session


def _ended(session: sessions.Session) -> str:
    return f"{session.id} has ended ({session.state}, exit {session.exit_code})"


def kill(paths: Paths, wid: str, reason: str | None = None) -> str:
    """End worker ``wid`` and its whole tree, then journal it; returns once its status says so.

    ``_ worker kill`` and ``looop watch``'s ``k`` both end a worker here, so
    both leave the same journal line (``worker kill ID``, with ``reason``).
    A session still "starting" may be one whose start was killed before it
    handed the session on: closed first (``start.close_abandoned``), it is
    dead at once instead of at the end of the start grace.
    """
    session = _judged(paths, wid)
    if session.state == State.STARTING:
        from looop.workers import start

        start.close_abandoned(paths, session.path)
        session = _judged(paths, wid)
    if session.liveness == sessions.ALIVE:
        _signal([session], signal.SIGTERM)
        session = _await_end(paths, session)
    journal.append(paths, f"worker kill {wid}", reason=reason)
    return _ended(session)


def done(paths: Paths, wid: str) -> str:
    """The worker says its task is done: its supervisor ends it as exited, 0."""
    session = _judged(paths, wid)
    if session.liveness != sessions.ALIVE:
        return _ended(session)
    if _by_unit(session):
        _stop([session], unit.DONE)
    else:
        _signal([session], DONE, through_manager=False)
    return _ended(_await_end(paths, session, done=True))


def stop_all(paths: Paths) -> list[str]:
    """Stop every live worker of the profile; the ids stopped.

    A ``sessions/`` that cannot be listed is that failure (OSError naming
    it), never "no workers": ``down`` must not report success over workers
    it could not see.
    """
    found = sessions.live(paths.sessions, strict=True)
    _signal(found, signal.SIGTERM)
    for session in found:
        _await_end(paths, session)
    return [s.id for s in found]


def _stop(found: list[sessions.Session], how: str) -> None:
    """Stop the sessions' units, saying who stops those that supervise their worker alone."""
    for session in found:
        if _by_unit(session):
            with contextlib.suppress(OSError):  # unsaid, the end is the worker's own exit
                unit.mark(session.path, how)
    from looop.service import systemd

    systemd.stop_units([_unit(s) for s in found])


def _signal(found: list[sessions.Session], sig: int, through_manager: bool = True) -> None:
    units = [s for s in found if through_manager and _unit(s)]
    if units:
        _stop(units, unit.KILL)
    for session in found:
        if through_manager and _unit(session):
            continue
        pid = _supervisor_pid(session)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        elif (pgid := _orphan_group(session)) is not None:
            group.signal_group(pgid, signal.SIGTERM)  # nobody else is left to end it


def _unit(session: sessions.Session) -> str:
    """The session's unit, or "" when it has none (detached)."""
    unit = (session.meta or {}).get("unit")
    return unit if isinstance(unit, str) else ""


def _by_unit(session: sessions.Session) -> bool:
    """Does its unit supervise the worker alone (``workers.unit``), no supervisor process?"""
    return bool(_unit(session)) and unit.supervises(session.meta or {})


def _supervisor_pid(session: sessions.Session) -> int | None:
    """The supervisor's pid, waiting a little for one that is still starting."""
    deadline = time.monotonic() + 10
    while True:
        meta = sessions.read_meta(session.path) or {}
        pid, started = meta.get("pid"), meta.get("started")
        if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0:
            if isinstance(started, int | float) and proc.runs_since(pid, started):
                return pid
            return None
        if time.monotonic() > deadline:
            return None
        time.sleep(POLL)


def _orphan_group(session: sessions.Session) -> int | None:
    """The process group of a worker whose supervisor was killed outright, while it runs."""
    meta = session.meta or {}
    pgid, started = meta.get("pgid"), jsonfile.finite(meta.get("started"))
    if type(pgid) is not int or _unit(session):
        return None
    return pgid if proc.group_runs_since(pgid, started) else None


def _never_ran(session: sessions.Session) -> bool:
    """A unit stopped before its supervisor wrote a pid: it stays "starting" otherwise."""
    unit = _unit(session)
    if session.state != State.STARTING or not unit:
        return False
    from looop.service import systemd

    return not systemd.unit_active(unit)


def _checking(session: sessions.Session) -> float:
    """How long the session's post-conditions may take once its worker ended (``verify``)."""
    meta = session.meta or {}
    n = len(meta.get("verify") or ())
    each = jsonfile.finite(meta.get("verify_timeout")) or 0.0
    if n and each <= 0:
        return float("inf")  # checks with no timeout: the end comes when they end
    return n * (each + verify.GRACE)


def _await_end(paths: Paths, session: sessions.Session, done: bool = False) -> sessions.Session:
    """The session once judged ended; a supervisor gone without a status gets one.

    A worker whose supervisor is gone (``_orphan_group``) is ended here, as
    its supervisor would have: SIGTERM to its group, SIGKILL after ``GRACE``.
    """
    start = time.monotonic()
    deadline, killed = start + END_WITHIN + _checking(session), False
    while True:
        now = sessions.inspect(session.path)
        if now.liveness != sessions.ALIVE or _never_ran(now):
            break
        if time.monotonic() > deadline:
            raise LooopError(f"worker {session.id} did not end within {END_WITHIN:.0f}s")
        pgid = _orphan_group(now) if now.why == sessions.ORPHANED else None
        if pgid is not None:
            sig = signal.SIGKILL if time.monotonic() - start > GRACE else signal.SIGTERM
            killed = group.signal_group(pgid, sig) or killed
        time.sleep(POLL)
    if now.status is None or now.status.get("state") not in State.ENDED:
        if done:
            sessions.write_status(now.path, State.EXITED, 0, reason="done")
        else:
            sessions.write_status(now.path, State.KILLED, None, reason="supervisor gone")
        sessions.poke(paths.sessions)
        now = sessions.inspect(session.path)
    return now
