"""The man page, ``looop.1``: rendered from the commands' own help, never written by hand.

This module owns turning the click command tree into roff: the root group
(``looop.cli:cli``) and every command and subcommand under it, recursively,
the ``_`` group included, in the order ``--help`` lists them and without the
hidden ones ``--help`` leaves out. Each piece comes from click itself: the
usage line from the command's usage pieces, the help and epilog from
``format_help_text`` and ``format_epilog`` (so ``\\b`` blocks and ``\\f``
truncation behave as in ``--help``), the options from each parameter's help
record, the NAME line from the root's short help. Two sections come from
the tables the manual (``looop help``) is generated from: ENVIRONMENT from
``config.KNOBS`` and EXIT STATUS from ``errors.MEANINGS``. FILES
is left out: the data dir's layout is prose in the manual, not a table, and
a copy here would drift.

Shape: the rendered page is committed as ``man/looop.1`` and shipped in the
wheel as data (``share/man/man1/looop.1``, where ``man`` finds it for a venv
or pipx install); a test renders it afresh and fails, saying how to
regenerate it, when the committed page differs, so a changed help text
cannot ship a stale page. Regenerate with::

    python -m looop.cli.manpage > man/looop.1

click's own formatting changes between its releases (8.5 brackets the
COMMAND of a group that runs without one), so the page is rendered with the
click the test extra pins, and only options are listed (8.5 gives arguments
help records too, which ``--help`` does not print).

Rejected: a setuptools build hook rendering the page while the wheel is
built. It would have to import click (and every command module) inside the
isolated build environment, making click a build dependency and the build
depend on the package importing cleanly there; and the page would exist
only in built wheels, unreviewable in the tree and absent from a checkout.

The output is deterministic (no date in ``.TH``) and plain ASCII: anything
else is written as a roff escape, as are backslashes, hyphens, quotes and
a line's leading dot.
"""

from __future__ import annotations

import re
import sys
import textwrap
from collections.abc import Iterator

import click

from looop import __version__

# Wide enough that click never wraps a paragraph: roff fills them itself.
UNWRAPPED = 1_000_000
REGENERATE = "python -m looop.cli.manpage > man/looop.1"
_SPECIAL = {"\\": "\\e", "-": "\\-", "'": "\\(aq", "`": "\\(ga", '"': "\\(dq"}


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


def help_paragraphs(command: click.Command, ctx: click.Context) -> list[list[str]]:
    """The help and epilog as ``--help`` prints them, unwrapped: one list of lines a paragraph.

    A paragraph click rewraps is one line here; a ``\\b`` block keeps its lines.
    """
    formatter = click.HelpFormatter(width=UNWRAPPED, max_width=UNWRAPPED)
    command.format_help_text(ctx, formatter)
    command.format_epilog(ctx, formatter)
    text = textwrap.dedent(formatter.getvalue()).strip("\n")
    return [part.splitlines() for part in re.split(r"\n[ \t]*\n", text) if part.strip()]


def paragraphs(command: click.Command, ctx: click.Context) -> list[str]:
    lines: list[str] = []
    for paragraph in help_paragraphs(command, ctx):
        lines.append(".PP")
        if len(paragraph) == 1:
            lines.append(text_line(escape(paragraph[0].strip())))
        else:  # a block click does not rewrap: neither does roff
            lines += [".nf", *(text_line(escape(line)) for line in paragraph), ".fi"]
    return lines


def usage(command: click.Command, ctx: click.Context) -> str:
    pieces = " ".join(command.collect_usage_pieces(ctx))
    return text_line(f"{bold(ctx.command_path)} {escape(pieces)}".rstrip())


def option_tag(declaration: str) -> str:
    """``-V, --version`` or ``--since CURSOR``: the option names bold, the rest roman."""
    return "".join(
        bold(piece) if piece.startswith("-") else escape(piece)
        for piece in re.split(r"(\s+|,|/)", declaration)
        if piece
    )


def is_help_option(param: click.Parameter, ctx: click.Context) -> bool:
    """Is ``param`` click's own ``--help``? (Its name differs between click's versions.)"""
    return (
        isinstance(param, click.Option)
        and param.is_eager
        and not param.expose_value
        and set(param.opts) == set(ctx.help_option_names)
    )


def options(command: click.Command, ctx: click.Context, with_help: bool) -> list[str]:
    """Each option's help record, as ``--help`` lists it (``--help`` itself only if asked).

    Options only: ``--help`` lists no arguments here (click from 8.5 gives
    an argument a help record too, which would make the page depend on
    which click is installed).
    """
    lines: list[str] = []
    for param in command.get_params(ctx):
        if not isinstance(param, click.Option) or (is_help_option(param, ctx) and not with_help):
            continue
        record = param.get_help_record(ctx)
        if record is None:  # a hidden option
            continue
        declaration, help_text = record
        lines += [".TP", text_line(option_tag(declaration))]
        if help_text.strip():
            lines.append(text_line(escape(" ".join(help_text.split()))))
    return lines


def environment() -> list[str]:
    from looop import config

    lines = [
        ".PP",
        "Each variable sets the config key it names, over the config file "
        f"(see {bold('looop config')}).",
    ]
    for knob in config.KNOBS.values():
        default = config.format_value(knob.default) if knob.default is not None else "unset"
        lines += [
            ".TP",
            bold(knob.env),
            text_line(f"{bold(knob.key)} (default {escape(default)}): {escape(knob.help)}"),
        ]
    return lines


def exit_status() -> list[str]:
    from looop.errors import MEANINGS

    lines: list[str] = []
    for code, meaning in MEANINGS.items():
        lines += [".TP", bold(str(code)), text_line(escape(meaning))]
    return lines


def render(root: click.Command | None = None) -> str:
    """The whole page for ``root`` (by default ``looop.cli:cli``), as roff."""
    if root is None:
        from looop.cli import cli

        root = cli
    ctx = context(root, "looop", None)
    name_line = root.get_short_help_str(limit=UNWRAPPED).rstrip(".")
    lines = [
        f".\\\" Generated from the commands' help: do not edit. Regenerate: {REGENERATE}",
        f'.TH LOOOP 1 "" "looop {escape(__version__)}" "User Commands"',
        ".nh",  # no hyphenation (an option's name must not break) ...
        ".ad l",  # ... and ragged right, as --help prints
        ".SH NAME",
        f"looop \\- {escape(name_line)}",
        ".SH SYNOPSIS",
        usage(root, ctx),
        ".SH DESCRIPTION",
        *paragraphs(root, ctx),
        ".SH OPTIONS",
        *options(root, ctx, with_help=True),
        ".SH COMMANDS",
    ]
    for command, sub_ctx in walk(root, ctx):
        if command is root:
            continue
        lines += [
            f'.SS "{escape(sub_ctx.command_path)}"',
            usage(command, sub_ctx),
            *paragraphs(command, sub_ctx),
            *options(command, sub_ctx, with_help=False),
        ]
    lines += [".SH ENVIRONMENT", *environment(), ".SH EXIT STATUS", *exit_status()]
    return "\n".join(lines) + "\n"


def main() -> None:
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
