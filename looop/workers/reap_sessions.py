"""The reaper's sessions pass: judge each session, then rename it out of sight and empty it.

Each entry of ``sessions/`` is judged by ``looop.data.sessions.judge_at`` on
the open descriptor of exactly the directory that would be removed, surveyed
and emptied by ``looop.tree``, renamed to ``.reaping-<token>-<id>`` in
between; a ``.reaping-*`` directory is an earlier removal to finish, and so
is a session ``_ worker start`` staged (``.<id>.<pid>-<hex>.tmp``) and never
renamed into place, its writer gone. Why it
is ordered this way is ``looop.workers.reap``'s to say; this module only
does it, filling the run's result (the reaped sessions' asks and answers are
the mailbox pass's, run after this one). A live session is left alone but
for one thing: the transcript of a worker its unit supervises alone, which
nobody else caps while it runs, is capped here (``transcript.trim_live``).
"""

from __future__ import annotations

import errno
import fcntl
import os

from looop import fs, say, tree
from looop.data import sessions
from looop.data.sessions import ALIVE, UNKNOWN
from looop.workers import transcript, unit

TYPE_CHECKING = False  # not typing's: ``looop reap``'s start-up should not pay for it
if TYPE_CHECKING:
    from typing import Any

    from looop.workers.reap import Run

REAPING_PREFIX = ".reaping-"
NAME_MAX = 255


class _Emptied:
    """A victim renamed out of sight and emptied through its descriptor."""

    __slots__ = ("doomed", "held", "left", "record", "sid")

    def __init__(
        self,
        doomed: str,
        sid: str,
        record: dict[str, Any],
        left: tree.Removal,
        held: os.stat_result | None,
    ) -> None:
        self.doomed = doomed  # its ``.reaping-*`` name under sessions/
        self.sid, self.record, self.left = sid, record, left
        # The victim's fstat while its top was emptied from the survey's
        # listing (an entry made since is left); None once listed afresh.
        self.held = held


def _empty(
    doomed: str,
    fd: int,
    home: tree.Home,
    sid: str,
    record: dict[str, Any],
    found: tree.Survey,
    held: os.stat_result,
) -> _Emptied:
    left = tree.clear(fd, home, f"sessions/{doomed}", found.listing)
    return _Emptied(doomed, sid, record, left, None if found.listing is None else held)


def _claim_victim(fd: int) -> bool:
    """Take the directory's own ``flock``: False when another reaper holds it.

    The reaper holds it from judging a session until the directory is gone, so
    two reapers never work on one victim, even where the run lock is missing.
    """
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        pass  # a file system without flock: the rename below still arbitrates
    return True


def _reaping_name(token: str, sid: str) -> str:
    name = f"{REAPING_PREFIX}{token}-{sid}"
    if len(os.fsencode(name)) > NAME_MAX:
        import hashlib  # only for an id too long to keep whole

        digest = hashlib.sha256(os.fsencode(sid)).hexdigest()[:32]
        name = f"{REAPING_PREFIX}{token}-{digest}"
    return name


