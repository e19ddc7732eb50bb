"""The mailbox's commands (SPEC §10): ``_ ask``, ``_ answer``, ``_ asks``, ``_ tell``, ``_ told``.

``_ ask`` and ``_ told`` are a worker's, ``_ answer``, ``_ asks`` and ``_
tell`` the root agent's. They
live in the ``_`` group (``cli.agent`` lists them lazily) but in a module of
their own: a worker blocked in ``_ ask`` loads neither the agent's state nor
the service manager. All behaviour is ``looop.data.mailbox``'s (the inbox's,
``_ tell`` and ``_ told``, is ``looop.data.inbox``'s); this module parses,
and ``looop.agent.mail`` does and prints what ``_ ask``, ``_ answer``, ``_
asks`` and ``_ tell`` do, for their plain forms answered without click by
``looop.__main__`` too. ``_ ask`` prints only the answer text on stdout,
then the messages told to the worker since it last read them, each after a
marker line (``inbox.MARKER``), so ``answer=$(looop _ ask ...)`` holds the
answer up to the first such line.
"""

from __future__ import annotations

import os
from typing import NoReturn

import click

from looop.cli import CONTEXT, JOURNAL, body, complete, echo_json, seconds_option
from looop.errors import UsageError
from looop.paths import SESSION_ENV, resolve


@click.command("ask", context_settings=CONTEXT)
@click.argument("worker", required=False)
@click.option("--prompt", required=True, help="The question.")
@click.option(
    "--ref",
    "reference",
    metavar="PATH",
    help="A file the answerer should read, stored as given (relative: to the data dir).",
)
@click.option(
    "--options",
    metavar="A,B",
    multiple=True,
    help="The answers expected, comma-separated; repeat to add more.",
)
@seconds_option("--timeout", help="Give up after S seconds (exit 124); the ask stays pending.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer record, not its text.")
def ask_command(
    worker: str | None,
    prompt: str,
    reference: str | None,
    options: tuple[str, ...],
    timeout: float | None,
    as_json: bool,
) -> NoReturn:
    """Ask the root agent; block and print its answer.

    WORKER defaults to $LOOOP_SESSION_ID. Asking the same question again while
    it is pending waits on the same ask. Exit 124 on --timeout, 1 when the ask
    is withdrawn; an answer file that is not a valid answer is waited past.
    Messages told to the worker (`_ tell`) follow the answer, each after a
    line beginning "--- looop: message" (with --json: "messages").
    """
    from looop.agent import mail

    mail.ask(worker, prompt, reference, options, timeout, as_json)


@click.command("answer", context_settings=CONTEXT)
@click.argument("ask_id", shell_complete=complete.ask_ids)
@click.argument("text", nargs=-1)
@click.option("--force", is_flag=True, help="Replace an answer already given.")
def answer_command(ask_id: str, text: tuple[str, ...], force: bool) -> None:
    """Answer ASK_ID with TEXT, or with stdin.

    Stdin with `-`, or with no TEXT when stdin is not a terminal. Says what
    it did on one line: "answered ask ID".
    """
    from looop.agent import mail
    from looop.data import ids

    ids.check("ask", ask_id)
    click.echo(mail.answered(resolve(), ask_id, body(text, "answer"), force))


@click.command("asks", context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="A JSON list.")
def asks_command(as_json: bool) -> None:
    """List pending asks, oldest first.

    Under a header row (ID, AGE, WORKER, PROMPT): each ask's age, and
    whether it is stranded (its worker is dead).
    """
    from looop.agent import mail

    mail.print_asks(resolve(), as_json)


@click.command("tell", context_settings=CONTEXT)
@click.argument("wid", metavar="ID", shell_complete=complete.worker_ids)
@click.argument("words", nargs=-1, metavar="MESSAGE...|-")
@JOURNAL
def tell_command(wid: str, words: tuple[str, ...], reason: str | None) -> None:
    """Queue MESSAGE for live worker ID: it comes with its next answer.

    Or when it runs `_ told`, whichever is first; shown once. MESSAGE is the
    words, or stdin with `-`; up to 16 KiB. A worker that is not alive is
    refused (exit 1).
    """
    from looop.agent import mail
    from looop.data import ids

    ids.check("worker", wid)  # before the body: a bad id never reads stdin
    click.echo(mail.told(resolve(), wid, body(words, "message"), reason))


@click.command("told", context_settings=CONTEXT)
@click.argument("worker", required=False)
@click.option("--all", "everything", is_flag=True, help="Also the messages shown before.")
@click.option("--json", "as_json", is_flag=True, help="A JSON list.")
def told_command(worker: str | None, everything: bool, as_json: bool) -> None:
    """Print the messages the root agent told you, and mark them read.

    WORKER defaults to $LOOOP_SESSION_ID. Each message is shown once, here
    or after an answer; nothing new prints nothing.
    """
    from looop.data import inbox

    worker = worker if worker is not None else os.environ.get(SESSION_ENV)
    if worker is None:
        raise UsageError(f"name the WORKER or set ${SESSION_ENV}")
    paths = resolve()
    messages = inbox.take(paths, worker)
    if everything:
        messages = inbox.shown(paths, worker)
    if as_json:
        echo_json(messages)
    else:
        click.echo(inbox.formatted(messages), nl=False)  # as an answer is printed: as told
