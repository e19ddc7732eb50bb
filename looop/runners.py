"""Named runners: the config's ``[runners.NAME]`` tables, and the presets for the agent CLIs.

A runner is a worker command with a name (``[runners.codex] command =
[...]``), so one config holds several (a tool, a model) and ``_ worker start
--runner NAME`` picks one per worker; ``worker.runner`` names the default,
and with none set ``worker.command`` is the command, as before runners.
A table has one key, ``command``, an argv checked like ``worker.command``
(``config.validate``): the placeholders and the prompt's way in are the
same (``workers.records``). A name is a TOML bare key of at most 64
characters (letters, digits, ``_``, ``-``), so ``[runners.NAME]`` needs no
quotes and the name fits every file and field it reaches (the session's
meta, the cost ledger's ``runner``). A problem is a ``config.ConfigError``
naming the file, the line and the key (exit 78), as for every knob.

``PRESETS`` are the non-interactive forms of the agent CLIs people use, each
handing the brief over the way that tool's documentation gives, and each
citing it: the comment is written above the table by ``looop config runner
add NAME --preset P`` (``config_edit.add_runner``), so the user's file says
where its command came from. A preset is only ever copied into the file:
looop never runs one the user has not added. Rejected: presets as implicit
runners (``--runner codex`` with no table), which would change under the
user with each looop release.

This module is off the load path: ``config`` imports it only when the file
has a ``runners`` table or a runner is named.
"""

from __future__ import annotations

import re
from typing import Any

from looop import config, errors

KEYS = ("command",)  # a runner table's keys
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
TABLE = "runners"


class Preset:
    """A runner's command as a tool documents it, and the comment citing where."""

    __slots__ = ("command", "comment", "name")

    def __init__(self, name: str, command: tuple[str, ...], comment: str) -> None:
        self.name, self.command, self.comment = name, command, comment


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "claude",
            ("claude", "-p", "{prompt}", "--output-format", "stream-json", "--verbose"),
            """\
Claude Code, non-interactive: `claude -p "query"` answers and exits
(https://code.claude.com/docs/en/cli-reference: "Query via SDK, then exit").
A brief too long for one argument: looop passes a line naming prompt.md as
the query and the brief on stdin, the page's `cat file | claude -p "query"`
("Process piped content"). --output-format stream-json --verbose prints each
event as a JSON line as it works, the last the result with total_cost_usd
(https://code.claude.com/docs/en/headless: stream-json with --verbose; -p
refuses stream-json without it), which the supervisor records in cost.jsonl.
In -p mode no tool is approved by a person: allow what your workers need
(the contract's looop commands run in Bash) with --allowedTools or
--permission-mode in this command.""",
        ),
        Preset(
            "codex",
            ("codex", "exec", "--skip-git-repo-check", "--sandbox", "workspace-write", "-"),
            """\
Codex, non-interactive: `codex exec PROMPT`
(https://developers.openai.com/codex/noninteractive). PROMPT `-` reads the
brief from stdin, whatever its length (`codex exec --help`: "If not provided
as an argument (or if `-` is used), instructions are read from stdin"), so
looop pipes prompt.md in. codex exec runs read-only unless told; a worker
writes reports/ in its working directory, the data dir: --sandbox
workspace-write. It wants a Git repository unless --skip-git-repo-check
(https://github.com/openai/codex/blob/main/docs/exec.md).""",
        ),
        Preset(
            "opencode",
            (
                "opencode",
                "run",
                "Follow the brief in the attached file.",
                "--file",
                "{prompt_file}",
            ),
            """\
opencode, non-interactive: `opencode run [message..]`
(https://opencode.ai/docs/cli/#run: "Run opencode in non-interactive mode by
passing a prompt directly"). The brief, whatever its length, goes as a file
attached to the message: --file, -f, "File(s) to attach to message" (same
page); the message comes first, since --file takes every word after it.""",
        ),
        Preset(
            "pi",
            ("pi", "-p", "--mode", "json", "@{prompt_file}"),
            """\
pi, non-interactive: -p, --print "Run the supplied prompts, write the final
assistant text to stdout, then exit"; `@path` "Include a text file or image
in the first prompt", which takes a brief of any length
(https://github.com/earendil-works/pi/blob/main/packages/coding-agent/docs/cli.md).
--mode json writes each event as a JSON line as it works (same page).""",
        ),
    )
}


