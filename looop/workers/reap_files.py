"""The reaper's file passes: the reaped sessions' mail, free claims and old ``_ run`` records.

Each pass lists its area once, through the run's ``listing`` (which also
sweeps temp files whose writer is gone), and asks the data module that owns
the files which names count and what they mean: ``looop.data.mailbox.asker``
(whose ask or answer a name is), ``looop.data.claims.named`` and
``claims.standing`` (is this claim free?), ``looop.data.runs.named`` and
``runs.over_since`` (since when is this run over?); a run record is read by
``looop.jsonfile``, a claim by ``claims.read_fd``, and one that cannot be
read is kept. Every file is opened or
unlinked relative to its area's descriptor, never through a link, and a
claim or record is unlinked only while its name still holds the very file
judged (``claims.still_named``). Why the passes are shaped so is
``looop.workers.reap``'s to say. Each data module is imported by the pass
that needs it once its area is found: a data dir without ``claims/`` or
``runs/`` does not pay for loading them.
"""

from __future__ import annotations

import errno
import os

from looop import jsonfile, say
from looop.data import sessions

TYPE_CHECKING = False  # not typing's: ``looop reap``'s start-up should not pay for it
if TYPE_CHECKING:
    from typing import Any

    from looop.workers.reap import Run

BOXES = ("asks", "answers")


# --- the reaped sessions' asks and answers ----------------------------------------
def mail_pass(run: Run) -> None:
    """Remove (in a dry run, count) the reaped sessions' asks and answers.

    ``asks/`` and ``answers/`` are each listed once for all sessions (and
    their dead writers' temp files swept, even when no session was reaped); a
    name goes when ``mailbox.asker`` names the ``mailbox.stem`` of a reaped
    session and it is a regular file (a link named like an ask is left alone).
    """
    reaped: dict[str, dict[str, Any]] = {}
    if run.result.sessions:
        from looop.data import mailbox

        for record in run.result.sessions:
            record.update(dict.fromkeys(BOXES, 0))
            reaped[mailbox.stem(record["id"])] = record
    for box in BOXES:
        fd, _ = run.open_area(box)
        if fd is None:
            continue
        from looop.data import mailbox

        try:
            entries = run.listing(fd, box)
            for entry in entries or ():
                owner = reaped.get(mailbox.asker(entry.name) or "")
                if owner is not None and _unlinked(run, fd, box, entry):
                    owner[box] += 1
        finally:
            os.close(fd)


def _unlinked(run: Run, fd: int, box: str, entry: os.DirEntry[str]) -> bool:
    """Unlink a regular file (in a dry run, only say it would go): whether it went."""
    try:
        if not entry.is_file(follow_symlinks=False):
            return False
        if not run.dry_run:
            os.unlink(entry.name, dir_fd=fd)
    except FileNotFoundError:
        return False
    except OSError as exc:
        run.error(box[:-1], f"{box}/{entry.name}", f"cannot remove: {exc.strerror}")
        return False
    return True


# --- _ run records --------------------------------------------------------------------
def runs_pass(run: Run) -> None:
    """Remove ``runs/<id>.json`` records over, or interrupted, longer than the ttl ago.

    A running one, or a record that cannot be read or holds no finite time,
    is kept. The name is unlinked only while it still holds the very file judged.
    """
    rfd, _ = run.open_area("runs")
    if rfd is None:
        return
    from looop.data import runs

    try:
        entries = run.listing(rfd, "runs")
        names = sorted(e.name for e in entries or () if runs.named(e.name) and _regular(e))
        for name in names:
            _run_record(run, rfd, name)
    finally:
        os.close(rfd)


