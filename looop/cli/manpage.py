"""The man page, ``looop.1``: rendered from the commands and looop's tables, never written by hand.

This module owns turning the click command tree into roff: the root group
(``looop.cli:cli``) and every command and subcommand under it, recursively,
without the hidden ones ``--help`` leaves out. The commands a person runs
first come first (``FIRST``: ``up``, ``status``, ``install``, ``logs``,
``doctor``), then the other top-level ones, then the root agent's ``_``
verbs. Each piece is looop's own, read from what the commands declare, not
from click's formatting: the usage line from the command's parameters
(``usage``), the help from its docstring (``help_paragraphs``: paragraphs
rewrapped by roff, a ``\\b`` block kept as it is, the rest cut at ``\\f``, as
``--help`` does), each option from its names, type, default and help
(``option_record``), the NAME line from the root's first sentence. So the
page is the same whichever click is installed: click's own help output
changes between its releases (8.5 brackets the COMMAND of a group that runs
without one, and gives arguments help records), and a page rendered from it
made the test extra pin click, downgrading the user's.

The other sections come from the tables the manual (``looop help``) is
rendered from: ENVIRONMENT from ``config.KNOBS`` and ``OTHER_ENVIRONMENT``
(every other variable looop reads: tests/test_distribution.py greps the
code for them), FILES from ``manual.DATA_FILES`` and ``OTHER_FILES``, EXIT
STATUS from ``errors.MEANINGS``; EXAMPLES and SEE ALSO are tables here.

Shape: the rendered page is committed as ``man/looop.1`` and shipped in the
wheel as data (``share/man/man1/looop.1``, where ``man`` finds it for a venv
or pipx install); a test renders it afresh and fails, saying how to
regenerate it, when the committed page differs, so a changed help text
cannot ship a stale page. Regenerate with::

    python -m looop.cli.manpage > man/looop.1

Rejected: a setuptools build hook rendering the page while the wheel is
built. It would have to import click (and every command module) inside the
isolated build environment, making click a build dependency and the build
depend on the package importing cleanly there; and the page would exist
only in built wheels, unreviewable in the tree and absent from a checkout.

The output is deterministic (the date in ``.TH`` is ``looop.RELEASED``, the
version's) and plain ASCII: anything else is written as a roff escape, as
are backslashes, hyphens, quotes and a line's leading dot.
"""

from __future__ import annotations

import inspect
import re
import sys
from collections.abc import Iterator

import click

from looop import RELEASED, __version__

REGENERATE = "python -m looop.cli.manpage > man/looop.1"
_SPECIAL = {"\\": "\\e", "-": "\\-", "'": "\\(aq", "`": "\\(ga", '"': "\\(dq"}
# What a person runs first, in this order; the other commands follow, the `_` verbs last.
FIRST = ("up", "status", "install", "logs", "doctor")
AGENT = "_"

