"""``looop reap``: bound ``sessions/``, ``claims/`` and ``runs/`` without ever deleting blind.

What it removes: dead sessions older than ``session_ttl`` (age from ``ended``
in the status, else from the newest modification anywhere inside, measured
with ``lstat``) and with each its asks and answers (the mailbox's names for
that session, ``looop.data.mailbox.asker``, regular files only), claims whose
session is dead or missing, and claim files naming no session once they
are a few seconds old (``claims.standing``, the judgment ``_ claim``
takes a claim over by), ``_ run`` records ended (or interrupted, counted
from their start) longer than ``session_ttl`` ago (``runs.over_since``; a
running one is never removed), and in every area it lists, the temp files of
writers that are gone (``fs.temp_writer_gone``). What it keeps: live
sessions, young dead ones, every session whose meta cannot be read
(unknown), and, whole, every dead session that holds a mount or is nested
deeper than ``tree.MAX_DEPTH`` (reported, exit 1); a claim whose session is
unknown is kept too, and so is a run record that cannot be read. Liveness
comes from ``looop.data.sessions.judge_at``, the same judgment
``sys-sessions`` and ``looop _ state`` show.

The run is four passes over one shared ``Run``, each in the module named
and each asking the data module that owns its files for their names and
judgment, never parsing them itself:

* **sessions** (``looop.workers.reap_sessions``): judge each session on its
  open descriptor, survey it, rename it out of sight, empty it; the tree is
  walked and removed by ``looop.tree`` (descriptors, no link followed, never
  off its mount), which says why it is shaped that way.
* **mailbox** (``looop.workers.reap_files``): the reaped sessions' asks and
  answers, ``asks/`` and ``answers/`` listed once each per run whatever the
  number of sessions (rejected: a listing per reaped session, which made a
  run of 3,000 sessions quadratic, 21 times a blind ``rm``). It runs after
  the sessions pass, not before it: an answer the root agent writes to a
  stranded ask while sessions are being removed is still seen. A reaper
  killed between the two passes leaves those sessions' mail behind; it is
  never taken for another session's.
* **claims** and **runs** (``looop.workers.reap_files``).

Why the reaper is shaped this way, beyond the tree's rules:

* **Judge the descriptor, then rename, then delete.** A session is judged on
  the open descriptor of exactly the directory that will be deleted, right
  before it is removed (and judged again when its survey took more than one
  directory listing, since a session may have come alive meanwhile). The
  directory is then renamed to ``.reaping-<token>-<id>`` (dot names are not
  sessions, so readers see it vanish at once instead of watching a
  half-deleted session turn "unknown"). Right before the rename the name is
  checked to still hold the judged directory, and after it the new name is
  checked again; a session replaced meanwhile is its owner's, left alone
  (put back, if the rename moved it) and reported as skipped, not as an
  error. Only then is the directory emptied through the descriptor. A
  removal that fails part way leaves a ``.reaping-*`` directory that the
  next run finishes (and reports until it can).
* **Mounts and depth keep a session whole.** A mount anywhere inside (the
  session directory itself included), or a tree deeper than ``MAX_DEPTH``,
  found by the survey keeps the session under its own name, reported under
  ``kept.mounted`` or ``kept.too_deep``, and the run exits 1; after the user
  unmounts, the next run removes it. A mount that appears during removal is
  found as the emptying reaches it; the session has then been renamed and
  partly emptied, so it stays a ``.reaping-*`` leftover, reported as mounted
  with where it was left, kept by every later run while the mount is there.
  (Rejected: renaming such a session back; its name may be a new session's
  by then, and what was removed cannot be restored anyway.)
* **Two reapers at once.** A real run holds an exclusive ``flock`` on
  ``sessions/.reap.lock`` (in the directory it guards, so every context of the
  user maps to the same lock): the second reaper waits, then finds nothing
  left to do; both exit 0. Without that lock (it cannot be created, or is
  not a plain file) the work is still safe to share: each victim directory is
  ``flock``-ed by the one reaper removing it, the rename lets only one reaper
  claim a session, and a vanished entry is somebody else's success, not an
  error. The kernel drops every one of these locks when a reaper dies.
* **Failures are per item, and each is a line.** A session, claim or file
  that cannot be removed is reported (``error: <what> <name>: <reason>``)
  and the rest are still reaped; the exit status is 1 only when something
  due could not be removed (or could not be measured: a dead session with an
  unreadable corner is kept, and said so), and then the summary has a line
  saying what. A listing that fails part way is such an error, never taken
  for an empty area.
* **A claim of a missing or dead session** (judged by ``claims.standing``,
  removed under the ``flock`` on ``claims/`` that ``_ claim`` takes over
  with) goes at once, as in the reference: nothing alive holds it. A claim
  file naming no session (empty, not JSON) goes once it is older than
  ``claims.DEBRIS_GRACE`` seconds. Missing means that
  ``sessions/<id>`` does not exist, or that ``sessions/`` itself does not; a
  ``sessions/`` that exists but cannot be opened (a link, no permission)
  says nothing about any session, so every claim is then kept as unknown. A
  claim is judged from a descriptor opened without following a link, and
  unlinked only when, right before, its name still holds that very file
  unchanged (``claims.still_named``): a lease a worker renamed into the name
  or rewrote meanwhile is kept.
* **Only finite numbers.** An ``ended`` that is not a finite number is no
  time at all: the session is aged by its contents, as if it had none, so
  no age, report or event ever holds NaN or Infinity. Every number the
  reaper prints is made finite where it enters, rather than by
  ``allow_nan=False`` at the printers, which are shared with every other
  command and would turn a bad file into a crash instead of a kept or
  measured session.
* **Cheap for the common case.** A session whose status says it exited with
  an ``ended`` time is judged from its status and meta: no process-table
  lookup, no ``stat`` per entry. Sessions are taken in inode order and
  removed as they are found, each victim's descriptor closed before its
  final ``rmdir``; events are written together at the end of the run. A
  victim is ``fstat``-ed once (its mount, age and identity all come from
  that one look) and listed once: the survey's listing is the one it is
  emptied from, and an entry made since shows as ``ENOTEMPTY`` at the
  ``rmdir``, which empties it again from a fresh listing. Only the modules a
  run needs are loaded: the mailbox, claims and runs modules when their
  area exists.
"""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager

