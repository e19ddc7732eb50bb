"""Signals in one model, for every looop process a signal may stop or steer.

The pulse, a one-off ``looop sense``, and ``looop.group`` (so ``_ run`` and
the worker supervisor) all hold a ``SignalQueue``. Shaped like gunicorn's
arbiter, taken one step further: a handler does nothing but append the
signal to a queue, and ``signal.set_wakeup_fd`` writes to a self-pipe, so
whoever is waiting in a selector (the pulse between beats, the sensor runner
during one, ``group`` watching a command) wakes at once. The work is done
outside any handler, by the owner of the queue: the pulse has one
``handle_<signal>`` method per signal; a one-off beat and ``group`` only ask
``stop_requested``.

``STOP_SIGNALS`` is the one list of signals that stop a looop process:
SIGTERM (a service manager's stop, ``looop down``, ``_ worker kill``), SIGINT
(^C) and SIGHUP (the terminal went away). A process that gives one of them
another meaning says so with the queue's ``stop`` parameter, not with a list
of its own: the pulse takes SIGHUP as "reload the config". A signal that
should only wake the selector (``group``'s SIGCHLD: a command may exit while
a child it left holds its pipe) is ``wake``: handled, never queued.

Rejected: a handler that raises (how a one-off sense used to stop). An
exception can surface inside any code at all, and a probe's ``except
Exception`` caught it, published the half-finished beat and exited 0. And a
second design beside this one (``group`` had its own list, pipe and
handlers): two lists of stop signals drifted apart.
"""

from __future__ import annotations

import os
import signal
from collections import deque
from collections.abc import Callable, Iterable

TYPE_CHECKING = False  # not typing's: the annotations alone need these names
if TYPE_CHECKING:
    from types import FrameType
    from typing import Any

    Handler = Callable[[int, FrameType | None], Any] | int | None

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


class SignalQueue:
    """Handlers that only queue, and the pipe that wakes a selector when they do.

    ``install`` takes the signals (and the wake-up fd); ``restore`` puts back
    what was there and closes the pipe. As a context manager it does both,
    for a process that handles signals only for a while (``group.run``).
    """

    def __init__(
        self, handled: Iterable[int], stop: Iterable[int] = STOP_SIGNALS, wake: Iterable[int] = ()
    ) -> None:
        self.handled = tuple(handled)
        self.stop = frozenset(stop)
        self.wake = tuple(wake)
        self.queue: deque[int] = deque()
        self.fd, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._previous: dict[int, Handler] = {}
        self._previous_fd = -1

    def install(self) -> None:
        self._previous_fd = signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for sig in self.handled:
            self._previous[sig] = signal.signal(sig, self._queue)
        for sig in self.wake:
            self._previous[sig] = signal.signal(sig, _wake_only)

    def restore(self) -> None:
        """Put back the handlers and wake-up fd from before ``install``; close the pipe."""
        signal.set_wakeup_fd(self._previous_fd)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        os.close(self.fd)
        os.close(self._wake_w)

    def __enter__(self) -> SignalQueue:
        self.install()
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()

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


def _wake_only(signum: int, frame: object) -> None:
    """A handler, so the wake-up fd is written; the signal itself means nothing here."""
