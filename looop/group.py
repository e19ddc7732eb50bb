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
* the ``watchdog`` (a caller's judgment, asked at once and then whenever it
  said to ask again) says to end it: the same two steps, and the outcome
  says so (``by_watchdog``); the worker supervisor's stuck check;
* the watcher gets one of ``signals`` (``looop.signals.STOP_SIGNALS``
  unless told): ``on_stop`` hears which at once (so a record can say it
  even if the watcher is killed before the end), then the same two steps,
  and the outcome says which signal. The signals are taken by a
  ``looop.signals.SignalQueue`` for the length of the run, the pulse's
  model: handlers only queue, the wake-up pipe wakes the one selector, and
  SIGCHLD wakes it too, since the pipe does not close while a child the
  command left behind holds it;
* the watcher dies outright (SIGKILL, an agent's tool at its limit): the
  group's ``looop.lifeline.Lifeline`` kills it, so a command never outlives
  the process watching it, even one it was still starting (the command's
  environment carries the lifeline's mark);
* ``on_start`` (the caller putting the group on record) or the watch
  itself fails: SIGKILL to the group, then the error; a command is never
  left running with nobody watching it.

**The echo** (``echo``, an fd: ``_ run``'s stdout) gets the output as the
command's own stdout would: with back-pressure, never blocking the watch.
What was read waits until the echo's reader can take it (``PIPE_BUF`` at a
time to a pipe, which then never blocks; a terminal or a socket on a
blocking descriptor may, briefly), and meanwhile the command's pipe
is not read, so a command whose output nobody reads waits on a full pipe as
it would in a shell, while its deadline and the signals still hold. A
reader that goes away (``| head -1``: EPIPE) closes the command's pipe too:
its next write fails (SIGPIPE), as in a shell pipeline, and the run goes on
to the command's end and is recorded. An echo that fails otherwise (a full
disk under ``> file``) stops echoing, not the command; the caller says why.
Once the command is over, what is left is delivered while the reader takes
it, until the deadline or a stop signal, then dropped.

``shell`` is the argv of one shell command line, ``Tail`` an ``on_output``
that keeps the end of the output, and ``Outcome.exit_code`` what a run of
one command reports: ``_ run`` and a worker's post-conditions
(``workers.verify``) share the three, so a verify is run as ``_ run`` runs.

``looop _ run`` (``agent.run``) and the worker supervisor
(``workers.supervise``) are its two callers; they differ only in where the
output goes and what an outcome means to them. What escapes the group (a
``setsid`` child) is beyond a process group's reach: under systemd a
worker's cgroup ends it (``service.systemd``), and without one it is
reported, not hidden.
"""

from __future__ import annotations

import errno
import os
import select
import selectors
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from looop.errors import TIMED_OUT
from looop.lifeline import Lifeline
from looop.signals import STOP_SIGNALS, SignalQueue

MAX_DRAIN_READS = 256  # chunks read from the pipe once the command is over
READER_GONE = (errno.EPIPE, errno.ECONNRESET)  # the echo's reader went away


class Outcome:
    """How the command ended: its return code, and whether a timeout or a signal ended it."""

    __slots__ = ("by_watchdog", "echo_error", "returncode", "stopped_by", "timed_out")

    def __init__(
        self,
        returncode: int,
        timed_out: bool,
        stopped_by: int | None,
        echo_error: OSError | None = None,
        by_watchdog: bool = False,
    ) -> None:
        self.returncode, self.timed_out, self.stopped_by = returncode, timed_out, stopped_by
        self.by_watchdog = by_watchdog  # the watchdog said to end it
        # The echo could not be written for a reason other than its reader
        # going away (a full disk under a redirected stdout): the caller says so.
        self.echo_error = echo_error

    @property
    def status(self) -> int:
        """The command's own exit status, a death by signal N counted as 128+N (the shell's)."""
        code = self.returncode
        return 128 - code if code < 0 else code

    @property
    def exit_code(self) -> int:
        """What a run reports (``_ run``'s exit, a verify's result): 124, 128+N, or ``status``.

        124 when its timeout ended it, 128+N when signal N stopped the watcher.
        """
        if self.stopped_by is not None:
            return 128 + self.stopped_by
        return TIMED_OUT if self.timed_out else self.status


class Tail:
    """An ``on_output`` that keeps the last ``keep`` bytes and counts them all."""

    __slots__ = ("keep", "kept", "total")

    def __init__(self, keep: int) -> None:
        self.keep, self.kept, self.total = keep, bytearray(), 0

    def __call__(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self.kept.extend(chunk)
        del self.kept[: -self.keep]

    def text(self) -> str:
        return self.kept.decode("utf-8", errors="replace")

    @property
    def truncated(self) -> bool:
        return self.total > self.keep


def shell(command: str) -> list[str]:
    """The argv that runs ``command`` as one shell command line (``_ run``'s and a verify's)."""
    return ["/bin/sh", "-c", command]


def run(
    argv: Sequence[str],
    *,
    cwd: Path,
    timeout: float,
    on_output: Callable[[bytes], None],
    on_start: Callable[[int], None] = lambda pgid: None,
    on_stop: Callable[[int], None] = lambda sig: None,
    echo: int | None = None,
    env: Mapping[str, str] | None = None,
    signals: Sequence[int] = STOP_SIGNALS,
    grace: float = 2.0,
    stdin: int | None = None,
    watchdog: Callable[[], float | None] | None = None,
) -> Outcome:
    """Run ``argv`` to its end (``timeout`` 0: no timeout). OSError if it cannot start.

    ``stdin``: an open descriptor for the command's stdin (``/dev/null`` if None).
    ``watchdog``: the seconds until it is to be asked again, or None: end the command.
    """
    # SIGCHLD only wakes the selector: the command may exit while a child it left holds the pipe.
    with SignalQueue(signals, stop=signals, wake=(signal.SIGCHLD,)) as caught:
        guard = Lifeline()
        guard.starting()
        try:
            child = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=guard.marked(os.environ if env is None else env),
                stdin=subprocess.DEVNULL if stdin is None else stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        except BaseException:
            guard.close()
            raise
        guard.add(child.pid)
        guard.starting(False)
        try:
            on_start(child.pid)
            watch = _Watch(child, timeout, grace, caught, on_output, on_stop, echo, watchdog)
            return watch.run(guard)
        except BaseException:
            # Its record cannot be written (or the watch failed): a command
            # nobody watches is not left running.
            signal_group(child.pid, signal.SIGKILL)
            guard.close()
            child.wait()
            raise
        finally:
            guard.close()


class _Watch:
    """One command watched to its end: its output, its deadline, the signals, the echo."""

    def __init__(
        self,
        child: subprocess.Popen[bytes],
        timeout: float,
        grace: float,
        caught: SignalQueue,
        on_output: Callable[[bytes], None],
        on_stop: Callable[[int], None],
        echo: int | None,
        watchdog: Callable[[], float | None] | None = None,
    ) -> None:
        assert child.stdout is not None
        self.child, self.grace, self.caught = child, grace, caught
        self.on_output, self.on_stop = on_output, on_stop
        self.out: int | None = child.stdout.fileno()
        os.set_blocking(self.out, False)
        self.echo, self.echo_size, self.direct = _echo_target(echo)
        self.pending = bytearray()  # read from the command, not yet taken by the echo's reader
        self.echo_error: OSError | None = None
        self.deadline = time.monotonic() + timeout if timeout > 0 else None
        self.kill_at: float | None = None
        self.exited = False  # the command has exited (not yet reaped)
        self.timed_out = False
        self.stopped_by: int | None = None
        self.watchdog = watchdog
        self.next_watch = time.monotonic()  # when the watchdog is next asked
        self.by_watchdog = False
        self.selector = selectors.DefaultSelector()

    def run(self, guard: Lifeline) -> Outcome:
        self.guard = guard
        try:
            while not self._over():
                self._step()
        finally:
            self.selector.close()
            self.child.stdout.close()  # type: ignore[union-attr]
        code = self.child.returncode
        return Outcome(code, self.timed_out, self.stopped_by, self.echo_error, self.by_watchdog)

    def _over(self) -> bool:
        """Reap the command once it has exited and nothing is left to deliver; True then."""
        if not self.exited:
            if not _exited(self.child.pid):
                return False
            # The command is over; what it left in its group (holding the pipe) ends with it,
            # and what is in the pipe now is read: one that left the group may hold it for ever.
            self.exited = True
            signal_group(self.child.pid, signal.SIGKILL)
            self._read(MAX_DRAIN_READS)  # bounded: a process that left the group may write on
            self._close_output()
        if self.pending and self.echo is not None and not self._late():
            return False  # delivered while its reader takes it, up to the deadline
        signal_group(self.child.pid, signal.SIGKILL)
        self.guard.close()  # before the reaping frees the group's id for anyone to take
        self.child.wait()
        return True

    def _late(self) -> bool:
        """Past the deadline, or told to stop: what the echo's reader has not taken is dropped."""
        past = self.deadline is not None and time.monotonic() >= self.deadline
        return past or self.kill_at is not None or self.caught.stop_requested() is not None

    def _step(self) -> None:
        now = time.monotonic()
        if self.exited:
            pass  # only its output is being delivered: _over decides when that ends
        elif self.kill_at is None:
            stop = self.caught.stop_requested()
            late = self.deadline is not None and now >= self.deadline
            if stop is not None or late or self._barks(now):
                self.timed_out, self.stopped_by = stop is None and late, stop
                if stop is not None:
                    self.on_stop(stop)
                signal_group(self.child.pid, signal.SIGTERM)
                self.kill_at = now + self.grace
        elif now >= self.kill_at:
            signal_group(self.child.pid, signal.SIGKILL)
            self.kill_at = float("inf")
        self._register()
        watch = self.next_watch if self.watchdog is not None and self.kill_at is None else None
        waits = [
            t for t in (self.deadline, self.kill_at, watch) if t is not None and t != float("inf")
        ]
        wait = max(0.0, min(waits) - now) if waits else None
        for key, _ in self.selector.select(wait):
            if key.fd == self.caught.fd:
                self.caught.drain()
            elif key.fd == self.echo:
                self._deliver()
            elif key.fd == self.out:
                self._read()

    def _barks(self, now: float) -> bool:
        """Ask the watchdog when it is due; True when it says to end the command."""
        if self.watchdog is None or now < self.next_watch:
            return False
        again = self.watchdog()
        if again is None:
            self.by_watchdog = True
            return True
        self.next_watch = now + max(again, 0.001)
        return False

    def _register(self) -> None:
        """Wait on the signals; on the command's output, or on the echo while it holds some."""
        wanted = {self.caught.fd: selectors.EVENT_READ}
        if self.pending and self.echo is not None and not self.direct:
            wanted[self.echo] = selectors.EVENT_WRITE  # back-pressure: the command waits meanwhile
        elif self.out is not None:
            wanted[self.out] = selectors.EVENT_READ
        for fd in [fd for fd in self.selector.get_map() if fd not in wanted]:
            self.selector.unregister(fd)
        for fd, events in wanted.items():
            if fd not in self.selector.get_map():
                self.selector.register(fd, events)

    def _read(self, chunks: int = 1) -> None:
        """Up to ``chunks`` reads of what the pipe holds now; its end closes it."""
        for _ in range(chunks):
            if self.out is None:
                return
            try:
                chunk = os.read(self.out, 65536)
            except BlockingIOError:
                return
            if not chunk:
                self._close_output()
                return
            self._take(chunk)

    def _take(self, chunk: bytes) -> None:
        self.on_output(chunk)
        if self.echo is not None:
            self.pending += chunk
            while self.direct and self.pending and self._deliver():
                pass

    def _deliver(self) -> bool:
        """Hand the echo's reader what it can take now without blocking; gone: stop echoing.

        True when some was taken.
        """
        assert self.echo is not None
        try:
            done = os.write(self.echo, self.pending[: self.echo_size])
        except BlockingIOError:  # a stdout its reader made non-blocking, full again
            return False
        except OSError as exc:
            self.echo = None
            self.pending.clear()
            if exc.errno in READER_GONE:
                # The command's own pipe closes too, so its next write fails as
                # it would in a shell pipeline (SIGPIPE).
                self._close_output()
            else:
                # A full disk, an I/O error: nobody left to read it is not the
                # case, so the command runs on, recorded, and the caller says why.
                exc.filename = exc.filename or "<stdout>"
                self.echo_error = exc
            return False
        del self.pending[:done]  # from the front: no copy of the rest
        return done > 0

    def _close_output(self) -> None:
        if self.out is not None:
            if self.out in self.selector.get_map():
                self.selector.unregister(self.out)
            self.child.stdout.close()  # type: ignore[union-attr]
            self.out = None


def _echo_target(fd: int | None) -> tuple[int | None, int, bool]:
    """The echo's fd, how much one write may hand it, and whether it is written at once.

    A pipe, a socket or a terminal is waited on (``epoll``) and takes
    ``PIPE_BUF`` bytes whenever it is writable (a pipe then never blocks). A
    regular file or ``/dev/null`` cannot be waited on (``epoll`` refuses
    them) and never makes a writer wait: it is written at once, whole. An fd
    that is not open is no echo (None).
    """
    if fd is None:
        return None, 0, False
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return None, 0, False
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or os.isatty(fd):
        return fd, select.PIPE_BUF, False
    return fd, 1 << 20, True


def _exited(pid: int) -> bool:
    """Has the child ``pid`` exited? It is left unreaped, so its group id stays its own."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to the process group ``pgid``; False when no process is left in it."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
