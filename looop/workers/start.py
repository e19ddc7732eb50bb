"""``looop _ worker start``: check, write the session, hand it to a supervisor, return.

In order, and nothing is written before the checks pass:

1. the id (``data.ids``), then the command (``--runner``'s, else
   ``worker.runner``'s, else ``worker.command``: ``looop.runners``) and its
   program on the ``PATH`` the worker will get (``NotFound``, exit 127:
   nothing started, no session directory left), then the ``--verify``
   commands (``workers.verify``: their sizes, and ``_ run``'s guard rail),
   then the sizes: the task within ``worker.max_prompt_bytes``, the
   environment within what the supervisor reads (``workers.records``);
2. under ``sessions/.start.lock`` (a ``flock``, so two starts never both
   pass the next checks): the id's session must not be alive, fewer than
   ``worker.max_live`` sessions may be (the refusal names them; a
   ``sessions/`` that cannot be listed refuses too), and a session there
   that cannot be judged (unknown: an unreadable meta, one of another
   format) is refused with the reason, never cleared;
3. the session's files: a ``.starting`` marker, a first ``meta.json``
   (``pid: null``: "starting", and dead if no supervisor ever writes its
   pid; the command as configured, never the brief, and the runner's name), ``prompt.md`` (the
   contract, then the task) and ``env.json`` (the caller's environment, for
   the supervisor), in that order (``data.sessions``, ``workers.records``).
   A new session is written under a temp name and renamed into place
   whole. A dead session's directory is reused: its old status goes, its
   transcript is started afresh by the supervisor, and its asks stay until
   the reaper takes them;
4. the supervisor (``looop _ supervise ID``, by ``entry``'s lean argv)
   starts as a transient unit under a systemd user manager, else detached
   with python-daemon (``worker.supervisor`` forces either; ``auto`` asks
   whether a user manager answers, with a connect to its socket, no process
   started). A unit that can supervise the worker alone gets the settings
   for it (``workers.unit.properties``), and the supervisor execs the worker.

A start that fails leaves no new session directory (the supervisor's log
goes with it), and a reused one dead, with a status saying the worker never
ran (126). One killed part-way leaves either a staged temp directory, which
the next start sweeps, or its marker, and the next start of that id, under
the lock (so no start is part-way), closes what it left while the meta has
no supervisor pid and no supervisor of it runs: nobody took the session,
its environment does not stay on disk, and it is dead, never "starting" or
"unknown" for good. Rejected: the marker as the "starting" judgment of
every reader, which cannot tell a killed start from a supervisor that has
not run yet once the start lock is released.

``start`` returns once the supervisor is executed, never waiting for the
worker, and never leaves it holding the caller's stdout or stderr (the
reference's ``$(looop _ worker start ...)`` hung for the worker's life).
The supervisor writes its own pid into the meta: under systemd nobody else
knows it at that point (asking the manager would cost a second round trip
on every start), and detached, two writers of one meta would race. Until
it does, a moment later, the meta says ``pid: null`` and the session is
"starting" (``data.sessions``).

The program check uses the caller's ``PATH`` for both supervisors: the
supervisor runs the worker with the caller's environment, wherever the
supervisor itself runs.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from looop import fs, lockfile, proc, runners
from looop.config import Config
from looop.data import ids, journal, sessions
from looop.data.layout import ensure_layout
from looop.data.sessions import (
    ENV,
    PROMPT,
    START_LOCK,
    STARTING,
    SUPERVISOR_LOG,
    SUPERVISOR_PID,
    State,
)
from looop.errors import NOT_FOUND, LooopError, os_error_line
from looop.paths import SESSION_ENV, Paths, child_environment
from looop.workers import records

SYSTEMD, DETACHED = "systemd", "detached"


class Started:
    """What a start did: the worker's id, its session and who supervises it."""

    __slots__ = ("id", "pid", "session", "supervisor", "unit")

    def __init__(
        self, wid: str, session: Path, supervisor: str, unit: str | None, pid: int | None
    ) -> None:
        self.id, self.session, self.supervisor, self.unit, self.pid = (
            wid,
            session,
            supervisor,
            unit,
            pid,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "session": str(self.session),
            "supervisor": self.supervisor,
            "unit": self.unit,
            "pid": self.pid,
        }


