"""One command in its own process group, watched until it is over: ``_ run`` and workers.

``run`` starts ``argv`` in a new session (so a new process group: a signal to
the group reaches every process the command forked that did not leave it),
stdin ``/dev/null`` (or a file the caller opened: a worker's prompt),
stdout and stderr on one pipe handed chunk by chunk to ``on_output``, and
returns how it ended:

* the command exits: its status, and whatever it left running in its group
  is killed, so one command is one command and a background child cannot
  hold the pipe (and its watcher) open; one that left the group cannot
  either: once the command has exited, what is in the pipe is read and the
  watch ends without waiting for the pipe to close;
* the timeout: SIGTERM to the group, SIGKILL ``grace`` seconds later;
* the watcher gets one of ``signals`` (``looop.signals.STOP_SIGNALS``
  unless told): the same two steps, and the outcome says which signal. The
  signals are taken by a ``looop.signals.SignalQueue`` for the length of the
  run, the pulse's model: handlers only queue, the wake-up pipe wakes the
  one selector, and SIGCHLD wakes it too, since the pipe does not close
  while a child the command left behind holds it.

* ``on_start`` (the caller putting the group on record) or the watch
  itself fails: SIGKILL to the group, then the error; a command is never
  left running with nobody watching it.

``looop _ run`` (``agent.run``) and the worker supervisor
(``workers.supervise``) are its two callers; they differ only in where the
output goes and what an outcome means to them. What escapes the group (a
``setsid`` child) is beyond a process group's reach: under systemd a
worker's cgroup ends it (``service.systemd``), and without one it is
reported, not hidden.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from looop.signals import STOP_SIGNALS, SignalQueue


class Outcome:
    """How the command ended: its return code, and whether a timeout or a signal ended it."""

    __slots__ = ("returncode", "stopped_by", "timed_out")

    def __init__(self, returncode: int, timed_out: bool, stopped_by: int | None) -> None:
        self.returncode, self.timed_out, self.stopped_by = returncode, timed_out, stopped_by

    @property
    def status(self) -> int:
        """The command's own exit status, a death by signal N counted as 128+N (the shell's)."""
        code = self.returncode
        return 128 - code if code < 0 else code


def run(
    argv: Sequence[str],
    *,
    cwd: Path,
    timeout: float,
    on_output: Callable[[bytes], None],
    on_start: Callable[[int], None] = lambda pgid: None,
    env: Mapping[str, str] | None = None,
    signals: Sequence[int] = STOP_SIGNALS,
    grace: float = 2.0,
    stdin: int | None = None,
) -> Outcome:
    """Run ``argv`` to its end (``timeout`` 0: no timeout). OSError if it cannot start.

    ``stdin``: an open descriptor for the command's stdin (``/dev/null`` if None).
    """
    # SIGCHLD only wakes the selector: the command may exit while a child it left holds the pipe.
    with SignalQueue(signals, stop=signals, wake=(signal.SIGCHLD,)) as caught:
        child = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=None if env is None else dict(env),
            stdin=subprocess.DEVNULL if stdin is None else stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            on_start(child.pid)
            return _watch(child, timeout, grace, caught, on_output)
        except BaseException:
            # Its record cannot be written (or the watch failed): a command
            # nobody watches is not left running.
            signal_group(child.pid, signal.SIGKILL)
            child.wait()
            raise


def _watch(
    child: subprocess.Popen[bytes],
    timeout: float,
    grace: float,
    caught: SignalQueue,
    on_output: Callable[[bytes], None],
) -> Outcome:
    assert child.stdout is not None
    out_fd = child.stdout.fileno()
    os.set_blocking(out_fd, False)
    selector = selectors.DefaultSelector()
    selector.register(out_fd, selectors.EVENT_READ)
    selector.register(caught.fd, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout if timeout > 0 else None
    kill_at: float | None = None
    timed_out = False
    stopped_by: int | None = None
    open_pipe = True
    while open_pipe or child.poll() is None:
        now = time.monotonic()
        stop = caught.stop_requested() if kill_at is None else None
        if kill_at is None and ((deadline is not None and now >= deadline) or stop is not None):
            timed_out = stop is None
            stopped_by = stop
            signal_group(child.pid, signal.SIGTERM)
            kill_at = now + grace
        if kill_at is not None and now >= kill_at:
            signal_group(child.pid, signal.SIGKILL)
            kill_at = float("inf")
        if not open_pipe and child.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(0.05)  # it closed its output but runs on: the deadline still holds
            continue
        waits = [t for t in (deadline, kill_at) if t is not None and t != float("inf")]
        wait = max(0.0, min(waits) - now) if waits else None
        for key, _ in selector.select(wait if child.poll() is None else 0.05):
            if key.fd == caught.fd:
                caught.drain()
                continue
            try:
                chunk = os.read(out_fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                selector.unregister(out_fd)
                open_pipe = False
                continue
            on_output(chunk)
        if open_pipe and child.poll() is not None:
            # The command is over; what it left in its group (holding the pipe) ends with it.
            signal_group(child.pid, signal.SIGKILL)
            # A process that left the group (setsid) may hold the pipe for
            # ever: take what is there now and stop waiting for the end.
            _drain(out_fd, on_output)
            break
    signal_group(child.pid, signal.SIGKILL)
    selector.close()
    child.stdout.close()
    return Outcome(child.returncode, timed_out, stopped_by)


def _drain(fd: int, on_output: Callable[[bytes], None]) -> None:
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not chunk:
            return
        on_output(chunk)


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to the process group ``pgid``; False when no process is left in it."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
