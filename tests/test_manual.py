"""``looop help`` (the manual, SPEC §13) and ``looop completion`` in a real bash."""

from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap
from pathlib import Path

import click
import pytest
from conftest import LOOOP, Processes, Profile, session_files, wait_for

from looop import config, errors
from looop.agent import manual
from looop.cli import cli
from looop.pulse import worldhash

VERBS = [
    "_ state",
    "_ wait",
    "_ asks",
    "_ answer",
    "_ ask",
    "_ goal write",
    "_ goal archive",
    "_ sensor write",
    "_ sensor remove",
    "_ sensor test",
    "_ playbook write",
    "_ run",
    "_ notify",
    "_ worker start",
    "_ worker kill",
    "_ worker list",
    "_ claim",
    "_ unclaim",
    "_ cost",
    "_ kill",
]
INVARIANTS = ["irreversible", "Single writer", "Ask, don't guess"]


def registered(group: click.Group, prefix: str) -> list[str]:
    """Every command under ``group`` as typed, groups expanded (``_ goal write``)."""
    ctx = click.Context(group)
    found = []
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        if isinstance(command, click.Group):
            found += registered(command, f"{prefix} {name}")
        elif not command.hidden:
            found.append(f"{prefix} {name}")
    return found


def test_the_manual_names_every_verb_the_invariants_and_the_worker_contract(
    profile: Profile,
) -> None:
    out = profile.run("help")
    assert out.returncode == 0, out.stderr
    for verb in VERBS + INVARIANTS:
        assert verb in out.stdout, verb
    assert "THE WORKER CONTRACT" in out.stdout and '_ kill "$LOOOP_SESSION_ID"' in out.stdout
    assert "worker.max_live" in out.stdout and "LOOOP_RUN_TIMEOUT" in out.stdout
    assert " 78  the config is broken" in out.stdout


def section(manual: str, title: str) -> str:
    """The manual's section that starts with the line ``title``, up to the next heading."""
    match = re.search(rf"^{re.escape(title)}.*?(?=^[A-Z])", manual + "\nEND", re.M | re.S)
    assert match, f"no section {title!r} in the manual"
    return match.group(0)


def test_looop_dash_dash_help_is_the_manual_and_a_commands_help_stays_its_own(
    profile: Profile,
) -> None:
    manual = profile.run("help")
    assert manual.returncode == 0 and manual.stdout.startswith("LOOOP(1)")
    # -h and --help alone are answered without click; after a global option, by click.
    for args in (["--help"], ["-h"], ["--log-format", "json", "--help"]):
        out = profile.run(*args)
        assert (out.returncode, out.stdout, out.stderr) == (0, manual.stdout, ""), args
    wait = profile.run("_", "wait", "--help")
    assert wait.returncode == 0 and wait.stdout.startswith("Usage: looop _ wait [OPTIONS]")
    assert "--for CATS" in wait.stdout


def test_help_json_holds_every_command_knob_exit_code_and_state_field_as_the_manual_says_them(
    profile: Profile,
) -> None:
    out = profile.run("help", "--json")
    assert out.returncode == 0, out.stderr
    tables = json.loads(out.stdout)
    rows = tables["commands"] + tables["verbs"]
    assert {c for row in rows for c in row["commands"]} == set(registered(cli, "looop"))
    assert "looop _ goal write" in {c for row in tables["verbs"] for c in row["commands"]}
    assert [knob["key"] for knob in tables["config"]] == list(config.KNOBS)
    assert {row["code"]: row["meaning"] for row in tables["exit_codes"]} == errors.MEANINGS
    assert {row["field"] for row in tables["state"]} == {*profile.state(), "changed"}
    kinds = {row["kind"] for row in tables["changed"]}
    assert kinds == {*worldhash.PARTS, "asks", "workers", "schedules", "pulse-down"}
    # The text is rendered from the same rows: each one is in it, as the JSON says it.
    text = " ".join(profile.run("help").stdout.split())
    said = [row["usage"] + " " + row["purpose"] for row in rows]
    said += [f"{row['field']} {row['meaning']}" for row in tables["state"]]
    assert [line for line in said if " ".join(line.split()) not in text] == []


