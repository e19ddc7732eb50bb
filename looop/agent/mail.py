"""The mailbox's commands, past their parsing: ``_ ask``, ``_ answer``, ``_ asks``, ``_ tell``.

Both ways a command line reaches them land here: the click commands of
``looop.cli.mailbox`` and the click-free answers of ``looop.__main__`` (a
worker blocks in ``_ ask``, the root agent calls ``_ asks`` and ``_
answer`` in its loop, and ``_ tell`` to steer a worker: none of them should pay for
click). So each function
takes what its options say, does the work with ``looop.data.mailbox`` and
prints what the command prints; neither caller prints for them.
Rejected: the bodies in the click module and a copy of them for the fast
path (two answers to one question, and the copy drifts).
"""

from __future__ import annotations

import contextlib
import os
import sys

from looop import say
from looop.errors import UsageError
from looop.paths import SESSION_ENV, Paths, resolve

TYPE_CHECKING = False  # not typing's: a worker's blocking call starts here
if TYPE_CHECKING:
    from typing import Any, NoReturn


def ask(
    worker: str | None,
    prompt: str,
    reference: str | None,
    options: tuple[str, ...],
    timeout: float | None,
    as_json: bool,
) -> NoReturn:
    """Raise (or join) the ask, block until it is answered, print the answer and exit at once."""
    from looop.data import inbox, mailbox

    worker = worker if worker is not None else os.environ.get(SESSION_ENV)
    if worker is None:
        raise UsageError(f"name the WORKER or set ${SESSION_ENV}")
    choices = None
    if options:
        choices = [o.strip() for given in options for o in given.split(",") if o.strip()]
        if not choices:
            raise UsageError("--options needs at least one non-empty choice")
    paths = resolve()
    ask_id, _created = mailbox.raise_ask(paths, worker, prompt, reference, choices)
    record = mailbox.wait_answer(paths, ask_id, timeout)
    messages = []
    with contextlib.suppress(OSError):  # not taken: they wait for `_ told` or the next answer
        messages = inbox.take(paths, worker)
    if as_json:
        say.print_json({**record, "messages": messages})
    else:
        sys.stdout.write(f"{record['answer']}\n{inbox.formatted(messages)}")
    # The worker is blocked on this exit, as the agent is on `_ wait`'s: once
    # the answer is out, exit at once, skipping the interpreter's teardown. A
    # child of ours, with none of the worker's pipes, marks the ask delivered
    # (so the same question later is a new ask): a durable write the worker
    # need not wait for; if it is lost, a retry is given the answer again.
    # With no process to spare (fork fails), we mark it ourselves: the answer is out.
    sys.stdout.flush()
    try:
        child = os.fork()
    except OSError:
        child = 0
    if child == 0:
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        with contextlib.suppress(OSError):  # lost: a retry is given the answer again
            mailbox.delivered(paths, ask_id)
    os._exit(0)


def answered(paths: Paths, ask_id: str, answer: str, force: bool) -> str:
    """Answer ``ask_id`` (one trailing newline dropped); the line that says so."""
    from looop.data import mailbox

    mailbox.answer(paths, ask_id, answer[:-1] if answer.endswith("\n") else answer, force)
    return f"answered ask {ask_id}" + (" (any earlier answer replaced)" if force else "")


def told(paths: Paths, wid: str, message: str, reason: str | None) -> str:
    """Queue ``message`` for live worker ``wid`` (``_ tell``); the line that says so."""
    from looop.data import inbox

    record = inbox.tell(paths, wid, message, reason)
    return f"told {wid} (message {record['id']})"


def print_asks(paths: Paths, as_json: bool) -> None:
    """The pending asks, oldest first: a table under a header row (none: nothing), or JSON."""
    import time

    from looop.data import mailbox

    asks = mailbox.listing(paths, time.time())
    if as_json:
        say.print_json(asks)
    elif asks:
        rows = [_ask_row(ask) for ask in asks]
        sys.stdout.write(say.table(("ID", "AGE", "WORKER", "PROMPT"), rows) + "\n")


def _ask_row(ask: dict[str, Any]) -> tuple[say.Cell, ...]:
    """One pending ask in ``_ asks``: a stranded one (its worker is gone) stands out."""
    age = "?" if ask["age"] is None else say.duration(ask["age"])
    mark = "(stranded) " if ask["stranded"] else ""
    broken = f"(answer unusable: {ask['answer_error']}) " if "answer_error" in ask else ""
    what = mark + broken + str(ask.get("error") or ask.get("prompt", ""))
    role = "warn" if mark or broken else None
    return (ask["id"], age, str(ask.get("worker", "?")), (what, role))
