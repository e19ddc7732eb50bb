"""The commands an agent or a shell runs in a loop import only what they use (issue 27).

Each fast path (``status``, ``_ state``, ``_ wait``, ``_ ask``, ``_
answer``, ``_ asks``, ``_ tell``, ``_ kill``, a verb, ``_ worker start``,
``sense``, a completion TAB) runs once, as the installed ``looop`` script,
under an interpreter started with ``-S`` and the installation on
``PYTHONPATH``: what ``site`` and the environment's ``.pth`` files import
(an editable install's finder loads ``pathlib``, for one) then cannot hide
an import of looop's own. The modules it added to ``sys.modules`` are
compared with tests/import_sets.json; a module that is not listed fails the
test, named. A module that is listed but no longer loaded does not fail:
rewrite the file (``IMPORT_SETS_WRITE=1 pytest tests/test_imports.py``,
which runs the same commands and writes what they imported) to keep the list
tight. The lists are of one Python version (the file says which); under
another only looop's own modules and the heavy ones named in ``WATCHED`` are
compared, since the standard library's own imports differ between versions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from conftest import LOOOP, Processes, Profile, wait_for

import looop

SETS = Path(__file__).with_name("import_sets.json")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(looop.__file__)))
# Compared under any Python: what the issue names, and what a slip most often brings.
WATCHED = ("click", "pathlib", "typing", "dataclasses", "re", "enum", "json", "inspect", "tomllib")

# Runs the script named by argv[2] with the arguments after it, and writes
# the modules it added to sys.modules to argv[1] as it exits.
RECORDER = """\
import sys, atexit
before = set(sys.modules)
out, script, *args = sys.argv[1:]
def record():
    with open(out, "w") as fh:
        fh.write("\\n".join(sorted(set(sys.modules) - before)))
atexit.register(record)
sys.argv = [script, *args]
with open(script) as fh:
    code = compile(fh.read(), script, "exec")
exec(code, {"__name__": "__main__", "__file__": script})
"""

COMPLETE = {
    "_LOOOP_COMPLETE": "bash_complete",
    "COMP_WORDS": "looop _ goal write g",
    "COMP_CWORD": "4",
}
# name: (arguments, extra environment, exit codes that mean it did its work)
PATHS: dict[str, tuple[list[str], dict[str, str], tuple[int, ...]]] = {
    "status": (["status"], {}, (0,)),
    "status --json": (["status", "--json"], {}, (0,)),
    "_ state": (["_", "state"], {}, (0,)),
    "_ state --json": (["_", "state", "--json"], {}, (0,)),
    "_ wait": (["_", "wait", "--json", "--timeout", "0.01"], {}, (0, 124)),
    "_ ask": (["_", "ask", "w1", "--prompt", "which?", "--timeout", "0.01"], {}, (124,)),
    "_ asks": (["_", "asks"], {}, (0,)),
    "_ answer": (["_", "answer", "{ask}", "yes"], {}, (0,)),
    "_ goal write": (["_", "goal", "write", "g1", "ship", "it"], {}, (0,)),
    "_ worker start": (["_", "worker", "start", "w2", "go"], {}, (0,)),
    "_ tell": (["_", "tell", "w2", "hello"], {}, (0,)),
    "_ kill": (["_", "kill", "w2"], {}, (0,)),  # the worker's end too
    "sense": (["sense"], {}, (0,)),
    "completion TAB": ([], COMPLETE, (0,)),
}


def imported(
    args: list[str], env: dict[str, str]
) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    """The modules one run of the installed ``looop`` imports, and how it ended."""
    search = [ROOT, sysconfig.get_path("purelib"), sysconfig.get_path("platlib")]
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as out:
        done = subprocess.run(
            [sys.executable, "-S", "-c", RECORDER, out.name, LOOOP, *args],
            env={**env, "PYTHONPATH": os.pathsep.join(dict.fromkeys(search))},
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
        return set(out.read().split()), done


def measure(profile: Profile, procs: Processes) -> dict[str, set[str]]:
    """Every fast path's import set on one profile, a pulse running (one beat an hour)."""
    profile.write_config('[worker]\ncommand = ["sleep", "60"]\nsupervisor = "detached"\n')
    pulse = procs.add(profile.popen("pulse", env={**profile.env, "LOOOP_INTERVAL": "3600"}))
    wait_for(lambda: profile.run("status").returncode == 0 or pulse.poll() is not None)
    assert pulse.poll() is None, pulse.stderr and pulse.stderr.read()
    found, ask = {}, ""
    for name, (args, extra, codes) in PATHS.items():
        args = [arg.replace("{ask}", ask) for arg in args]
        modules, done = imported(args, {**profile.env, **extra})
        assert done.returncode in codes, (name, done.returncode, done.stderr)
        found[name] = modules
        if name == "_ ask":  # the ask stays pending: `_ answer` answers it
            ask = next(p.stem for p in (profile.data / "asks").glob("*.json"))
    return found


def _compared(modules: set[str], exact: bool) -> set[str]:
    if exact:
        return modules
    return {m for m in modules if m.split(".")[0] in ("looop", *WATCHED)}


def test_each_fast_path_imports_only_its_committed_list_of_modules(
    profile: Profile, procs: Processes
) -> None:
    if os.environ.get("IMPORT_SETS_WRITE"):
        found = measure(profile, procs)
        version = f"{sys.version_info[0]}.{sys.version_info[1]}"
        sets = {name: sorted(modules) for name, modules in found.items()}
        SETS.write_text(json.dumps({"python": version, "sets": sets}, indent=1) + "\n")
        return
    recorded = json.loads(SETS.read_text())
    exact = recorded["python"] == f"{sys.version_info[0]}.{sys.version_info[1]}"
    found = measure(profile, procs)
    grown = {
        name: sorted(_compared(modules, exact) - set(recorded["sets"].get(name, ())))
        for name, modules in found.items()
    }
    grown = {name: extra for name, extra in grown.items() if extra}
    assert not grown, f"new imports on a fast path (see {SETS.name}): {grown}"
