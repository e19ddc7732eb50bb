"""``looop _ worker start``: check, write the session, hand it to a supervisor, return.

In order, and nothing is written before the checks pass:

1. the id (``data.ids``), then ``worker.command``'s program on the ``PATH``
   the worker will get (``NotFound``, exit 127: nothing started, no session
   directory left);
2. under ``sessions/.start.lock`` (a ``flock``, so two starts never both
   pass the next checks): the id's session must not be alive, and fewer
   than ``worker.max_live`` sessions may be (the refusal names them);
3. ``sessions/<id>/`` gets a ``.starting`` marker, then a first
   ``meta.json`` (``pid: null``: "starting", and dead if no supervisor ever
   writes its pid), ``prompt.md`` (the contract, then the task) and
   ``env.json`` (the caller's environment, for the supervisor), in that
   order (``data.sessions``, ``workers.records``). A dead session's id is reused: its old
   status goes, its transcript is started afresh by the supervisor, and its
   asks stay until the reaper takes them;
4. the supervisor (``looop _ supervise ID``) starts as a transient unit under
   a systemd user manager, else detached with python-daemon
   (``worker.supervisor`` forces either; ``auto`` asks whether a user
   manager answers, with a connect to its socket, no process started).

A start that fails removes what it wrote (and a new session directory);
one killed part-way leaves its marker, and the next start of that id,
under the lock (so no start is part-way), clears what it left while the
meta has no supervisor pid: nobody took the session, and its environment
does not stay on disk. Rejected: the marker as the "starting" judgment of
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
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from looop import fs, lockfile
from looop.config import Config
from looop.data import ids, journal, sessions
from looop.data.layout import ensure_layout
from looop.data.sessions import (
    ENV,
    META,
    PROMPT,
    START_LOCK,
    STARTING,
    SUPERVISOR_LOG,
    SUPERVISOR_PID,
)
from looop.errors import NOT_FOUND, LooopError
from looop.paths import SESSION_ENV, Paths, child_environment, looop_command
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


def substitute(template: tuple[str, ...], prompt: str, prompt_file: Path, wid: str) -> list[str]:
    """``worker.command`` with ``{prompt}``, ``{prompt_file}`` and ``{id}`` replaced per element."""
    values = {"{prompt}": prompt, "{prompt_file}": str(prompt_file), "{id}": wid}
    out = []
    for word in template:
        for key, value in values.items():
            word = word.replace(key, value)
        out.append(word)
    return out


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
) -> Started:
    """Start worker ``wid`` on ``task``; journaled (``worker start ID: reason``) once started."""
    ids.check("worker", wid)
    env = child_environment(paths, os.environ)
    env[SESSION_ENV] = wid
    try:
        template = cfg.worker_command
        find_program(template, env)
    except LooopError as exc:
        raise LooopError(f"{exc}; nothing started", exc.exit_code) from None
    supervisor = supervisor_for(cfg.worker_supervisor)
    ensure_layout(paths)
    with _start_lock(paths):
        session = paths.sessions / wid
        _clear_abandoned(session)
        _admit(paths, wid, cfg.worker_max_live)
        fresh = _session_dir(session)
        try:
            _mark(session)
            sessions.clear_status(session)
            prompt_file = session / PROMPT
            meta: dict[str, Any] = {
                "id": wid,
                "pid": None,
                "started": time.time(),
                "cmd": substitute(template, records.prompt_text(task), prompt_file, wid),
                "supervisor": supervisor,
                "timeout": cfg.worker_timeout if timeout is None else timeout,
            }
            if supervisor == SYSTEMD:
                from looop.service import units

                meta["unit"] = units.worker_unit(paths, wid)
            sessions.write_meta(session, meta)  # first: "starting", then dead if never handed on
            records.write_prompt(session, task)
            records.write_env(session, env)
            started = _launch(paths, wid, session, supervisor, meta)
        except BaseException:
            _undo(session, fresh)
            raise
        with contextlib.suppress(OSError):  # a marker left is judged with the meta's pid
            os.unlink(session / STARTING)
        journal.append(paths, f"worker start {wid}", reason=reason)
        return started


def _launch(
    paths: Paths, wid: str, session: Path, supervisor: str, meta: dict[str, Any]
) -> Started:
    command = [*looop_command(), "_", "supervise", wid]
    if supervisor == SYSTEMD:
        from looop.service import systemd

        where = {
            "LOOOP_DATA_DIR": str(paths.data_dir),
            "LOOOP_CONFIG": str(paths.config_file),
            "LOOOP_RUNTIME_DIR": str(paths.runtime_dir),
        }
        systemd.run_transient(meta["unit"], command, where)
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


def _clear_abandoned(session: Path) -> None:
    """Clear what a start killed before handing the session on left behind.

    Under the start lock no other start is part-way, so a marker means its
    start is gone; while the meta has no supervisor pid, nobody took the
    session: its meta ("starting"), prompt and environment go, and the id
    is free again.
    """
    if not os.path.lexists(session / STARTING):
        return
    meta = sessions.read_meta(session)
    if meta is not None and meta.get("pid") is not None:
        return  # handed on: the supervisor wrote its pid
    _undo(session, fresh=False)


def _start_lock(paths: Paths) -> contextlib.AbstractContextManager[bool]:
    return lockfile.held(paths.sessions / START_LOCK)


def _admit(paths: Paths, wid: str, max_live: int) -> None:
    live = sessions.live(paths.sessions)
    if any(s.id == wid for s in live):
        raise LooopError(f"worker {wid} is already {_state_of(live, wid)}; kill it first")
    if max_live and len(live) >= max_live:
        names = ", ".join(s.id for s in live)
        raise LooopError(
            f"{len(live)} workers are live (max_live {max_live}): {names}; "
            "wait for one to end or kill one"
        )


def _state_of(live: list[sessions.Session], wid: str) -> str:
    return next(s.state for s in live if s.id == wid)


def _session_dir(session: Path) -> bool:
    """Make the session directory; True when it is new. A link or a file there is refused."""
    try:
        os.mkdir(session, 0o700)
        return True
    except FileExistsError:
        pass
    if session.is_symlink() or not session.is_dir():
        raise LooopError(f"{session} is not a directory; not starting a worker there")
    return False


def _undo(session: Path, fresh: bool) -> None:
    """A start that failed leaves nothing behind in a new session, and no live-looking meta."""
    for name in (ENV, META, PROMPT, STARTING):
        with contextlib.suppress(OSError):
            os.unlink(session / name)
    if fresh:
        with contextlib.suppress(OSError):
            os.rmdir(session)