def supervisor_for(choice: str) -> str:
    """systemd or detached, for the ``worker.supervisor`` setting."""
    if choice in (SYSTEMD, DETACHED):
        return choice
    from looop.service import systemd

    return SYSTEMD if systemd.manager_answers() else DETACHED


def find_program(template: tuple[str, ...], env: Mapping[str, str]) -> str:
    """Where the worker command's program is, as a start looks it up (``env``'s PATH).

    LooopError otherwise: an empty command (exit 1), a program not on PATH
    (127). ``doctor`` asks the same question here, so it cannot pass where a
    start fails.
    """
    if not template:
        raise LooopError("worker.command is empty: set it with looop config set worker.command")
    found = shutil.which(template[0], path=env.get("PATH", os.defpath))
    if found is None:
        raise LooopError(f"{template[0]!r} is not on PATH", NOT_FOUND)
    return found


def start(
    paths: Paths,
    cfg: Config,
    wid: str,
    task: str,
    timeout: float | None,
    reason: str | None = None,
    checks: tuple[str, ...] = (),
    *,
    runner: str | None = None,
) -> Started:
    """Start worker ``wid`` on ``task`` with ``runner`` (None: the default); journaled
    (``worker start ID: reason``) once started.

    ``checks``: its post-conditions (``--verify``, ``workers.verify``).
    """
    ids.check("worker", wid)
    env = child_environment(paths, os.environ)
    env[SESSION_ENV] = wid
    try:
        name, template = runners.command_for(cfg, runner)
        find_program(template, env)
    except LooopError as exc:
        raise LooopError(f"{exc}; nothing started", exc.exit_code) from None
    commands: list[str] = []
    if checks:
        from looop.workers import verify  # its runner (``looop.group``) only when there are any

        commands = verify.checked(checks, paths.data_dir, env)
    prompt = records.encoded_prompt(task, cfg.worker_max_prompt_bytes, commands)
    env_data = records.encoded_env(env)
    supervisor = supervisor_for(cfg.worker_supervisor)
    meta: dict[str, Any] = {
        "v": sessions.VERSION,
        "id": wid,
        "pid": None,
        "started": time.time(),
        "cmd": list(template),  # as configured: the supervisor substitutes it
        "runner": name,  # None: worker.command
        "supervisor": supervisor,
        "timeout": cfg.worker_timeout if timeout is None else timeout,
        # Its health's knobs, kept as it started, so no reader of its health loads the config.
        "quiet_after": cfg.worker_quiet_after,
        "stuck_after": cfg.worker_stuck_after,
        "stuck_kill": cfg.worker_stuck_kill,
    }
    if commands:
        meta.update(verify=commands, verify_timeout=cfg.run_timeout)
    if supervisor == SYSTEMD:
        from looop.service import units

        meta["unit"] = units.worker_unit(paths, wid)
    ensure_layout(paths)
    with _start_lock(paths):
        session = paths.sessions / wid
        _sweep_staged(paths.sessions)
        _close_abandoned(session)
        _admit(paths, wid, cfg.worker_max_live)
        fresh = _write_session(paths, session, (meta, prompt, env_data))
        try:
            started = _launch(paths, wid, session, supervisor, meta)
        except BaseException as exc:
            _undo(session, fresh, exc)
            raise
        with contextlib.suppress(OSError):  # a marker left is judged with the meta's pid
            os.unlink(session / STARTING)
        sessions.poke(paths.sessions)
        journal.append(paths, f"worker start {wid}", reason=reason)
        return started