def events_of(reaped: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """One ``session_reaped`` event per reaped session's record (its mail counted)."""
    keys = ("id", "state", "exit_code", "age", "asks", "answers")
    return [("session_reaped", {key: record.get(key) for key in keys}) for record in reaped]


def sessions_pass(run: Run) -> None:
    if run.sessions_fd is not None:
        _Pass(run, run.sessions_fd).run()


class _Pass:
    def __init__(self, run: Run, sessions_fd: int) -> None:
        self.run_ = run
        self.result = run.result
        self.fd = sessions_fd
        self.home: tree.Home | None = None  # the mount sessions/ is on
        # Names for victims: unique per run (random) and per victim (a counter).
        self.token = os.urandom(4).hex()
        self.renamed = 0

    def run(self) -> None:
        try:
            self.home = tree.Home(self.fd)
        except OSError as exc:
            self.run_.error("directory", "sessions/", str(exc.strerror))
            return
        try:
            entries = self.run_.listing(self.fd, "sessions")
            if entries is not None:
                self.entries(entries)
        finally:
            self.home.close()

    def entries(self, entries: list[os.DirEntry[str]]) -> None:
        # Inode order: a file system frees neighbouring inodes far more
        # cheaply than ones scattered by name. The report is sorted after.
        for entry in sorted(entries, key=lambda e: e.inode()):
            name = entry.name
            try:
                is_link = entry.is_symlink()
                is_dir = not is_link and entry.is_dir(follow_symlinks=False)
            except OSError:
                continue
            if is_dir and (name.startswith(REAPING_PREFIX) or fs.temp_writer_gone(name)):
                self.finish_leftover(name)
            elif name.startswith("."):
                continue  # dot names are not sessions (the run lock, a writer's temp file)
            elif is_link:
                self.skip(name, "a symlink")
            elif not is_dir:
                self.skip(name, "not a directory")
            else:
                self.session(name)

    def skip(self, sid: str, why: str) -> None:
        self.run_.skip(f"sessions/{sid}", why)

    def survey(self, fd: int, where: str, cutoff: float | None, st: os.stat_result) -> tree.Survey:
        assert self.home is not None
        return tree.survey(fd, self.home, where, cutoff, st)

    def kept_whole(self, sid: str, found: tree.Survey, left: str | None = None) -> bool:
        """Keep (and report) a session the survey found a mount in, or too deep to follow."""
        if found.mount is not None:
            self.mounted(sid, found.mount, left)
        elif found.too_deep:
            why = f"nested deeper than {tree.MAX_DEPTH} directories; never half-emptied"
            entry: dict[str, Any] = {"id": sid, "why": why}
            if left is not None:
                entry["left"] = left
            self.result.too_deep.append(entry)
        else:
            return False
        return True

    def mounted(self, sid: str, at: str, left: str | None) -> None:
        why = "is a mount point (another file system); unmount it, then reap again"
        entry: dict[str, Any] = {"id": sid, "at": at, "why": why}
        if left is not None:
            entry["left"] = left
        self.result.mounted.append(entry)

    def session(self, sid: str) -> None:
        try:
            fd = tree.open_dir(self.fd, sid)
        except FileNotFoundError:
            return  # removed by somebody else since the scan
        except OSError as exc:
            if exc.errno in tree.NOT_A_DIR:
                return  # swapped for a link or a file since the scan: not a session
            self.result.unknown.append({"id": sid, "why": f"cannot open: {exc.strerror}"})
            self.run_.seen[sid] = UNKNOWN
            return
        emptied = None
        try:
            try:
                st = os.fstat(fd)  # the one fstat of the victim: its mount, age and identity
            except OSError as exc:
                self.result.unknown.append({"id": sid, "why": f"cannot stat: {exc.strerror}"})
                self.run_.seen[sid] = UNKNOWN
                return
            if self.run_.dry_run or self.run_.locked or _claim_victim(fd):
                emptied = self.session_fd(sid, fd, st)
            # else another reaper is removing this very directory right now
        finally:
            os.close(fd)
        if emptied is not None:
            self.conclude(emptied)

    def judged(self, sid: str, fd: int, st: os.stat_result) -> sessions.Verdict | None:
        """The verdict on the session open as ``fd``; None (recorded) unless it is dead."""
        verdict = sessions.judge_at(fd)
        liveness = verdict.liveness
        self.run_.seen[sid] = liveness
        if liveness == ALIVE:
            self.result.live.append(sid)
            self.cap_transcript(sid, fd, verdict)
            return None
        if liveness == UNKNOWN:
            if tree.still_named(self.fd, sid, st):  # not emptied by a reaper just now
                self.result.unknown.append({"id": sid, "why": verdict.why})
            return None
        return verdict

    def cap_transcript(self, sid: str, fd: int, verdict: sessions.Verdict) -> None:
        """Cap the transcript of a live worker its unit supervises (``transcript.trim_live``)."""
        meta = verdict.meta or {}
        if self.run_.dry_run or not isinstance(meta.get("unit"), str) or not unit.supervises(meta):
            return
        try:
            transcript.trim_live(fd)
        except FileNotFoundError:
            pass  # no transcript yet: nothing to cap
        except OSError as exc:
            why = f"cannot cap its {sessions.OUTPUT}: {exc.strerror or exc}"
            self.run_.error("session", sid, why)

    def session_fd(self, sid: str, fd: int, st: os.stat_result) -> _Emptied | None:
        run = self.run_
        verdict = self.judged(sid, fd, st)
        if verdict is None:
            return None
        ended = verdict.ended
        measure = ended is None and run.ttl > 0
        age: float | None = None  # unmeasured: --ttl 0 takes every dead session
        if ended is not None:
            age = run.now - ended
            if run.ttl > 0 and age < run.ttl:
                self.result.young.append({"id": sid, "age": round(age, 1)})
                return None
        # Measure first, then decide: nothing is renamed or removed before the
        # whole tree is known to lie on this mount and within MAX_DEPTH.
        found = self.survey(fd, f"sessions/{sid}", run.cutoff if measure else None, st)
        if measure:
            age = run.now - found.newest
            if age < run.ttl:
                self.result.young.append({"id": sid, "age": round(age, 1)})
                return None
            if found.unreadable is not None:
                run.error("session", sid, f"cannot measure its age, kept: {found.unreadable}")
                return None
        if measure or found.dirs > 1:
            # The walk took a while: judge again right before removing.
            verdict = self.judged(sid, fd, st)
            if verdict is None:
                return None
        if self.kept_whole(sid, found):
            return None
        record = _record(sid, verdict, age)
        if run.dry_run:
            self.result.sessions.append(record)
            return None
        return self.remove(sid, fd, st, record, found)

    def remove(
        self, sid: str, fd: int, before: os.stat_result, record: dict[str, Any], found: tree.Survey
    ) -> _Emptied | None:
        """Check the name still holds the judged directory, rename it out of sight, empty it.

        A name that no longer holds it (the session was replaced, or removed by
        someone else, while it was judged) is a race lost to its owner, not a
        failure: it is left alone and reported as skipped.
        """
        sfd = self.fd
        if not tree.still_named(sfd, sid, before):
            self.skip(sid, "gone or replaced while being judged; left alone")
            return None
        self.renamed += 1
        doomed = _reaping_name(f"{self.token}{self.renamed:x}", sid)
        try:
            os.rename(sid, doomed, src_dir_fd=sfd, dst_dir_fd=sfd)
        except FileNotFoundError:
            return None  # another remover took it first
        except OSError as exc:
            self.run_.error("session", sid, f"cannot remove: {exc.strerror}")
            return None
        try:
            after = os.stat(doomed, dir_fd=sfd, follow_symlinks=False)
        except FileNotFoundError:
            return None  # removed by someone else since the rename
        except OSError:
            after = None
        if after is not None and os.path.samestat(before, after):
            assert self.home is not None
            return _empty(doomed, fd, self.home, sid, record, found, before)
        # Replaced in the instant between the check and the rename: the rename
        # moved somebody else's directory, so put it back where it was.
        try:
            os.rename(doomed, sid, src_dir_fd=sfd, dst_dir_fd=sfd)
        except OSError as exc:
            why = f"replaced while being reaped, and cannot be put back: {exc.strerror}"
            self.run_.error("session", sid, why, left=f"sessions/{doomed}")
            return None
        self.skip(sid, "replaced while being reaped; put back and left alone")
        return None

    def conclude(self, emptied: _Emptied) -> None:
        """Remove the emptied victim (its descriptor already closed) and report it.

        The descriptor is closed first because removing a directory that is
        still open costs the file system an orphan entry to write and clear;
        ``rmdir`` by name is safe on its own, as it removes only an empty
        directory and never goes through a link.
        """
        problems, mounts = emptied.left.problems, emptied.left.mounts
        left = f"sessions/{emptied.doomed}"
        if not problems and not mounts:
            try:
                os.rmdir(emptied.doomed, dir_fd=self.fd)
            except FileNotFoundError:
                return  # another reaper finished it (and reports it)
            except OSError as exc:
                if exc.errno == errno.ENOTEMPTY and emptied.held is not None:
                    self.empty_again(emptied)  # made in it since its survey listed it
                    self.conclude(emptied)
                    return
                problems.append(f"{left}: {exc.strerror}")
        if mounts:
            self.mounted(emptied.sid, mounts[0], left)
        if problems:
            more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
            why = f"cannot remove {'; '.join(problems[:3])}{more}"
            self.run_.error("session", emptied.sid, why, left=left)
        if not problems and not mounts:
            self.result.sessions.append(emptied.record)

    def empty_again(self, emptied: _Emptied) -> None:
        """Empty a victim anew, listing it afresh: its survey's listing missed an entry."""
        held, emptied.held = emptied.held, None
        assert held is not None and self.home is not None
        where = f"sessions/{emptied.doomed}"
        try:
            fd = tree.open_dir(self.fd, emptied.doomed)
        except FileNotFoundError:
            return  # another reaper finished it: the rmdir says so
        except OSError as exc:
            emptied.left.problems.append(f"{where}: {exc.strerror}")
            return
        try:
            if os.path.samestat(os.fstat(fd), held):
                emptied.left = tree.clear(fd, self.home, where)
            else:
                emptied.left.problems.append(f"{where}: replaced while being emptied")
        except OSError as exc:
            emptied.left.problems.append(f"{where}: {exc.strerror}")
        finally:
            os.close(fd)

    def finish_leftover(self, name: str) -> None:
        """A ``.reaping-*`` directory: a removal already decided, not yet finished.

        Or the staged session of a ``_ worker start`` killed before renaming
        it into place (``.<id>.<pid>-<hex>.tmp``, its writer gone).
        """
        if name.startswith(REAPING_PREFIX):
            rest = name[len(REAPING_PREFIX) :]
            sid = rest.split("-", 1)[1] if "-" in rest else rest
            why = f"finishing an earlier removal ({name})"
        else:
            sid, why = name[1:].rsplit(".", 2)[0], f"a start that was killed left {name}"
        record = {"id": sid, "state": sessions.State.DEAD, "exit_code": None, "age": None}
        record["why"] = why
        try:
            fd = tree.open_dir(self.fd, name)
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno not in tree.NOT_A_DIR:
                self.run_.error("session", sid, f"cannot remove sessions/{name}: {exc.strerror}")
            return
        emptied = None
        try:
            try:
                st = os.fstat(fd)
            except OSError as exc:
                self.run_.error("session", sid, f"cannot remove sessions/{name}: {exc.strerror}")
                return
            if not self.run_.dry_run and not (
                (self.run_.locked or _claim_victim(fd)) and tree.still_named(self.fd, name, st)
            ):
                return  # another reaper is finishing it
            found = self.survey(fd, f"sessions/{name}", None, st)
            if self.kept_whole(sid, found, left=f"sessions/{name}"):
                pass
            elif self.run_.dry_run:
                self.result.sessions.append(record)
            else:
                assert self.home is not None
                emptied = _empty(name, fd, self.home, sid, record, found, st)
        finally:
            os.close(fd)
        if emptied is not None:
            self.conclude(emptied)


def _record(sid: str, verdict: sessions.Verdict, age: float | None) -> dict[str, Any]:
    """What the report says of a dead session about to be reaped."""
    if age is None:  # --ttl 0 takes every dead session without measuring it
        why = verdict.why
    elif verdict.state == sessions.State.EXITED:
        why = f"exited {say.duration(age)} ago"
    else:
        why = f"{verdict.why}, idle {say.duration(age)}"
    return {
        "id": sid,
        "state": verdict.state,
        "exit_code": verdict.exit_code,
        "age": None if age is None else round(age, 1),
        "why": why,
    }
