"""A real terminal for the tests of a person's screens: tmux, on a server of the test's own.

``Terminal`` runs one command line in one window of a tmux server reached
by its own socket (``-L``), so tests never meet each other's or the user's
tmux; ``send-keys`` types into it and ``capture-pane`` reads it back, plain
or with its colour escapes. A test polls the screen for a state
(``wait_for``), never waits a fixed time, and closes the server at its end.
"""

from __future__ import annotations

import os
import subprocess
import uuid

WINDOW = "t"


class Terminal:
    """A tmux server of its own, one ``width`` x ``height`` window running a command line."""

    def __init__(self, env: dict[str, str], width: int = 80, height: int = 24) -> None:
        self.socket = f"looop-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.env, self.width, self.height = env, width, height

    def tmux(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["tmux", "-L", self.socket, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=30,
            stdin=subprocess.DEVNULL,
        )

    def start(self, line: str, stay: bool = False) -> None:
        """Run ``line``; ``stay``: the window outlives it (a sleep), so its last screen can be read.

        Otherwise the pane stays once the command has ended (``remain-on-exit``), dead.
        """
        size = ("-x", str(self.width), "-y", str(self.height))
        command = f"{line}; exec sleep 600" if stay else line
        out = self.tmux("new-session", "-d", "-s", WINDOW, *size, command)
        assert out.returncode == 0, out.stderr
        self.tmux("set-option", "-t", WINDOW, "remain-on-exit", "on")

    def keys(self, *keys: str, literal: bool = False) -> None:
        self.tmux("send-keys", "-t", WINDOW, *(["-l"] if literal else []), *keys)

    def screen(self, escapes: bool = False) -> str:
        """The window's text, each line's trailing blanks cut.

        ``escapes``: with its colour escapes, its scrollback, and each wrapped line joined.
        """
        more = ("-e", "-J", "-S", "-") if escapes else ()
        lines = self.tmux("capture-pane", "-p", *more, "-t", WINDOW).stdout.split("\n")
        return "\n".join(line.rstrip() for line in lines).rstrip("\n")

    def shows(self, text: str, escapes: bool = False) -> str | None:
        """The screen if it shows ``text`` now, else None (for ``wait_for``)."""
        found = self.screen(escapes)
        return found if text in found else None

    def pid(self) -> int:
        return int(self.tmux("list-panes", "-t", WINDOW, "-F", "#{pane_pid}").stdout)

    def dead(self) -> bool:
        return self.tmux("list-panes", "-t", WINDOW, "-F", "#{pane_dead}").stdout.strip() == "1"

    def close(self) -> None:
        self.tmux("kill-server")
