"""``asks/`` and ``answers/``: the one answer to "is an ask pending?".

An ask is ``asks/<id>.json``; it is pending while ``answers/<id>.json`` is
not a valid answer (``{"id", "answer": non-empty text}``, ``_answer_of``).
A name counts when it ends in ``.json`` and is not a dot-file (a writer's
temp file). ``has_pending`` (``_ wait``'s wake path: it stops at the first
pending ask) and ``pending`` (parsed, for ``_ state``) share that judgment
(``_unanswered``), so they agree on every case. An answer file that is
corrupt, unreadable or not a regular file never hides its ask: the ask stays
pending, listed with ``answer_error`` (and the problem reported), the asker
waits on, and ``_ answer --force`` repairs it. An ask that cannot be read
(a FIFO, a directory, too large, not a JSON object) is pending too, listed
as ``{"id", "error"}``: somebody asked. Reads go through
``looop.jsonfile.read_object`` (no link followed, never blocking, capped).
Rejected: a name answering its ask whatever it held (a hand-edited answer
hid the question, and the asker exited 1 with nobody told); each caller
deciding for itself (``_ state`` and ``_ wait`` disagreed).

It also owns the mailbox's writes and the asker's wait (SPEC §10):

* **An ask is created exclusively** (``raise_ask``): ``asks/<stem>-<n>.json``
  through ``fs.write_whole(..., exclusive=True)``, ``n`` one past the highest
  taken in ``asks/`` or ``answers/`` (an answered id is never reused), on
  FileExistsError the next. The ``stem`` is the worker id up to ``STEM``
  characters, a longer one cut and given 8 hex digits of its hash, so every
  worker id the id rule accepts can ask as often as it needs (rejected:
  ``<worker>-<n>``, which a 63-character worker could not use once).
* **The same question resumes its ask** (``_pending_same``): an ask of the
  worker with the same prompt, reference and options that is pending, or
  answered but not yet ``delivered`` to its asker (killed by its shell tool
  before it could print it), is waited on again instead of asking twice. The
  look and the create happen under an ``flock`` on ``asks/``
  (``looop.lockfile.directory``, nothing left by a holder killed), so the
  same question asked twice at one instant is one ask. The reference is
  stored as given (a relative one is relative to the data dir), so the
  question asked from another directory resumes too.
* **Every record carries a schema version** ``v`` (``VERSION``); a newer one
  is shown as far as it is understood, with one warning per process.
* **The asker waits on notifications** (``wait_answer``), through
  ``looop.watch`` on its answer and its ask, watch first, then look. The ask
  vanishing ends the wait with exit 1 (``AskFailed``); a deadline with 124
  (``AskTimedOut``), the ask left pending.
* **An answer is created exclusively** (``answer``): of two answers at once
  exactly one wins; ``force`` replaces (a FIFO or empty directory at the
  name too); its worker is stirred first (``sessions.stir``). One event
  (``ask_raised``, ``ask_answered``) per write, the answer journaled after
  it is written; the same answer again completes a journal line a failure
  left out, so a retry after any failure converges.
* **A failing look is that failure** (``_names``, ``_present``): a listing
  of ``asks/`` or a ``stat`` that fails raises, naming the path, never taken
  for "no asks" (which raised a second ask) or "no such ask".
* **Whose an ask is** (``asker``): the ``stem`` before the id's last ``-``;
  the reaper removes a reaped session's asks and answers by it.
* **Stranded** (``listing``): an ask whose worker has a session directory
  judged dead (none: not stranded, any process may ask; unreadable: unknown).

The directories are made here, by asker, waiter and answerer alike (a
missing one is made, never taken for a missing ask), not by
``layout.ensure_layout``: a worker asking must not seed starter files.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
import time

from looop import fs, jsonfile, lockfile
from looop.data import ids, journal, sessions
from looop.data.layout import Problem, problem
from looop.errors import FAILED, TIMED_OUT, LooopError, UsageError
from looop.paths import Paths

TYPE_CHECKING = False  # not typing's: the probes' start-up should not pay for it
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

SUFFIX = ".json"
VERSION = 1  # of the ask and answer records (their "v")
STEM = 44  # characters of a worker id kept whole in its ask ids: 44 + "-" + 19 digits = 64


def named(name: str) -> bool:
    """Does ``name`` count as an ask or an answer? ``<id>.json``, never a dot-file."""
    return name.endswith(SUFFIX) and not name.startswith(".")


def stem(worker: str) -> str:
    """The part of ``worker``'s ask ids before ``-<n>``: the id, or a long one cut and hashed."""
    if len(worker) <= STEM:
        return worker
    from hashlib import sha256  # only for the long ids

    return f"{worker[: STEM - 9]}.{sha256(worker.encode()).hexdigest()[:8]}"