def _write_session(
    paths: Paths, session: Path, records_: tuple[dict[str, Any], bytes, bytes]
) -> bool:
    """Write the session's files, marked as starting; True when its directory is new.

    A new session is written in a directory of a temp name (``fs``'s
    ``.<id>.<pid>-<hex>.tmp``, not a session to any reader) and renamed into
    place whole: a start killed part-way leaves no half session that would
    read as unknown, only a temp that the next start sweeps. A dead
    session's directory is reused in place: its meta first (then it is
    starting), the prompt and environment after.
    """
    meta, prompt, env = records_
    if not _session_dir(session):
        staged = paths.sessions / f".{session.name}.{os.getpid()}-{os.urandom(3).hex()}.tmp"
        os.mkdir(staged, 0o700)
        try:
            _fill(staged, meta, prompt, env)
            os.rename(staged, session)
        except OSError as exc:
            _remove_flat(staged)
            if exc.filename in (None, str(staged)):  # the temp name is gone: name the session
                exc.filename, exc.filename2 = str(session), None
            raise
        except BaseException:
            _remove_flat(staged)
            raise
        return True
    try:
        _mark(session)
        sessions.clear_status(session)
        _fill(session, meta, prompt, env)
    except BaseException as exc:
        _undo(session, False, exc)
        raise
    return False


def _fill(session: Path, meta: dict[str, Any], prompt: bytes, env: bytes) -> None:
    _mark(session)
    sessions.write_meta(session, meta)  # first: "starting", then dead if never handed on
    records.write_prompt(session, prompt)
    records.write_env(session, env)


# Runs ``looop`` with argv[1] (os.pathsep-separated) before sys.path, and the rest of argv.
BOOT = (
    "import os, sys; sys.path[:0] = sys.argv.pop(1).split(os.pathsep); "
    "from looop.__main__ import main; main()"
)


def entry(*args: str) -> list[str]:
    """The argv of ``looop ARGS...`` for what runs as long as a worker: its supervisor.

    This interpreter, isolated and without ``site`` (``-I -S``), given the
    directory looop was loaded from and this process's own ``sys.path`` (a
    check's guard rail imports a dependency): no ``site`` at start, no
    ``.pth`` files run, no console-script wrapper, only the modules the
    command imports; several MiB less for each live worker than
    ``paths.looop_command``'s script.
    """
    import looop

    package_dir = os.path.dirname(os.path.dirname(os.path.abspath(looop.__file__)))
    found = [package_dir, *(p for p in sys.path[1:] if p and os.path.isabs(p))]
    return [sys.executable, "-I", "-S", "-c", BOOT, os.pathsep.join(dict.fromkeys(found)), *args]


def _launch(
    paths: Paths, wid: str, session: Path, supervisor: str, meta: dict[str, Any]
) -> Started:
    command = entry("_", "supervise", wid)
    if supervisor == SYSTEMD:
        from looop.service import systemd
        from looop.workers import unit

        where = {
            "LOOOP_DATA_DIR": str(paths.data_dir),
            "LOOOP_CONFIG": str(paths.config_file),
            "LOOOP_RUNTIME_DIR": str(paths.runtime_dir),
        }
        props = (
            unit.properties(session, meta, entry("_", "ended", wid))
            if unit.supervises(meta)
            else systemd.WORKER_PROPERTIES
        )
        systemd.run_transient(meta["unit"], command, where, props)
        return Started(wid, session, supervisor, meta["unit"], None)
    from looop.service import detached

    env = child_environment(paths, os.environ)
    pid = detached.spawn(command, session / SUPERVISOR_LOG, env, str(paths.data_dir))
    # So a supervisor that dies before taking the session is judged dead at
    # once, not "starting" for a minute. Best effort: the grace still holds.
    with contextlib.suppress(OSError):
        fs.write_whole(session / SUPERVISOR_PID, f"{pid}\n".encode())
    return Started(wid, session, supervisor, None, pid)


def _mark(session: Path) -> None:
    """``sessions/<id>/.starting``: this start has not handed the session on yet."""
    os.close(os.open(session / STARTING, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))