from looop import fs, lockfile, say, tree
from looop.data import events
from looop.workers import reap_files, reap_sessions

TYPE_CHECKING = False  # not typing's: ``looop reap``'s start-up should not pay for it
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from looop.paths import Paths

LOCK_NAME = ".reap.lock"


class ReapResult:
    """What one run removed (or, in a dry run, would remove) and what it kept.

    A plain class rather than a dataclass: ``looop reap`` is timed against
    ``rm -rf``, and importing ``dataclasses`` costs more than reaping dozens of sessions.
    """

    def __init__(self, dry_run: bool, ttl: float) -> None:
        self.dry_run = dry_run
        self.ttl = ttl
        self.sessions: list[dict[str, Any]] = []
        self.claims: list[dict[str, Any]] = []
        self.runs: list[dict[str, Any]] = []
        # Temp files (``area/name``) whose writer is gone, found in the areas listed.
        self.temps: list[str] = []
        self.live: list[str] = []
        self.young: list[dict[str, Any]] = []
        self.unknown: list[dict[str, Any]] = []
        self.kept_claims: list[dict[str, Any]] = []
        # Dead and due, but kept whole: a mount inside, or a tree deeper than MAX_DEPTH.
        self.mounted: list[dict[str, Any]] = []
        self.too_deep: list[dict[str, Any]] = []
        self.skipped: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []

    @property
    def exit_code(self) -> int:
        return 1 if self.errors or self.mounted or self.too_deep else 0

    def mail(self, box: str) -> int:
        """How many of the reaped sessions' ``asks`` (or ``answers``) went with them."""
        return sum(s.get(box, 0) for s in self.sessions)

    def summary(self) -> str:
        """The human report, read from ``as_dict`` (what ``reap --json`` prints)."""
        d = self.as_dict()
        reaped, kept, counts = d["reaped"], d["kept"], d["counts"]
        verb = "would reap" if d["dry_run"] else "reaped"
        lines = []
        for s in reaped["sessions"]:
            lines.append(f"{verb} session {s['id']} ({s['why']})")
        for c in reaped["claims"]:
            lines.append(f"{verb} claim {c['name']} (session {c['session']} {c['why']})")
        for r in reaped["runs"]:
            lines.append(f"{verb} run {r['id']} ({r['why']})")
        for t in reaped["temps"]:
            lines.append(f"{verb} temp file {t} (its writer is gone)")
        for u in kept["unknown"]:
            lines.append(f"kept session {u['id']}: unknown ({u['why']}); never deleted blind")
        for item in (*kept["mounted"], *kept["too_deep"]):
            where = f"{item['at']} " if "at" in item else ""
            if "left" in item:  # found only once its removal had begun
                how, left = "", f"; its removal is left as {item['left']}"
            else:
                how, left = " whole", ""
            lines.append(f"kept session {item['id']}{how}: {where}{item['why']}{left}")
        for c in kept["claims"]:
            if c["why"] != "live":
                lines.append(f"kept claim {c['name']}: {c['why']}")
        for s in d["skipped"]:
            lines.append(f"left {s['name']} alone: {s['why']}")
        for e in d["errors"]:
            lines.append(f"error: {e['what']} {e['name']}: {e['error']}")
        held = [f"{counts['live']} live"]
        for key in ("young", "unknown", "mounted", "too_deep"):
            if counts[key]:
                held.append(f"{counts[key]} {key.replace('_', ' ')}")
        asks, answers = counts["asks"], counts["answers"]
        mail = (
            f" ({say.count(asks, 'ask')}, {say.count(answers, 'answer')})"
            if asks or answers
            else ""
        )
        runs = f", {say.count(counts['runs'], 'run')}" if counts["runs"] else ""
        if counts["temps"]:
            runs += f", {say.count(counts['temps'], 'temp file')}"
        line = (
            f"{verb} {say.count(counts['sessions'], 'session')}{mail}, "
            f"{say.count(counts['claims'], 'claim')}{runs}; kept {', '.join(held)}"
        )
        if counts["errors"]:
            line += f"; {say.count(counts['errors'], 'error')}"
        if d["dry_run"]:
            line += " (dry run: nothing removed)"
        lines.append(line)
        return "\n".join(map(say.escaped, lines))

    def failures(self, data_dir: os.PathLike[str] | str) -> list[str]:
        """One line per reason the run exits 1: the file it concerns, and why."""
        lines = [
            f"{os.path.join(data_dir, e['file'])}: {e['error']}"
            + (f" (session {e['name']})" if "left" in e else "")
            for e in self.errors
        ]
        for item in (*self.mounted, *self.too_deep):
            where = item.get("at") or item.get("left") or f"sessions/{item['id']}"
            lines.append(
                f"{os.path.join(data_dir, where)}: kept session {item['id']}: {item['why']}"
            )
        return lines

    def as_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "ttl": self.ttl,
            "reaped": {
                "sessions": self.sessions,
                "claims": self.claims,
                "runs": self.runs,
                "temps": self.temps,
            },
            "kept": {
                "live": self.live,
                "young": self.young,
                "unknown": self.unknown,
                "mounted": self.mounted,
                "too_deep": self.too_deep,
                "claims": self.kept_claims,
            },
            "skipped": self.skipped,
            "errors": self.errors,
            "counts": {
                "sessions": len(self.sessions),
                "claims": len(self.claims),
                "asks": self.mail("asks"),
                "answers": self.mail("answers"),
                "runs": len(self.runs),
                "temps": len(self.temps),
                "live": len(self.live),
                "young": len(self.young),
                "unknown": len(self.unknown),
                "mounted": len(self.mounted),
                "too_deep": len(self.too_deep),
                "errors": len(self.errors),
            },
            "exit_code": self.exit_code,
        }


