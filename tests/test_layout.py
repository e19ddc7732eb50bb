"""The layout's rules (SPEC §14): every room keeps to its side of the wall.

The rooms are the sub-packages of ``looop/`` (``data``, ``pulse``,
``service``, ``agent``, ``workers``, ``screen``, ``cli``); the foundation is every
top-level module (``looop/*.py``: errors, paths, config, log, fs, proc,
watch...), and ``looop/__main__.py`` is the entry point. The rules:

- the foundation imports no room: it is what every room stands on;
- ``data`` imports only the foundation: every room reads the data dir, so
  the data dir may lean on none of them;
- the pulse imports neither the service manager's installer, the agent,
  the workers, the CLI nor click: it is what the service runs and what
  ``looop status`` probes, so it must not drag in what it does not use.
  From ``looop.service`` it may import ``units`` (which unit or plist
  belongs to this profile) and the per-manager driver modules
  (``systemd``, ``launchd``: status asks them for the manager's view);
- the agent and the workers do not import each other's internals. A
  room's internals are every module but the ones it publishes to the
  other: the workers publish ``contract`` (the rules every worker is
  given, which the manual prints); the agent publishes ``gate`` (``_
  run``'s guard rail, a pure judgment of a command line, which a worker's
  post-conditions pass through too); otherwise a worker reaches the agent
  through the data dir;
- nothing imports the CLI but the CLI itself and ``looop.__main__``;
- a person's screens (``screen``) may read every room but the CLI, and
  nothing imports them but the CLI: the terminal library they draw with
  (Rich) is loaded by ``looop watch`` alone, never on another command's path;
- no import cycle runs through two rooms. Rooms may lean on each other
  through distinct modules (the pulse's status reads the managers'
  drivers, the service's control starts the pulse's loop; the service
  stops the workers, a worker's start asks the service for a supervisor),
  but never module A of one room importing, however indirectly, a module
  that imports A back.

Checked statically over every module's imports with ``ast`` (function-level
ones included, where the lazy imports are), and, for the pulse, at run
time too, by the modules loaded when ``looop status`` and ``looop sense``
exit. Each rule was seen to fail on an import planted in the tree.

Also here: the house's size rule. No module of ``looop/`` is over 500 lines
(except ``looop/watch.py``, the file watcher) and no function over 80.
"""

from __future__ import annotations

import ast
import functools
import json
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

from conftest import Profile

PACKAGE = Path(__file__).resolve().parents[1] / "looop"

ROOMS = ("agent", "cli", "data", "pulse", "screen", "service", "workers")
# What the pulse may take from the service manager's package.
SERVICE_ALLOWED = ("looop.service.units", "looop.service.systemd", "looop.service.launchd")
# Not the pulse's: the other audiences, the CLI, click.
FORBIDDEN = ("looop.agent", "looop.workers", "looop.cli", "click")
# What each of the agent and workers rooms may import from the other (what that one publishes).
PUBLISHED = {"agent": ("looop.workers.contract",), "workers": ("looop.agent.gate",)}


