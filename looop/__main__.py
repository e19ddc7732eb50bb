"""The ``looop`` entry point (also ``python -m looop``), and the one error handler.

``main`` is the only place a failure becomes an exit: a ``LooopError``
(which carries its exit code, see ``looop.errors``) becomes ``looop:
<message>`` on stderr and that code; an ordinary ``OSError`` (permission,
read-only, disk full, not a directory) becomes one line naming the file and
the reason, exit 1; a module that cannot be loaded (its file unreadable
mid-command) becomes ``looop: cannot load <module>: <why>``, exit 1; ^C
exits 130 without a traceback; a reader that closed our stdout early
(``looop status | head -1``) ends us quietly, exit 1; and a standard stream
the caller closed before we started (``>&-``) is ``/dev/null``.
Stdout is the only pipe a command writes to (sensors get their own, read
by the runner), so a broken pipe is taken to be stdout's, as click does. Commands
raise and return exit codes; none of them prints its own error or calls
``sys.exit`` for one. Rejected: a ``die()`` helper and a per-command wrapper in
the CLI, which chose codes at each call site and still let an OSError from an
unwrapped command (``install``, ``_ state``) out as a traceback.

``looop status`` is the probe that scripts, prompts and service checks run in
loops, ``looop _ state`` the read a root agent makes each time it acts, and
``looop _ worker start`` what it runs to hand work on (timed against
``systemd-run`` itself), and ``looop reap`` what a timer or a script runs
to keep the data dir bounded (timed against ``rm -rf``); each should answer
in tens of milliseconds, and loading click alone costs more than the whole
answer. A worker blocks in ``looop _ ask``, and the root agent calls ``_
asks`` and ``_ answer`` in its loop; ``looop sense`` is a beat on demand,
whose own work can be a few milliseconds. ``looop --help`` is what an agent
runs first, and it is the manual, which needs no click. So these are
answered here, without click, in their plain forms (``looop.argv``: each
option its own word, nothing that looks like an option where a word or a
value goes), each also after a global ``--color WHEN`` (``style.choose``),
by the same functions their click commands call: a plain ``looop --help``
(or ``-h``, ``manual.text``), ``status [--json]``
(``status.print_report``), ``_ state [--json]`` (``state.formatted``),
``_ wait`` with ``--json``, ``--since C``, ``--timeout S``, ``--for K``
(``looop.agent.wait.command``), ``reap [--json] [--dry-run]``
(``workers.reap.print_run``), ``_ worker start ID WORDS...`` and ``_ goal
write ID WORDS...`` (a body that is not blank: ``workers.start.start``,
``verbs.goal_written``), ``_ ask [WORKER]`` with ``--prompt``, ``--ref``,
``--options`` (repeated), ``--timeout``, ``--json`` (``mail.ask``), ``_
answer ID [--force] WORDS...`` (``mail.answered``), ``_ asks [--json]``
(``mail.print_asks``), ``sense [-v] [--json]`` (``sense.print_now``), ``_
tell ID WORDS...`` (``mail.told``), ``_ kill ID`` (a worker's last command:
``workers.fleet.done``), and
a shell's TAB after a command that takes an id (``COMPLETED``,
``looop.data.candidates``); so are the hidden ``_ supervise ID`` and ``_
ended ID`` (``workers.supervise``, ``workers.unit``), which run as long
as, and after, every worker. ``FAST`` is the table of them. Anything else
(a command's ``--help``, a body on stdin, ``--name=VALUE``, any other
global option first) goes to the full CLI in ``looop.cli``, whose own parse
errors click reports (exit 2). Nothing here may import click. The table
stays in this module: the foundation imports no room, and ``looop.cli``
is click's (its package loads click), so no other module may hold it.
Rejected: a click-free parser for every command; only these are hot.

Any bytes are text here, once, before either path sees them. Linux hands a
program bytes (its arguments, its stdin, file names); Python decodes the
arguments with ``surrogateescape``, so ``\\xff`` arrives as a lone surrogate that
no UTF-8 writer accepts, and a verb that wrote its file and then met it in
the journal line failed half-way ("delivered, then exit 1, and a retry says
already answered"). The rule (the manual's IDS AND TEXT): arguments and stdin are
UTF-8 text, and a byte that is not is read as U+FFFD (``text``; a body's
NUL too, ``cli.body``, since a body may become an argument); so every
verb stores, journals and hands on valid text, and does all of its work or
none of it. Stdout and stderr get ``backslashreplace``: a name read from
the disk that is not UTF-8 (an odd file in ``sensors/``) prints escaped,
never as a traceback, whatever the locale (``errors="strict"`` in most
UTF-8 locales). Rejected: refusing such an argument (an agent passing on a
tool's output would be stuck with no way to say it) and passing it through
(every writer would need its own rule, and one was always missing).

Both paths must answer alike, and tests/test_fast_path.py holds them to it
(stdout, stderr and exit code, options and errors): ``python -m looop.cli``
runs a command line through this module's handler with the fast path off
(``run(args, fast=False)``), so the test compares the two without an
environment switch that every fast answer would have to read first.
"""