# Every variable looop reads besides the knobs' (``config.KNOBS``), with what it does.
OTHER_ENVIRONMENT: tuple[tuple[str, str], ...] = (
    ("LOOOP_DATA_DIR", "The data dir (a profile). Default: $XDG_STATE_HOME/looop."),
    ("LOOOP_CONFIG", "The config file. Default: config.toml in the data dir."),
    (
        "LOOOP_RUNTIME_DIR",
        "The runtime dir (the lock, the pid, the last beat's record). Default:"
        " $XDG_RUNTIME_DIR/looop, else /run/user/UID/looop, else the temp dir's looop-UID.",
    ),
    (
        "LOOOP_SESSION_ID",
        "A worker's own id, set by looop in its environment: the WORKER that `_ ask`,"
        " `_ told`, `_ claim`, `_ unclaim` and `_ kill` default to.",
    ),
    (
        "LOOOP_RUN_ALLOW_DANGEROUS",
        "1 (or true, yes): `_ run` runs a command its guard rail refuses. The human's"
        " switch, never the agent's.",
    ),
    ("NO_COLOR", "Any non-empty value: no colour (unless --color always)."),
    ("TERM", "dumb: no colour (unless --color always)."),
    ("XDG_STATE_HOME", "Where the default data dir is (looop under it)."),
    ("XDG_RUNTIME_DIR", "Where the default runtime dir is, and the systemd user manager's socket."),
    ("XDG_CONFIG_HOME", "Where `looop install` puts systemd user units (systemd/user under it)."),
    ("HOME", "The default of the XDG directories; launchd's ~/Library/LaunchAgents."),
    ("PATH", "Where a worker's or a sensor's program is looked up."),
    (
        "NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID",
        "Set by systemd for the pulse: readiness and the watchdog. Never passed on to"
        " sensors or workers.",
    ),
    ("JOURNAL_STREAM", "Set by systemd: --log-format auto writes journal priority prefixes."),
    (
        "LOOOP_WATCHDOG_SEC",
        "The pulse's own stall watchdog, in seconds, where systemd gives none (default 120).",
    ),
    (
        "_LOOOP_COMPLETE, COMP_WORDS, COMP_CWORD",
        "Set by the completion script `looop completion` prints: a TAB's command line.",
    ),
    (
        "SERVICE_RESULT, EXIT_CODE, EXIT_STATUS",
        "Set by systemd for ExecStopPost=: how the pulse's or a worker's unit ended.",
    ),
    (
        "COLUMNS, LINES",
        "The size of `looop watch --once`'s frame (else the terminal's, else 80x24).",
    ),
    ("LOOOP_WAIT_POLL", "Set and not 0: `_ wait` polls instead of using file notifications."),
    ("LOOOP_TEST_WAIT_READY", "A file `_ wait` writes once it is armed (for tests and benches)."),
    (
        "LOOOP_TEST_WATCH_FRAMES",
        "A file `looop watch` appends a line to per frame it draws (for tests and benches).",
    ),
)
# What looop sets for the programs it runs (sensors, workers, `_ run`'s command).
SET_FOR_CHILDREN = (
    "LOOOP_DATA_DIR",
    "LOOOP_CONFIG",
    "LOOOP_BIN",
    "LOOOP_CLAIMS_DIR",
    "LOOOP_REPORTS_DIR",
    "LOOOP_SESSION_ID",
    "LOOOP_LIFELINE",
)

# Files outside the data dir (the data dir's are ``manual.DATA_FILES``).
OTHER_FILES: tuple[tuple[str, str], ...] = (
    ("$LOOOP_RUNTIME_DIR/", "The lock, the pid and the last beat's record; never in the data dir."),
    (
        "~/.config/systemd/user/looop.service",
        "The pulse's unit, with looop-reap.service and looop-reap.timer (`looop install`);"
        " another profile's names end with its profile id.",
    ),
    (
        "~/Library/LaunchAgents/org.looop.pulse.plist",
        "The pulse's launchd agent, with org.looop.reap.plist; logs in ~/Library/Logs/looop/.",
    ),
)

# (what it does, the command lines)
EXAMPLES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Start the pulse, and see it beat:", ("looop up", "looop status")),
    ("Run it as a user service from now on; follow its log:", ("looop install", "looop logs -f")),
    ("What is wrong with this setup, each problem with its fix:", ("looop doctor",)),
    (
        "A sensor, tried once, then the readings of every sensor:",
        (
            "looop _ sensor write ping - <<'EOF'",
            "#!/bin/sh",
            "echo '{\"signal\": 1}'",
            "EOF",
            "looop _ sensor test ping",
            "looop sense -v",
        ),
    ),
    (
        "Hand work to a worker, answer what it asks, read its transcript:",
        (
            "looop _ worker start fix-ci 'make the CI green'",
            "looop _ asks",
            "looop _ answer fix-ci-1 yes",
            "looop logs fix-ci",
        ),
    ),
    ("A root agent's loop (the manual, `looop help`, has it whole):", ("looop _ wait --json",)),
    ("Another profile, without colour:", ("LOOOP_DATA_DIR=~/work looop --color never workers",)),
)
SEE_ALSO = ("systemctl(1)", "journalctl(1)", "systemd.service(5)", "launchd.plist(5)")


def escape(text: str) -> str:
    """``text`` as roff prints it literally, on a text line or in a quoted macro argument."""
    out = []
    for char in text:
        if char in _SPECIAL:
            out.append(_SPECIAL[char])
        elif not char.isascii():
            out.append(f"\\[u{ord(char):04X}]")
        elif char.isprintable():
            out.append(char)
        else:
            out.append(" ")  # a tab or control character: roff would act on it
    return "".join(out)


def text_line(roff: str) -> str:
    """One roff text line: never taken for a request (a leading dot or apostrophe)."""
    return "\\&" + roff if roff.startswith((".", "'")) else roff


def bold(text: str) -> str:
    return f"\\fB{escape(text)}\\fR"


def context(command: click.Command, name: str, parent: click.Context | None) -> click.Context:
    """The context ``looop ... NAME --help`` runs in: the command's own settings, unparsed."""
    return click.Context(command, info_name=name, parent=parent, **command.context_settings)


