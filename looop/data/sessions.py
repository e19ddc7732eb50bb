"""The worker session's one owner: its files, its states, its judgment, its listing.

A session is ``sessions/<id>/`` holding ``meta.json`` (``META``: ``id``,
``pid``, ``started``, ``cmd``, and ``unit``, ``timeout``, ``supervisor``,
``pgid``, ``cgroup``; the pid is the supervisor's, or the worker it exec'd)
and, once it ends, ``status.json`` (``STATUS``: ``state``, one of
``State.ENDED``, ``exit_code``, ``ended`` and why), beside the workers
room's ``prompt.md``, ``env.json``, ``output.log`` and ``supervisor.log``,
and ``inbox/`` (the messages ``_ tell`` queues, ``data.inbox``'s). Every
name is defined here, once, and so are the meta and status writes
(``write_meta``, ``write_status``): whole files (``fs.write_whole``), so a
reader or the reaper never sees half a record. ``sessions/.changed``
(``CHANGED``) is rewritten by ``poke`` whenever a session starts or ends, so
``_ wait``, which watches ``sessions/`` for that one name, wakes at once; its
value is the session ``generation`` a cursor carries.

A session's state is one of ``State.ALL``: ``starting`` (a meta whose
``pid`` is null: ``_ worker start`` writes it before the supervisor runs,
and the supervisor writes its pid; alive for ``START_GRACE`` seconds),
``running`` (its pid runs and started no later than the session did, or,
its detached supervisor killed outright, the worker's recorded process
group still runs: ``proc.group_runs_since``, so ``_ worker kill`` and
``down`` still find it and end it; or its unit's ``cgroup`` is populated:
its end is being recorded), ``exited`` or ``killed`` (what its status
says), ``dead`` (no status, and its pid is gone, a zombie, or now belongs
to a later process: pids are reused and the start time tells them apart)
and ``unknown`` (its meta cannot be read, or is of a format this looop does
not know: ``VERSION``). Its liveness follows from the state: ``ALIVE``,
``DEAD`` or ``UNKNOWN``, and unknown is never treated as dead: a reaper
must never delete blind. A plain class of strings, not ``enum``: ``status``, ``_
state`` and the probes load this module and should not pay for ``enum``.

``judge_at`` is the one judgment, so ``sys-sessions``, ``_ state``,
``status``, the workers' commands, the claims and the reaper can never
disagree about a session. It works on an open directory descriptor because
the reaper must judge exactly the directory it is about to delete, not
whatever a path names a moment later; ``inspect`` and ``scan`` are the
path-based front doors for readers, and ``live`` is the one listing of live
sessions (``_ worker start``'s ``max_live``, ``down``, ``status``, ``_
wait``). ``Session.as_dict`` is the one row every printer of a worker
shows (``workers``, ``_ worker list``, ``_ state``, ``status``; ``rows``
adds each worker's pending ask).

A live worker's health is one judgment too, ``Verdict.health`` and
``stuck_at``; ``data.health`` says how and why.

Nothing here follows a symlink: a link directly under ``sessions/`` is not a
session (unknown), and a ``meta.json`` or ``status.json`` that is a link, a
FIFO or anything but a small regular file is unreadable (read by
``looop.jsonfile.read_object`` relative to the session's directory
descriptor: finite numbers only, so a ``NaN`` in a status is unreadable, and
no such value reaches an output). Meta is read
before anything is called dead, even when the status says the session exited:
without it the directory may not be a session at all. A session whose status
says it ended (and whose meta reads) is judged without asking the process
table, which keeps a scan of thousands of finished sessions cheap.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from pathlib import Path

from looop import fs, jsonfile, proc
from looop.data import health
from looop.data.layout import shown

TYPE_CHECKING = False  # not typing's: the probes' start-up should not pay for it
if TYPE_CHECKING:
    from typing import Any

# The files of sessions/<id>/, and the marker in sessions/ itself.
META, STATUS, PROMPT, ENV = "meta.json", "status.json", "prompt.md", "env.json"
OUTPUT, SUPERVISOR_LOG = "output.log", "supervisor.log"
# A detached supervisor's pid, written by ``_ worker start`` once it has spawned it.
SUPERVISOR_PID = "supervisor.pid"
# sessions/<id>/inbox/<n>.json: a message told (``data.inbox``), moved into read/ once shown.
INBOX, INBOX_READ, MESSAGE_SUFFIX = "inbox", "read", ".json"
CHANGED = ".changed"  # sessions/.changed: rewritten when a session starts or ends
START_LOCK = ".start.lock"  # sessions/.start.lock: held by ``_ worker start``'s checks
STARTING = ".starting"  # sessions/<id>/.starting: its start has not handed it on yet
SPEND = "spend.from"  # who reports the session's spend, the worker or its runner (``data.cost``)
ENDED_BY = "ended-by"  # who stopped a worker its unit supervises: kill or done (``workers.unit``)


class State:
    """A session's state, as ``judge_at`` finds it."""

    STARTING, RUNNING = "starting", "running"
    EXITED, KILLED = "exited", "killed"  # what a supervisor writes into status.json
    DEAD, UNKNOWN = "dead", "unknown"  # no status and no process; meta unreadable
    ALL = (STARTING, RUNNING, EXITED, KILLED, DEAD, UNKNOWN)
    LIVE = (STARTING, RUNNING)
    ENDED = (EXITED, KILLED)


