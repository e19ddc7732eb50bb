"""The worker supervisor: ``looop _ supervise ID``, one process per worker (SPEC §12).

The same program runs under both ways of starting a worker (``workers.start``):
as the main process of a transient systemd unit, or detached with
python-daemon where no user manager answers. It is started lean
(``start.entry``: ``-I -S``, none of the CLI), since it lives as long as its
worker. Under a unit it takes the session over (step 1) and, when nothing
needs watching while the worker runs (``workers.unit.supervises``: no
``--verify``, no ``worker.stuck_kill``), execs the worker in its own place
and leaves the rest to the unit: systemd is then the supervisor
(``workers.unit``), and no looop process lives as long as the worker.
Otherwise it

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
   stuck, with ``stuck_kill``    killed     124, ``reason: stuck``, ``idle``
   SIGTERM/INT/HUP (a kill,      killed     128+N, ``reason: signal``
   ``systemctl stop``, down)
   the command cannot start      exited     127 (not found) or 126
   its record fails once it ran  killed     137, ``reason: record failed``
   ============================  =========  ==============================

   then touches ``sessions/.changed`` so a waiting root agent wakes at once
   (``agent.wait`` watches ``sessions/``), and exits 0: the supervisor did
   its job, whatever the worker's fate, so a unit never lists as failed.

**A stuck worker** (``data.health.Health``: no output and no pending ask
for ``worker.stuck_after``) is ended here when its session started with
``worker.stuck_kill`` on, by ``group.run``'s watchdog (``_stuck_watch``):
the supervisor is the one process that lives exactly as long as the worker
and already owns its output, its ending and its status, so the kill needs no
other process awake (rejected: the pulse, which may be down or beat a
minute late, and ``_ wait``, which runs only while an agent waits). The
watchdog judges with the same ``Verdict.health`` every listing shows,
wakes only at the moment the worker would turn stuck (its last output plus
``stuck_after``), reads the mailbox only then, and never ends a worker on
evidence it cannot read. The kill is journaled (``worker kill ID: stuck,
...``) and recorded as a ``worker_killed`` event, as ``_ worker kill`` is.

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

from looop import fs, proc
from looop.data import health, sessions
from looop.data.health import Health
from looop.data.sessions import State
from looop.errors import NOT_FOUND, TIMED_OUT, LooopError, os_error_line
from looop.paths import SESSION_ENV, Paths
from looop.signals import STOP_SIGNALS
from looop.workers import records, transcript, unit

TYPE_CHECKING = False  # not typing's: this process lives as long as its worker
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from looop import group

DONE = signal.SIGUSR1  # what ``_ kill`` sends: the worker says its task is done
SIGNALS = (*STOP_SIGNALS, DONE)
GRACE = 5.0  # from SIGTERM to SIGKILL of the worker's group
STUCK = "stuck"  # the status's reason for a stuck worker ended (``worker.stuck_kill``)


def supervise(paths: Paths, wid: str) -> int:
    session = paths.sessions / wid
    try:
        meta, env = _take_over(session, wid)
    except (OSError, LooopError) as exc:
        _not_taken(paths, session, exc)
        raise
    template = [str(word) for word in meta["cmd"]]
    argv, on_stdin = records.worker_argv(template, session, wid)
    sessions.poke(paths.sessions)
    out = transcript.Writer(session / sessions.OUTPUT)
    out.note(f"{wid} started: {shlex.join(template)}" + (" < prompt.md" if on_stdin else ""))
    if isinstance(meta.get("unit"), str) and unit.supervises(meta):
        out.close()  # the unit's own stdout and stderr append to it from here on
        return _become(paths, session, argv, on_stdin, env)
    return _watch(paths, wid, meta, env, (argv, on_stdin), out)


def _watch(
    paths: Paths,
    wid: str,
    meta: dict[str, Any],
    env: dict[str, str],
    command: tuple[list[str], bool],
    out: transcript.Writer,
) -> int:
    """Run the worker (``command``: its argv, and whether the prompt is its stdin) to its end."""
    from looop import group  # only a supervisor that watches its worker runs it
    from looop.workers import spend, verify

    session, timeout = paths.sessions / wid, meta.get("timeout") or 0
    argv, on_stdin = command
    ran: list[int] = []
    spent = spend.Reader(paths, wid, meta.get("runner") or os.path.basename(str(meta["cmd"][0])))

    def output(data: bytes) -> None:
        out.write(data)
        spent.feed(data)

    def started(pgid: int) -> None:
        ran.append(pgid)
        meta["pgid"] = pgid
        sessions.write_meta(session, meta)

    stdin = _prompt_in(session) if on_stdin else None
    stuck = _stuck_watch(paths, session, wid, meta)
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
                watchdog=stuck,
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
            idle = stuck.idle if stuck is not None and reason == STUCK else None
            why = {"idle": idle} if reason == STUCK else {}
            checks = verify.after(meta, (state, code), paths.data_dir, env, out)
            status = sessions.write_status(session, state, code, reason=reason, **why, **checks)
            if reason == STUCK:
                _journal_stuck(paths, wid, idle)
        for said in spent.close():
            out.note(said)
        out.note(_said(status))
    finally:
        if stdin is not None:
            os.close(stdin)
        out.close()
        sessions.poke(paths.sessions)
    return 0


def _become(
    paths: Paths, session: Path, argv: list[str], on_stdin: bool, env: dict[str, str]
) -> int:
    """Exec the worker in this process, its unit its supervisor (``workers.unit``).

    Returns only when it cannot be run: then the status says so (127 or 126).
    """
    if on_stdin and (prompt := _prompt_in(session)) is not None:
        os.dup2(prompt, 0)
        os.close(prompt)
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):  # Python ignores them; a worker must not
        signal.signal(sig, signal.SIG_DFL)
    try:
        os.chdir(paths.data_dir)
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        code = NOT_FOUND if isinstance(exc, FileNotFoundError) else 126
        with contextlib.suppress(OSError):
            os.write(2, f"[looop] cannot run {argv[0]}: {exc.strerror or exc}\n".encode())
        sessions.write_status(session, State.EXITED, code, reason="not run")
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
    if isinstance(meta.get("unit"), str) and unit.supervises(meta):
        meta["cgroup"] = proc.own_cgroup()  # it is ending while its ExecStopPost= runs there
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


class _StuckWatch:
    """``group.run``'s watchdog: None once the worker is stuck, else when to look again."""

    def __init__(self, paths: Paths, session: Path, wid: str, stuck_after: float) -> None:
        self.paths, self.session, self.wid, self.stuck_after = paths, session, wid, stuck_after
        self.idle: float | None = None  # how long it had shown no life when found stuck

    def __call__(self) -> float | None:
        found = sessions.inspect(self.session)
        stuck_at, now = found.stuck_at(), time.time()
        if stuck_at is None:
            return self.stuck_after  # no evidence of its last output: never stuck on none
        if now < stuck_at:
            return stuck_at - now
        from looop.data import mailbox  # only when the worker would be stuck

        try:
            asks = mailbox.pending(self.paths)
        except OSError:
            return self.stuck_after  # a mailbox that cannot be read is no evidence either
        health, self.idle = found.health(any(a.get("worker") == self.wid for a in asks), now)
        return None if health == Health.STUCK else self.stuck_after  # waiting: answers stir


