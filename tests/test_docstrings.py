"""Docstrings stay true when code moves: the names they give resolve, the rooms list their modules.

A module's docstring says what it owns and points at its neighbours by name;
a name left behind by a move sends a reader to nothing. So every dotted name
a docstring or a comment of ``looop/`` gives must name something that
exists: each ``looop.x.y``, and each ``x.y`` in double backticks whose head is
one of looop's top-level modules or rooms (``paths.child_environment``,
``cli.pulse``) or a module of the room it is written in (``lock.holder`` in
the pulse). A file name shaped like one (``events.jsonl``, ``pulse.log``)
is not a name. Resolving imports the module and walks its attributes, so a
function, a class or a constant counts, and a submodule does.

Every room's ``__init__`` (and ``looop/__init__.py`` for the foundation and
the rooms) lists its modules twice: in ``__all__``, which holds exactly the
modules on disk (and what the ``__init__`` itself defines), and in its
docstring, which names each of them in double backticks. A module added or
removed without its room's list fails here.
"""

from __future__ import annotations

import ast
import importlib
import io
import re
import tokenize
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "looop"

FULL = re.compile(r"(?<![\w./-])looop(?:\.[A-Za-z_]\w*)+")
TICKED = re.compile(r"``([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)(?:\(\))?``")
# A dotted name ending in one of these is a file's name, not a module's.
FILE_SUFFIXES = {"d", "json", "jsonl", "lock", "log", "md", "plist", "py", "service", "sh", "toml"}


def texts(source: str) -> Iterator[tuple[int, str]]:
    """(line, text) of every docstring (module, class, function) and comment of ``source``."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                yield getattr(node, "lineno", 1), doc
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string


def resolves(name: str) -> bool:
    """True when ``name`` (``looop.x.y``) is a module or an attribute reached from one."""
    parts = name.split(".")
    obj: object = importlib.import_module(parts[0])
    for i in range(1, len(parts)):
        if hasattr(obj, parts[i]):
            obj = getattr(obj, parts[i])
            continue
        try:
            obj = importlib.import_module(".".join(parts[: i + 1]))
        except ImportError:
            return False
    return True


def top_level() -> set[str]:
    """looop's top-level modules and rooms, by name."""
    return {p.stem for p in PACKAGE.glob("*.py")} | {p.parent.name for p in PACKAGE.glob("*/*.py")}


def room_modules(room: Path) -> set[str]:
    return {p.stem for p in room.glob("*.py")} - {"__init__", "__main__"}


def names_in(source: str, room: str | None) -> Iterator[tuple[int, str]]:
    """(line, full name) of every looop name the docstrings and comments of ``source`` give.

    ``room`` is the room the source is written in (None for the foundation):
    a ticked name may start at one of its modules.
    """
    tops = top_level()
    own = room_modules(PACKAGE / room) if room else set()
    for line, text in texts(source):
        for name in FULL.findall(text):
            yield line, name
        for name in TICKED.findall(text):
            head, last = name.split(".")[0], name.rsplit(".", 1)[1]
            if head == "looop" or last in FILE_SUFFIXES:
                continue
            if head in tops:
                yield line, f"looop.{name}"
            elif head in own:
                yield line, f"looop.{room}.{name}"


def unresolved(path: Path, source: str | None = None) -> list[str]:
    rel = path.relative_to(PACKAGE)
    room = rel.parts[0] if len(rel.parts) > 1 else None
    text = path.read_text() if source is None else source
    return [f"{rel}:{line}: {name}" for line, name in names_in(text, room) if not resolves(name)]


def test_every_looop_name_a_docstring_or_comment_gives_exists() -> None:
    modules = sorted(PACKAGE.rglob("*.py"))
    assert len(modules) > 50, f"looop's modules were not found under {PACKAGE}"
    assert [bad for path in modules for bad in unresolved(path)] == []


def test_a_name_that_drifted_is_found_in_a_docstring_a_comment_and_double_backticks() -> None:
    where = PACKAGE / "pulse" / "beat.py"
    planted = (
        '"""The beat record (``looop.record``), see ``paths.nowhere``."""\n'
        "# judged by looop.sessions.judge_at, kept by ``lock.beat_lock``\n"
        "def f():\n"
        '    """Written by ``lock.no_such_thing``, not by ``events.jsonl``."""\n'
    )
    assert unresolved(where, planted) == [
        "pulse/beat.py:1: looop.record",
        "pulse/beat.py:1: looop.paths.nowhere",
        "pulse/beat.py:3: looop.pulse.lock.no_such_thing",
        "pulse/beat.py:2: looop.sessions.judge_at",
    ]


def rooms() -> list[Path]:
    """The foundation's package (``looop/``) and every room's."""
    return [PACKAGE, *sorted(p.parent for p in PACKAGE.glob("*/__init__.py"))]


def listed(room: Path) -> tuple[list[str], set[str], str]:
    """A room's ``__all__``, the names its ``__init__`` defines, and its docstring."""
    tree = ast.parse((room / "__init__.py").read_text())
    names: list[str] = []
    defined: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            defined.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found = {t.id for t in targets if isinstance(t, ast.Name)}
            if "__all__" in found and node.value is not None:
                names = list(ast.literal_eval(node.value))
            defined |= found
    return names, defined, ast.get_docstring(tree) or ""


def list_errors(room: Path, names: list[str], defined: set[str], doc: str) -> list[str]:
    """How a room's ``__all__`` and docstring differ from the modules on disk.

    ``__all__`` holds the room's modules and what its ``__init__`` itself
    defines for the room's modules to share (``ServiceError``).
    """
    on_disk = room_modules(room)
    if room == PACKAGE:
        on_disk |= {p.parent.name for p in room.glob("*/__init__.py")}
    prefix = f"{room.name}." if room != PACKAGE else "looop."
    errors = [
        f"{room.name}: __all__ lists {n}, neither a module nor defined there"
        for n in names
        if n not in on_disk and n not in defined
    ]
    errors += [f"{room.name}: __all__ lacks {n}" for n in sorted(on_disk - set(names))]
    errors += [
        f"{room.name}: the docstring does not name ``{n}``"
        for n in sorted(on_disk)
        if f"``{n}``" not in doc and f"``{prefix}{n}``" not in doc
    ]
    return errors


def test_every_room_lists_exactly_its_modules() -> None:
    assert len(rooms()) == 8
    assert [e for room in rooms() for e in list_errors(room, *listed(room))] == []


def test_a_module_missing_from_a_rooms_list_or_one_listed_that_is_gone_is_found() -> None:
    pulse = PACKAGE / "pulse"
    names, defined, doc = listed(pulse)
    assert list_errors(pulse, [*names, "gone"], defined, doc) == [
        "pulse: __all__ lists gone, neither a module nor defined there"
    ]
    without_loop = [n for n in names if n != "loop"]
    assert list_errors(pulse, without_loop, defined, doc.replace("``loop``", "")) == [
        "pulse: __all__ lacks loop",
        "pulse: the docstring does not name ``loop``",
    ]