# What the supervisor's post-conditions found (``workers.verify``), in status.json's "verify".
VERDICTS = ("passed", "failed", "skipped")


# A state's liveness: the reaper and the claims ask only this.
ALIVE, DEAD, UNKNOWN = "alive", "dead", "unknown"


def liveness(state: str) -> str:
    if state in State.LIVE:
        return ALIVE
    return UNKNOWN if state == State.UNKNOWN else DEAD


# The meta's format (``v``): 2 since the command is kept as configured and
# substituted by the supervisor; a meta without ``v`` is format 1.
VERSION = 2
# Why a running session runs without its supervisor (``judge_at``).
ORPHANED = "its supervisor is gone; its process group runs"
ENDING = "its worker has ended; its unit is recording how"  # and its ``cgroup`` is populated

# How long a session may stay "starting" (meta written, no supervisor pid yet).
START_GRACE = 60.0

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# How the reaper opens a claim or run record it will judge (fs's rules: no link, no block).
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class Verdict:
    """What ``judge_at`` found.

    Plain slotted classes here and in ``Session`` rather than dataclasses:
    ``_ state`` and the pulse's probes load this module, and ``dataclasses``
    costs them more start-up (it loads ``inspect``) than judging a session.
    """

    __slots__ = ("active", "exit_code", "meta", "state", "status", "why")

    def __init__(
        self,
        state: str,  # one of State.ALL
        exit_code: int | None,
        meta: dict[str, Any] | None,
        status: dict[str, Any] | None,
        why: str,  # for an unknown or dead session: the reason, in a few words
        active: float | None = None,  # a live one's last sign of life (``_active``)
    ) -> None:
        self.state, self.exit_code = state, exit_code
        self.meta, self.status, self.why, self.active = meta, status, why, active

    @property
    def liveness(self) -> str:
        """ALIVE, DEAD or UNKNOWN: ``liveness`` of the state."""
        return liveness(self.state)

    @property
    def ended(self) -> float | None:
        """``ended`` from the status, when it is a finite number."""
        return jsonfile.finite(self.status.get("ended")) if self.status else None

    def stuck_at(self) -> float | None:
        """When (wall clock) a live session turns stuck unless it shows life; None: never."""
        stuck_after = health.knobs(self.meta)[1]
        if self.liveness != ALIVE or self.active is None or stuck_after <= 0:
            return None
        return self.active + stuck_after

    def health(self, asked: bool, now: float) -> tuple[str | None, float | None]:
        """``(health, idle seconds)``: the one judgment of a worker's health (``data.health``).

        ``asked``: it has a pending ask. None for a session that is not alive;
        a live one whose last sign of life is unknown is busy, never stuck on
        evidence nobody has.
        """
        if self.liveness != ALIVE:
            return None, None
        idle = None if self.active is None else round(max(0.0, now - self.active), 3)
        if asked:
            return health.Health.WAITING, idle
        if idle is None or idle < health.knobs(self.meta)[0]:
            return health.Health.BUSY, idle
        stuck_at = self.stuck_at()
        return (
            health.Health.STUCK if stuck_at is not None and now >= stuck_at else health.Health.QUIET
        ), idle

    def session(self, sid: str, path: Path) -> Session:
        return Session(sid, path, self)