class Run:
    """One run of the reaper: what its passes share, and where each reports."""

    def __init__(self, paths: Paths, ttl: float, dry_run: bool, now: float) -> None:
        self.paths = paths
        self.ttl = ttl
        self.dry_run = dry_run
        self.now = now
        self.cutoff = now - ttl
        self.result = ReapResult(dry_run=dry_run, ttl=ttl)
        # Written together at the end of the run: one lock and one write, not one per removal.
        self.pending_events: list[tuple[str, dict[str, Any]]] = []
        self.sessions_fd: int | None = None
        # Whether sessions/ does not exist: only that says a claim's session
        # is missing (one that cannot be opened says nothing of any session).
        self.sessions_missing = False
        # Liveness each session id was found in by the session pass; claims use it
        # so a dry run and a real run judge a claim the same way.
        self.seen: dict[str, str] = {}
        # True while this run holds the run lock: no other reaper is at work, so
        # the per-victim locks can be skipped.
        self.locked = False

    def open_area(self, name: str) -> tuple[int | None, bool]:
        """(descriptor, False), or (None, whether it is missing): a failure is reported."""
        try:
            return tree.open_dir(None, str(self.paths.data_dir / name)), False
        except FileNotFoundError:
            return None, True
        except OSError as exc:
            why = str(
                "is a symlink or not a directory; never followed"
                if exc.errno in tree.NOT_A_DIR
                else exc.strerror
            )
            self.error("directory", f"{name}/", why)
            return None, False

    def listing(self, fd: int, area: str) -> list[os.DirEntry[str]] | None:
        """The entries of the open ``area``, listed once; None when the listing failed.

        A failed listing is reported, never taken for an empty area. Temp files
        whose writer is gone (``fs.temp_writer_gone``) are removed on the way
        (in a dry run, counted) and left out of what is returned.
        """
        try:
            with os.scandir(fd) as it:
                entries = list(it)
        except OSError as exc:
            self.error("directory", f"{area}/", str(exc.strerror))
            return None
        # Only a dot name can be a temp file (``fs.temp_pid``): the rest go by untouched.
        return [e for e in entries if e.name[:1] != "." or not self.swept(fd, area, e)]

    def swept(self, fd: int, area: str, entry: os.DirEntry[str]) -> bool:
        """Remove ``entry`` if it is a temp file whose writer is gone; whether it was one."""
        name = entry.name
        try:
            if not (fs.temp_writer_gone(name) and entry.is_file(follow_symlinks=False)):
                return False
            if not self.dry_run:
                os.unlink(name, dir_fd=fd)
        except FileNotFoundError:
            return True  # its writer's own cleanup, or another reaper, took it
        except OSError as exc:
            self.error("temp file", f"{area}/{name}", f"cannot remove: {exc.strerror}")
            return True
        self.result.temps.append(f"{area}/{name}")
        return True

    def error(self, what: str, name: str, message: str, **extra: Any) -> None:
        """Report what could not be done to ``name``; ``file`` is where, under the data dir.

        A session or claim is named by its id or file name, the rest by their
        path under the data dir (a directory with a trailing ``/``); a
        removal left part way is where it was left.
        """
        area = {"session": "sessions/", "claim": "claims/"}.get(what, "")
        file = extra.get("left") or f"{area}{name}".rstrip("/")
        entry = {"what": what, "name": name, "error": message, **extra, "file": file}
        self.result.errors.append(entry)

    def skip(self, name: str, why: str) -> None:
        self.result.skipped.append({"name": name, "why": why})