def walk(
    command: click.Command, ctx: click.Context
) -> Iterator[tuple[click.Command, click.Context]]:
    """``command`` and every visible command under it, depth first, in ``--help``'s order."""
    yield command, ctx
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            yield from walk(sub, context(sub, name, ctx))


def person_first(names: list[str]) -> list[str]:
    """The root's commands in the page's order: ``FIRST``, the others, the ``_`` verbs last."""
    first = [name for name in FIRST if name in names]
    rest = sorted(name for name in names if name not in FIRST and name != AGENT)
    return first + rest + ([AGENT] if AGENT in names else [])


def help_paragraphs(command: click.Command) -> list[list[str]]:
    """The help's paragraphs, cut at ``\\f``: a rewrapped one is one line, a ``\\b`` block many."""
    text = inspect.cleandoc(command.help or "").partition("\f")[0]
    found = []
    for part in re.split(r"\n[ \t]*\n", text):
        lines = part.splitlines()
        if lines and lines[0].strip() == "\b":
            found.append(lines[1:])
        elif part.strip():
            found.append([" ".join(part.split())])
    return [lines for lines in found if lines]


def paragraphs(command: click.Command) -> list[str]:
    lines: list[str] = []
    for paragraph in help_paragraphs(command):
        lines.append(".PP")
        if len(paragraph) == 1:
            lines.append(text_line(escape(paragraph[0].strip())))
        else:  # a block --help does not rewrap: neither does roff
            lines += [".nf", *(text_line(escape(line)) for line in paragraph), ".fi"]
    return lines


def _type_metavar(param: click.Parameter) -> str:
    """A parameter's placeholder by its type, as looop names them (not click's own words)."""
    kind = param.type
    if isinstance(kind, click.Choice):
        return "|".join(map(str, kind.choices))
    ranged = " RANGE" if isinstance(kind, click.IntRange | click.FloatRange) else ""
    for cls, word in ((click.types.IntParamType, "INTEGER"), (click.types.FloatParamType, "FLOAT")):
        if isinstance(kind, cls):
            return word + ranged
    return "PATH" if isinstance(kind, click.Path) else "TEXT"


def argument_metavar(param: click.Argument) -> str:
    """``ID``, ``[ID]``, ``[TEXT]...``, ``{bash|zsh|fish}``: an argument in a usage line."""
    if param.metavar is not None:
        return param.metavar
    if isinstance(param.type, click.Choice):
        name = "{" + _type_metavar(param) + "}"
    else:
        name = (param.name or "ARG").upper()
    if not param.required:
        name = f"[{name}]"
    return name + ("..." if param.nargs != 1 else "")


def usage(command: click.Command, ctx: click.Context) -> str:
    pieces = ["[OPTIONS]"]
    pieces += [argument_metavar(p) for p in command.params if isinstance(p, click.Argument)]
    if isinstance(command, click.Group):
        pieces.append("COMMAND [ARGS]...")
    return text_line(f"{bold(ctx.command_path)} {escape(' '.join(pieces))}")


def option_tag(declaration: str) -> str:
    """``-V, --version`` or ``--since CURSOR``: the option names bold, the rest roman."""
    return "".join(
        bold(piece) if piece.startswith("-") else escape(piece)
        for piece in re.split(r"(\s+|,|/)", declaration)
        if piece
    )


def option_record(param: click.Option) -> tuple[str, str]:
    """An option's names (and placeholder), and its help with what else it says (default, range)."""
    names = ", ".join(sorted(param.opts, key=lambda o: o.startswith("--")))  # short ones first
    if param.secondary_opts:
        names += " / " + ", ".join(param.secondary_opts)
    if not param.is_flag and not param.count:
        placeholder = param.metavar or _type_metavar(param)
        if isinstance(param.type, click.Choice) and param.metavar is None:
            placeholder = f"[{placeholder}]"
        names += f" {placeholder}"
    extras = []
    if param.show_default is True and param.default is not None and not param.is_flag:
        extras.append(f"default: {param.default}")
    kind = param.type
    if isinstance(kind, click.IntRange | click.FloatRange):
        extras.append(_range(kind))
    if param.required:
        extras.append("required")
    text = " ".join((param.help or "").split())
    return names, f"{text} [{'; '.join(extras)}]".strip() if extras else text


def _range(kind: click.IntRange | click.FloatRange) -> str:
    """``x>=0``, ``x<10``, ``1<=x<=9``: the values a number option takes."""
    below, above = "<" if kind.min_open else "<=", "<" if kind.max_open else "<="
    if kind.max is None:
        return f"x{'>' if kind.min_open else '>='}{kind.min}"
    return f"x{above}{kind.max}" if kind.min is None else f"{kind.min}{below}x{above}{kind.max}"


