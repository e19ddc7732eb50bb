"""``looop watch``'s live screen: a terminal that redraws when the profile moves.

This module owns the terminal: its modes, its keys and its one loop. The
text drawn is ``looop.screen.frame.lines``' (the same lines ``--once``
prints), drawn with Rich (``rich.live.Live`` on the alternate screen, no
refresh thread: ``auto_refresh=False``), coloured by the frame's style
names (Rich honours ``NO_COLOR``). Rich is imported here and only here, and
this module only by the ``watch`` command: no other command pays for it.

Why Rich and this loop rather than Textual: measured on the 2-core machine
this was built on, importing Textual's app and widgets took 0.8-1.2 s
against Rich's 0.2-0.3 s (``python -X importtime``), and an idle Textual
app wakes ten times a second (its input thread selects with a 0.1 s
timeout); this loop wakes for nothing. What Textual offers beyond Rich
(widgets, its in-process test pilot) the screen does not need: it is one
page of text, tested in a real terminal (tmux).

The loop sleeps in one ``select`` on the terminal, the file watch
(``Watch.fileno``, on ``looop.screen.view.watched``'s list), a pidfd on the
pulse (its exit, a crash included, is seen at once) and a pipe that
``SIGWINCH`` writes to; its only timeout is ``view.next_change`` (the next
moment the text would change with time: at most once a minute per pending
ask, once per worker's quiet and stuck moments, once at an overdue beat or
a schedule's instant), and, where the watch polls (``Watch.fileno`` gives
nothing), ``watch.POLL_INTERVAL``. A burst of a worker's output redraws at
most every ``OUTPUT_EVERY`` seconds.

Keys (the footer says them): ``↑``/``↓`` (or ``j``) move the selection over
the pending asks and the live workers; ``a`` (or enter) on an ask, or ``a``
on a worker that asked, types an answer (enter sends it through
``mailbox.answer``, as ``_ answer`` does, journal line and event included;
escape cancels); ``k`` kills the selected worker (``fleet.kill``, as ``_
worker kill`` does, journal line included);
``l`` (or enter) on a worker follows its ``output.log``; escape goes back;
``q`` quits. ``$LOOOP_TEST_WATCH_FRAMES`` names a file the screen appends a line
to per frame drawn (when, why, and how many asks it shows): the tests count
redraws with it, the bench times an ask's way to the screen.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import select
import signal
import sys
import termios
import time
import tty

from looop import errors, watch
from looop.paths import Paths
from looop.pulse import lock
from looop.screen import frame, view

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

FRAMES_ENV = "LOOOP_TEST_WATCH_FRAMES"
OUTPUT_EVERY = 0.25  # seconds: a worker's output redraws at most this often
STYLES = {
    "title": "bold",
    "head": "bold underline",
    "good": "green",
    "bad": "red",
    "warn": "yellow",
    "dim": "dim",
    "selected": "reverse",
}
KEYS = {"\x1b[A": "up", "\x1bOA": "up", "\x1b[B": "down", "\x1bOB": "down"}


class Screen:
    """One person's screen on one profile, until ``q``."""

    def __init__(self, paths: Paths) -> None:
        self.paths = paths
        self.ui = frame.Ui()
        self.view: dict[str, Any] = {}
        self.watcher: watch.Watch | None = None
        self.watching: tuple[str, ...] | None = None  # what the watch was opened on
        self.pidfd: int | None = None
        self.poller = select.poll()
        self.keys = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.pending = ""  # an escape sequence not yet whole
        self.output_at = 0.0  # when the profile was last read
        self.held: float | None = None  # when a held-back burst of output is drawn
        self.quit = False
        self.painter: Callable[[str], None] | None = None  # draws a frame now (while running)

    # --- the loop ------------------------------------------------------------
    def run(self) -> None:
        from rich.console import Console
        from rich.live import Live

        tty_fd = sys.stdin.fileno()
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        saved = termios.tcgetattr(tty_fd)
        old_winch = signal.signal(signal.SIGWINCH, lambda *_: None)
        old_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        console = Console()
        try:
            tty.setcbreak(tty_fd)
            self.poller.register(tty_fd, select.POLLIN)
            self.poller.register(wake_r, select.POLLIN)
            with Live(console=console, screen=True, auto_refresh=False, transient=True) as live:
                self.refresh()
                self.painter = lambda why: self.draw(live, console, why)
                self.draw(live, console, "start")
                while not self.quit:
                    why = self.sleep(tty_fd, wake_r)
                    if why:
                        self.draw(live, console, why)
        finally:
            signal.set_wakeup_fd(old_wakeup)
            signal.signal(signal.SIGWINCH, old_winch)
            termios.tcsetattr(tty_fd, termios.TCSADRAIN, saved)
            self.close()
            os.close(wake_r)
            os.close(wake_w)

    def sleep(self, tty_fd: int, wake_r: int) -> str | None:
        """Sleep until something may change the screen; why (None: nothing to redraw)."""
        timeout = self.timeout()
        ready = {fd for fd, _ in self.poller.poll(None if timeout is None else timeout * 1000)}
        why = None
        if wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 4096)
            why = "resize"
        if self.pidfd is not None and self.pidfd in ready:  # the pulse ended
            self._forget(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = None
            self.refresh()
            why = "pulse"
        if self.watcher is not None and (
            self.watcher.fileno() is None or self.watcher.fileno() in ready
        ):
            roles = self.watcher.wait(0).roles
            if roles - {view.OUTPUT_ROLE}:
                self.refresh()
                why = "files"
            elif roles:
                self.held = self.output_at + OUTPUT_EVERY  # drawn then, if not sooner
        if self.held is not None and time.monotonic() >= self.held:
            self.refresh()
            why = "output"
        if tty_fd in ready:
            why = self.typed(os.read(tty_fd, 4096)) or why
        if why is None and self.due():
            self.refresh()
            why = "time"
        return why

    def timeout(self) -> float | None:
        """Seconds until the text changes with time (or a poll, or held-back output is due)."""
        naps = []
        due = self.view.get("due")
        if due is not None:
            naps.append(max(0.0, due - time.time()))
        if self.watcher is not None and self.watcher.fileno() is None:
            naps.append(watch.POLL_INTERVAL)
        if self.held is not None:
            naps.append(max(0.0, self.held - time.monotonic()))
        return min(naps) if naps else None

    def due(self) -> bool:
        due = self.view.get("due")
        return due is not None and time.time() >= due

    def refresh(self) -> None:
        """Read the profile again, and watch what the new view shows."""
        self.view = view.read(self.paths, self.ui.follow)
        self.view["due"] = view.next_change(self.paths, self.view)
        frame.settle(self.view, self.ui)
        self.output_at, self.held = time.monotonic(), None
        self.rewatch()
        self.watch_pulse()

    def draw(self, live: Any, console: Any, why: str) -> None:
        from rich.text import Text

        # The terminal's own size, whatever $COLUMNS and $LINES say (Rich would take those).
        console.size = width, height = os.get_terminal_size(sys.stdout.fileno())
        text = Text(no_wrap=True, overflow="crop", end="")
        for i, (line, style) in enumerate(frame.lines(self.view, self.ui, width, height)):
            text.append(("\n" if i else "") + line, STYLES.get(style or "", ""))
        live.update(text, refresh=True)
        target = os.environ.get(FRAMES_ENV)
        if target:
            with open(target, "a") as f:
                f.write(f"{time.time():.6f} {why} {len(self.view['asks'])}\n")

    # --- what is watched -----------------------------------------------------
    def rewatch(self) -> None:
        live = tuple(sorted(w["id"] for w in self.view["workers"] if w["alive"]))
        wanted = (*live, f"follow:{self.ui.follow}")
        if wanted == self.watching:
            return
        if self.watcher is not None:
            self._forget(self.watcher.fileno())
            self.watcher.close()
        self.watcher = watch.open_watch(view.watched(self.paths, self.view, self.ui.follow))
        self.watching = wanted
        fd = self.watcher.fileno()
        if fd is not None:
            self.poller.register(fd, select.POLLIN)

    def watch_pulse(self) -> None:
        """Hold a pidfd on the running pulse (Linux), so its end redraws at once."""
        if self.pidfd is not None or not hasattr(os, "pidfd_open"):
            return
        pid = lock.pulse_holder(self.paths) if self.view["pulse"]["running"] else None
        if pid is None or pid <= 0:
            return
        try:
            self.pidfd = os.pidfd_open(pid)
        except OSError:
            return
        self.poller.register(self.pidfd, select.POLLIN)

    def _forget(self, fd: int | None) -> None:
        if fd is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.poller.unregister(fd)

    def close(self) -> None:
        if self.watcher is not None:
            self.watcher.close()
        if self.pidfd is not None:
            os.close(self.pidfd)

    # --- keys ----------------------------------------------------------------
    def typed(self, data: bytes) -> str | None:
        """Act on the keys in ``data``; "key" when the screen must redraw."""
        text = self.pending + self.keys.decode(data)
        self.pending = ""
        acted = False
        while text:
            key = next((k for k in KEYS if text.startswith(k)), None)
            if key is None and text.startswith("\x1b") and len(text) < 3 and len(data) > 1:
                self.pending = text  # the rest of a sequence comes in the next read
                break
            key = key or text[0]
            text = text[len(key) :]
            self.key(KEYS.get(key, key))
            acted = True
            if self.quit:
                break
        return "key" if acted else None

    def key(self, key: str) -> None:
        ui = self.ui
        if ui.answering is not None:
            self.answer_key(key)
            return
        ui.message = None
        if key == "q":
            self.quit = True
        elif key in ("up", "down", "j"):
            self.move(-1 if key == "up" else 1)
        elif ui.follow is not None:
            if key in ("\x1b", "l"):
                ui.follow = None
                self.refresh()
            elif key == "k":
                self.kill(ui.follow)
        elif ui.selected is None:
            return
        elif ui.selected[0] == "ask" and key in ("a", "\r", "\n"):
            ui.answering, ui.typed = ui.selected[1], ""
        elif ui.selected[0] == "worker" and key == "a":
            asked = [w["pending_ask"] for w in self.view["workers"] if w["id"] == ui.selected[1]]
            if asked and asked[0] is not None:  # the worker's own pending ask
                ui.answering, ui.typed = asked[0], ""
        elif ui.selected[0] == "worker" and key in ("l", "\r", "\n"):
            ui.follow = ui.selected[1]
            self.refresh()
        elif ui.selected[0] == "worker" and key == "k":
            self.kill(ui.selected[1])

    def move(self, step: int) -> None:
        items = frame.selectable(self.view)
        if self.ui.follow is None and items and self.ui.selected in items:
            at = items.index(self.ui.selected) + step
            self.ui.selected, self.ui.chosen = items[max(0, min(at, len(items) - 1))], True

    def answer_key(self, key: str) -> None:
        ui = self.ui
        if key == "\x1b":
            ui.answering = None
        elif key in ("\x7f", "\x08"):
            ui.typed = ui.typed[:-1]
        elif key == "\x15":  # ^U
            ui.typed = ""
        elif key in ("\r", "\n"):
            self.answer()
        elif len(key) == 1 and key.isprintable():
            ui.typed += key

    def answer(self) -> None:
        """Send the typed answer as ``_ answer`` does (``mailbox.answer``: journal, event)."""
        from looop.data import ids, mailbox

        ui = self.ui
        ask_id, text = ui.answering or "", ui.typed
        if not text.strip():
            ui.message = "empty answer: type it, then enter (escape: cancel)"
            ui.answering = None
            return
        ui.answering = None
        try:
            ids.check("ask", ask_id)
            mailbox.answer(self.paths, ask_id, text)
            ui.message = f"answered {ask_id}"
        except (errors.LooopError, OSError) as exc:
            ui.message = f"looop: {exc}"
        self.refresh()

    def kill(self, wid: str) -> None:
        """End worker ``wid`` as ``_ worker kill`` does (``fleet.kill``: its journal line)."""
        from looop.workers import fleet

        self.ui.message = f"killing {wid}…"  # it returns once the worker has ended
        if self.painter is not None:
            self.painter("key")
        try:
            self.ui.message = fleet.kill(self.paths, wid)
        except (errors.LooopError, OSError) as exc:
            self.ui.message = f"looop: {exc}"
        self.refresh()


def run(paths: Paths) -> int:
    """``looop watch``: the live screen, until ``q``; 0."""
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise errors.UsageError("looop watch needs a terminal; --once prints one frame")
    Screen(paths).run()
    return errors.OK
