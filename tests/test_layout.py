"""The layout's rule (SPEC §14): the pulse stands on its own.

No module of the pulse (``looop/pulse/*``) imports the service manager's
installer, the root agent, the workers, the CLI or click: the pulse is what
the service runs and what ``looop status`` probes, so it must not drag in
what it does not use. From ``looop.service`` it may import ``units`` (which
unit or plist belongs to this profile) and the per-manager driver modules
(``systemd``, ``launchd``: status asks them for the manager's view).

Checked twice: statically, by reading every pulse module's imports with
``ast`` (function-level ones included, where the lazy imports are), and at
run time, by the modules loaded when ``looop status`` and ``looop sense``
exit.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from conftest import Profile

PACKAGE = Path(__file__).resolve().parents[1] / "looop"

# What the pulse may take from the service manager's package.
SERVICE_ALLOWED = ("looop.service.units", "looop.service.systemd", "looop.service.launchd")
# Not the pulse's: the other audiences, the CLI, click.
FORBIDDEN = ("looop.agent", "looop.workers", "looop.cli", "click")


def under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def imported_names(source: str, module: str) -> set[str]:
    """Every module (or module attribute) ``source`` imports, at any depth of the code.

    ``from a.b import c`` yields ``a.b.c`` (c may be a submodule); relative
    imports are resolved against ``module``'s package.
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


def breaks_rule(name: str) -> bool:
    """True when a pulse module may not import ``name``."""
    if under(name, FORBIDDEN):
        return True
    # The package itself (loaded as the parent of units) holds no code.
    return name.startswith("looop.service.") and not under(name, SERVICE_ALLOWED)


def violations(path: Path) -> list[str]:
    module = f"looop.pulse.{path.stem}"
    return sorted(
        f"{path.name} imports {name}"
        for name in imported_names(path.read_text(), module)
        if breaks_rule(name)
    )


def test_no_pulse_module_imports_the_installer_the_agent_the_workers_the_cli_or_click() -> None:
    modules = sorted((PACKAGE / "pulse").glob("*.py"))
    assert len(modules) > 5, f"the pulse's modules were not found under {PACKAGE}"
    found = [v for path in modules for v in violations(path)]
    assert found == []


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
    assert sorted(n for n in names if breaks_rule(n)) == [
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
        assert sorted(name for name in loaded if breaks_rule(name)) == [], args


def test_a_beat_loads_no_other_audience(profile: Profile) -> None:
    profile.sensor("today", """echo '{"today": {"n": 1}}'""")
    out, loaded = modules_loaded_by(profile, "sense")
    assert out.returncode == 0, out.stderr
    assert "looop.pulse.beat" in loaded
    # The way in is click and the pulse's own commands; nothing of another audience.
    way_in = {"click", "looop.cli", "looop.cli.pulse"}
    assert (
        sorted(
            n for n in loaded if breaks_rule(n) and n.split(".")[0] != "click" and n not in way_in
        )
        == []
    )


def test_the_run_time_check_sees_a_module_the_command_loads(profile: Profile) -> None:
    # `_ state` is the agent's: the same check must name it.
    out, loaded = modules_loaded_by(profile, "_", "state", "--json")
    assert out.returncode == 0, out.stderr
    assert "looop.agent.state" in loaded and breaks_rule("looop.agent.state")


def test_a_commands_help_and_run_load_only_its_own_audiences_commands(profile: Profile) -> None:
    commands = {"looop.cli.pulse", "looop.cli.service", "looop.cli.agent", "looop.cli.workers"}
    for args, own in ((["status", "--help"], "looop.cli.pulse"), (["reap"], "looop.cli.workers")):
        out, loaded = modules_loaded_by(profile, *args)
        assert out.returncode == 0, out.stderr
        assert loaded & (commands | {"looop.cli.config"}) == {own}, args