def options(command: click.Command, ctx: click.Context, with_help: bool) -> list[str]:
    """Each visible option (``--help`` itself only if asked), as ``--help`` lists them."""
    lines: list[str] = []
    params = list(command.params)
    help_option = command.get_help_option(ctx)
    if with_help and help_option is not None:
        params.append(help_option)
    for param in params:
        if not isinstance(param, click.Option) or param.hidden:
            continue
        names, help_text = option_record(param)
        lines += [".TP", text_line(option_tag(names))]
        if help_text:
            lines.append(text_line(escape(help_text)))
    return lines


def _tagged(rows: list[tuple[str, str]]) -> list[str]:
    lines: list[str] = []
    for term, meaning in rows:
        lines += [".TP", bold(term), text_line(escape(meaning))]
    return lines


def environment() -> list[str]:
    from looop import config

    lines = [".PP", "Each knob\\(aqs variable sets the config key it names, over the config file:"]
    for knob in config.KNOBS.values():
        default = config.format_value(knob.default) if knob.default is not None else "unset"
        lines += [
            ".TP",
            bold(knob.env),
            text_line(f"{bold(knob.key)} (default {escape(default)}): {escape(knob.help)}"),
        ]
    lines += [".PP", "And these:", *_tagged(list(OTHER_ENVIRONMENT))]
    given = ", ".join(bold(name) for name in SET_FOR_CHILDREN)
    lines += [".PP", f"looop sets {given} for the sensors, workers and commands it runs."]
    return lines


def files() -> list[str]:
    from looop.agent import manual

    lines = [".PP", f"In the data dir ({bold('$LOOOP_DATA_DIR')}):"]
    lines += _tagged(list(manual.DATA_FILES))
    return [*lines, ".PP", "Elsewhere:", *_tagged(list(OTHER_FILES))]


def exit_status() -> list[str]:
    from looop.errors import MEANINGS

    return _tagged([(str(code), meaning) for code, meaning in MEANINGS.items()])


def examples() -> list[str]:
    lines: list[str] = []
    for what, commands in EXAMPLES:
        lines += [".PP", text_line(escape(what)), ".RS 4", ".nf"]
        lines += [text_line(escape(command)) for command in commands]
        lines += [".fi", ".RE"]
    return lines


def commands(root: click.Command, ctx: click.Context) -> list[str]:
    """Every command under ``root``, a person's first, each with its usage, help and options."""
    lines: list[str] = []
    names = root.list_commands(ctx) if isinstance(root, click.Group) else []
    for name in person_first(names):
        top = root.get_command(ctx, name) if isinstance(root, click.Group) else None
        if top is None or top.hidden:
            continue
        for command, sub_ctx in walk(top, context(top, name, ctx)):
            lines += [
                f'.SS "{escape(sub_ctx.command_path)}"',
                usage(command, sub_ctx),
                *paragraphs(command),
                *options(command, sub_ctx, with_help=False),
            ]
    return lines


def render(root: click.Command | None = None) -> str:
    """The whole page for ``root`` (by default ``looop.cli:cli``), as roff."""
    if root is None:
        from looop.cli import cli

        root = cli
    ctx = context(root, "looop", None)
    name_line = " ".join(help_paragraphs(root)[0][0].split(". ")[0].split()).rstrip(".")
    see_also = ", ".join(f"\\fB{escape(page[:-3])}\\fR{page[-3:]}" for page in SEE_ALSO)
    lines = [
        f".\\\" Generated from the commands' help: do not edit. Regenerate: {REGENERATE}",
        f'.TH LOOOP 1 "{RELEASED}" "looop {escape(__version__)}" "User Commands"',
        ".nh",  # no hyphenation (an option's name must not break) ...
        ".ad l",  # ... and ragged right, as --help prints
        ".SH NAME",
        f"looop \\- {escape(name_line)}",
        ".SH SYNOPSIS",
        usage(root, ctx),
        ".SH DESCRIPTION",
        *paragraphs(root),
        ".SH OPTIONS",
        *options(root, ctx, with_help=True),
        ".SH COMMANDS",
        *commands(root, ctx),
        ".SH ENVIRONMENT",
        *environment(),
        ".SH FILES",
        *files(),
        ".SH EXIT STATUS",
        *exit_status(),
        ".SH EXAMPLES",
        *examples(),
        ".SH SEE ALSO",
        see_also,
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
