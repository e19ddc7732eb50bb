"""``asks/`` and ``answers/``: the one answer to "is an ask pending?".

An ask is ``asks/<id>.json``; it is pending while no ``answers/<id>.json``
exists. Names decide, not contents, and both questions use the same names
(``_unanswered``): a name counts when it ends in ``.json`` and is not a
dot-file (a writer's temp file), and an answer is present when its name is,
whatever it holds. So ``has_pending`` (names only, for ``_ wait``'s wake
path) and ``pending`` (parsed, for ``_ state``) agree on every case.

An ask that cannot be read (a FIFO, a directory, a file too large, not a
JSON object) is still pending: somebody asked, and hiding the ask would leave
them waiting unseen. It is listed as ``{"id", "error"}`` saying why, and the
entry goes to the caller's ``problems``. Reads go through
``looop.fs.read_small`` (no link followed, never blocking, capped).

Rejected: each caller deciding for itself (``_ state`` listed an unreadable
ask with an error while ``_ wait`` skipped the listing on any error, so the
two disagreed about whether anything was pending).
"""

from __future__ import annotations

import json
import os
import stat

from looop import fs
from looop.data.layout import Problem, problem
from looop.paths import Paths

TYPE_CHECKING = False  # not typing's: the probes' start-up should not pay for it
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

SUFFIX = ".json"


def named(name: str) -> bool:
    """Does ``name`` count as an ask or an answer? ``<id>.json``, never a dot-file."""
    return name.endswith(SUFFIX) and not name.startswith(".")


def _names(directory: os.PathLike[str]) -> Iterator[str]:
    """The names in ``directory`` that count as an ask or an answer."""
    try:
        with os.scandir(directory) as it:
            for entry in it:
                if named(entry.name):
                    yield entry.name
    except OSError:
        return


def _unanswered(paths: Paths) -> Iterator[str]:
    for name in _names(paths.asks):
        if not os.path.lexists(paths.answers / name):
            yield name


def has_pending(paths: Paths) -> bool:
    """Is any ask unanswered? Names only, nothing parsed; agrees with ``pending``."""
    return next(_unanswered(paths), None) is not None


def _why_not_json(data: bytes) -> tuple[Any, str]:
    try:
        value = json.loads(data)
    except ValueError:
        return None, "is not valid JSON"
    if not isinstance(value, dict):
        return None, "is not a JSON object"
    return value, ""


def pending(paths: Paths, problems: list[Problem] | None = None) -> list[dict[str, Any]]:
    """Pending asks, oldest name first; an unreadable one as ``{"id", "error"}``.

    With ``problems``, also reports answers that are not small regular files
    (they still answer their ask: the name is what counts).
    """
    found: list[dict[str, Any]] = []
    for name in sorted(_unanswered(paths)):
        ask_id = name[: -len(SUFFIX)]
        path = paths.asks / name
        try:
            ask, why = _why_not_json(fs.read_small(path))
        except FileNotFoundError:
            continue  # withdrawn while being listed
        except OSError as exc:
            ask, why = None, problem(paths, path, exc)["why"]
        if ask is None:
            found.append({"id": ask_id, "error": why})
            if problems is not None:
                problems.append(problem(paths, path, why))
            continue
        ask.setdefault("id", ask_id)
        found.append(ask)
    if problems is not None:
        problems.extend(_bad_answers(paths))
    return found


def _bad_answers(paths: Paths) -> list[Problem]:
    """Answers that are not small regular files; one ``lstat`` each, nothing read."""
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