def _regular(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file(follow_symlinks=False)
    except OSError:
        return False


def _run_record(run: Run, rfd: int, name: str) -> None:
    from looop.data import claims, runs

    try:
        fd = os.open(name, sessions.FILE_FLAGS, dir_fd=rfd)
    except OSError:
        return  # gone, or a link since the scan: not a record to remove
    try:
        record, st = jsonfile.read_object_fd(fd, path=f"runs/{name}")
    except OSError:
        return  # unreadable: never deleted blind
    finally:
        os.close(fd)
    state, since = runs.over_since(record)
    if since is None:
        return
    age = run.now - since
    if run.ttl > 0 and age < run.ttl:
        return
    how = "ended" if state == runs.ENDED else "interrupted, started"
    entry = {"id": name[: -len(".json")], "state": state, "age": round(age, 1)}
    entry["why"] = f"{how} {say.duration(age)} ago"
    if not run.dry_run:
        if not claims.still_named(rfd, name, st):
            return  # rewritten (or gone) since it was read
        try:
            os.unlink(name, dir_fd=rfd)
        except FileNotFoundError:
            return
        except OSError as exc:
            run.error("run", f"runs/{name}", f"cannot remove: {exc.strerror}")
            return
        run.pending_events.append(("run_reaped", dict(entry)))
    run.result.runs.append(entry)


# --- claims ------------------------------------------------------------------------
def claims_pass(run: Run) -> None:
    """Remove the claims ``claims.standing`` finds free, each judged twice, under the lock."""
    cfd, _ = run.open_area("claims")
    if cfd is None:
        return
    from looop.data import claims

    try:
        entries = run.listing(cfd, "claims")
        for entry in sorted(entries or (), key=lambda e: e.name):
            name = entry.name
            if not claims.named(name):
                continue
            try:
                if entry.is_symlink():
                    run.skip(f"claims/{name}", "a symlink")
                    continue
                if not entry.is_file(follow_symlinks=False):
                    continue
            except OSError:
                continue
            _claim(run, cfd, name)
    finally:
        os.close(cfd)


def _liveness_of(run: Run, sid: str, fresh: bool) -> str:
    """A claim's session as this run sees it: the session pass's look unless ``fresh``."""
    from looop.data import claims

    if not fresh and sid in run.seen:
        return run.seen[sid]
    return claims.session_liveness(run.sessions_fd, run.sessions_missing, sid)


def _verdict(run: Run, fd: int, fresh: bool) -> tuple[str | None, str, bool, Any]:
    """(session id, why, due, fstat) for the claim file open as ``fd``: ``claims.standing``."""
    from looop.data import claims

    try:
        claim, st = claims.read_fd(fd, "<claim>")
    except OSError:
        return None, "unreadable, never deleted blind", False, None
    note = " (sessions/ cannot be opened)" if run.sessions_fd is None else ""
    sid, why, due = claims.standing(
        claim, st.st_mtime, run.now, lambda sid: _liveness_of(run, sid, fresh), note
    )
    return sid, why, due, st


def _claim(run: Run, cfd: int, name: str) -> None:
    try:
        fd = os.open(name, sessions.FILE_FLAGS, dir_fd=cfd)
    except FileNotFoundError:
        return  # removed (or renamed away) since the scan
    except OSError as exc:
        if exc.errno != errno.ELOOP:  # a link since the scan: not a claim
            why = f"cannot open: {exc.strerror}, never deleted blind"
            run.result.kept_claims.append({"name": name, "session": None, "why": why})
        return
    try:
        _claim_fd(run, cfd, name, fd)
    finally:
        os.close(fd)


def _claim_fd(run: Run, cfd: int, name: str, fd: int) -> None:
    """Judge the claim open as ``fd``; remove ``name`` only while it is still that file."""
    from looop.data import claims

    kept = run.result.kept_claims
    sid, why, due, _ = _verdict(run, fd, fresh=False)
    if not due:
        kept.append({"name": name, "session": sid, "why": why})
        return
    if run.dry_run:
        run.result.claims.append({"name": name, "session": sid, "why": why})
        return
    # Judged again right before removing (the lease may have been
    # rewritten), under the lock ``_ claim`` takes over a claim with.
    from looop import lockfile

    with lockfile.directory(cfd):
        sid, why, due, judged = _verdict(run, fd, fresh=True)
        if not due:
            kept.append({"name": name, "session": sid, "why": why})
            return
        # The name must still be the very file just judged, unchanged since: a
        # worker may have renamed a fresh lease into it, or rewritten it in place.
        same = claims.still_named(cfd, name, judged)
        if same is None:
            return
        if not same:
            kept.append({"name": name, "session": sid, "why": "changed while being judged, kept"})
            return
        try:
            os.unlink(name, dir_fd=cfd)
        except FileNotFoundError:
            return
        except OSError as exc:
            run.error("claim", name, f"cannot remove: {exc.strerror}")
            return
    run.result.claims.append({"name": name, "session": sid, "why": why})
    run.pending_events.append(("claim_reaped", {"name": name, "session": sid, "why": why}))