class Session(Verdict):
    """A judged session directory: the verdict, and the id and path it was given for."""

    __slots__ = ("id", "path")

    def __init__(self, sid: str, path: Path, verdict: Verdict) -> None:
        v = verdict
        super().__init__(v.state, v.exit_code, v.meta, v.status, v.why, v.active)
        self.id, self.path = sid, path

    def as_dict(
        self, ask: dict[str, Any] | None = None, now: float | None = None
    ) -> dict[str, Any]:
        """The one row every printer of a worker shows (``rows`` gives its first pending ask).

        The id is shown as text (``layout.shown``): a directory name need not
        be UTF-8, and this is printed and published. ``now``: the moment
        the health is judged at (one for a whole listing).
        """
        meta = self.meta or {}
        unit = meta.get("unit")
        verdict = (self.status or {}).get("verify")
        now = time.time() if now is None else now
        health, idle = self.health(ask is not None, now)
        asked = None if ask is None else jsonfile.finite(ask.get("ts"))
        return {
            "id": shown(self.id),
            "state": self.state,
            "alive": self.liveness == ALIVE,
            "started": jsonfile.finite(meta.get("started")),
            "exit_code": self.exit_code,
            "unit": unit if isinstance(unit, str) else None,
            "pending_ask": None if ask is None else shown(str(ask.get("id"))),
            "undelivered": len(message_names(self.path / INBOX)),
            "verify": verdict if verdict in VERDICTS else None,
            "health": health,
            "idle": idle,
            "ask_age": None if asked is None else round(max(0.0, now - asked), 3),
        }

    def summary(self) -> dict[str, Any]:
        """What ``sys-sessions`` publishes as its signal: what should wake the root agent."""
        return {"id": shown(self.id), "state": self.state, "exit_code": self.exit_code}


def message_names(directory: Path) -> list[str]:
    """The messages in a session's ``inbox/`` (told, not yet shown) or ``inbox/read/``, in order.

    The one answer to "what waits in a worker's inbox": ``data.inbox``
    delivers these, every printer of a worker counts them. A missing or
    unreadable directory holds none.
    """
    found = []
    try:
        with os.scandir(directory) as it:
            for entry in it:
                number = entry.name.removesuffix(MESSAGE_SUFFIX)
                if number != entry.name and number.isascii() and number.isdigit():
                    found.append((int(number), entry.name))
    except OSError:
        return []
    return [name for _, name in sorted(found)]


def rows(
    found: list[Session], asks: list[dict[str, Any]], now: float | None = None
) -> list[dict[str, Any]]:
    """``as_dict`` of each session at one moment, with the first of ``asks`` (pending) it raised."""
    first: dict[str, dict[str, Any]] = {}
    for ask in asks:
        worker, ask_id = ask.get("worker"), ask.get("id")
        if isinstance(worker, str) and isinstance(ask_id, str):
            first.setdefault(worker, ask)
    now = time.time() if now is None else now
    return [s.as_dict(first.get(s.id), now) for s in found]


def _record(session_fd: int | None, name: str) -> dict[str, Any] | None:
    """A session file's object (``looop.jsonfile``'s reader); None when it cannot be read."""
    try:
        return jsonfile.read_object(name, dir_fd=session_fd)
    except OSError:
        return None


