"""``claims/*.json``: the leases workers hold, as readers see them.

A claim is ``claims/<name>.json`` holding ``{"session": "<id>", ...}``; the
names that count are ``*.json`` that are not dot-files (a worker's temp file
is one until it is renamed into place). ``listing`` is what ``sys-claims``
publishes and what ``_ state`` checks for problems; each file is read by
``looop.jsonfile.read_object`` (no link followed, never blocking, capped,
a JSON object of finite numbers only), and one
that cannot be read is listed with ``claim: null`` and an ``error`` saying
why, so a FIFO named like a claim is reported, never waited on.

Whether a claim is free is one judgment, ``standing``, which both the
reaper (``looop.workers.reap``: remove a claim that is free) and ``_ claim``
(take over a claim that is free) make, each passing its own way of asking a
session's liveness (``session_liveness``, the reaper's cached by its session
pass), so the two can never disagree about a lease. It decides as the
reference does: a claim is free when its session is dead or has no session
directory at all (nothing alive holds it, so it is taken at once, by one
winner); a claim file that names no session (empty, not a JSON object, no
valid ``session``: ``read_fd`` reads it as ``{}``) is debris once it is
``DEBRIS_GRACE`` seconds old (younger, a foreign writer may be filling it
in); a claim whose session cannot be judged, or whose file cannot be read at
all (an I/O error, not a regular file), is never free: nothing is deleted or
taken blind.

It also owns the writes (SPEC §12): ``take`` creates ``claims/<name>.json``
exclusively (``fs.write_whole(..., exclusive=True)``: of two takers of a free
name one wins), each attempt with a fresh ``ts``, and ``release`` removes
the caller's own. A holder claiming its own claim again rewrites it with a
fresh ``ts`` (under the lock, only while the name holds the file judged): an
id can be used again by a later session, and the rewrite tells the new
holder's lease from its predecessor's, as the reference's ``nonce`` does.
Removing a free claim to take it over, and the reaper's removal, happen
under one ``flock`` on ``claims/`` itself (``looop.lockfile.directory``)
and only while the name still holds the very file judged (device, inode,
size, mtime, ctime): two takers of a dead session's claim are serialised,
and the second judges the first's fresh lease (alive) and loses. Rejected:
a rename to a dot name without the lock; a taker that checked the name just
before another's rename could move the winner's fresh lease away.
"""

from __future__ import annotations

import errno
import json
import os
import time
from contextlib import suppress

from looop import fs, jsonfile, lockfile
from looop.data import events, ids, sessions
from looop.data.layout import Problem, problem, shown
from looop.data.sessions import ALIVE, DEAD, DIR_FLAGS, UNKNOWN
from looop.errors import FAILED, LooopError
from looop.paths import Paths

TYPE_CHECKING = False  # not typing's: the probes' start-up should not pay for it
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

SUFFIX = ".json"
MISSING = "missing"  # a liveness: no sessions/<id> at all
DEBRIS_GRACE = 10.0  # seconds a claim file naming no session may be still being written


class ClaimHeld(LooopError):
    """The claim is another's (or its holder cannot be told): exit 1, naming the holder."""

    exit_code = FAILED


def named(name: str) -> bool:
    """Does ``name`` count as a claim? ``<name>.json``, never a dot-file (a writer's temp)."""
    return name.endswith(SUFFIX) and not name.startswith(".")


def listing(paths: Paths, problems: list[Problem] | None = None) -> list[dict[str, Any]]:
    """``{"name", "claim"}`` per claim, sorted by name; an unreadable one adds ``error``."""
    try:
        with os.scandir(paths.claims) as it:
            names = sorted(e.name for e in it if named(e.name))
    except OSError:
        return []
    leases: list[dict[str, Any]] = []
    for name in names:
        path = paths.claims / name
        # Shown as text (``\\xNN`` for bytes that are not UTF-8): the listing is published.
        entry: dict[str, Any] = {"name": shown(name[: -len(SUFFIX)]), "claim": None}
        try:
            entry["claim"] = jsonfile.read_object(path)
        except FileNotFoundError:
            continue  # released while being listed
        except OSError as exc:
            entry["error"] = problem(paths, path, exc)["why"]
        if "error" in entry and problems is not None:
            problems.append(problem(paths, path, entry["error"]))
        leases.append(entry)
    return leases