from __future__ import annotations

import io
import os
import sys

from looop import errors

TYPE_CHECKING = False  # not typing's: every command starts here
if TYPE_CHECKING:
    from collections.abc import Callable

    from _typeshed import ReadableBuffer


def main() -> None:
    if sys.stdin is None or sys.stdout is None or sys.stderr is None:
        _open_closed_streams()  # never on the hot path: Python says None for a closed fd
    sys.exit(run(sys.argv[1:]))


def _open_closed_streams() -> None:
    """A standard stream its caller closed (``looop ... >&-``) becomes ``/dev/null``.

    Python leaves ``sys.stdout`` None then, and every print failed with a
    traceback; and the descriptor left free would be the next one looop
    opens (a pipe, a record), which a write to "stdout" would then reach.
    What nobody can read is discarded, as written to a reader that is gone.
    """
    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        if getattr(sys, name) is None:
            null = os.open(os.devnull, os.O_RDWR)  # the lowest free descriptor: this one
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            setattr(sys, name, open(fd, mode, closefd=False))  # noqa: SIM115 - for good


def run(args: list[str], fast: bool = True) -> int:
    """Run one command line and return its exit code, every failure already reported.

    ``fast=False`` skips the click-free answers and hands every command line
    to click (``python -m looop.cli``): the same handler either way.
    """
    args = [text(arg) for arg in args]
    _text_streams()
    try:
        _name_stdout()
        code = _dispatch(args) if fast else _full(args)
        sys.stdout.flush()  # a closed stdout fails here, inside the handler
        return code
    except errors.LooopError as exc:
        return _fail(str(exc), exc.exit_code)
    except BrokenPipeError:
        _quiet_stdout()
        return errors.FAILED  # the reader has gone: nobody to tell
    except OSError as exc:
        if exc.filename == "<stdout>":
            _quiet_stdout()  # what is still buffered cannot fail again at exit
        return _fail(errors.os_error_line(exc), errors.FAILED)
    except ImportError as exc:  # a module whose file cannot be read (importlib drops the errno)
        return _fail(f"cannot load {exc.name or 'a module'}: {exc}", errors.FAILED)
    except KeyboardInterrupt:
        return errors.INTERRUPTED


def text(arg: str) -> str:
    """An argument as UTF-8 text: a byte that was not UTF-8 (a lone surrogate) becomes U+FFFD."""
    if arg.isascii():
        return arg
    return arg.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _text_streams() -> None:
    """Stdin read as UTF-8 with U+FFFD for bad bytes; stdout and stderr never fail to encode."""
    for stream, settings in (
        (sys.stdin, {"encoding": "utf-8", "errors": "replace"}),
        (sys.stdout, {"errors": "backslashreplace"}),
        (sys.stderr, {"errors": "backslashreplace"}),
    ):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(**settings)


# The commands whose first argument a TAB completes without click, by the
# ``data.candidates`` finder click's completer of that argument uses too
# (``looop.cli.complete``); any other TAB, and any with quoting or an option
# typed, is click's.
COMPLETED = {
    ("_", "goal", "write"): "goal_ids",
    ("_", "goal", "archive"): "goal_ids",
    ("_", "sensor", "write"): "sensor_names",
    ("_", "sensor", "remove"): "sensor_names",
    ("_", "sensor", "test"): "sensor_names",
    ("_", "schedule", "write"): "schedule_names",
    ("_", "schedule", "remove"): "schedule_names",
    ("_", "answer"): "ask_ids",
    ("_", "tell"): "worker_ids",
    ("_", "kill"): "worker_ids",
    ("_", "worker", "kill"): "worker_ids",
    ("logs",): "worker_ids",
}
# click's completion protocol: the variable its scripts set, and each shell's line format.
COMPLETE_VAR = "_LOOOP_COMPLETE"
_COMPLETE_FORMATS = {"bash_complete": "plain,{}", "zsh_complete": "plain\n{}\n_"}


