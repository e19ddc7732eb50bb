"""Signals in one model, for the pulse and for a one-off ``looop sense`` alike.

Shaped like gunicorn's arbiter, taken one step further: a handler does
nothing but append the signal to a queue, and ``signal.set_wakeup_fd`` writes
to a self-pipe, so whoever is waiting in a selector (the pulse between beats,
the sensor runner during one) wakes at once. The work is done outside any
handler, by the owner of the queue: the pulse has one ``handle_<signal>``
method per signal; a one-off beat only asks ``stop_requested``.

Rejected: a handler that raises (how a one-off sense used to stop). An
exception can surface inside any code at all, and a probe's ``except
Exception`` caught it, published the half-finished beat and exited 0.
"""

from __future__ import annotations

import os
import signal
from collections import deque
from collections.abc import Iterable

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class SignalQueue:
    """Handlers that only queue, and the pipe that wakes a selector when they do."""

    def __init__(self, handled: Iterable[int], stop: Iterable[int] = STOP_SIGNALS) -> None:
        self.handled = tuple(handled)
        self.stop = frozenset(stop)
        self.queue: deque[int] = deque()
        self.fd, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def install(self) -> None:
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for sig in self.handled:
            signal.signal(sig, self._queue)

    def _queue(self, signum: int, frame: object) -> None:
        self.queue.append(signum)

    def drain(self) -> None:
        """Empty the wake-up pipe (the queue keeps the signals)."""
        try:
            while os.read(self.fd, 512):
                pass
        except BlockingIOError:
            pass

    def pop(self) -> int | None:
        """The oldest queued signal, or None."""
        self.drain()
        return self.queue.popleft() if self.queue else None

    def stop_requested(self) -> int | None:
        """The first queued stop signal, if any; every signal stays queued."""
        self.drain()
        return next((s for s in self.queue if s in self.stop), None)
