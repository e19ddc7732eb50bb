"""The worker supervisor: ``looop _ supervise ID``, one process per worker (SPEC §12).

The same program runs under both ways of starting a worker (``workers.start``):
as the main process of a transient systemd unit, or detached with
python-daemon where no user manager answers. It

1. takes the environment ``start`` left in ``env.json`` (removing the file),
   and writes its own pid and start time into ``meta.json``, which makes the
   session "running" instead of "starting"; one that cannot (no meta, a
   write that fails) writes a status saying the worker never ran (126), so
   the session is dead at once rather than "starting" for a minute;
2. builds the worker's argv from the command ``start`` kept in the meta
   (``records.worker_argv``: the placeholders replaced, the prompt on stdin
   where the argv does not carry it) and runs it through ``looop.group``:
   its own process group, cwd the data dir, stdin the prompt or
   ``/dev/null``, stdout and stderr copied into the capped ``output.log``
   (``workers.transcript``) and read for a spend the runner reports
   (``workers.spend``);
3. once the worker exited 0 or ended itself with ``_ kill``, runs the
   post-conditions it was started with (``workers.verify``: ``--verify``),
   the session still running meanwhile;
4. on every way out writes ``status.json`` (with the verdict, if any):

   ============================  =========  ==============================
   how it ended                  state      exit_code, why
   ============================  =========  ==============================
   the worker exited             exited     its status (signal N: 128+N)
   ``_ kill`` (SIGUSR1: "done")  exited     0, ``reason: done``
   the timeout                   killed     124, ``reason: timeout``
   SIGTERM/INT/HUP (a kill,      killed     128+N, ``reason: signal``
   ``systemctl stop``, down)
   the command cannot start      exited     127 (not found) or 126
   its record fails once it ran  killed     137, ``reason: record failed``
   ============================  =========  ==============================

   then touches ``sessions/.changed`` so a waiting root agent wakes at once
   (``agent.wait`` watches ``sessions/``), and exits 0: the supervisor did
   its job, whatever the worker's fate, so a unit never lists as failed.

A supervisor killed outright (SIGKILL) writes nothing; its session is then
judged by its pid, which is gone: dead, and its worker's process group is
killed by the run's lifeline (``looop.group``). Under systemd the unit's stop ends
whatever is left in its cgroup; without it, whatever left the process group
(``setsid``) is out of reach, as the README says.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import time
from pathlib import Path
from typing import Any

from looop import fs, group
from looop.data import sessions
from looop.data.sessions import State
from looop.errors import NOT_FOUND, TIMED_OUT, LooopError, os_error_line
from looop.paths import SESSION_ENV, Paths
from looop.signals import STOP_SIGNALS
from looop.workers import records, spend, transcript, verify

DONE = signal.SIGUSR1  # what ``_ kill`` sends: the worker says its task is done
SIGNALS = (*STOP_SIGNALS, DONE)
GRACE = 5.0  # from SIGTERM to SIGKILL of the worker's group


def supervise(paths: Paths, wid: str) -> int:
    session = paths.sessions / wid
    try:
        meta, env = _take_over(session, wid)
    except (OSError, LooopError) as exc:
        _not_taken(paths, session, exc)
        raise
    template = [str(word) for word in meta["cmd"]]
    argv, on_stdin = records.worker_argv(template, session, wid)
    timeout = meta.get("timeout") or 0
    sessions.poke(paths.sessions)
    out = transcript.Writer(session / sessions.OUTPUT)
    out.note(f"{wid} started: {shlex.join(template)}" + (" < prompt.md" if on_stdin else ""))

    ran: list[int] = []
    spent = spend.Reader(paths, wid, meta.get("runner") or os.path.basename(template[0]))

    def output(data: bytes) -> None:
        out.write(data)
        spent.feed(data)

    def started(pgid: int) -> None:
        ran.append(pgid)
        meta["pgid"] = pgid
        sessions.write_meta(session, meta)

    stdin = _prompt_in(session) if on_stdin else None
    try:
        try:
            end = group.run(
                argv,
                cwd=paths.data_dir,
                env=env,
                timeout=float(timeout),
                on_output=output,
                on_start=started,
                signals=SIGNALS,
                grace=GRACE,
                stdin=stdin,
            )
        except OSError as exc:
            if ran:  # it ran, but its record failed: ``group.run`` ended it (SIGKILL)
                out.note(f"ended: its record failed: {os_error_line(exc)}")
                code, state, reason = 128 + signal.SIGKILL, State.KILLED, "record failed"
            else:
                code = NOT_FOUND if isinstance(exc, FileNotFoundError) else 126
                out.note(f"cannot run {argv[0]}: {exc.strerror or exc}")
                state, reason = State.EXITED, "not run"
            status = sessions.write_status(session, state, code, reason=reason)
        else:
            state, code, reason = _ending(end)
            checks = verify.after(meta, (state, code), paths.data_dir, env, out)
            status = sessions.write_status(session, state, code, reason=reason, **checks)
        for said in spent.close():
            out.note(said)
        out.note(_said(status))
    finally:
        if stdin is not None:
            os.close(stdin)
        out.close()
        sessions.poke(paths.sessions)
    return 0


def _prompt_in(session: Path) -> int | None:
    """The prompt file open for the worker's stdin; None (``/dev/null``) if it cannot be."""
    try:
        return fs.open_regular(session / sessions.PROMPT)[0]
    except OSError:
        return None


def _take_over(session: Path, wid: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The session's meta, now with our pid, and the environment ``start`` left."""
    meta = sessions.read_meta(session)
    if meta is None or not isinstance(meta.get("cmd"), list):
        raise LooopError(f"{session}: no meta.json with a command to run")
    if meta.get("v") != sessions.VERSION:
        raise LooopError(f"{session}: a meta.json of another format; not run")
    env = records.take_env(session)
    if env is None:
        env = dict(os.environ)
    env[SESSION_ENV] = wid
    meta.update(pid=os.getpid(), started=time.time())
    sessions.write_meta(session, meta)
    return meta, env


def _not_taken(paths: Paths, session: Path, exc: OSError | LooopError) -> None:
    """Say in the status that the worker never ran, so the session is dead at once.

    Without it, a meta with no pid reads as "starting" until ``START_GRACE``
    has passed, and a new start of the id is refused meanwhile.
    """
    why = os_error_line(exc) if isinstance(exc, OSError) else str(exc)
    with contextlib.suppress(OSError):
        sessions.write_status(session, State.EXITED, 126, reason="not run", error=why)
        sessions.poke(paths.sessions)


def _ending(end: group.Outcome) -> tuple[str, int, str]:
    if end.stopped_by == DONE:
        return State.EXITED, 0, "done"
    if end.timed_out:
        return State.KILLED, TIMED_OUT, "timeout"
    if end.stopped_by is not None:
        return State.KILLED, 128 + end.stopped_by, signal.Signals(end.stopped_by).name
    return State.EXITED, end.status, "exit"


def _said(status: dict[str, Any]) -> str:
    return f"{status['state']} (exit {status['exit_code']}, {status.get('reason', '')})"