def under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def imported_names(source: str, module: str) -> set[str]:
    """Every module (or module attribute) ``source`` imports, at any depth of the code.

    ``from a.b import c`` yields ``a.b.c`` (c may be a submodule); relative
    imports are resolved against ``module``'s package (``module`` itself when
    it names a package's ``__init__``: pass ``looop.pulse.__init__``).
    """
    names: set[str] = set()
    package = module.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package under ``root``, by dotted name (a package by its own)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = (root.name, *path.relative_to(root).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = modules()


def owner(name: str, known: dict[str, Path]) -> str:
    """The module an imported name lives in (``looop.errors.UsageError`` -> ``looop.errors``)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name


def room(module: str) -> str:
    """The room of a module: ``foundation``, ``entry`` (``looop.__main__``), ``outside``..."""
    parts = module.split(".")
    if parts[0] != "looop":
        return "outside"
    if len(parts) > 1 and parts[1] == "__main__":
        return "entry"
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in ROOMS) else "foundation"


def module_imports(module: str, source: str) -> list[tuple[str, str]]:
    """(module, name) for every name ``source``, the text of ``module``, imports."""
    is_package = MODULES[module].name == "__init__.py"
    as_source = f"{module}.__init__" if is_package else module
    return [(module, name) for name in sorted(imported_names(source, as_source))]


@functools.cache
def imports() -> tuple[tuple[str, str], ...]:
    """(importer, name) for every import of looop, outside names included; read once a run."""
    return tuple(
        pair for m, path in MODULES.items() for pair in module_imports(m, path.read_text())
    )


def breaks_pulse_rule(name: str) -> bool:
    """True when a pulse module may not import ``name``."""
    if under(name, FORBIDDEN):
        return True
    # The package itself (loaded as the parent of units) holds no code.
    return name.startswith("looop.service.") and not under(name, SERVICE_ALLOWED)


def breaks_rule(importer: str, target: str) -> str | None:
    """Which rule ``importer`` importing the module ``target`` breaks, if any."""
    mine, theirs = room(importer), room(target)
    if theirs == "cli" and mine not in ("cli", "entry"):
        return "only looop.__main__ imports the CLI"
    if theirs == "screen" and mine not in ("cli", "screen"):
        return "only the CLI imports a person's screens"
    if mine == "foundation" and theirs not in ("foundation", "outside"):
        return "the foundation imports no room"
    if mine == "data" and theirs not in ("foundation", "outside", "data"):
        return "data imports only the foundation"
    if mine == "pulse" and breaks_pulse_rule(target):
        return "the pulse imports neither the installer, the agent, the workers nor the CLI"
    crossing = {mine, theirs} == {"agent", "workers"} and not under(target, PUBLISHED[mine])
    if crossing:
        return f"{mine} imports only what {theirs} publishes to it"
    return None


def graph(pairs: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    """Module -> the modules of looop it loads (an import loads its parents too)."""
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, name in pairs:
        target = owner(name, MODULES)
        while target:
            if target != module:
                edges[module].add(target)
            target = target.rpartition(".")[0]
    return edges


def cycles_across_rooms(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected sets of modules (Tarjan) that hold modules of two rooms."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len({room(m) for m in component}) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def violations(pairs: Iterable[tuple[str, str]]) -> list[str]:
    """Every import of ``pairs`` (importer, name) that breaks a room's rule, as a sentence."""
    pairs = list(pairs)
    found = []
    for module, name in pairs:
        if not under(name, ("looop", "click")):
            continue
        target = name if name.startswith("click") else owner(name, MODULES)
        why = breaks_rule(module, target) if target else None
        if why:
            found.append(f"{module} imports {name}: {why}")
    found += [
        f"import cycle across rooms among {', '.join(c)}" for c in cycles_across_rooms(graph(pairs))
    ]
    return sorted(found)


def test_the_rooms_are_the_ones_the_rules_name() -> None:
    found = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))
    assert found == sorted(ROOMS), "a new room needs its rules here"


def test_every_import_keeps_to_its_rooms_rules() -> None:
    assert len(MODULES) > 50, f"looop's modules were not found under {PACKAGE}"
    assert violations(imports()) == []


PLANTED = {
    # file, line planted in it, the rule it must break
    "proc.py": ("from looop.data import goals", "the foundation imports no room"),
    "data/goals.py": ("from looop.pulse import lock", "data imports only the foundation"),
    "pulse/beat.py": ("from looop.service import render", "the pulse imports neither"),
    "pulse/notify.py": ("from looop.agent import state", "the pulse imports neither"),
    "pulse/status.py": ("import click", "the pulse imports neither"),
    "agent/verbs.py": ("from looop.workers import fleet", "agent imports only what workers"),
    "workers/fleet.py": ("from looop.agent import manual", "workers imports only what agent"),
    "service/doctor.py": ("from looop.cli import complete", "only looop.__main__ imports the CLI"),
    "screen/view.py": ("from looop.cli import complete", "only looop.__main__ imports the CLI"),
    "agent/state.py": ("from looop.screen import frame", "only the CLI imports a person's screens"),
    # The pulse may read the systemd driver, whose helpers take the pulse's lock.
    "pulse/lock.py": ("from looop.service import systemd", "import cycle across rooms"),
}


def test_each_rule_fails_on_an_import_planted_in_a_module() -> None:
    for planted, (line, rule) in PLANTED.items():
        module = "looop." + planted.removesuffix(".py").replace("/", ".")
        source = MODULES[module].read_text() + f"\n\ndef planted():\n    {line}\n"
        found = violations([*imports(), *module_imports(module, source)])
        assert any(rule in f for f in found), (planted, found)


def test_the_import_reader_finds_imports_planted_anywhere_in_a_module(tmp_path: Path) -> None:
    planted = tmp_path / "planted.py"
    planted.write_text(
        "import click\n"
        "class C:\n"
        "    def m(self):\n"
        "        from looop.service import manager as service\n"
        "def f():\n"
        "    if True:\n"
        "        from ..agent import state\n"
        "        from looop.service import units\n"
        "        import looop.service.install\n"
    )
    names = imported_names(planted.read_text(), "looop.pulse.planted")
    assert {
        "click",
        "looop.service.manager",
        "looop.agent.state",
        "looop.service.units",
        "looop.service.install",
    } <= names
    assert sorted(n for n in names if breaks_pulse_rule(n)) == [
        "click",
        "looop.agent.state",
        "looop.service.install",
        "looop.service.manager",
    ]
    # status's lazy import of the unit names is seen (it sits inside a function).
    assert "looop.service.units" in imported_names(
        (PACKAGE / "pulse" / "status.py").read_text(), "looop.pulse.status"
    )


