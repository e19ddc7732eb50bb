"""The click-free fast path answers exactly as the click commands do.

``looop --help``, ``looop status``, ``looop _ state``, ``looop _ wait``, ``looop reap``,
``looop _ worker start``, ``_ goal write``, ``_ ask``, ``_ answer``, ``_ asks``, ``_ tell``,
``_ kill``, ``looop sense`` and a TAB after a verb that takes an id are answered by
``looop.__main__`` without loading click; ``python -m looop.cli`` runs the
same command lines through click alone (the same top-level handler, the fast
path off). Each case runs its command lines both ways (on one profile, or on
two set up alike when a command changes it) and compares stdout, stderr and
the exit code, the profile's own directory written as ``<root>``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import LOOOP, Profile

Setup = Callable[[Profile], None]
Answer = tuple[str, str, int]


def nothing(profile: Profile) -> None:
    pass


def a_world(profile: Profile) -> None:
    for args in (("_", "goal", "write", "g1", "ship it"), ("_", "playbook", "write", "be kind")):
        assert profile.run(*args).returncode == 0


def an_open_runtime_dir(profile: Profile) -> None:
    profile.runtime.mkdir(mode=0o700)
    profile.runtime.chmod(0o777)  # status cannot trust it: unknown, exit 4


def a_data_dir_that_is_a_file(profile: Profile) -> None:
    profile.data.parent.mkdir(parents=True, exist_ok=True)
    profile.data.write_text("not a directory\n")


def a_broken_config(profile: Profile) -> None:
    profile.write_config("interval = 'soon'\n")


def workers(command: str, max_live: int = 8) -> Setup:
    def setup(profile: Profile) -> None:
        profile.write_config(
            f'[worker]\ncommand = {command}\nsupervisor = "detached"\nmax_live = {max_live}\n'
        )

    return setup


def one_live_worker_of_one(profile: Profile) -> None:
    workers('["sleep", "60"]', max_live=1)(profile)
    assert profile.run("_", "worker", "start", "w0", "stay").returncode == 0


def dead_sessions_and_mail(profile: Profile) -> None:
    """An exited session with an ask and its answer, one with a gone pid, one unreadable.

    Ten days and half an hour old, so both ways print the same age ("10d 0h");
    ``--json`` ages count tenths of a second, so only the text report is compared.
    """
    ended = time.time() - 10 * 86400 - 1800
    for sid, status in (("w1", {"state": "exited", "exit_code": 0, "ended": ended}), ("w2", None)):
        d = profile.data / "sessions" / sid
        d.mkdir(parents=True)
        meta = {"id": sid, "pid": (1 << 23) + 1, "started": ended - 60, "cmd": "worker"}
        (d / "meta.json").write_text(json.dumps(meta))
        if status is not None:
            (d / "status.json").write_text(json.dumps(status))
        for f in d.iterdir():
            os.utime(f, (ended, ended))
        os.utime(d, (ended, ended))
    (profile.data / "sessions" / "w3").mkdir()  # no meta: unknown, kept
    for box in ("asks", "answers"):
        (profile.data / box).mkdir()
        (profile.data / box / "w1-1.json").write_text(json.dumps({"id": "w1-1", "ts": ended}))


def an_old_ask(profile: Profile) -> None:
    """Ask ``w1-1`` of worker w1 ("which?", a or b), raised ten days ago."""
    asked = profile.run(
        "_", "ask", "w1", "--prompt", "which?", "--options", "a,b", "--timeout", "0"
    )
    assert asked.returncode == 124, asked.stderr
    path = profile.data / "asks" / "w1-1.json"
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "ts": time.time() - 10 * 86400 - 1800}))


def no_sensors(profile: Profile) -> None:
    assert profile.run("sense").returncode == 0  # the data dir seeded, its sensor removed
    for sensor in (profile.data / "sensors").iterdir():
        sensor.unlink()


def completing(words: str, shell: str = "bash") -> Setup:
    """A goal, then the environment of a TAB after ``words`` (ending in a space: a new word)."""

    def setup(profile: Profile) -> None:
        assert profile.run("_", "goal", "write", "deploy", "ship").returncode == 0
        cword = len(words.split()) - (0 if words.endswith(" ") else 1)
        profile.env.update(
            _LOOOP_COMPLETE=f"{shell}_complete", COMP_WORDS=words, COMP_CWORD=str(cword)
        )

    return setup


STATUS = [["status"], ["status", "--json"]]
STATE = [["_", "state"], ["_", "state", "--json"]]
START = ["_", "worker", "start"]
REAP = ["reap"]
COLOURLESS_STATE = ["--color=never", "_", "state"]
ASK = ["_", "ask", "w1", "--prompt", "which?"]
ANSWER = ["_", "answer", "w1-1"]
ASKS = [["_", "asks"], ["_", "asks", "--json"], ["--color", "always", "_", "asks"]]
SENSE = [["sense"], ["sense", "--verbose", "-v"]]
# What changes the profile: each way gets a profile of its own.
WRITERS = (
    ["_", "worker"],
    ["_", "ask"],
    ["_", "answer"],
    ["_", "tell"],
    ["_", "kill"],
    REAP,
    ["sense"],
)
CASES: dict[str, tuple[Setup, list[list[str]]]] = {
    "a fresh profile": (nothing, [*STATUS, *STATE, REAP, [*REAP, "--json"], ["--help"], ["-h"]]),
    "dead sessions with mail": (dead_sessions_and_mail, [[*REAP, "--dry-run"], REAP, REAP]),
    "a data dir that is a file, reaped, sensed": (
        a_data_dir_that_is_a_file,
        [REAP, [*REAP, "--json"], ["sense"]],
    ),
    "a profile with a goal and a playbook": (a_world, [*STATUS, *STATE]),
    "a colour chosen first": (nothing, [["--color", "always", "status"], COLOURLESS_STATE]),
    "a runtime dir open to others": (an_open_runtime_dir, [*STATUS, *STATE]),
    "a data dir that is a file": (a_data_dir_that_is_a_file, [*STATUS, *STATE]),
    "a broken config": (a_broken_config, [*STATUS, *STATE, REAP, [*START, "w1", "go"]]),
    "a worker started": (workers('["true"]'), [[*START, "w1", "do", "it"]]),
    "a bad worker id": (workers('["true"]'), [[*START, "bad!", "go"], [*START, "-x", "go"]]),
    "a worker command not on PATH": (workers('["/nonexistent/agent"]'), [[*START, "w1", "go"]]),
    "max_live reached": (one_live_worker_of_one, [[*START, "w1", "go"]]),
    "a wait told a bad cursor or kind": (
        nothing,
        [
            ["_", "wait", "--since", "garbage", "--timeout", "0.01"],
            ["_", "wait", "--json", "--for", "asks,nope", "--for", ","],
        ],
    ),
    "asks, answers and asks refused, on a fresh profile": (
        nothing,
        [
            *ASKS[:2],
            [*ASK[:2], "--prompt", "x"],  # no worker named, none in the environment
            [*ANSWER, "a"],
            [*ASK, "--options", ","],
            [*ASK, "--timeout", "0.01"],
        ],
    ),
    "an old pending ask, answered": (
        an_old_ask,
        [
            ASKS[2],
            [*ANSWER, "a"],
            [*ANSWER, "b"],
            [*ANSWER, "--force", "b", "it", "is"],
            ["_", "answer", "bad!", "x"],
            [*ASK, "--options", "a,b"],
        ],
    ),
    "a beat of no sensors": (no_sensors, SENSE),
    "a live worker told, then ending itself": (
        one_live_worker_of_one,
        [
            ["_", "tell", "w0", "keep", "going"],
            ["_", "tell", "bad!", "x"],
            ["_", "kill", "w9"],
            ["_", "kill", "w0"],
        ],
    ),
    "goals written": (
        nothing,
        [["_", "goal", "write", "g1", "ship", "it"], ["_", "goal", "write", "bad!", "x"]],
    ),
    "a TAB after _ goal write d": (completing("looop _ goal write d"), [[]]),
    "a TAB after logs, zsh, no worker": (completing("looop logs ", "zsh"), [[]]),
    # Bytes that are not UTF-8 (a surrogate here is that byte in the argv).
    "bytes in an argument": (
        workers('["true"]'),
        [[*START, "w1", "\udcff\udcfe"], [*START, "w\udcff", "go"], ["status", "\udcff"]],
    ),
}


def answers(profile: Profile, lines: list[list[str]], fast: bool) -> list[Answer]:
    """Each command line's (stdout, stderr, exit code), through the fast path or click alone."""
    got = []
    for args in lines:
        argv = [LOOOP, *args] if fast else [sys.executable, "-m", "looop.cli", *args]
        out = subprocess.run(
            argv,
            env=profile.env,
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
        root = str(profile.root)
        got.append(
            (out.stdout.replace(root, "<root>"), out.stderr.replace(root, "<root>"), out.returncode)
        )
    return got


def profile_at(root: Path, like: Profile) -> Profile:
    """A profile under ``root`` with ``like``'s environment, its directories moved there."""
    env = {k: v.replace(str(like.root), str(root)) for k, v in like.env.items()}
    (root / "home").mkdir(parents=True, exist_ok=True)
    return Profile(root, root / "data", root / "run", env)


@pytest.mark.parametrize("case", CASES)
def test_the_fast_path_and_click_print_the_same_and_exit_the_same(
    case: str, tmp_path: Path, profile: Profile
) -> None:
    setup, lines = CASES[case]
    # A read is asked both ways of one profile; a start changes it, so each
    # way gets a profile of its own, set up alike.
    reads_only = not any(args[: len(w)] == w for args in lines for w in WRITERS)
    fast_one = profile_at(tmp_path / "fast", profile)
    click_one = fast_one if reads_only else profile_at(tmp_path / "click", profile)
    ways = {True: fast_one, False: click_one}
    results = {}
    try:
        for one in {fast_one.root: fast_one, click_one.root: click_one}.values():
            setup(one)
        for fast, one in ways.items():
            results[fast] = answers(one, lines, fast)
    finally:
        for one in ways.values():
            one.run("down")  # end any worker the case started
    assert results[True] == results[False]


def test_each_tab_the_fast_path_answers_completes_the_argument_click_completes() -> None:
    """``looop.__main__.COMPLETED`` names, for each command, the finder click's completer uses."""
    import click

    from looop.__main__ import COMPLETED
    from looop.cli import cli

    for words, kind in COMPLETED.items():
        ctx = click.Context(cli, info_name="looop")
        command: click.Command | None = cli
        for word in words:
            assert isinstance(command, click.Group), words
            command = command.get_command(ctx, word)
            assert command is not None, words
            ctx = click.Context(command, info_name=word, parent=ctx)
        first = next(p for p in command.params if isinstance(p, click.Argument))
        completer = getattr(first, "_custom_shell_complete", None)
        assert getattr(completer, "__name__", None) == kind, (words, completer)
