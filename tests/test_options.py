"""Options are options (issue 23): a misspelt option is a usage error, never a command's words.

``_ run``'s own options come before its command; a dash-word there that is
not one of them (``--timout 5``) is exit 2 and nothing runs, while the
command keeps every dash-word from its first word on. Every verb takes
``--journal TEXT`` (SPEC §11) and journals it; a repeated ``--options`` adds
to the choices. Driven through the agent's shell tool.
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import Profile
from shell_tool import ShellTool


def tool(profile: Profile) -> ShellTool:
    return ShellTool(profile.env, limit=20)


def test_a_misspelt_option_before_run_s_command_is_a_usage_error_and_runs_nothing(
    profile: Profile,
) -> None:
    shell = tool(profile)
    for text in (
        "looop _ run --timout 5 -- touch ran1",
        "looop _ run --reasn why touch ran2",
        "looop _ run -t 5 -- touch ran3",
        "looop _ run --allow-dangerus -- touch ran4",
    ):
        done = shell.call(text)
        assert done.returncode == 2, (text, done.err)
        assert "No such option" in done.err and "--" in done.err.splitlines()[-1], done.err
    assert not list(profile.data.rglob("ran*"))
    assert not list(profile.data.glob("runs/*.json"))
    # From the command's first word on, every word is the command's, dashes and all.
    done = shell.call("looop _ run echo --timeout 5 -x -- y | head -1")
    assert done.returncode == 0 and done.out == "--timeout 5 -x -- y\n", done.err
    done = shell.call("looop _ run --timeout 5 --reason r -- ls -d .")
    assert done.returncode == 0 and done.out == ".\n", done.err


def test_every_verb_takes_journal_text_and_journals_it(profile: Profile, tmp_path: Path) -> None:
    sleeper = tmp_path / "worker"
    sleeper.write_text("#!/bin/sh\nexec sleep 60\n")
    sleeper.chmod(0o755)
    profile.write_config(
        f'[worker]\ncommand = ["{sleeper}", "{{prompt}}"]\nsupervisor = "detached"\n'
        '[notify]\ncommand = ["true", "{message}"]\n'
    )
    shell = tool(profile)
    verbs = {
        "goal write": "looop _ goal write g1 body --journal 'why 1'",
        "goal archive": "looop _ goal archive g1 --journal 'why 2'",
        "sensor write": "looop _ sensor write s1 --journal 'why 3' -- '#!/bin/sh'",
        "sensor remove": "looop _ sensor remove s1 --journal 'why 4'",
        "playbook write": "looop _ playbook write --journal 'why 5' mine",
        "notify": "looop _ notify --journal 'why 6' hello",
        "run": "looop _ run --journal 'why 7' -- true",
        "worker start": "looop _ worker start w1 --journal 'why 8' go",
        "worker kill": "looop _ worker kill w1 --journal 'why 9'",
        "schedule write": "looop _ schedule write t1 --in 1h --journal 'why 10'",
        "schedule remove": "looop _ schedule remove t1 --journal 'why 11'",
    }
    try:
        for n, (verb, text) in enumerate(verbs.items(), 1):
            done = shell.call(text)
            assert done.returncode == 0, (text, done.err)
            last = (profile.data / "journal.md").read_text().splitlines()[-1]
            assert verb.split()[0] in last and last.endswith(f": why {n}"), (text, last)
    finally:
        profile.run("down")


def test_a_repeated_options_adds_to_the_choices(profile: Profile) -> None:
    shell = tool(profile)
    done = shell.call("looop _ ask w1 --prompt 'which?' --options a,b --options c --timeout 0")
    assert done.returncode == 124, done.err
    (ask,) = json.loads(shell.call("looop _ asks --json").stdout)
    assert ask["options"] == ["a", "b", "c"]
