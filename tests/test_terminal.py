"""What a person sees: colour on a terminal only, header rows, what a verb did, progress, typos.

Colour (``looop.style``) is decided once per stream: ``--color always``
paints, ``--color never`` and ``NO_COLOR`` do not, and ``auto`` paints a
terminal only; a pipe never gets an escape code unless asked. A real
terminal is tmux's (a server of the test's own, on its own socket, killed
at the end); the screen is read with its escapes (``capture-pane -e``) and
polled for, never waited on by time.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import uuid
from collections.abc import Iterator

import pytest
from conftest import LOOOP, Profile, make_session, wait_for

ESC = "\x1b["
COLOUR = "\x1b\\[[0-9;]*3[1-7]m"  # a foreground colour, as tmux writes it back
# The person's commands, each with something to paint: a failing sensor,
# a dead worker that ended badly, its stranded ask, doctor's marks.
PERSON = (("status",), ("sense", "-v"), ("_", "asks"), ("workers",), ("doctor",))


def a_worried_world(profile: Profile) -> None:
    profile.sensor("fine", "echo '{\"signal\": 1}'")
    profile.sensor("broken", "exit 1")
    make_session(profile.data / "sessions", "gone", ended=1.0, exit_code=1, started=1.0)
    asked = profile.run("_", "ask", "gone", "--prompt", "still there?", "--timeout", "0")
    assert asked.returncode == 124, asked.stderr


class Terminal:
    """A tmux server of this test's own: one 100x30 window running a shell command line."""

    def __init__(self, socket: str, env: dict[str, str]) -> None:
        self.socket, self.env = socket, env

    def tmux(self, *args: str) -> str:
        out = subprocess.run(
            ["tmux", "-L", self.socket, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    def start(self, line: str) -> None:
        """Run ``line`` in the window; the window stays (a sleep) so its screen can be read."""
        window = ("-x", "100", "-y", "30")
        self.tmux("new-session", "-d", "-s", "t", *window, f"{line}; exec sleep 600")

    def screen(self) -> str:
        """The screen and its scrollback, with colour escapes, each wrapped line joined."""
        return self.tmux("capture-pane", "-p", "-e", "-J", "-S", "-", "-t", "t")

    def shows(self, text: str) -> str:
        """The screen, once it shows ``text``."""
        return wait_for(lambda: (lambda s: s if text in s else None)(self.screen()))


@pytest.fixture
def terminal(profile: Profile) -> Iterator[Terminal]:
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed: no real terminal to test colour in")
    env = {k: v for k, v in profile.env.items() if k not in ("NO_COLOR", "TMUX")}
    one = Terminal(f"looop-test-{uuid.uuid4().hex[:12]}", {**env, "TERM": "xterm"})
    try:
        yield one
    finally:
        subprocess.run(
            ["tmux", "-L", one.socket, "kill-server"], capture_output=True, env=one.env, timeout=30
        )


def test_a_pipe_gets_colour_only_with_color_always(profile: Profile) -> None:
    a_worried_world(profile)
    env = {k: v for k, v in profile.env.items() if k != "NO_COLOR"}
    for command in PERSON:
        plain = profile.run(*command, env=env)
        assert ESC not in plain.stdout + plain.stderr, (command, plain.stdout)
        # --color always wins over NO_COLOR (a flag given is the person's latest word).
        painted = profile.run("--color", "always", *command, env={**env, "NO_COLOR": "1"})
        assert ESC in painted.stdout, (command, painted.stdout, painted.stderr)
    # --color never, on the click-free path and through click; --json is never painted.
    for args in (
        ("--color", "never", "status"),
        ("--color=never", "_", "asks"),
        ("--color", "always", "workers", "--json"),
    ):
        out = profile.run(*args, env=env)
        assert out.stdout and ESC not in out.stdout + out.stderr, (args, out.stdout)


def test_a_terminal_gets_colour_unless_no_color_is_set(
    profile: Profile, terminal: Terminal
) -> None:
    a_worried_world(profile)
    looop = shlex.quote(LOOOP)
    on_screen = (("status",), ("_", "asks"), ("workers",))
    painted = "; ".join(f"{looop} {shlex.join(command)}" for command in on_screen)
    plain = "; ".join(f"NO_COLOR=1 {looop} {shlex.join(command)}" for command in on_screen[::2])
    terminal.start(f"{painted}; echo PLAIN; {plain}; echo END")
    screen = terminal.shows("END")
    before, after = screen.split("PLAIN", 1)
    assert "still there?" in before and "exit 1" in after, screen
    # The colours looop paints (tmux writes its own resets around text: not colours).
    assert re.search(COLOUR, before) and not re.search(COLOUR, after), screen


def test_a_wait_over_a_second_says_so_on_a_terminal_and_never_on_a_pipe(
    profile: Profile, terminal: Terminal
) -> None:
    profile.sensor("slow", "sleep 1.2; echo '{\"signal\": 1}'")
    terminal.start(f"{shlex.quote(LOOOP)} sense; echo END")
    terminal.shows("looop: waiting for the beat's sensors (1s)")
    said = terminal.shows("END")  # and the progress line is gone, the summary in its place
    assert "sensors ok" in said and "waiting for" not in said, said
    piped = profile.run("sense")
    assert piped.returncode == 0 and piped.stderr == "", piped.stderr


def test_headers_answers_and_typos_say_what_they_are(profile: Profile) -> None:
    assert profile.run("_", "ask", "w1", "--prompt", "ship?", "--timeout", "0").returncode == 124
    make_session(profile.data / "sessions", "w1", ended=1.0)
    asks = profile.run("_", "asks").stdout.splitlines()
    assert asks[0].split() == ["ID", "AGE", "WORKER", "PROMPT"] and asks[1].startswith("w1-1 ")
    workers = profile.run("workers").stdout.splitlines()
    assert workers[0].split() == ["ID", "STATE", "STARTED", "DETAIL"], workers
    assert workers[1].split()[:3] == ["w1", "exited", "exit"], workers
    answered = profile.run("_", "answer", "w1-1", "yes")
    assert (answered.returncode, answered.stdout) == (0, "answered ask w1-1\n")
    assert profile.run("_", "asks").stdout == ""  # none pending: no header either
    for typo, meant in (
        (("stauts",), "status"),
        (("_", "awnser", "x"), "answer"),
        (("_", "goal", "wrte", "g1", "x"), "write"),
    ):
        out = profile.run(*typo)
        assert out.returncode == 2 and f"Did you mean {meant!r}?" in out.stderr, out.stderr
    assert os.listdir(profile.data / "answers") == ["w1-1.json"]