def _exit_code(status: dict[str, Any]) -> int | None:
    code = status.get("exit_code")
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def judge_at(session_fd: int) -> Verdict:
    """Judge the session whose directory is open as ``session_fd``.

    A session whose meta cannot be read is unknown whatever its status says.
    One that says it exited is then dead without a look at the process table.
    """
    status = _record(session_fd, STATUS)
    meta = _record(session_fd, META)
    if meta is None:
        return Verdict(State.UNKNOWN, None, None, status, f"{META} unreadable")
    version = meta.get("v", 1)
    if type(version) is not int or not 1 <= version <= VERSION:
        why = f"{META} is of format {shown(str(version))[:20]}, not {VERSION} (another looop)"
        return Verdict(State.UNKNOWN, None, meta, status, why)
    if status is not None and status.get("state") in State.ENDED:
        state = status["state"]
        return Verdict(state, _exit_code(status), meta, status, state)
    pid = meta.get("pid")
    started = jsonfile.finite(meta.get("started"))
    if pid is None and "pid" in meta and started is not None:
        # Written by ``_ worker start`` before its supervisor runs, which
        # writes its own pid within moments; one that never does is dead, and
        # so is one whose detached supervisor is known and gone already.
        if _supervisor_gone(session_fd):
            return Verdict(State.DEAD, None, meta, status, "its supervisor ended before taking it")
        if time.time() - started < START_GRACE:
            return Verdict(State.STARTING, None, meta, status, "", started)
        return Verdict(State.DEAD, None, meta, status, "its supervisor never started")
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return Verdict(State.UNKNOWN, None, meta, status, f"{META} has no valid pid")
    if proc.runs_since(pid, started):
        return Verdict(State.RUNNING, None, meta, status, "", _active(session_fd, started))
    cgroup = meta.get("cgroup")
    if isinstance(cgroup, str) and proc.cgroup_populated(cgroup):  # its unit supervised it alone
        return Verdict(State.RUNNING, None, meta, status, ENDING, _active(session_fd, started))
    pgid = meta.get("pgid")
    if type(pgid) is int and meta.get("unit") is None and proc.group_runs_since(pgid, started):
        # Its detached supervisor was killed outright; the worker runs on.
        return Verdict(State.RUNNING, None, meta, status, ORPHANED, _active(session_fd, started))
    return Verdict(State.DEAD, None, meta, status, f"pid {pid} gone or reused")


def _active(session_fd: int, started: float | None) -> float | None:
    """A running worker's last sign of life: ``OUTPUT``'s mtime, or its start if later.

    Its supervisor writes every chunk of its output there, and an answer to
    its ask moves it too (``stir``). One ``fstatat``, nothing read.
    """
    try:
        mtime = os.stat(OUTPUT, dir_fd=session_fd, follow_symlinks=False).st_mtime
    except OSError:
        return started
    return mtime if started is None else max(mtime, started)


def stir(sessions_dir: Path, sid: object) -> None:
    """Say that session ``sid`` shows life now (an answer to its ask): ``OUTPUT``'s mtime.

    Best effort, and nothing followed: no session, no log, no change.
    """
    if not isinstance(sid, str) or not sid or "/" in sid or sid in (".", ".."):
        return
    with contextlib.suppress(OSError):
        fd = os.open(sessions_dir / sid, DIR_FLAGS)
        try:
            os.utime(OUTPUT, dir_fd=fd, follow_symlinks=False)
        finally:
            os.close(fd)


def _supervisor_gone(session_fd: int) -> bool:
    """Did the detached supervisor ``start`` spawned (``SUPERVISOR_PID``) end already?

    Only a pid on record counts: no file (a systemd unit, or a start that has
    not recorded it yet) says nothing, and the start grace decides. A pid
    reused since looks alive: the grace decides then too (never dead by a guess).
    """
    try:
        text = fs.read_small(SUPERVISOR_PID, dir_fd=session_fd, limit=64)
    except OSError:
        return False
    pid = text.strip()
    if not (pid.isdigit() and 0 < len(pid) <= 10):
        return False
    return not proc.alive(int(pid))


def not_a_session(why: str) -> Verdict:
    return Verdict(State.UNKNOWN, None, None, None, why)