# --- one judgment: is this claim free? ---------------------------------------------
def read_fd(fd: int, path: str | os.PathLike[str]) -> tuple[dict[str, Any], os.stat_result]:
    """The claim in the open file ``fd`` and its ``fstat``; ``{}`` when its content is no claim.

    Raises OSError when it is not a regular file or cannot be read: that file
    is not debris of a claim writer, and nothing says who holds it.
    """
    st = fs.regular(fd, path)
    if st.st_size > fs.SMALL:
        return {}, st
    data, st = fs.read_small_fd(fd, path=path)
    return jsonfile.parse_object(data) or {}, st


def valid_holder(sid: Any) -> bool:
    """Could ``sid`` name a session directory under ``sessions/``? (Never a path.)"""
    return (
        isinstance(sid, str)
        and sid not in ("", ".", "..")
        and not sid.startswith(".")
        and "/" not in sid
        and "\0" not in sid
    )


def session_liveness(sessions_fd: int | None, sessions_missing: bool, sid: str) -> str:
    """ALIVE, DEAD, UNKNOWN or MISSING for session ``sid`` under the open ``sessions/``.

    Without an open ``sessions/``: MISSING only when it does not exist; one
    that cannot be opened says nothing about its sessions (UNKNOWN).
    """
    if sessions_fd is None:
        return MISSING if sessions_missing else UNKNOWN
    try:
        os.stat(sid, dir_fd=sessions_fd, follow_symlinks=False)
    except FileNotFoundError:
        return MISSING
    except OSError:
        return UNKNOWN
    return sessions.judge(sessions_fd, sid).liveness


def standing(
    claim: dict[str, Any],
    mtime: float,
    now: float,
    liveness: Callable[[str], str],
    unknown_note: str = "",
) -> tuple[str | None, str, bool]:
    """(session id, why, free) for a claim's content, last modified at ``mtime``.

    ``liveness(sid)`` answers ALIVE, DEAD, UNKNOWN or MISSING; ``unknown_note``
    says why a session is unknown, when the caller knows more than that.
    """
    sid = claim.get("session")
    if not valid_holder(sid):
        if now - mtime < DEBRIS_GRACE:
            return None, f"names no session, but is under {DEBRIS_GRACE:.0f}s old", False
        return None, "names no session: debris", True
    assert isinstance(sid, str)
    live = liveness(sid)
    if live == ALIVE:
        return sid, "live", False
    if live == DEAD:
        return sid, "dead", True
    if live != MISSING:
        return sid, f"session {sid} unknown{unknown_note}, never deleted blind", False
    return sid, "no such session", True


def file_key(st: os.stat_result) -> tuple[int, ...]:
    """What tells one version of a file from another: which file, and its last change."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def still_named(dir_fd: int, name: str, judged: os.stat_result) -> bool | None:
    """Does ``name`` still hold the very file judged, unchanged? None: the name is gone."""
    try:
        now = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None
    except OSError:
        return False
    return file_key(now) == file_key(judged)


# --- the writes: _ claim and _ unclaim -------------------------------------------
def _open_area(paths: Paths, create: bool) -> int | None:
    """``claims/``, open without following a link; None when it is missing and not ``create``."""
    if create:
        paths.claims.mkdir(parents=True, exist_ok=True)
    try:
        return os.open(paths.claims, DIR_FLAGS)
    except FileNotFoundError:
        if create:
            raise
        return None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise LooopError(
                f"{paths.claims} is a symlink or not a directory; not followed"
            ) from None
        raise


def _read_at(cfd: int, file: str, name: str) -> tuple[dict[str, Any], os.stat_result] | None:
    """The claim ``file`` (``{}``: names no session) and its ``fstat``; None when there is none.

    ClaimHeld when it cannot be read at all: its holder is unknown.
    """
    try:
        fd = os.open(file, sessions.FILE_FLAGS, dir_fd=cfd)
    except FileNotFoundError:
        return None
    except OSError as exc:
        why = "is a symlink" if exc.errno == errno.ELOOP else exc.strerror
        raise ClaimHeld(f"claim {name}: claims/{file} {why}; its holder is unknown") from None
    try:
        return read_fd(fd, file)
    except OSError as exc:
        raise ClaimHeld(
            f"claim {name}: claims/{file} {fs.why(exc)}; its holder is unknown, so it is not taken"
        ) from None
    finally:
        os.close(fd)


def live_judge(paths: Paths) -> Callable[[str], str]:
    """``liveness`` for ``standing`` as ``_ claim`` asks it: a fresh look at ``sessions/``."""

    def liveness(sid: str) -> str:
        try:
            fd = os.open(paths.sessions, DIR_FLAGS)
        except FileNotFoundError:
            return session_liveness(None, True, sid)
        except OSError:
            return session_liveness(None, False, sid)
        try:
            return session_liveness(fd, False, sid)
        finally:
            os.close(fd)

    return liveness


def _lease(name: str, session: str) -> bytes:
    """A claim's content, stamped now."""
    body = {"session": session, "name": name, "ts": round(time.time(), 3)}
    return (json.dumps(body) + "\n").encode()


