"""``looop watch`` in a real terminal: tmux runs it, ``send-keys`` types, ``capture-pane`` reads.

One test drives the whole screen against a running pulse and two workers
(the stand-in agent that asks, and a sleeper): the ask shows, is answered
with keys and its worker receives the answer; the sleeper's log is
followed, and the sleeper is killed with keys; ``--once`` prints the live
pane's text; an idle stretch draws no frame (counted through
``$LOOOP_TEST_WATCH_FRAMES``), while a change does; ``q`` quits. The latency
from an ask to the pane and the CPU of a minute idle are figures, in
bench/bench_watch.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import LOOOP, Profile, configure_workers, detached_pulse, pid_alive, wait_for
from terminal import WINDOW, Terminal
from workers_kit import FAKE_AGENT, SLEEPER, session_file, worker_script

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")


@pytest.fixture
def terminal(profile: Profile) -> Iterator[Terminal]:
    term = Terminal(profile.env)
    try:
        yield term
    finally:
        term.close()


def stamps(path: Path) -> list[float]:
    """When each frame the screen drew was drawn (``$LOOOP_TEST_WATCH_FRAMES``)."""
    return [float(line.split()[0]) for line in path.read_text().splitlines()]


def frames(path: Path) -> int:
    return len(stamps(path)) if path.exists() else 0


def test_the_screen_answers_an_ask_kills_a_worker_and_draws_nothing_when_idle(
    profile: Profile, terminal: Terminal
) -> None:
    sleeper = worker_script(profile.root / "sleeper", SLEEPER)
    configure_workers(profile, [str(FAKE_AGENT), "{prompt_file}"])
    with profile.config.open("a") as f:
        f.write(f'\n[runners.sleeper]\ncommand = ["{sleeper}"]\n')
    profile.sensor("bad", "echo oops >&2; exit 2")
    counted = profile.root / "frames"
    profile.env.update(COLUMNS="80", LINES="24")
    with detached_pulse(profile, "120"):  # `down` at its end stops the workers too
        for wid, more in (("w-sleep", ["--runner", "sleeper"]), ("w-ask", [])):
            out = profile.run("_", "worker", "start", wid, *more, "the task")
            assert out.returncode == 0, out.stderr
        terminal.start(f"env LOOOP_TEST_WATCH_FRAMES={counted} {LOOOP} watch")
        wait_for(lambda: terminal.shows("ship it? [yes/no]"))
        # The plain frame is the live pane's text (once both show one state).
        once = [""]

        def same() -> bool:
            once[0] = profile.run("watch", "--once").stdout.rstrip("\n")
            return once[0] == terminal.screen() and "w-sleep  running" in once[0]

        wait_for(same)
        assert once[0].splitlines()[-1].startswith("↑↓ select")
        assert "  bad    error: exited with status 2" in once[0].splitlines()
        # Plain text sized to the terminal it is given; a live screen needs a terminal.
        out = profile.run("watch", "--once", env=dict(profile.env, COLUMNS="40", LINES="12"))
        lines = out.stdout.split("\n")[:-1]
        assert len(lines) == 12 and max(map(len, lines)) == 40 and "\x1b" not in out.stdout
        out = profile.run("watch")
        assert out.returncode == 2 and "--once" in out.stderr
        # The live screen grows with its terminal: the footer moves to the new last row.
        terminal.tmux("resize-window", "-t", WINDOW, "-x", "100", "-y", "30")
        wait_for(lambda: terminal.tmux("capture-pane", "-p", "-t", WINDOW).stdout.count("\n") == 30)
        wait_for(lambda: terminal.screen().split("\n")[29:] == [once[0].splitlines()[-1]])

        # The ask is selected first: `a` on it (escape: not now), or on the worker that asked,
        # types the answer; enter sends it, and the worker receives it.
        terminal.keys("a")
        wait_for(lambda: terminal.shows("answer w-ask-1: _"))
        terminal.keys("Escape", "Down")
        wait_for(lambda: terminal.shows("> w-ask    running, waiting"))
        terminal.keys("a")
        wait_for(lambda: terminal.shows("answer w-ask-1: _"))
        terminal.keys("yes", literal=True)
        terminal.keys("Enter")
        report = profile.data / "reports" / "w-ask.md"
        wait_for(lambda: report.exists() and report.read_text() == "answer: yes\n")
        assert "answer w-ask-1: yes" in (profile.data / "journal.md").read_text()

        # The stand-in ends itself; the sleeper is then the one selected: follow its log,
        # come back, kill it.
        wait_for(lambda: session_file(profile.data, "w-ask", "status.json"))
        wait_for(lambda: terminal.shows("> w-sleep  running"))
        terminal.keys("l")
        wait_for(lambda: terminal.shows("log of w-sleep (output.log)\n[looop] w-sleep started"))
        assert terminal.screen().splitlines()[-1] == "esc back  k kill  q quit"
        terminal.keys("l")
        wait_for(lambda: terminal.shows("> w-sleep  running"))
        terminal.keys("k")
        status = lambda: session_file(profile.data, "w-sleep", "status.json") or {}  # noqa: E731
        wait_for(lambda: status().get("state") == "killed")
        wait_for(lambda: terminal.shows("w-sleep has ended (killed"))
        assert "worker kill w-sleep" in (profile.data / "journal.md").read_text()

        # Idle: once the supervisors are gone and a last write is drawn, nothing moves,
        # nothing is drawn, and the process sleeps.
        for wid in ("w-ask", "w-sleep"):
            wait_for(lambda w=wid: not pid_alive(session_file(profile.data, w, "meta.json")["pid"]))
        journal, appended = profile.data / "journal.md", time.time()
        with journal.open("a") as f:
            f.write("- 2026-01-01 00:00 settled\n")
        # Shown, and stamped (a frame's stamp follows its drawing).
        wait_for(lambda: terminal.shows("settled") and max(stamps(counted)) >= appended)
        before, ticks = frames(counted), cpu_ticks(terminal.pid())
        assert before >= 3
        time.sleep(1.5)  # a stretch in which nothing happens, not a wait for a state
        assert frames(counted) == before, counted.read_text()
        assert cpu_ticks(terminal.pid()) - ticks <= 1
        # ...and a change is drawn: the counter counts.
        with journal.open("a") as f:
            f.write("- 2026-01-01 00:01 watch me\n")
        wait_for(lambda: terminal.shows("watch me"))
        assert frames(counted) > before

        # A pulse killed outright (no file of its own moves) is seen through its pidfd.
        pulse = int(Path(profile.paths.pid_file).read_text().split()[0])
        os.kill(pulse, signal.SIGKILL)
        wait_for(lambda: terminal.shows("pulse    not running"))

        terminal.keys("q")
        wait_for(terminal.dead)


def cpu_ticks(shell: int) -> int:
    """utime + stime (clock ticks) of the ``looop watch`` process under the pane's shell."""
    pids = [shell, *map(int, Path(f"/proc/{shell}/task/{shell}/children").read_text().split())]
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        if "watch" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace"):
            total += int(fields[11]) + int(fields[12])
    return total