def asker(name: str) -> str | None:
    """The ``stem`` of the session whose ask (or answer) ``name`` is, from ``<stem>-<digits>.json``.

    None when ``name`` is not so shaped. The id is split at its last ``-``,
    so ``w-2-1.json`` is session ``w-2``'s, never ``w``'s. What the reaper
    removes with a reaped session, and what ``raise_ask`` numbers a worker's
    next ask after.
    """
    if not named(name):
        return None
    sid, dash, number = name[: -len(SUFFIX)].rpartition("-")
    if not (sid and dash and number.isascii() and number.isdigit()):
        return None
    return sid


def _names(directory: os.PathLike[str]) -> Iterator[str]:
    """The names in ``directory`` that count as an ask or an answer.

    A missing directory has none (nor has a path through a file: a data dir
    replaced by a file has no mailbox); one that cannot be listed raises
    OSError naming it: a failed listing is not an empty mailbox (an asker
    would raise a second ask instead of resuming its own).
    """
    try:
        with os.scandir(directory) as it:
            for entry in it:
                if named(entry.name):
                    yield entry.name
    except (FileNotFoundError, NotADirectoryError):
        return


def _present(path: os.PathLike[str]) -> bool:
    """Is there an entry at ``path``? A failing look raises (OSError naming it), never "no"."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True


_warned = False


def _newer(record: dict[str, Any], path: os.PathLike[str]) -> None:
    """Warn, once per process, about a record of a schema newer than this looop's."""
    global _warned
    v = jsonfile.finite(record.get("v"))
    if v is None or v <= VERSION or _warned:
        return
    _warned = True
    import sys

    sys.stderr.write(
        f"looop: warning: {path}: mailbox record version {v:g} is newer than this looop's "
        f"({VERSION}); shown as far as it is understood\n"
    )


def _answer_of(paths: Paths, ask_id: str) -> tuple[dict[str, Any] | None, str]:
    """The valid answer to ``ask_id``, or None and why not ("" when there is none at all)."""
    path = paths.answers / f"{ask_id}{SUFFIX}"
    try:
        record = jsonfile.read_object(path)
    except (FileNotFoundError, NotADirectoryError):
        return None, ""
    except OSError as exc:
        return None, fs.why(exc)
    text = record.get("answer")
    if not isinstance(text, str) or not text:
        return None, 'has no non-empty "answer" text'
    if record.get("id", ask_id) != ask_id:
        return None, f"is for another ask ({record.get('id')!r})"
    _newer(record, path)
    return record, ""


def _unanswered(paths: Paths) -> Iterator[tuple[str, str]]:
    """``(name, why)`` of each pending ask: why its answer file is no answer ("" when none)."""
    for name in _names(paths.asks):
        if not _present(paths.answers / name):
            yield name, ""
            continue
        record, why = _answer_of(paths, name[: -len(SUFFIX)])
        if record is None:
            yield name, why or "vanished while being read"


def has_pending(paths: Paths) -> bool:
    """Is any ask unanswered? Stops at the first; agrees with ``pending``."""
    return next(_unanswered(paths), None) is not None


def pending(paths: Paths, problems: list[Problem] | None = None) -> list[dict[str, Any]]:
    """Pending asks, oldest name first; an unreadable one as ``{"id", "error"}``.

    An ask whose answer file is no valid answer has ``answer_error`` saying
    why; with ``problems``, that answer and every unreadable ask are
    reported, and so is any answer that is not a small regular file.
    """
    found: list[dict[str, Any]] = []
    for name, answer_why in sorted(_unanswered(paths)):
        ask_id = name[: -len(SUFFIX)]
        path = paths.asks / name
        ask: dict[str, Any] | None = None
        why = ""
        try:
            ask = jsonfile.read_object(path)
        except FileNotFoundError:
            continue  # withdrawn while being listed
        except OSError as exc:
            why = problem(paths, path, exc)["why"]
        if ask is None:
            ask = {"id": ask_id, "error": why}
            if problems is not None:
                problems.append(problem(paths, path, why))
        else:
            _newer(ask, path)
            ask.setdefault("id", ask_id)
        if answer_why:
            answer = problem(paths, paths.answers / name, answer_why)
            ask["answer_error"] = f"{answer['path']} {answer['why']}"
            if problems is not None:
                problems.append(answer)
        found.append(ask)
    if problems is not None:
        said = {p["path"] for p in problems}
        problems.extend(p for p in _bad_answers(paths) if p["path"] not in said)
    return found