def take(paths: Paths, name: str, session: str) -> str:
    """Claim ``name`` for ``session``: "taken", "yours" or "taken over from <id>".

    Raises ClaimHeld (exit 1) when another session holds it and is not free
    to lose it; a bad name or session id is refused (exit 2) before any file.
    """
    ids.check("claim", name)
    ids.check("session", session)
    file = name + SUFFIX
    cfd = _open_area(paths, create=True)
    assert cfd is not None
    try:
        previous: str | None = None
        while True:
            try:
                fs.write_whole(paths.claims / file, _lease(name, session), exclusive=True)
            except FileExistsError:
                pass
            else:
                fields: dict[str, Any] = {"name": name, "session": session}
                if previous is not None:
                    fields["from"] = previous
                events.record(paths.events, "claim_taken", **fields)
                return "taken" if previous is None else f"taken over from {previous}"
            if _read_at(cfd, file, name) is None:
                continue  # released meanwhile: try the name again
            with lockfile.directory(cfd):
                outcome = _judged_under_lock(paths, cfd, file, name, session)
            if outcome == "yours":
                return outcome
            if outcome is not None:
                previous = outcome
    finally:
        os.close(cfd)


def _judged_under_lock(paths: Paths, cfd: int, file: str, name: str, session: str) -> str | None:
    """Under the lock: "yours" (rewritten, fresh), the holder a free claim was removed from, or
    None (gone meanwhile: try again). ClaimHeld when another holds it."""
    found = _read_at(cfd, file, name)
    if found is None:
        return None
    claim, st = found
    if claim.get("session") == session:
        if still_named(cfd, file, st):
            fs.write_whole(paths.claims / file, _lease(name, session))
            return "yours"
        return None  # changed meanwhile: judged again
    sid, why, free = standing(claim, st.st_mtime, time.time(), live_judge(paths))
    if not free:
        holder = "no session" if sid is None else f"session {sid}"
        raise ClaimHeld(f"claim {name} is held by {holder} ({why})")
    if not still_named(cfd, file, st):
        return None  # changed meanwhile: judged again
    with suppress(FileNotFoundError):
        os.unlink(file, dir_fd=cfd)
    return "a claim naming no session" if sid is None else sid


def release(paths: Paths, name: str, session: str) -> bool:
    """Remove ``session``'s own claim ``name``; False when there was none.

    Raises ClaimHeld (exit 1) naming the holder when it is another's.
    """
    ids.check("claim", name)
    ids.check("session", session)
    file = name + SUFFIX
    cfd = _open_area(paths, create=False)
    if cfd is None:
        return False
    try:
        with lockfile.directory(cfd):
            found = _read_at(cfd, file, name)
            if found is None:
                return False
            claim, st = found
            holder = claim.get("session")
            if holder != session:
                shown_holder = f"session {holder}" if isinstance(holder, str) else "no session"
                raise ClaimHeld(f"claim {name} is held by {shown_holder}, not by {session}")
            if not still_named(cfd, file, st):
                raise ClaimHeld(f"claim {name} changed while being released; try again")
            try:
                os.unlink(file, dir_fd=cfd)
            except FileNotFoundError:
                return False
    finally:
        os.close(cfd)
    events.record(paths.events, "claim_released", name=name, session=session)
    return True