def check_name(name: str) -> str:
    """``name`` if it can name a runner; UsageError (exit 2) otherwise."""
    if NAME.fullmatch(name) is None:
        raise errors.UsageError(
            f"invalid runner name {name!r}: use 1 to 64 of A-Z a-z 0-9 _ - (a TOML bare key)"
        )
    return name


def name_value(value: Any) -> str:
    """``worker.runner``'s value checked as a name; ValueError saying why not."""
    if not isinstance(value, str) or NAME.fullmatch(value) is None:
        raise ValueError(f"must be a runner's name, a word of A-Z a-z 0-9 _ - (got {value!r})")
    return value


def check_default(source: str, line: int | None, values: dict[str, Any], found: dict) -> None:
    """``worker.runner``, when set, must name one of the runners ``found``: ConfigError."""
    named = values.get("worker.runner")
    if named is not None and named not in found:
        have = ", ".join(sorted(found)) or "none"
        message = f"no runner named {named!r} in the config (runners: {have})"
        raise config.ConfigError(source, line, "worker.runner", message)


def validate_table(source: str, raw: Any, line: Any) -> dict[str, config.Argv]:
    """The file's ``[runners]`` table as ``{name: argv}``; ConfigError locating a problem.

    ``line(key)`` finds the line of a dotted key in the file.
    """

    def bad(key: str, message: str) -> config.ConfigError:
        return config.ConfigError(source, line(key), key, message)

    if not isinstance(raw, dict):
        raise bad(TABLE, "must be a table of runners: [runners.NAME] command = [...]")
    found: dict[str, config.Argv] = {}
    for name, table in raw.items():
        key = f"{TABLE}.{name}"
        if NAME.fullmatch(name) is None:
            raise bad(key, "a runner's name is 1 to 64 of A-Z a-z 0-9 _ - (a TOML bare key)")
        if not isinstance(table, dict):
            raise bad(key, "must be a table: [runners.NAME] command = [...]")
        for sub in table:
            if sub not in KEYS:
                raise bad(f"{key}.{sub}", f"unknown key (known: {', '.join(KEYS)})")
        if "command" not in table:
            raise bad(key, 'has no command: command = ["program", "{prompt}"]')
        try:
            found[name] = config.validate(config.KNOBS["worker.command"], table["command"])  # type: ignore[assignment]
        except ValueError as exc:
            raise bad(f"{key}.command", str(exc)) from None
    return found


def command_for(cfg: config.Config, name: str | None) -> tuple[str | None, config.Argv]:
    """The runner a worker starts with and its argv: ``name``, else ``worker.runner``.

    With neither, ``(None, worker.command)``. An unknown ``name`` is a
    UsageError (exit 2) naming the runners there are (``worker.runner`` was
    checked when the config was loaded).
    """
    chosen = name if name is not None else cfg.worker_runner
    if chosen is None:
        return None, cfg.worker_command
    command = cfg.runners.get(chosen)
    if command is None:
        have = ", ".join(sorted(cfg.runners)) or "none"
        hint = f"; add it: looop config runner add {chosen} --preset {chosen}"
        raise errors.UsageError(
            f"no runner named {chosen!r} in the config (runners: {have})"
            + (hint if chosen in PRESETS else "")
        )
    return chosen, command


RUNNERS = """\
RUNNERS  (`[runners.NAME] command = [...]` in the config file)
  A named worker command; `_ worker start ID --runner NAME` picks it and
  worker.runner names the default. A name is 1 to 64 of A-Z a-z 0-9 _ -.
  `looop config runner add NAME --preset P` writes one as its tool documents
  it, with a comment citing where:
{presets}
  Spend: where a runner prints its own (Claude Code's JSON result line,
  total_cost_usd), the supervisor records it in cost.jsonl as kind worker,
  the worker's id and the runner's name. A worker session's spend has one
  source, the first to report it: once the runner's is recorded, the
  worker's `_ cost worker ID ...` writes nothing (and says so); once the
  worker's own is, the runner's is not added. A worker ended by `_ kill`
  never prints its result: its `_ cost` is its record.
"""


def manual_part() -> str:
    """The RUNNERS section of ``looop help``: what a runner is, the presets, the spend."""
    import shlex
    import textwrap

    presets = [
        "\n".join(
            textwrap.wrap(
                shlex.join(p.command),
                78,
                initial_indent=f"    {p.name:<9} ",
                subsequent_indent=" " * 14,
                break_on_hyphens=False,
            )
        )
        for p in PRESETS.values()
    ]
    return RUNNERS.format(presets="\n".join(presets))