def close_abandoned(paths: Paths, session: Path) -> None:
    """``_close_abandoned`` under the start lock: for ``_ worker kill`` of a "starting" session."""
    with _start_lock(paths):
        _close_abandoned(session)


def _close_abandoned(session: Path) -> None:
    """Close what a start killed before handing the session on left behind.

    Under the start lock no other start is part-way, so a marker means its
    start is gone; while the meta has no supervisor pid and no detached
    supervisor of it runs, nobody took the session: its prompt and
    environment go, and a status says it never ran, so it is dead (never
    unknown) and its id free again.
    """
    if not os.path.lexists(session / STARTING):
        return
    meta = sessions.read_meta(session)
    if meta is not None and meta.get("pid") is not None:
        return  # handed on: the supervisor wrote its pid
    if sessions.inspect(session).state == State.STARTING and not _gone(session):
        return  # its supervisor runs and has yet to take it
    _undo(session, False, LooopError("its start was interrupted"))


def _gone(session: Path) -> bool:
    """Is the session's detached supervisor on record and ended? (No record: a killed start.)"""
    try:
        pid = int(fs.read_small(session / SUPERVISOR_PID, limit=64))
    except (OSError, ValueError):
        return True
    return not proc.alive(pid)


def _start_lock(paths: Paths) -> contextlib.AbstractContextManager[bool]:
    return lockfile.held(paths.sessions / START_LOCK)


def _admit(paths: Paths, wid: str, max_live: int) -> None:
    live = sessions.live(paths.sessions, strict=True)
    if any(s.id == wid for s in live):
        raise LooopError(f"worker {wid} is already {_state_of(live, wid)}; kill it first")
    if max_live and len(live) >= max_live:
        names = ", ".join(s.id for s in live)
        raise LooopError(
            f"{len(live)} workers are live (max_live {max_live}): {names}; "
            "wait for one to end or kill one"
        )
    session = paths.sessions / wid
    if os.path.lexists(session):
        found = sessions.inspect(session)
        if found.state == State.UNKNOWN:
            raise LooopError(
                f"worker {wid}: its session cannot be judged ({found.why}); not touched: "
                f"remove {session} to reuse the id"
            )


def _state_of(live: list[sessions.Session], wid: str) -> str:
    return next(s.state for s in live if s.id == wid)


def _session_dir(session: Path) -> bool:
    """Is there a session directory to reuse? A link or a file there is refused."""
    if not os.path.lexists(session):
        return False
    if session.is_symlink() or not session.is_dir():
        raise LooopError(f"{session} is not a directory; not starting a worker there")
    return True


def _undo(session: Path, fresh: bool, why: BaseException) -> None:
    """A start that failed leaves no new session behind, and no live-looking one.

    A new directory goes whole (everything in it is this start's, the
    supervisor's log included). A reused one keeps its meta and gets a
    status saying the worker never ran: dead, never unknown.
    """
    if fresh:
        _remove_flat(session)
        return
    for name in (ENV, PROMPT, SUPERVISOR_PID):
        with contextlib.suppress(OSError):
            os.unlink(session / name)
    with contextlib.suppress(OSError):
        error = os_error_line(why) if isinstance(why, OSError) else str(why) or repr(why)
        sessions.write_status(session, State.EXITED, 126, reason="not run", error=error)
    with contextlib.suppress(OSError):
        os.unlink(session / STARTING)


def _remove_flat(directory: Path) -> None:
    """Remove a directory this start made, and the files in it (it holds nothing else)."""
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in list(entries):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
    with contextlib.suppress(OSError):
        os.rmdir(directory)


def _sweep_staged(sessions_dir: Path) -> None:
    """Remove the staged sessions (``_write_session``) of starts that were killed."""
    found: list[os.DirEntry[str]] = []  # sessions/ that cannot be listed: nothing to sweep now
    with contextlib.suppress(OSError), os.scandir(sessions_dir) as entries:
        found = [e for e in entries if fs.temp_writer_gone(e.name)]
    for entry in found:
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                _remove_flat(Path(entry.path))