def _complete() -> int | None:
    """A TAB (``COMPLETED``) answered as click would, or None to leave it to click."""
    line = _COMPLETE_FORMATS.get(os.environ.get(COMPLETE_VAR, ""))
    words = os.environ.get("COMP_WORDS", "")
    if line is None or any(c in words for c in "\"'\\"):
        return None  # another shell, or quoting: click's own split (shlex) decides
    try:
        cword = int(os.environ.get("COMP_CWORD", ""))
    except ValueError:
        return None
    cwords = words.split()
    incomplete = cwords[cword] if 0 <= cword < len(cwords) else ""
    kind = COMPLETED.get(tuple(cwords[1:cword]))
    if kind is None or incomplete.startswith("-"):
        return None
    from looop.data import candidates

    found = candidates.matching(getattr(candidates, kind), incomplete)
    sys.stdout.write("\n".join(line.format(v) for v in found) + "\n")
    return errors.OK


def _dispatch(args: list[str]) -> int:
    if COMPLETE_VAR in os.environ:
        code = _complete()
        if code is not None:
            return code
    rest = _colour(args)
    code = _fast(rest)
    return _full(args) if code is None else code


def _colour(args: list[str]) -> list[str]:
    """The command line after a leading ``--color WHEN`` (or ``--color=WHEN``), now chosen.

    A WHEN that is not one of ``style.CHOICES`` is left for click to refuse (exit 2).
    """
    if args[:1] == ["--color"] and len(args) > 1:
        when, rest = args[1], args[2:]
    elif args[:1] and args[0].startswith("--color="):
        when, rest = args[0].partition("=")[2], args[1:]
    else:
        return args
    from looop import style

    if when not in style.CHOICES:
        return args
    style.choose(when)
    return rest


def _fast(args: list[str]) -> int | None:
    """The click-free answer to ``args``, or None: not one of the hot command lines (``FAST``)."""
    if args in (["--help"], ["-h"]):
        from looop.agent import manual

        sys.stdout.write(manual.text())
        return errors.OK
    for size in (3, 2, 1):
        answer = FAST.get(tuple(args[:size]))
        if answer is not None:
            return answer(args[size:])
    return None


def _status(rest: list[str]) -> int | None:
    if not set(rest) <= {"--json"}:
        return None
    from looop.paths import resolve
    from looop.pulse.status import print_report

    return print_report(resolve(), as_json="--json" in rest)


def _state(rest: list[str]) -> int | None:
    if not set(rest) <= {"--json"}:
        return None
    from looop.agent import state
    from looop.paths import resolve

    sys.stdout.write(state.formatted(state.collect(resolve()), "--json" in rest) + "\n")
    return errors.OK


def _wait(rest: list[str]) -> int | None:
    from looop import argv

    parsed = argv.options(rest, ("--json",), ("--since", "--timeout", "--for"), ("--for",))
    if parsed is None or parsed[1]:
        return None
    given = parsed[0]
    timeout = argv.seconds(given.get("--timeout"))
    if timeout is False:
        return None
    from looop.agent import wait
    from looop.paths import resolve

    since = given["--since"][0] if "--since" in given else None
    return wait.command(resolve(), "--json" in given, timeout, since, given.get("--for", []))


def _goal_write(rest: list[str]) -> int | None:
    from looop import argv

    if not argv.plain_words(rest):
        return None
    from looop.agent import verbs
    from looop.paths import resolve

    sys.stdout.write(verbs.goal_written(resolve(), rest[0], " ".join(rest[1:])) + "\n")
    return errors.OK


def _worker_start(rest: list[str]) -> int | None:
    from looop import argv

    if not argv.plain_words(rest):
        return None
    from looop import config
    from looop.paths import resolve
    from looop.workers import start

    paths = resolve()
    cfg = config.load_logged(paths.config_file)
    sys.stdout.write(start.start(paths, cfg, rest[0], " ".join(rest[1:]), None).id + "\n")
    return errors.OK


def _supervise(rest: list[str]) -> int | None:
    if len(rest) != 1:
        return None
    from looop.data import ids
    from looop.paths import resolve
    from looop.workers import supervise

    return supervise.supervise(resolve(), ids.check("worker", rest[0]))


def _ended(rest: list[str]) -> int | None:
    if len(rest) != 1:
        return None
    from looop.data import ids
    from looop.paths import resolve
    from looop.workers import unit

    return unit.ended(resolve(), ids.check("worker", rest[0]))


def _reap(rest: list[str]) -> int | None:
    if not set(rest) <= {"--json", "--dry-run"}:
        return None
    from looop import config
    from looop.paths import resolve
    from looop.workers import reap

    paths = resolve()
    ttl = config.load_logged(paths.config_file).session_ttl
    return reap.print_run(paths, ttl, None, "--dry-run" in rest, "--json" in rest)