def test_help_json_fails_for_a_verb_without_a_manual_row_and_a_row_without_a_verb(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    group = cli.get_command(click.Context(cli), "_")
    assert isinstance(group, click.Group)
    monkeypatch.setitem(group.commands, "frobnicate", click.Command("frobnicate"))
    with pytest.raises(errors.LooopError, match=r"`looop _ frobnicate` has no row in the manual"):
        cli.main(["help", "--json"], prog_name="looop", standalone_mode=False)
    monkeypatch.delitem(group.commands, "frobnicate")
    cli.main(["help", "--json"], prog_name="looop", standalone_mode=False)  # whole again
    assert json.loads(capsys.readouterr().out)["verbs"]
    extra = (("_ frobnicate",), "_ frobnicate", "a verb nobody wrote")
    monkeypatch.setattr(manual, "COMMANDS", (*manual.COMMANDS, extra))
    with pytest.raises(errors.LooopError, match=r"row for `looop _ frobnicate` names no command"):
        cli.main(["help", "--json"], prog_name="looop", standalone_mode=False)


def test_every_field_of_the_state_and_every_kind_of_change_is_explained(
    profile: Profile,
) -> None:
    manual = profile.run("help").stdout
    fields = section(manual, "THE STATE")
    named = set(re.findall(r"^    ([a-z_]+)\b", fields, re.M))
    state = profile.state()
    missing = [key for key in [*state, "changed"] if key not in named]
    assert not missing, f"fields of `_ state --json` the manual does not explain: {missing}"
    kinds = [*worldhash.PARTS, "asks", "workers", "pulse-down"]
    said = section(manual, "THE ROOT AGENT'S OPERATING CONTRACT")
    assert not [k for k in kinds if not re.search(rf"^    {re.escape(k)}\b", said, re.M)]


def test_the_exit_codes_in_the_manual_are_every_code_errors_defines(profile: Profile) -> None:
    manual = profile.run("help").stdout
    listed = [int(n) for n in re.findall(r"^ +(\d+)  ", section(manual, "EXIT CODES"), re.M)]
    defined = sorted({v for k, v in vars(errors).items() if k.isupper() and type(v) is int})
    assert listed == defined


def test_the_manual_fits_in_80_columns(profile: Profile) -> None:
    out = profile.run("help")
    wide = [line for line in out.stdout.splitlines() if len(line) > 80]
    assert not wide, wide


def test_the_manuals_loop_runs_as_written_and_ends_on_exit_3(
    profile: Profile, procs: Processes, tmp_path: Path
) -> None:
    """The loop is copied from the manual; only its comment becomes a body.

    An ask pending before the loop starts wakes the first wait at once; the
    body notes what woke it and stops the pulse; the second wait, given the
    cursor, is not woken by that same ask and ends the loop on pulse-down.
    """
    lines = profile.run("help").stdout.splitlines()
    start = lines.index('      c=""')
    end = lines.index("      done", start)
    loop = textwrap.dedent("\n".join(lines[start : end + 1]))
    assert "--since" in loop and "cursor" in loop
    body = "printf '%s\\n' \"$c\" >> cursors; printf '%s' \"$state\" | jq -c .changed >> changes"
    body += '; kill "$PULSE"'
    loop = "\n".join(body if line.strip().startswith("#") else line for line in loop.splitlines())
    pulse = procs.add(profile.popen("pulse", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    wait_for(lambda: profile.run("status").returncode == 0, timeout=30)
    raised = profile.run("_", "ask", "w", "--prompt", "q", "--timeout", "0")
    assert raised.returncode == 124, raised.stderr
    env = {
        **profile.env,
        "PATH": f"{os.path.dirname(LOOOP)}{os.pathsep}{profile.env.get('PATH', os.defpath)}",
        "PULSE": str(pulse.pid),
    }
    out = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", loop + '\nlooop _ wait --since "$c"'],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 3, out.stderr  # the wait after the loop: pulse-down again
    assert (tmp_path / "changes").read_text().splitlines() == ['["asks"]']
    [cursor] = (tmp_path / "cursors").read_text().splitlines()
    assert cursor and cursor != "null"


def test_help_command_prints_that_commands_help_and_an_unknown_one_is_a_usage_error(
    profile: Profile,
) -> None:
    out = profile.run("help", "_", "goal", "write")
    assert out.returncode == 0 and out.stdout.startswith("Usage: looop _ goal write")
    bad = profile.run("help", "nosuch")
    assert bad.returncode == 2 and bad.stderr.strip() == "looop: no such command: nosuch"


def complete(profile: Profile, line: str) -> list[str]:
    """What bash offers for ``line`` (a trailing space: a new word), with looop's script.

    The ``looop`` under test comes first on PATH (the script calls ``looop``
    by name), and the function called is the one the script registered.
    """
    driver = (
        '[[ $(command -v looop) == "$2" ]] || exit 7; '
        'script=$(looop completion bash) || exit 9; eval "$script"; '
        'fn=$(complete -p looop | sed -n "s/.* -F \\([^ ]*\\) .*/\\1/p"); [[ $fn ]] || exit 8; '
        'read -ra COMP_WORDS <<< "$1"; [[ "$1" == *" " ]] && COMP_WORDS+=(""); '
        "COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); "
        '"$fn" looop; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    path = f"{os.path.dirname(LOOOP)}{os.pathsep}{profile.env.get('PATH', os.defpath)}"
    out = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", driver, "_", line, LOOOP],
        env={**profile.env, "PATH": path},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, (out.returncode, out.stderr)
    return [w for w in out.stdout.splitlines() if w]


def test_bash_completes_goal_ids_sensor_names_ask_ids_and_config_keys(profile: Profile) -> None:
    for goal in ("deploy", "docs", "release"):
        assert profile.run("_", "goal", "write", goal, "text").returncode == 0
    profile.sensor("ci", "echo '{}'")
    raised = subprocess.run(
        [LOOOP, "_", "ask", "w", "--prompt", "q", "--timeout", "0"],
        env=profile.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert raised.returncode == 124, raised.stderr
    assert complete(profile, "looop _ goal write d") == ["deploy", "docs"]
    assert complete(profile, "looop _ goal archive ") == ["deploy", "docs", "release", "setup"]
    assert complete(profile, "looop _ sensor test ") == ["ci", "today"]  # today: the starter
    assert complete(profile, "looop _ answer ") == ["w-1"]
    assert profile.run("_", "schedule", "write", "standup", "--at", "09:00").returncode == 0
    assert complete(profile, "looop _ schedule remove s") == ["standup"]
    assert complete(profile, "looop config set run.") == ["run.timeout"]
    assert "goal" in complete(profile, "looop _ go")
    assert complete(profile, "looop _ wait --for asks,w") == ["asks,workers"]


def test_bash_completes_command_names_after_help(profile: Profile) -> None:
    assert complete(profile, "looop help con") == ["config"]
    assert complete(profile, "looop help _ go") == ["goal"]
    assert complete(profile, "looop help _ goal ") == ["archive", "write"]
    assert complete(profile, "looop help nosuch ") == []


def test_worker_ids_complete_from_the_sessions_and_a_broken_sessions_dir_gives_none(
    profile: Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    from looop.cli import complete

    for sid in ("w1", "w2", "x1"):
        meta = {"id": sid, "pid": 1, "started": 0, "cmd": ["true"]}
        session_files(profile.data / "sessions" / sid, meta)
    monkeypatch.setenv("LOOOP_DATA_DIR", str(profile.data))
    param = click.Argument(["id"])
    ctx = click.Context(cli)
    assert [i.value for i in complete.worker_ids(ctx, param, "w")] == ["w1", "w2"]
    (profile.data / "sessions").rename(profile.data / "gone")
    (profile.data / "sessions").write_text("not a directory")
    assert complete.worker_ids(ctx, param, "") == []


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_a_script_for_each_shell(profile: Profile, shell: str) -> None:
    out = profile.run("completion", shell)
    assert out.returncode == 0 and "_LOOOP_COMPLETE" in out.stdout


def test_completion_in_a_broken_data_dir_completes_nothing_and_says_nothing(
    profile: Profile,
) -> None:
    profile.data.parent.mkdir(parents=True, exist_ok=True)
    profile.data.write_text("not a directory")
    assert complete(profile, "looop _ goal write ") == []
