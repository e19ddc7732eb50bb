"""``looop watch``: its start-up, how soon an ask shows, and what it costs idle.

Runs a real pulse (one beat an hour: nothing moves unless the bench moves
it) in a throw-away profile, and ``looop watch`` in an 80x24 tmux terminal
(a private server, ``-L``), then prints:

* **start-up**: the median wall time of ``looop watch --once`` against
  ``looop _ state`` (the same reads, printed as JSON), alternating, and of
  importing each terminal library the screen could be built on (Rich's
  console, live display and text; Textual's app and widgets, when
  installed) against ``python3 -I -c pass``;
* **ask -> screen**: an ask raised by ``looop _ ask`` (as a worker raises
  one); the latency is from the ask file's mtime to the frame that shows it
  (the screen stamps each frame it draws with the asks it shows,
  ``$LOOOP_TEST_WATCH_FRAMES``), once the pane itself shows it (``capture-pane``).
  Each ask is answered before the next. Goal: under 100 ms;
* **idle**: the CPU seconds (utime + stime from ``/proc/PID/stat``) the
  screen uses over 60 s with one ask pending and nothing else moving, and
  the frames it draws meanwhile (the ask's age in minutes: one). Goal:
  under 1 s.

Nothing is asserted.

    python bench/bench_watch.py [--trials 10] [--idle 60]
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from common import LOOOP, alternate, isolated_env, report, scratch, start_pulse, stop_pulse


def tmux(socket: str, *args: str) -> str:
    return subprocess.run(
        ["tmux", "-L", socket, *args], capture_output=True, text=True, check=False
    ).stdout


def frames(path: Path, asks: int = 0) -> list[float]:
    """When each frame showing at least ``asks`` pending asks was drawn."""
    if not path.exists():
        return []
    found = [line.split() for line in path.read_text().splitlines()]
    return [float(f[0]) for f in found if int(f[2]) >= asks]


def wait(predicate: Callable[[], object], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("timed out")
        time.sleep(0.005)


def cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def startup(env: dict[str, str], rounds: int) -> None:
    def once() -> None:
        subprocess.run([LOOOP, "watch", "--once"], env=env, stdout=subprocess.DEVNULL, check=True)

    def state() -> None:
        subprocess.run([LOOOP, "_", "state"], env=env, stdout=subprocess.DEVNULL, check=True)

    ours, theirs = alternate(once, state, rounds)
    report("watch --once / _ state", ours, theirs, subject="watch --once")
    floor = [sys.executable, "-I", "-c", "pass"]
    libraries = {
        "rich": "import rich.console, rich.live, rich.text",
        "textual": "import textual.app, textual.widgets",
    }
    for name, code in libraries.items():
        if subprocess.run([sys.executable, "-c", code], capture_output=True).returncode != 0:
            print(f"{name}: not installed here")
            continue
        ours, theirs = alternate(
            functools.partial(subprocess.run, [sys.executable, "-c", code], check=True),
            functools.partial(subprocess.run, floor, check=True),
            rounds,
        )
        report(f"import {name} / python -I -c pass", ours, theirs, subject=name)


def drawn_since(counted: Path, raised: float) -> list[float]:
    """When each frame showing an ask was drawn, from ``raised`` on."""
    return [t for t in frames(counted, 1) if t >= raised]


def pane_shows(socket: str, text: str) -> bool:
    return text in tmux(socket, "capture-pane", "-p", "-t", "w")


def raised_by(asks: Path, worker: str) -> list[Path]:
    return [p for p in asks.glob("*.json") if p.name.startswith(worker + "-")]


def latency(env: dict[str, str], socket: str, counted: Path, trials: int) -> None:
    found = []
    asks = Path(env["LOOOP_DATA_DIR"]) / "asks"
    for n in range(trials):
        worker = f"w-{n}"
        ask = subprocess.Popen(
            [LOOOP, "_", "ask", worker, "--prompt", f"question {n}?"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait(functools.partial(raised_by, asks, worker))
        (path,) = raised_by(asks, worker)
        raised = path.stat().st_mtime
        wait(functools.partial(pane_shows, socket, f"question {n}?"))
        wait(functools.partial(drawn_since, counted, raised))
        shown = min(drawn_since(counted, raised))
        found.append(shown - raised)
        subprocess.run([LOOOP, "_", "answer", path.stem, "ok"], env=env, capture_output=True)
        ask.wait(timeout=30)
    print(
        f"ask -> screen: p50 {statistics.median(found) * 1e3:.1f} ms, "
        f"max {max(found) * 1e3:.1f} ms  (goal < 100 ms)  [{trials} asks]"
    )


def idle(env: dict[str, str], socket: str, counted: Path, seconds: float) -> None:
    asker = subprocess.Popen(
        [LOOOP, "_", "ask", "w-idle", "--prompt", "still there?"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait(functools.partial(pane_shows, socket, "still there?"))
    pid = int(tmux(socket, "list-panes", "-t", "w", "-F", "#{pane_pid}"))
    drawn, used = len(frames(counted)), cpu(pid)
    time.sleep(seconds)
    print(
        f"idle {seconds:.0f} s: {cpu(pid) - used:.2f} s CPU, "
        f"{len(frames(counted)) - drawn} frames drawn  (goal < 1 s CPU)"
    )
    asker.kill()
    asker.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--idle", type=float, default=60.0)
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        raise SystemExit("needs tmux")
    root = scratch("watch")
    env = isolated_env(root)
    env["LOOOP_INTERVAL"] = "3600"
    os.environ.update(env)  # tmux's server, and the screen in it, take this environment
    beat = Path(env["LOOOP_RUNTIME_DIR"])
    pulse = start_pulse(env, lambda: any(beat.glob("*.beat.json")))
    socket = f"looop-bench-watch-{os.getpid()}"
    counted = root / "frames"
    try:
        startup(env, 7)
        command = f"exec env LOOOP_TEST_WATCH_FRAMES={counted} {LOOOP} watch"
        tmux(socket, "new-session", "-d", "-s", "w", "-x", "80", "-y", "24", command)
        wait(functools.partial(pane_shows, socket, "pulse    running"))
        latency(env, socket, counted, args.trials)
        idle(env, socket, counted, args.idle)
        print(f"load average: {os.getloadavg()[0]:.2f}")
    finally:
        tmux(socket, "kill-server")
        stop_pulse(pulse)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