def _ask(rest: list[str]) -> int | None:
    from looop import argv

    valued = ("--prompt", "--ref", "--options", "--timeout")
    parsed = argv.options(rest, ("--json",), valued, ("--options",), most=1)
    if parsed is None or "--prompt" not in parsed[0]:
        return None
    given, words = parsed
    timeout = argv.seconds(given.get("--timeout"))
    if timeout is False:
        return None
    from looop.agent import mail

    worker = words[0] if words else None
    reference = given["--ref"][0] if "--ref" in given else None
    choices = tuple(given.get("--options", ()))
    mail.ask(worker, given["--prompt"][0], reference, choices, timeout, "--json" in given)


def _answer(rest: list[str]) -> int | None:
    from looop import argv

    parsed = argv.options(rest, ("--force",), most=len(rest))
    if parsed is None or not argv.plain_words(parsed[1]):
        return None
    from looop.agent import mail
    from looop.data import ids
    from looop.paths import resolve

    ask_id, words = ids.check("ask", parsed[1][0]), parsed[1][1:]
    force = "--force" in parsed[0]
    sys.stdout.write(mail.answered(resolve(), ask_id, " ".join(words), force) + "\n")
    return errors.OK


def _asks(rest: list[str]) -> int | None:
    if not set(rest) <= {"--json"}:
        return None
    from looop.agent import mail
    from looop.paths import resolve

    mail.print_asks(resolve(), "--json" in rest)
    return errors.OK


def _sense(rest: list[str]) -> int | None:
    if not set(rest) <= {"--json", "-v", "--verbose"}:
        return None
    from looop import config
    from looop.paths import resolve
    from looop.pulse import sense

    paths = resolve()
    cfg = config.load_logged(paths.config_file)
    return sense.print_now(paths, cfg, "--json" in rest, bool({"-v", "--verbose"} & set(rest)))


def _tell(rest: list[str]) -> int | None:
    from looop import argv

    if not argv.plain_words(rest):
        return None
    from looop.agent import mail
    from looop.data import ids
    from looop.paths import resolve

    wid = ids.check("worker", rest[0])
    sys.stdout.write(mail.told(resolve(), wid, " ".join(rest[1:]), None) + "\n")
    return errors.OK


def _kill(rest: list[str]) -> int | None:
    if len(rest) != 1 or rest[0][:1] == "-":
        return None
    from looop.paths import resolve
    from looop.workers import fleet

    sys.stdout.write(fleet.done(resolve(), rest[0]) + "\n")
    return errors.OK


# The hot command lines, by their command words: each answer takes the words
# after them and returns the exit code, or None when they are not in a plain form.
FAST: dict[tuple[str, ...], Callable[[list[str]], int | None]] = {
    ("status",): _status,
    ("_", "state"): _state,
    ("_", "wait"): _wait,
    ("_", "goal", "write"): _goal_write,
    ("_", "worker", "start"): _worker_start,
    ("_", "supervise"): _supervise,
    ("_", "ended"): _ended,
    ("reap",): _reap,
    ("_", "ask"): _ask,
    ("_", "answer"): _answer,
    ("_", "asks"): _asks,
    ("sense",): _sense,
    ("_", "tell"): _tell,
    ("_", "kill"): _kill,
}


def _full(args: list[str]) -> int:
    """The whole command line through click (``looop.cli``)."""
    from looop.cli import dispatch

    return dispatch(args)


class _Stdout(io.FileIO):
    """Standard output whose failed write names it (``<stdout>``), as every file is named."""

    def write(self, data: ReadableBuffer) -> int:
        try:
            return super().write(data)
        except OSError as exc:
            exc.filename = "<stdout>"
            raise


def _name_stdout() -> None:
    """Let a write to a redirected stdout that fails (``> file`` on a full disk) say so.

    Python's own stdout raises a bare ``OSError`` with no file; the handler
    could then only say "No space left on device". A terminal is left as it is.
    """
    out = sys.stdout
    if out is None or out.isatty() or not isinstance(out, io.TextIOWrapper):
        return
    out.flush()
    raw = _Stdout(out.fileno(), "w", closefd=False)
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(raw), encoding=out.encoding, errors=out.errors, newline="\n"
    )


def _fail(message: str, code: int) -> int:
    from looop.say import escaped

    sys.stderr.write(f"looop: {escaped(message)}\n")
    return code


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so what is still buffered cannot fail again at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


if __name__ == "__main__":
    main()
