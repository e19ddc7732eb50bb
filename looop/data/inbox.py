"""A live worker's inbox: ``_ tell`` queues a message, an answer or ``_ told`` shows it, once.

The root agent steers a worker it started without stopping it: ``tell``
writes ``sessions/<id>/inbox/<n>.json`` (``{"v", "id": n, "ts", "text"}``),
whole and exclusively (``n`` one past the highest in ``inbox/`` and
``inbox/read/``, so two tells at once get two numbers and a number is never
reused within a run), journaled (``tell <id>: <first line>``) and recorded
(``worker_told``). The worker sees it with its next answer (``_ ask`` prints
the messages after the answer, each after a ``MARKER`` line that the worker
contract explains) or whenever it runs ``_ told``.

Decisions, and why:

* **Only a live worker is told** (starting or running, ``data.sessions``'s
  judgment): a dead one will never read it, and an unknown id is a typo.
  Both are refused (exit 1) and nothing is written: steer a worker that
  ended with a new worker or a goal.
* **Delivered means shown, and each message is shown once.** A message is
  taken by renaming it into ``inbox/read/`` before it is printed (``take``):
  of an answer and a ``_ told`` at the same instant, exactly one rename
  wins and the other shows nothing. A process killed between the rename
  and its print loses the message from view, never shows it twice; it
  stays in ``inbox/read/``, and ``_ told --all`` shows it again.
  (Rejected: printing first and marking after, as the asker marks its
  answer delivered: a repeated answer is harmless, a repeated "stop and
  revert" is not.)
* **A message is at most ``LIMIT`` bytes**: a steering note, printed into a
  worker's context with an answer; a new brief is a new worker.
* **A new run of the id starts with an empty inbox**
  (``sessions.clear_status``): what was told to the run that ended is not
  the new one's to read. The reaper removes an inbox with its session.

``sessions.message_names`` is the one answer to "what waits", so the count
every printer of a worker shows (``undelivered``) and what ``take``
delivers agree.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from looop import fs, jsonfile
from looop.data import ids, journal, sessions
from looop.data.sessions import INBOX, INBOX_READ, MESSAGE_SUFFIX
from looop.errors import LooopError, UsageError
from looop.paths import Paths

TYPE_CHECKING = False  # not typing's: ``_ ask`` and ``_ told`` are a worker's hot path
if TYPE_CHECKING:
    from typing import Any

LIMIT = 16 << 10  # bytes of one message
MARKER = "--- looop: message"  # begins the line before each message shown to a worker
VERSION = 1  # of the message record (its "v")


def tell(paths: Paths, worker: str, text: str, reason: str | None = None) -> dict[str, Any]:
    """Queue ``text`` for the live worker ``worker``; the record written.

    The journal is opened before the message is written, so a journal that
    cannot be written refuses the tell rather than queue it unrecorded.
    """
    ids.check("worker", worker)
    text = text.rstrip("\n")
    if not text.strip():
        raise UsageError("an empty message is refused")
    size = len(text.encode("utf-8", "surrogateescape"))
    if size > LIMIT:
        raise LooopError(f"the message is {size} bytes, over {LIMIT}; nothing queued")
    session = paths.sessions / worker
    if not os.path.lexists(session):
        raise LooopError(f"no worker {worker}")
    found = sessions.inspect(session)
    if found.liveness != sessions.ALIVE:
        raise LooopError(
            f"worker {worker} is not alive ({found.state}); nothing queued: "
            "start a new worker or write a goal"
        )
    inbox = session / INBOX
    os.makedirs(inbox / INBOX_READ, exist_ok=True)
    with journal.opened(paths) as note:
        record = _create(inbox, text)
        note(f"tell {worker}: {text.strip().splitlines()[0]}", reason)
    from looop.data import events  # the teller's: an asker taking its messages never loads it

    events.record(paths.events, "worker_told", worker=worker, id=record["id"])
    return record


def _numbers(inbox: Path) -> int:
    """The highest message number taken, waiting or read (the inbox listed first, then read/).

    In that order a message moved into read/ meanwhile is seen in one or the other.
    """
    names = sessions.message_names(inbox) + sessions.message_names(inbox / INBOX_READ)
    return max((int(name.removesuffix(MESSAGE_SUFFIX)) for name in names), default=0)


def _create(inbox: Path, text: str) -> dict[str, Any]:
    n = _numbers(inbox) + 1
    while True:
        record = {"v": VERSION, "id": n, "ts": round(time.time(), 3), "text": text}
        data = (json.dumps(record, indent=2, ensure_ascii=False) + "\n").encode(
            "utf-8", "surrogateescape"
        )
        try:
            fs.write_whole(inbox / f"{n}{MESSAGE_SUFFIX}", data, mode=0o600, exclusive=True)
        except FileExistsError:
            n += 1
            continue
        return record


def take(paths: Paths, worker: str) -> list[dict[str, Any]]:
    """The messages waiting for ``worker``, oldest first, each taken (moved into read/) first.

    A message another taker moved first is not this one's to show. A worker
    id that is no session (any process may ask) has none. OSError when
    read/ cannot be made: the messages then stay waiting.
    """
    ids.check("worker", worker)
    inbox = paths.sessions / worker / INBOX
    names = sessions.message_names(inbox)
    if not names:
        return []
    read = inbox / INBOX_READ
    read.mkdir(exist_ok=True)
    taken = []
    for name in names:
        try:
            os.rename(inbox / name, read / name)
        except FileNotFoundError:
            continue  # shown by another taker
        taken.append(_message(read / name))
    return taken


def shown(paths: Paths, worker: str) -> list[dict[str, Any]]:
    """Every message already shown to ``worker``'s run, oldest first (``_ told --all``)."""
    read = paths.sessions / ids.check("worker", worker) / INBOX / INBOX_READ
    return [_message(read / name) for name in sessions.message_names(read)]


def _message(path: Path) -> dict[str, Any]:
    """The message at ``path``; one that cannot be read says why, in place of its text."""
    n = int(path.name.removesuffix(MESSAGE_SUFFIX))
    try:
        record = jsonfile.read_object(path)
    except OSError as exc:
        return {"id": n, "ts": None, "text": None, "error": fs.why(exc)}
    text = record.get("text")
    return {
        "id": n,
        "ts": jsonfile.finite(record.get("ts")),
        "text": text if isinstance(text, str) else None,
        **({} if isinstance(text, str) else {"error": 'has no "text"'}),
    }


def formatted(messages: list[dict[str, Any]]) -> str:
    """Messages as a worker reads them: each after its ``MARKER`` line ("" for none)."""
    out = []
    for m in messages:
        ts = m["ts"]
        when = "?" if ts is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))
        out.append(f"{MARKER} {m['id']} from the root agent ({when}) ---\n")
        text = m["text"] if m["text"] is not None else f"[unreadable: {m['error']}]"
        out.append(f"{text}\n")
    return "".join(out)