def _bad_answers(paths: Paths) -> list[Problem]:
    """Answers that are not small regular files, asked or not; one ``lstat`` each, nothing read."""
    bad = []
    for name in sorted(_names(paths.answers)):
        path = paths.answers / name
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            bad.append(problem(paths, path, exc))
            continue
        if not stat.S_ISREG(st.st_mode):
            bad.append(problem(paths, path, f"is {fs.kind(st.st_mode)}, not a regular file"))
        elif st.st_size > fs.SMALL:
            bad.append(problem(paths, path, f"is larger than {fs.SMALL >> 20} MiB"))
    return bad


class AskFailed(LooopError):
    """The ask cannot be answered any more: it vanished (exit 1)."""

    exit_code = FAILED


class AskTimedOut(LooopError):
    """No answer within ``--timeout``; the ask stays pending (exit 124)."""

    exit_code = TIMED_OUT


def _ensure_dirs(paths: Paths) -> None:
    for directory in (paths.asks, paths.answers):
        directory.mkdir(parents=True, exist_ok=True)


def _numbers(paths: Paths, prefix: str) -> Iterator[int]:
    """The ``n`` of every ``<prefix>-<n>`` id taken, asked or answered."""
    for directory in (paths.asks, paths.answers):
        for name in _names(directory):
            if asker(name) == prefix:
                yield int(name[len(prefix) + 1 : -len(SUFFIX)])


def _same_question(ask: dict[str, Any], record: dict[str, Any]) -> bool:
    return all(
        ask.get(key) == record.get(key) for key in ("worker", "prompt", "reference", "options")
    )


def _pending_same(paths: Paths, record: dict[str, Any]) -> str | None:
    """The id of the worker's ask of the same question still to resume, if any.

    One is to resume while it is pending, or answered but its answer not yet
    ``delivered`` (the asker was killed before it could print it: the retry
    gets it, rather than asking the root agent again). An ask of that worker
    that cannot be read (an I/O error, not a bad file) raises: it may be the
    very ask to resume, and guessing "none" would raise it twice.
    """
    prefix = stem(record["worker"])
    for name in sorted(_names(paths.asks)):
        if asker(name) != prefix:
            continue
        try:
            ask = jsonfile.read_object(paths.asks / name)
        except FileNotFoundError:
            continue  # withdrawn while being listed
        except fs.BadFile:
            continue  # not an ask this asker wrote: never the one to resume
        if not _same_question(ask, record):
            continue
        if "delivered" not in ask:
            return str(ask.get("id", name[: -len(SUFFIX)]))
    return None


def delivered(paths: Paths, ask_id: str) -> None:
    """Mark the ask as answered to its asker, so the same question later is a new ask.

    Best effort: unmarked, a retry of the same question is given the same
    answer again, which is what it asked for.
    """
    path = paths.asks / f"{ask_id}{SUFFIX}"
    try:
        ask = jsonfile.read_object(path)
        if "delivered" not in ask:
            ask["delivered"] = round(time.time(), 3)
            fs.write_whole(path, (json.dumps(ask, indent=2) + "\n").encode())
    except OSError:
        pass


