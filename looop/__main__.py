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
answer. ``looop --help`` is what an agent runs first, and it is the manual,
which needs no click. So a plain ``looop --help`` (or ``-h``), ``looop
status [--json]``, ``looop _ state [--json]``, ``looop _ wait`` with its
options each given plainly (``--json``, ``--since C``, ``--timeout S``,
``--for K``), ``looop reap [--json] [--dry-run]``, ``looop _ worker start
ID WORDS...`` and ``looop _ goal write ID WORDS...`` (no option, no word
that looks like one, a body that is not blank) and a shell's TAB after a
command that takes an id (``COMPLETED``), each also after a global
``--color WHEN`` (``style.choose``), are answered here, by the same
functions their click commands call (``manual.text``,
``status.print_report``, ``state.formatted``, ``looop.agent.wait.command``,
``verbs.goal_written``, ``workers.reap.print_run``,
``workers.start.start``, ``looop.data.candidates``), inside the same
handler; so are the hidden ``_ supervise ID`` and ``_ ended ID``
(``workers.supervise``, ``workers.unit``), which run as long as, and after,
every worker; anything else (a command's ``--help``, ``--json``, a body on
stdin, any other global option first) goes to the full CLI in
``looop.cli``, whose own parse errors click reports (exit 2). Nothing here
may import click.
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
    """The click-free answer to ``args``, or None: not one of the hot command lines."""
    if args in (["--help"], ["-h"]):
        from looop.agent import manual

        sys.stdout.write(manual.text())
        return errors.OK
    if args[:1] == ["status"] and set(args[1:]) <= {"--json"}:
        from looop.paths import resolve
        from looop.pulse.status import print_report

        return print_report(resolve(), as_json="--json" in args)
    if args[:2] == ["_", "state"] and set(args[2:]) <= {"--json"}:
        from looop.agent import state
        from looop.paths import resolve

        sys.stdout.write(state.formatted(state.collect(resolve()), "--json" in args) + "\n")
        return errors.OK
    waiting = _wait_options(args[2:]) if args[:2] == ["_", "wait"] else None
    if waiting is not None:
        from looop.agent import wait
        from looop.paths import resolve

        return wait.command(resolve(), *waiting)
    if args[:3] == ["_", "goal", "write"] and _plain_words(args[3:]):
        from looop.agent import verbs
        from looop.paths import resolve

        sys.stdout.write(verbs.goal_written(resolve(), args[3], " ".join(args[4:])) + "\n")
        return errors.OK
    if args[:3] == ["_", "worker", "start"] and _plain_words(args[3:]):
        from looop import config
        from looop.paths import resolve
        from looop.workers import start

        paths = resolve()
        cfg = config.load_logged(paths.config_file)
        started = start.start(paths, cfg, args[3], " ".join(args[4:]), None)
        sys.stdout.write(started.id + "\n")
        return errors.OK
    if args[:2] in (["_", "supervise"], ["_", "ended"]) and len(args) == 3:
        from looop.data import ids
        from looop.paths import resolve

        wid = ids.check("worker", args[2])
        if args[1] == "ended":
            from looop.workers import unit

            return unit.ended(resolve(), wid)
        from looop.workers import supervise

        return supervise.supervise(resolve(), wid)
    if args[:1] == ["reap"] and set(args[1:]) <= {"--json", "--dry-run"}:
        from looop import config
        from looop.paths import resolve
        from looop.workers import reap

        paths = resolve()
        ttl = config.load_logged(paths.config_file).session_ttl
        return reap.print_run(paths, ttl, None, "--dry-run" in args, "--json" in args)
    return None


def _full(args: list[str]) -> int:
    """The whole command line through click (``looop.cli``)."""
    from looop.cli import dispatch

    return dispatch(args)


def _wait_options(rest: list[str]) -> tuple[bool, float | None, str | None, list[str]] | None:
    """``_ wait``'s options, each plainly given (``--json``, ``--since C``, ``--timeout S``,
    ``--for K``...), as ``wait.command`` takes them; None for anything else (click's)."""
    as_json, timeout, since, wake_for = False, None, None, []
    words = iter(rest)
    for word in words:
        if word == "--json":
            as_json = True
            continue
        value = next(words, None)
        if word not in ("--since", "--timeout", "--for") or value is None or value[:1] == "-":
            return None
        if word == "--for":
            wake_for.append(value)
        elif word == "--since" and since is None:
            since = value
        elif word == "--timeout" and timeout is None:
            try:
                timeout = float(value)
            except ValueError:
                return None
            if not 0 <= timeout < float("inf"):  # false for nan too
                return None
        else:
            return None  # given twice: click's rule decides
    return as_json, timeout, since, wake_for


def _plain_words(rest: list[str]) -> bool:
    """``ID WORDS...`` with no option and a body of words (no stdin, no flags): ``_ worker
    start``'s and ``_ goal write``'s plain form, whose body is the words joined (``cli.body``)."""
    return (
        len(rest) >= 2
        and not any(word.startswith("-") for word in rest)
        and bool(" ".join(rest[1:]).strip())
    )


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
