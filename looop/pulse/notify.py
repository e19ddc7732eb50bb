"""Talking to the service manager: sd_notify messages and the watchdog.

``Notifier`` is the pulse's only voice to systemd (``sdnotify``; a no-op
without ``NOTIFY_SOCKET``). The watchdog is *gated on progress*: the pulse's
loop calls ``Watchdog.tick`` whenever it makes progress (every pass of the
beat's selector loop, every wake between beats), and only a tick sends
``WATCHDOG=1``, and only while the loop is within its deadline. No thread
pings on the loop's behalf, so a SIGSTOPped or deadlocked pulse goes quiet
and systemd kills it, while a slow sensor inside its own timeout keeps the
loop ticking and never trips it.

Where no service manager watches (launchd, a terminal) ``InternalWatchdog``
is the stand-in: a thread that aborts the process when the ticks stop, so
launchd's ``KeepAlive`` restarts it. It only reads the tick time; it never
does the loop's work.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

import sdnotify

from looop.log import log

# The internal watchdog's period when nothing else is configured.
DEFAULT_INTERNAL_PERIOD = 120.0


def monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Notifier:
    def __init__(self) -> None:
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self._sd = sdnotify.SystemdNotifier() if self.enabled else None

    def send(self, *fields: str) -> None:
        if self._sd is not None:
            # sd_notify text is UTF-8, but sdnotify encodes as Latin-1; handing
            # it our UTF-8 bytes spelt as Latin-1 puts exactly those bytes on
            # the wire (a status with "·" would otherwise be dropped by systemd).
            self._sd.notify("\n".join(fields).encode().decode("latin-1"))

    def ready(self, status: str | None = None) -> None:
        self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def reloading(self) -> None:
        self.send("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec()}")

    def stopping(self) -> None:
        self.send("STOPPING=1")

    def watchdog(self) -> None:
        self.send("WATCHDOG=1")


def manager_watchdog_period() -> float | None:
    """Seconds of systemd's watchdog for this process, or None if it set none."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / 1_000_000


class Watchdog:
    """Progress ticks, and the pings they earn."""

    def __init__(self, notifier: Notifier, period: float | None) -> None:
        self.notifier = notifier
        self.period = period  # systemd's; None when it set none
        self.last_tick = time.monotonic()
        self.last_ping = 0.0
        self.deadline: float | None = None  # the loop must tick again before this

    def next_ping_in(self) -> float | None:
        """Seconds until a ping is due (the loop should tick by then), or None."""
        if self.period is None:
            return None
        return max(0.0, self.last_ping + self.period / 2 - time.monotonic())

    def tick(self) -> None:
        now = time.monotonic()
        self.last_tick = now
        if self.period is None or (self.deadline is not None and now > self.deadline):
            return
        if now - self.last_ping >= self.period / 2:
            self.notifier.watchdog()
            self.last_ping = now


class InternalWatchdog(threading.Thread):
    """Abort the process when the watched loop has not ticked for ``period``.

    Before aborting it hands its reason to ``on_stall`` (the pulse records an
    event) and tries to log it, but waits at most ``LOG_PATIENCE`` for the
    log: a loop stalled on a full stderr pipe would block the watchdog's own
    log line too, and the abort must happen regardless.
    """

    LOG_PATIENCE = 1.0

    def __init__(
        self, watchdog: Watchdog, period: float, on_stall: Callable[[str], None] | None = None
    ) -> None:
        super().__init__(name="looop-internal-watchdog", daemon=True)
        self.watchdog, self.period = watchdog, period
        self.on_stall = on_stall or (lambda message: None)

    def run(self) -> None:
        nap = min(1.0, self.period / 4)
        while True:
            before = time.monotonic()
            time.sleep(nap)
            now = time.monotonic()
            if now - before > nap + self.period / 2:
                continue  # the whole process was frozen (SIGSTOP), not the loop alone
            stalled = now - self.watchdog.last_tick
            if stalled > self.period:
                message = f"pulse loop stalled for {stalled:.0f}s; aborting so it is restarted"
                self.on_stall(message)
                said = threading.Thread(target=log.error, args=(message,), daemon=True)
                said.start()
                said.join(self.LOG_PATIENCE)
                os.abort()


def internal_period() -> float:
    raw = os.environ.get("LOOOP_WATCHDOG_SEC", "")
    try:
        value = float(raw)
    except ValueError:
        return DEFAULT_INTERNAL_PERIOD
    return value if value > 0 else DEFAULT_INTERNAL_PERIOD