def raise_ask(
    paths: Paths,
    worker: str,
    prompt: str,
    reference: str | None = None,
    options: list[str] | None = None,
) -> tuple[str, bool]:
    """Create the ask (or find the identical pending one); returns ``(id, created)``."""
    ids.check("worker", worker)
    if not prompt.strip():
        raise UsageError("an ask needs a non-empty --prompt")
    _ensure_dirs(paths)
    record: dict[str, Any] = {"v": VERSION, "worker": worker, "prompt": prompt}
    if reference is not None:
        record["reference"] = reference
    if options is not None:
        record["options"] = options
    fd = os.open(paths.asks, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        with lockfile.directory(fd):
            resumed = _pending_same(paths, record)
            if resumed is not None:
                return resumed, False
            ask_id = _create(paths, record)
    finally:
        os.close(fd)
    from looop.data import events  # writers only: _ state and _ wait never load it

    events.record(paths.events, "ask_raised", id=ask_id, worker=worker)
    return ask_id, True


def _create(paths: Paths, record: dict[str, Any]) -> str:
    """Write ``record`` as the worker's next ask; its id."""
    prefix = stem(record["worker"])
    n = max(_numbers(paths, prefix), default=0) + 1
    while True:
        ask_id = ids.check("ask", f"{prefix}-{n}")
        data = {"id": ask_id, **record, "ts": round(time.time(), 3)}
        try:
            fs.write_whole(
                paths.asks / f"{ask_id}{SUFFIX}",
                (json.dumps(data, indent=2) + "\n").encode(),
                exclusive=True,
            )
        except FileExistsError:
            n += 1
            continue
        return ask_id


def wait_answer(paths: Paths, ask_id: str, timeout: float | None = None) -> dict[str, Any]:
    """Block until ``ask_id`` is answered; its answer record.

    AskFailed when the ask disappears (an answer file that is no valid
    answer leaves it pending: the wait goes on), AskTimedOut after ``timeout``.
    """
    from looop import watch  # only the asker pays for it

    name = f"{ask_id}{SUFFIX}"
    deadline = None if timeout is None else time.monotonic() + timeout
    _ensure_dirs(paths)  # a missing answers/ is made, so it can be watched
    dirs = [
        watch.Dir(paths.answers, "answer", name.__eq__),
        watch.Dir(paths.asks, "ask", name.__eq__),
    ]
    with watch.open_watch(dirs) as w:
        # Watch first, then look: a change after this is seen by one or the other.
        while True:
            record, _ = _answer_of(paths, ask_id)
            if record is not None:
                return record
            if not _present(paths.asks / name):
                raise AskFailed(f"ask {ask_id} was withdrawn (asks/{name} is gone)")
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise AskTimedOut(f"no answer to ask {ask_id} yet (it stays pending)")
            w.wait(left)


def answer(paths: Paths, ask_id: str, text: str, force: bool = False) -> dict[str, Any]:
    """Write the answer to ``ask_id`` exclusively (``force``: replace one), then journal it.

    The answer file comes first, so the asker is never kept waiting on a
    journal that cannot be written. A retry with the same text after a
    failure part-way finds its own answer and completes what is missing (the
    journal line), exit 0; another text is refused while one is given, and
    so is any text while the answer file is no valid answer (``force``
    repairs it).
    """
    ids.check("ask", ask_id)
    if not text.strip():
        raise UsageError("an empty answer is refused")
    try:
        text.encode("utf-8")  # the journal line must take it, or nothing is written
    except UnicodeEncodeError:
        raise UsageError("the answer is not UTF-8 text; nothing written") from None
    asked = paths.asks / f"{ask_id}{SUFFIX}"
    if not _present(asked):
        raise LooopError(f"no such ask: {ask_id}")
    _ensure_dirs(paths)
    with contextlib.suppress(OSError):  # its worker shows life from now: never stuck in between
        sessions.stir(paths.sessions, jsonfile.read_object(asked).get("worker"))
    record = {"v": VERSION, "id": ask_id, "answer": text, "ts": round(time.time(), 3)}
    data = (json.dumps(record, indent=2) + "\n").encode()
    said = f"answer {ask_id}: {text.strip().splitlines()[0]}"
    target = paths.answers / f"{ask_id}{SUFFIX}"
    if force:
        _clear_non_file(target)
    try:
        fs.write_whole(target, data, exclusive=not force)
    except (FileExistsError, fs.BadFile) as exc:
        if isinstance(exc, fs.BadFile) and (force or not _present(target)):
            raise  # not a FIFO or the like at the name: some other refusal
        given, why = _answer_of(paths, ask_id)
        if given is None:
            raise LooopError(
                f"ask {ask_id}: its answer file {target} {why or 'vanished'} (--force replaces it)"
            ) from None
        if given.get("answer") != text:
            raise LooopError(
                f"ask {ask_id} is already answered (--force replaces the answer)"
            ) from None
        if not _journaled(paths, said):
            journal.append(paths, said)
        return given
    from looop.data import events

    events.record(paths.events, "ask_answered", id=ask_id, forced=force)
    journal.append(paths, said)
    return record


def _clear_non_file(path: os.PathLike[str]) -> None:
    """Remove what at ``path`` is neither a file nor a link (a FIFO, an empty directory)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        os.rmdir(path)
    elif not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        os.unlink(path)


def _journaled(paths: Paths, text: str) -> bool:
    """Is ``text`` a line of the journal's (bounded) tail?"""
    try:
        tail = journal.tail(paths, None)
    except FileNotFoundError:
        return False
    flat = journal.line(text).split(None, 3)[-1].rstrip("\n")
    return any((journal.parse(line) or (0.0, ""))[1] == flat for line in tail)


def stranded(paths: Paths, ask: dict[str, Any]) -> bool:
    """Is the ask's worker a session judged dead? (No session directory: not stranded.)"""
    worker = ask.get("worker")
    if not isinstance(worker, str) or ids.PATTERN.fullmatch(worker) is None:
        return False
    path = paths.sessions / worker
    if not os.path.lexists(path):
        return False
    return sessions.inspect(path).liveness == sessions.DEAD


def listing(paths: Paths, now: float | None = None) -> list[dict[str, Any]]:
    """Pending asks, oldest first, each with ``age`` (seconds, or None) and ``stranded``."""
    now = time.time() if now is None else now
    found = []
    for ask in pending(paths):
        ts = jsonfile.finite(ask.get("ts"))
        age = None if ts is None else round(max(0.0, now - ts), 3)
        found.append({**ask, "age": age, "stranded": stranded(paths, ask)})
    found.sort(key=lambda a: (jsonfile.finite(a.get("ts")) or math.inf, str(a["id"])))
    return found
