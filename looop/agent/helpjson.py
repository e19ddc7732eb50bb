"""``looop help --json``: the manual's tables (``agent.manual``) as one JSON object.

The commands, verbs, kinds of change and state fields are the rows the
manual's text is rendered from; the config keys come from ``config.KNOBS``
and the exit codes from ``errors.MEANINGS``. ``structure`` refuses to print
when ``problems`` finds a registered command without a row or a row naming
no command, so a new verb cannot arrive without its line. Kept apart from
the text so the manual stays one readable page.
"""

from __future__ import annotations

from looop import __version__, config, errors
from looop.agent import manual
from looop.agent.manual import Row


def _paths(name: str) -> list[str]:
    """The command paths a row's name covers: ``config show|get`` is two."""
    *words, last = name.split(" ")
    return [" ".join([*words, alternative]) for alternative in last.split("|")]


def _every_row() -> list[tuple[str, Row]]:
    """(section, row) for every command row, in the manual's order."""
    found = [("Running it", row) for row in manual.COMMANDS]
    for heading, rows in manual.VERBS:
        found += [(heading.split(" (")[0].rstrip(":"), row) for row in rows]
    return found


def problems(registered: list[str]) -> list[str]:
    """How the tables and the commands registered (as typed after ``looop``) disagree.

    A command without a row, and a row naming no command; nothing when they match.
    """
    covered = {path for _, (names, _, _) in _every_row() for n in names for path in _paths(n)}
    known = set(registered)
    return [f"`looop {path}` has no row in the manual" for path in sorted(known - covered)] + [
        f"the manual's row for `looop {path}` names no command" for path in sorted(covered - known)
    ]


def structure(registered: list[str]) -> dict[str, object]:
    """The manual's tables as one JSON-ready object; refused unless ``problems`` finds none."""
    found = problems(registered)
    if found:
        raise errors.LooopError("the manual does not match the commands: " + "; ".join(found))

    def row(section: str, names: tuple[str, ...], usage: str, purpose: str) -> dict[str, object]:
        return {
            "section": section,
            "commands": [f"looop {path}" for name in names for path in _paths(name)],
            "usage": f"looop {usage}",
            "purpose": purpose.replace(manual.NBSP, " "),
        }

    rows = [row(section, *r) for section, r in _every_row()]
    return {
        "version": __version__,
        "commands": [r for r in rows if r["section"] == "Running it"],
        "verbs": [r for r in rows if r["section"] != "Running it"],
        "changed": [{"kind": kind, "meaning": meaning} for kind, meaning in manual.CHANGED],
        "state": [{"field": field, "meaning": meaning} for field, meaning in manual.FIELDS],
        "config": [
            {
                "key": knob.key,
                "env": knob.env,
                "default": list(knob.default) if isinstance(knob.default, tuple) else knob.default,
                "help": knob.help,
            }
            for knob in config.KNOBS.values()
        ],
        "exit_codes": [{"code": code, "meaning": what} for code, what in errors.MEANINGS.items()],
    }