def judge(parent_fd: int | None, name: str | Path) -> Verdict:
    """Open ``name`` (relative to ``parent_fd``) without following a link, and judge it."""
    try:
        fd = os.open(name, DIR_FLAGS, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            return not_a_session("not a directory (a link or a file)")
        return not_a_session(f"cannot open: {exc.strerror}")
    try:
        return judge_at(fd)
    finally:
        os.close(fd)


def inspect(path: Path) -> Session:
    """Read one session directory (never following a symlink) and judge it."""
    return judge(None, path).session(path.name, path)


def scan(sessions_dir: Path, strict: bool = False) -> list[Session]:
    """Every session under ``sessions/``, sorted by id.

    Only real directories count: a link or a file there is not a session, and a
    dot name is scratch (the reaper's lock, a start or a removal in progress).
    An entry that fails to be read is left out; the others are still listed.
    A ``sessions/`` that cannot be listed is no session for a reader; with
    ``strict`` (whoever must act on every worker: ``down``, ``max_live``) it
    is that failure, an OSError naming it. Only a missing one is empty.
    """
    try:
        # A reader may look through a linked sessions/ (the reaper refuses to);
        # entries inside it are still judged without following links.
        dir_fd = os.open(sessions_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    except OSError as exc:
        if strict:
            raise fs.named(exc, sessions_dir) from None
        return []
    try:
        names: list[str] = []
        try:
            with os.scandir(dir_fd) as it:
                for entry in it:
                    if entry.name.startswith("."):
                        continue
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            names.append(entry.name)
                    except OSError:
                        continue
        except OSError as exc:
            if strict:
                raise fs.named(exc, sessions_dir) from None
            # the listing broke off: what it gave so far still counts
        found = []
        for name in sorted(names):
            try:
                found.append(judge(dir_fd, name).session(name, sessions_dir / name))
            except OSError:
                continue
        return found
    finally:
        os.close(dir_fd)


def live(sessions_dir: Path, strict: bool = False) -> list[Session]:
    """The live sessions (starting or running) under ``sessions/``, sorted by id: ``scan``'s."""
    return [s for s in scan(sessions_dir, strict) if s.state in State.LIVE]


def poke(sessions_dir: Path) -> None:
    """Say that a session started or ended, in the one place ``_ wait`` watches.

    The marker gets a value no other poke writes (the time in nanoseconds
    and the writer's pid), so ``generation`` moves with every poke.
    """
    with contextlib.suppress(OSError):  # the next beat's sys-sessions says it anyway
        fs.write_whole(sessions_dir / CHANGED, f"{time.time_ns()} {os.getpid()}\n".encode())


def generation(sessions_dir: Path) -> str:
    """The session generation: ``CHANGED``'s value, which every ``poke`` moves ("" if none)."""
    try:
        return fs.read_small(sessions_dir / CHANGED, limit=64).strip().decode("ascii", "replace")
    except (OSError, ValueError):
        return ""


# -- the meta and status writes (the workers room's start and supervisor) --


def _encode(record: dict[str, Any]) -> bytes:
    return (json.dumps(record, indent=2, ensure_ascii=False) + "\n").encode()


def read_meta(session: Path) -> dict[str, Any] | None:
    return _record(None, str(session / META))


def write_meta(session: Path, meta: dict[str, Any]) -> None:
    fs.write_whole(session / META, _encode(meta), mode=0o644)


def write_status(session: Path, state: str, exit_code: int | None, **why: Any) -> dict[str, Any]:
    """Record how the session ended (``state`` is one of ``State.ENDED``); the record written."""
    status = {"state": state, "exit_code": exit_code, "ended": time.time(), **why}
    fs.write_whole(session / STATUS, _encode(status), mode=0o644)
    return status


def clear_status(session: Path) -> None:
    """A new run of a dead session's id starts without the old run's status (or supervisor).

    Nor with its messages: told to the run that ended, they are not the new
    run's to read (``inbox/`` and ``inbox/read/`` hold only files). Nor with
    its spend's source (``data.cost``): the new run reports its own.
    """
    for name in (STATUS, SUPERVISOR_PID, SPEND, ENDED_BY):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(session / name)
    for directory in (session / INBOX / INBOX_READ, session / INBOX):
        with contextlib.suppress(OSError), os.scandir(directory) as entries:
            for entry in list(entries):
                if not entry.is_dir(follow_symlinks=False):
                    os.unlink(entry.path)
        with contextlib.suppress(OSError):
            os.rmdir(directory)