# Runs looop's entry point and writes the names of the modules loaded at exit.
LOADED_AT_EXIT = """
import atexit, json, os, sys
atexit.register(lambda: open(os.environ["MODULES_OUT"], "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["looop", *sys.argv[1:]]
from looop.__main__ import main
main()
"""


def modules_loaded_by(
    profile: Profile, *args: str
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    out_file = profile.root / "modules.json"
    out = subprocess.run(
        [sys.executable, "-c", LOADED_AT_EXIT, *args],
        env=dict(profile.env, MODULES_OUT=str(out_file)),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    loaded = set(json.loads(out_file.read_text()))
    out_file.unlink()
    return out, loaded


def test_looop_status_loads_neither_click_nor_the_installer(profile: Profile) -> None:
    for args in (["status"], ["status", "--json"]):
        out, loaded = modules_loaded_by(profile, *args)
        assert out.returncode == 3, out.stderr  # not running: it did answer
        assert "looop.pulse.status" in loaded  # the hook saw the answer being made
        assert sorted(name for name in loaded if breaks_pulse_rule(name)) == [], args


def test_a_beat_loads_no_other_audience(profile: Profile) -> None:
    profile.sensor("today", """echo '{"today": {"n": 1}}'""")
    out, loaded = modules_loaded_by(profile, "sense")
    assert out.returncode == 0, out.stderr
    assert "looop.pulse.beat" in loaded
    # The way in is click and the pulse's own commands; nothing of another audience.
    way_in = {"click", "looop.cli", "looop.cli.pulse"}
    assert (
        sorted(
            n
            for n in loaded
            if breaks_pulse_rule(n) and n.split(".")[0] != "click" and n not in way_in
        )
        == []
    )


def test_the_run_time_check_sees_a_module_the_command_loads(profile: Profile) -> None:
    # `_ state` is the agent's: the same check must name it.
    out, loaded = modules_loaded_by(profile, "_", "state", "--json")
    assert out.returncode == 0, out.stderr
    assert "looop.agent.state" in loaded and breaks_pulse_rule("looop.agent.state")


def test_only_the_live_watch_loads_the_terminal_library(profile: Profile) -> None:
    # The hot paths, and `watch --once` (plain text, for scripts), load neither Rich nor Textual.
    for args in (["status"], ["_", "state", "--json"], ["watch", "--once"]):
        out, loaded = modules_loaded_by(profile, *args)
        assert out.returncode in (0, 3), (args, out.stderr)
        assert sorted(n for n in loaded if n.split(".")[0] in ("rich", "textual")) == [], args
    assert "looop.screen.frame" in loaded  # the hook saw the frame being made
    found = imports()
    assert {m for m, name in found if under(name, ("rich", "textual"))} == {"looop.screen.live"}


def test_a_commands_help_and_run_load_only_its_own_audiences_commands(profile: Profile) -> None:
    commands = {"looop.cli.pulse", "looop.cli.service", "looop.cli.agent", "looop.cli.workers"}
    for args, own in (
        (["status", "--help"], "looop.cli.pulse"),
        (["reap", "--ttl", "3600"], "looop.cli.workers"),
    ):
        out, loaded = modules_loaded_by(profile, *args)
        assert out.returncode == 0, out.stderr
        assert loaded & (commands | {"looop.cli.config"}) == {own}, args


def test_a_plain_looop_reap_loads_no_click(profile: Profile) -> None:
    for args in (["reap"], ["reap", "--json", "--dry-run"]):
        out, loaded = modules_loaded_by(profile, *args)
        assert out.returncode == 0, out.stderr
        assert "looop.workers.reap" in loaded  # the hook saw the answer being made
        assert sorted(n for n in loaded if n.split(".")[0] == "click" or n == "looop.cli") == []


# --- sizes ------------------------------------------------------------------------
MODULE_LINES, FUNCTION_LINES = 500, 80
# The file watcher is one concern with one platform's API per half: kept whole.
LONG_BY_NATURE = {"watch.py"}


def test_no_module_is_over_500_lines_but_the_file_watcher() -> None:
    lines = {str(p.relative_to(PACKAGE)): len(p.read_text().splitlines()) for p in MODULES.values()}
    long = {name: n for name, n in lines.items() if n > MODULE_LINES}
    assert set(long) - LONG_BY_NATURE == set(), long


def function_lengths(source: str) -> Iterator[tuple[str, int]]:
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            yield node.name, node.end_lineno - node.lineno + 1


def test_no_function_is_over_80_lines() -> None:
    long = [
        f"{path.relative_to(PACKAGE)}:{name} has {n} lines"
        for path in MODULES.values()
        for name, n in function_lengths(path.read_text())
        if n > FUNCTION_LINES
    ]
    assert long == []


def test_the_function_measure_counts_every_line_of_a_planted_long_function() -> None:
    source = "def f():\n" + "    x = 1\n" * 80 + "\n\nclass C:\n    def m(self):\n        pass\n"
    assert dict(function_lengths(source)) == {"f": 81, "m": 2}