@contextmanager
def _reap_lock(sessions_fd: int | None, dry_run: bool) -> Iterator[bool]:
    """Hold ``sessions/.reap.lock`` exclusively; wait for another reaper if need be.

    Yields whether the lock is held. A dry run takes none. Without a usable
    lock (no ``sessions/``, a read-only disk, a link or a FIFO in its place,
    a file system without ``flock``) the run goes ahead unlocked: each victim
    is then locked on its own.
    """
    fd = -1
    if sessions_fd is not None and not dry_run:
        try:
            fd = lockfile.open_lock(LOCK_NAME, dir_fd=sessions_fd)
        except OSError:
            fd = -1
    held = False
    try:
        if fd >= 0:
            try:
                held = lockfile.lock(fd, path=LOCK_NAME)
                if not held:
                    print("looop: another reap is running; waiting for it", file=sys.stderr)
                    held = lockfile.lock(fd, block=True, path=LOCK_NAME)
            except OSError:
                held = False
        yield held
    finally:
        if fd >= 0:
            os.close(fd)


def print_run(
    paths: Paths, session_ttl: float, ttl: float | None, dry_run: bool, as_json: bool
) -> int:
    """``looop reap``: run, print the report (or ``--json``'s object); a failure is one line.

    What the click command and ``looop.__main__``'s fast path both call; ``ttl``
    overrides the config's ``session_ttl``. Returns the exit code.
    """
    result = reap(paths, ttl=session_ttl if ttl is None else ttl, dry_run=dry_run)
    if as_json:
        import json

        sys.stdout.write(json.dumps(result.as_dict(), indent=2, default=str) + "\n")
    else:
        sys.stdout.write(result.summary() + "\n")
    sys.stdout.flush()  # the report before the failure, as on a terminal
    failures = result.failures(paths.data_dir)  # what made it fail, each naming its file
    if failures:  # the report lists them all; stderr says the first, in one line
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        from looop.errors import LooopError

        raise LooopError(f"{failures[0]}{more}", result.exit_code)
    return result.exit_code


def reap(paths: Paths, ttl: float, dry_run: bool = False, now: float | None = None) -> ReapResult:
    """Remove dead sessions older than ``ttl`` seconds, their mail, stale claims and old runs."""
    run = Run(paths, ttl, dry_run, time.time() if now is None else now)
    run.sessions_fd, run.sessions_missing = run.open_area("sessions")
    try:
        with _reap_lock(run.sessions_fd, dry_run) as run.locked:
            reap_sessions.sessions_pass(run)
            reap_files.mail_pass(run)
            if not dry_run:
                run.pending_events.extend(reap_sessions.events_of(run.result.sessions))
            reap_files.claims_pass(run)
            reap_files.runs_pass(run)
    finally:
        if run.sessions_fd is not None:
            os.close(run.sessions_fd)
        events.record_many(paths.events, run.pending_events)
    r = run.result
    for found in (r.sessions, r.young, r.unknown, r.mounted, r.too_deep):
        found.sort(key=lambda item: item["id"])
    r.live.sort()
    r.temps.sort()
    r.skipped.sort(key=lambda item: item["name"])
    return r
