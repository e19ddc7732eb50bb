"""What a person sees: colour on a terminal only, header rows, what a verb did, progress, typos.

Colour (``looop.style``) is decided once per stream: ``--color always``
paints, ``--color never`` and ``NO_COLOR`` do not, and ``auto`` paints a
terminal only; a pipe never gets an escape code unless asked. A real
terminal is tmux's (a server of the test's own, on its own socket, killed
at the end); the screen is read with its escapes (``capture-pane -e``) and
polled for, never waited on by time.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator

import pytest
from conftest import LOOOP, Profile, make_session, wait_for
from shell_tool import ShellTool
from terminal import Terminal

ESC = "\x1b["
COLOUR = "\x1b\\[[0-9;]*3[1-7]m"  # a foreground colour, as tmux writes it back
# The person's commands, each with something to paint: a failing sensor,
# a dead worker that ended badly, its stranded ask, doctor's marks.
PERSON = (("status",), ("sense", "-v"), ("_", "asks"), ("workers",), ("doctor",))


def asked(profile: Profile, worker: str, prompt: str) -> None:
    """``<worker>-1``, pending: the record ``_ ask`` writes."""
    (profile.data / "asks").mkdir(parents=True, exist_ok=True)
    record = {"v": 1, "id": f"{worker}-1", "worker": worker, "prompt": prompt, "ts": time.time()}
    (profile.data / "asks" / f"{worker}-1.json").write_text(json.dumps(record))


def a_worried_world(profile: Profile) -> None:
    profile.sensor("fine", "echo '{\"signal\": 1}'")
    profile.sensor("broken", "exit 1")
    make_session(profile.data / "sessions", "gone", ended=1.0, exit_code=1, started=1.0)
    asked(profile, "gone", "still there?")


@pytest.fixture
def terminal(profile: Profile) -> Iterator[Terminal]:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed: no real terminal to test colour in")
    env = {k: v for k, v in profile.env.items() if k not in ("NO_COLOR", "TMUX")}
    one = Terminal({**env, "TERM": "xterm"}, 100, 30)
    try:
        yield one
    finally:
        one.close()


def test_a_pipe_gets_colour_only_with_color_always(profile: Profile) -> None:
    a_worried_world(profile)
    env = {k: v for k, v in profile.env.items() if k != "NO_COLOR"}
    for command in PERSON:
        # --color always wins over NO_COLOR (a flag given is the person's latest word).
        painted = profile.run("--color", "always", *command, env={**env, "NO_COLOR": "1"})
        assert ESC in painted.stdout, (command, painted.stdout, painted.stderr)
    # auto, the default: a pipe is plain (the click-free path and click's; every
    # printer's piped output is also held to printable text by test_forged_lines).
    for command in (("status",), ("workers",)):
        plain = profile.run(*command, env=env)
        assert ESC not in plain.stdout + plain.stderr, (command, plain.stdout)
    json_out = profile.run("--color", "always", "workers", "--json", env=env)
    assert json_out.stdout and ESC not in json_out.stdout  # --json is never painted


def test_a_terminal_gets_colour_unless_no_color_is_set(
    profile: Profile, terminal: Terminal
) -> None:
    a_worried_world(profile)
    looop = shlex.quote(LOOOP)
    # Painted on the terminal, by the click-free path and by click; then plain:
    # NO_COLOR, and --color never.
    painted = f"{looop} status; {looop} workers"
    plain = f"NO_COLOR=1 {looop} status; {looop} --color=never workers"
    terminal.start(f"{painted}; echo PLAIN; {plain}; echo END", stay=True)
    screen = wait_for(lambda: terminal.shows("END", escapes=True))
    before, after = screen.split("PLAIN", 1)
    assert before.count("exit 1") == after.count("exit 1") == 1, screen
    # The colours looop paints (tmux writes its own resets around text: not colours).
    assert re.search(COLOUR, before) and not re.search(COLOUR, after), screen


def test_a_wait_over_a_second_says_so_on_a_terminal_and_never_on_a_pipe(
    profile: Profile, terminal: Terminal
) -> None:
    profile.sensor("slow", "sleep 1.2; echo '{\"signal\": 1}'")
    # The same wait through a pipe, at the same time, on a profile of its own.
    other = {**profile.env, "LOOOP_DATA_DIR": str(profile.root / "other")}
    other["LOOOP_RUNTIME_DIR"] = str(profile.root / "other-run")
    shutil.copytree(profile.data, other["LOOOP_DATA_DIR"])
    piped = subprocess.Popen(
        [LOOOP, "sense"],
        env=other,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    terminal.start(f"{shlex.quote(LOOOP)} sense; echo END", stay=True)
    wait_for(lambda: terminal.shows("looop: waiting for the beat's sensors (1s)", escapes=True))
    said = wait_for(
        lambda: terminal.shows("END", escapes=True)
    )  # and the progress line is gone, the summary in its place
    assert "sensors ok" in said and "waiting for" not in said, said
    out, err = piped.communicate(timeout=60)
    assert (piped.returncode, err) == (0, ""), err
    assert " ok (" in out, out


def test_headers_answers_and_typos_say_what_they_are(profile: Profile) -> None:
    asked(profile, "w1", "ship?")
    make_session(profile.data / "sessions", "w1", ended=1.0)
    workers = profile.run("workers").stdout.splitlines()
    assert workers[0].split() == ["ID", "STATE", "STARTED", "DETAIL"], workers
    assert workers[1].split()[:3] == ["w1", "exited", "exit"], workers
    typo = profile.run("stauts")
    assert typo.returncode == 2 and "Did you mean 'status'?" in typo.stderr, typo.stderr
    # What the root agent calls, through its shell tool.
    agent = ShellTool(profile.env)
    said = agent.call("looop _ asks; looop _ answer w1-1 yes; looop _ asks; looop _ awnser x")
    asks_header, ask, answered = said.out.splitlines()  # no asks pending: no header either
    assert asks_header.split() == ["ID", "AGE", "WORKER", "PROMPT"] and ask.startswith("w1-1 ")
    assert answered == "answered ask w1-1"
    assert said.returncode == 2 and "Did you mean 'answer'?" in said.err, said.err
    assert os.listdir(profile.data / "answers") == ["w1-1.json"]