def _stuck_watch(paths: Paths, session: Path, wid: str, meta: dict[str, Any]) -> _StuckWatch | None:
    """The watchdog of a worker started with ``worker.stuck_kill`` (and a ``stuck_after``)."""
    stuck_after = health.knobs(meta)[1]
    return (
        _StuckWatch(paths, session, wid, stuck_after)
        if meta.get("stuck_kill") is True and stuck_after > 0
        else None
    )


def _journal_stuck(paths: Paths, wid: str, idle: float | None) -> None:
    """The journal line and the event of a stuck worker's end (as ``_ worker kill``'s)."""
    from looop.data import events, journal
    from looop.say import duration

    quiet = "" if idle is None else f", no output for {duration(idle)}"
    with contextlib.suppress(OSError):  # the status says it anyway
        journal.append(paths, f"worker kill {wid}", reason=f"stuck{quiet}")
    events.record(paths.events, "worker_killed", id=wid, reason=STUCK, idle=idle)


def _ending(end: group.Outcome) -> tuple[str, int, str]:
    if end.stopped_by == DONE:
        return State.EXITED, 0, "done"
    if end.by_watchdog:
        return State.KILLED, TIMED_OUT, STUCK
    if end.timed_out:
        return State.KILLED, TIMED_OUT, "timeout"
    if end.stopped_by is not None:
        return State.KILLED, 128 + end.stopped_by, signal.Signals(end.stopped_by).name
    return State.EXITED, end.status, "exit"


def _said(status: dict[str, Any]) -> str:
    return f"{status['state']} (exit {status['exit_code']}, {status.get('reason', '')})"
