"""Running the user's sensor scripts: concurrent, bounded, and leaving nothing behind.

One selector loop drives every running sensor instead of a thread each: it
reads their pipes, notices exits (a pidfd on Linux, a short poll elsewhere),
enforces deadlines and answers a stop request, all in one place where the
pulse's progress can be observed (``on_tick``) by the watchdog.

Each sensor runs in a new process group, so ending it ends the whole tree it
started; the group is ended while its leader is still an unreaped zombie, so
the group id cannot have been reused by then. Output is read only up to the
cap: a sensor printing 100 MB costs the pulse the cap, not 100 MB. Whatever a
sensor does, the result is a ``Reading`` — a failing sensor never fails a beat.

**What outlives a sensor or the runner** is ``looop.pulse.orphans``'s (a
lifeline, a subreaper's sweep); this loop tells it each group, when to
sweep and which sensors still run.

**Descriptors.** Each running sensor holds the read ends of its two pipes and
(on Linux) a pidfd; starting one briefly holds the two write ends too. The run
bounds its concurrency by what ``RLIMIT_NOFILE`` leaves after the descriptors
already open (``descriptor_slots``), and a start that still fails for want of
descriptors (``EMFILE``/``ENFILE``: the limit was lowered, another thread
holds some, the system table is full) puts the sensor back at the front of the
queue until a running one finishes. Only when nothing runs and it still cannot
start is that sensor a failure reading. A pidfd that cannot be had costs a
short poll for that sensor, never its reading.

**Why a sensor could not start** is told in its reading, with the fix when
its ``#!`` line tells (``looop.data.sensors.exec_advice``). Which files are
sensors, and their snapshots' names, are ``looop.data.sensors``'s answers:
this module only runs them.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import resource
import selectors
import signal
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from looop import proc
from looop.data.layout import shown
from looop.data.sensors import exec_advice, snapshot_name
from looop.pulse import orphans

TIMEOUT_EXIT = 124
KILL_GRACE = 2.0  # seconds between SIGTERM and SIGKILL for a timed-out group
STDERR_DETAIL = 1024  # stderr tail kept in the error object
STDERR_FILE = 64 * 1024  # stderr tail kept in snapshots/<name>.err
READ_CHUNK = 64 * 1024
EXCERPT = 200
MAX_DRAIN_READS = 256  # after the leader exits, at most this many chunks per pipe
TICK = 0.5  # the loop wakes at least this often, to show progress
SWEEP_EVERY = TICK  # re-parented descendants are looked for this often while sensors run
SPAWN_FDS = 2  # the pipes' write ends, held only while a sensor is being started
FD_RESERVE = 8  # descriptors left free for whatever else the process opens meanwhile
OUT_OF_FDS = (errno.EMFILE, errno.ENFILE)
REASON_CHARS = 200  # a failure's reason, as the beat record and the log keep it

# Every disposition a sensor starts with is the default: the pulse handles or
# ignores some (Python ignores SIGPIPE and SIGXFSZ, a shell may have started
# us ignoring SIGQUIT), and an ignored signal would be inherited across exec.
SIGNALS_RESET = tuple(signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP})


@dataclass
class Reading:
    """What one sensor produced, already turned into the value to publish."""

    name: str
    value: Any
    ok: bool
    exit_code: int | None
    stderr: bytes = b""
    duration: float = 0.0

    @property
    def reason(self) -> str | None:
        """Why it failed, on one line: the message, then stderr's last line; None when ok."""
        if self.ok:
            return None
        detail = self.value.get("detail") if isinstance(self.value, dict) else None
        message = detail.get("message") if isinstance(detail, dict) else None
        said = str(message) if message else f"exited with status {self.exit_code}"
        tail = self.stderr[-STDERR_DETAIL:].decode("utf-8", "replace").splitlines()
        last = next((line.strip() for line in reversed(tail) if line.strip()), "")
        if last and not said.startswith("output is not one JSON value"):
            said += f": {last}"
        return said[:REASON_CHARS]

    def as_dict(self) -> dict[str, Any]:
        """``_ sensor test``'s report: printed whole as JSON, or its value and stderr."""
        return {
            "name": self.name,
            "ok": self.ok,
            "exit_code": self.exit_code,
            "duration": round(self.duration, 3),
            "value": self.value,
            "stderr": self.stderr.decode(errors="replace").rstrip(),
        }


@dataclass
class Limits:
    """A beat's bounds, always taken from the ``Config`` (whose defaults are ``config.KNOBS``)."""

    timeout: float  # 0 = none
    max_bytes: int  # 0 = no cap
    concurrency: int


def descriptor_slots(per_sensor: int) -> int | None:
    """How many sensors can run at once within ``RLIMIT_NOFILE``; None if unbounded.

    Counts the descriptors open now (new ones take the lowest free numbers,
    so the count is what matters, not the highest number), leaves room to
    start one more sensor and a reserve, and never answers less than one.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        open_now = len(os.listdir("/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"))
    except OSError:
        return None
    return max(1, (soft - open_now - SPAWN_FDS - FD_RESERVE) // per_sensor)


def error_value(signal_part: dict[str, Any], message: str, **detail: Any) -> dict[str, Any]:
    return {"signal": {"error": True, **signal_part}, "detail": {"message": message, **detail}}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_output(data: bytes) -> tuple[bool, Any]:
    """(True, value) for exactly one JSON value, else (False, error object)."""
    try:
        text = data.decode("utf-8")
        return True, json.loads(text, parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        # RecursionError: nesting deeper than the parser can follow is not a
        # reading either, and must not escape into the beat.
        excerpt = data[:EXCERPT].decode("utf-8", errors="replace")
        reason = "no output" if not data.strip() else str(exc)
        return False, error_value(
            {"invalid_json": True}, f"output is not one JSON value: {reason}", excerpt=excerpt
        )


@dataclass
class _Running:
    script: Path
    pid: int
    started: float
    deadline: float | None
    out_fd: int | None
    err_fd: int | None
    born: int = 0  # boot-clock ticks just before the spawn: no descendant is older
    pidfd: int | None = None
    out: bytearray = field(default_factory=bytearray)
    out_total: int = 0
    err: bytearray = field(default_factory=bytearray)
    too_large: bool = False
    timed_out: bool = False
    kill_at: float | None = None

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)


class SensorRun:
    """One batch of sensors run to completion (or until cancelled).

    Sensors are started with ``posix_spawn`` (vfork-style, several times cheaper than a fork
    per sensor), in their own process group, with the environment (the lifeline's mark
    included) encoded once per batch. ``posix_spawn`` cannot change the child's directory,
    so the run enters the data dir itself and returns to where it was when it ends.
    """

    def __init__(
        self,
        scripts: list[Path],
        *,
        cwd: Path,
        env: Mapping[str, str],
        limits: Limits,
        on_tick: Callable[[], None] | None = None,
        cancel_fd: int | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> None:
        self.pending = deque(scripts)
        self.cwd, self.limits = cwd, limits
        self.env = {os.fsencode(k): os.fsencode(v) for k, v in env.items()}
        self.on_tick = on_tick or (lambda: None)
        self.cancel_fd = cancel_fd
        self.cancelled = cancelled or (lambda: False)
        self.selector = selectors.DefaultSelector()
        self.running: dict[int, _Running] = {}
        self.readings: dict[str, Reading] = {}
        self.stopping = False
        self.devnull = -1
        self.slots = max(1, limits.concurrency)  # lowered to what descriptors allow in run()
        self.starved = False  # a start failed for want of descriptors: wait for a finish
        self.orphans = orphans.Orphans()
        self.last_sweep = 0.0

    # --- the loop ---------------------------------------------------------
    def run(self) -> list[Reading]:
        if self.cancel_fd is not None:
            self.selector.register(self.cancel_fd, selectors.EVENT_READ, None)
        self.env.update({os.fsencode(k): os.fsencode(v) for k, v in self.orphans.start().items()})
        self.last_sweep = time.monotonic()  # what is there now was set aside
        home = os.open(".", os.O_RDONLY | os.O_CLOEXEC)
        self.devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        per_sensor = 3 if hasattr(os, "pidfd_open") else 2  # two pipes' read ends (+ a pidfd)
        self.slots = min(self.slots, descriptor_slots(per_sensor) or self.slots)
        try:
            os.chdir(self.cwd)
            while self.pending or self.running:
                if not self.stopping and self.cancelled():
                    self._stop_all()
                while self.pending and not self.starved and len(self.running) < self.slots:
                    self._spawn(self.pending.popleft())
                for key, _ in self.selector.select(self._wait_time()):
                    # An earlier event in this batch may have finished the sensor
                    # and closed this fd: act only on keys still registered.
                    if key.data is None:
                        # The pulse's wake-up pipe: always let it drain, even
                        # when already stopping, or the loop would spin on it.
                        if self.cancelled() and not self.stopping:
                            self._stop_all()
                    elif self.selector.get_map().get(key.fd) is key:
                        handler, run = key.data
                        handler(run, key.fd)
                now = time.monotonic()
                for run in list(self.running.values()):
                    self._check(run, now)
                if self.orphans.active and now - self.last_sweep >= SWEEP_EVERY:
                    self.last_sweep = now
                    self.orphans.sweep({pid: r.born for pid, r in self.running.items()})
                self.on_tick()
        finally:
            for run in list(self.running.values()):
                run.signal_group(signal.SIGKILL)
                self._finish(run)
            self.orphans.end(KILL_GRACE)
            self.selector.close()
            os.close(self.devnull)
            with contextlib.suppress(OSError):
                os.fchdir(home)
            os.close(home)
        return [self.readings[k] for k in sorted(self.readings)]

    def _wait_time(self) -> float:
        now = time.monotonic()
        wait = TICK
        for run in self.running.values():
            if run.pidfd is None:
                wait = min(wait, 0.02)  # no exit notification here: poll
            for t in (run.deadline, run.kill_at):
                if t is not None:
                    wait = min(wait, max(0.0, t - now))
        return wait

    def _stop_all(self) -> None:
        """Cancel: pending sensors never start, running groups are ended."""
        self.stopping = True
        self.pending.clear()
        now = time.monotonic()
        for run in self.running.values():
            run.signal_group(signal.SIGTERM)
            run.kill_at = now + KILL_GRACE

    # --- one sensor -------------------------------------------------------
    def _spawn(self, script: Path) -> None:
        started = time.monotonic()
        born = proc.boot_ticks() if self.orphans.active else 0
        try:
            out_r, out_w = os.pipe()
        except OSError as exc:  # out of descriptors: this sensor cannot start now
            self._unstartable(script, exc)
            return
        try:
            err_r, err_w = os.pipe()
        except OSError as exc:
            os.close(out_r)
            os.close(out_w)
            self._unstartable(script, exc)
            return
        try:
            pid = os.posix_spawn(
                script,
                [os.fsencode(script)],
                self.env,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, self.devnull, 0),
                    (os.POSIX_SPAWN_DUP2, out_w, 1),
                    (os.POSIX_SPAWN_DUP2, err_w, 2),
                ],
                setpgroup=0,
                setsigdef=SIGNALS_RESET,
                setsigmask=(),
            )
        except OSError as exc:
            for fd in (out_r, err_r):
                os.close(fd)
            self._unstartable(script, exc)
            return
        finally:
            os.close(out_w)
            os.close(err_w)
        self.orphans.guard(pid)
        timeout = self.limits.timeout
        deadline = started + timeout if timeout > 0 else None
        run = _Running(script, pid, started, deadline, out_r, err_r, born)
        for fd, handler in ((out_r, self._on_stdout), (err_r, self._on_stderr)):
            os.set_blocking(fd, False)
            self.selector.register(fd, selectors.EVENT_READ, (handler, run))
        if hasattr(os, "pidfd_open"):
            try:
                run.pidfd = os.pidfd_open(pid)
                self.selector.register(run.pidfd, selectors.EVENT_READ, (self._on_exit, run))
            except OSError as exc:  # polled instead; and no more starts until a finish
                run.pidfd = None
                self.starved = exc.errno in OUT_OF_FDS
        self.running[pid] = run

    def _unstartable(self, script: Path, exc: OSError) -> None:
        if exc.errno in OUT_OF_FDS and self.running:
            # Descriptors free up as running sensors finish: wait for a slot.
            self.pending.appendleft(script)
            self.starved = True
            return
        code = 126 if exc.errno in (errno.EACCES, errno.ENOEXEC, errno.EPERM) else 127
        why = "not executable" if code == 126 else "cannot be run"
        name = snapshot_name(script)
        message = f"{shown(script.name)} {why}: {exc.strerror}"
        if exc.errno in OUT_OF_FDS:
            soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
            message += f" (the open-file limit is {soft}; raise it with ulimit -n)"
        elif exc.errno in (errno.ENOENT, errno.ENOEXEC):
            message = exec_advice(script, self._shown(script)) or message
        self.readings[name] = Reading(
            name,
            error_value({"exit_code": code}, message, stderr=""),
            ok=False,
            exit_code=code,
            stderr=f"{message}\n".encode(),
        )

    def _shown(self, script: Path) -> str:
        """``sensors/x.sh``: the script as named from the data dir, where the user looks."""
        try:
            return shown(str(script.relative_to(self.cwd)))
        except ValueError:
            return shown(str(script))

    def _close_pipe(self, run: _Running, fd: int) -> None:
        self.selector.unregister(fd)
        os.close(fd)
        if run.out_fd == fd:
            run.out_fd = None
        if run.err_fd == fd:
            run.err_fd = None

    def _read_into(
        self, run: _Running, fd: int, consume: Callable[[_Running, int, bytes], None]
    ) -> bytes | None:
        """Read one chunk and hand it on; closes the pipe at EOF. None if none ready."""
        try:
            chunk = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return None
        if chunk:
            consume(run, fd, chunk)
        else:
            self._close_pipe(run, fd)
        return chunk

    def _on_stdout(self, run: _Running, fd: int) -> None:
        self._read_into(run, fd, self._take_stdout)

    def _on_stderr(self, run: _Running, fd: int) -> None:
        self._read_into(run, fd, self._take_stderr)

    def _take_stdout(self, run: _Running, fd: int, chunk: bytes) -> None:
        run.out_total += len(chunk)
        cap = self.limits.max_bytes
        if cap and run.out_total > cap:
            # Over the cap: stop reading, end the group, keep only the count.
            run.too_large = True
            run.out.clear()
            self._close_pipe(run, fd)
            run.signal_group(signal.SIGTERM)
            run.kill_at = time.monotonic() + KILL_GRACE
            return
        run.out += chunk

    def _take_stderr(self, run: _Running, fd: int, chunk: bytes) -> None:
        run.err += chunk
        if len(run.err) > STDERR_FILE:
            del run.err[: len(run.err) - STDERR_FILE]

    def _on_exit(self, run: _Running, fd: int) -> None:
        self._check(run, time.monotonic())

    def _check(self, run: _Running, now: float) -> None:
        if run.pid not in self.running:
            return
        try:
            exited = os.waitid(os.P_PID, run.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            exited = True  # already reaped elsewhere: nothing left to wait for
        if exited:
            self._finish(run)
            return
        due = run.deadline is not None and now >= run.deadline
        if due and not run.timed_out and not run.too_large:
            run.timed_out = True
            run.signal_group(signal.SIGTERM)
            run.kill_at = now + KILL_GRACE
        elif run.kill_at is not None and now >= run.kill_at:
            run.signal_group(signal.SIGKILL)
            run.kill_at = None

    def _finish(self, run: _Running) -> None:
        """The leader has exited (still unreaped): end the group, drain, reap.

        The group is killed while the leader is a zombie, so its id cannot
        belong to anyone else yet; nothing a sensor started outlives its beat.
        """
        run.signal_group(signal.SIGKILL)
        for handler in (self._take_stdout, self._take_stderr):
            for _ in range(MAX_DRAIN_READS):  # bounded: an escaped process may keep writing
                fd = run.out_fd if handler == self._take_stdout else run.err_fd
                if fd is None or self._read_into(run, fd, handler) is None:
                    break
        for fd in (run.out_fd, run.err_fd):
            if fd is not None:
                self._close_pipe(run, fd)
        if run.pidfd is not None:
            self.selector.unregister(run.pidfd)
            os.close(run.pidfd)
            run.pidfd = None
        self.orphans.release(run.pid)  # before the reaping frees its group's id
        try:
            _, status = os.waitpid(run.pid, 0)
        except ChildProcessError:
            status = 255 << 8  # reaped elsewhere: the exit status is lost

        del self.running[run.pid]
        self.starved = False  # its descriptors are free again
        reading = self._reading(run, status)
        self.readings[reading.name] = reading

    def _reading(self, run: _Running, status: int) -> Reading:
        name = snapshot_name(run.script)
        duration = time.monotonic() - run.started
        err = bytes(run.err)
        tail = err[-STDERR_DETAIL:].decode("utf-8", errors="replace")
        returncode = os.waitstatus_to_exitcode(status)
        code = returncode if returncode >= 0 else 128 - returncode
        if run.too_large:
            cap = self.limits.max_bytes
            value = error_value(
                {"too_large": True},
                f"output exceeded {cap} bytes; reading stopped at the cap",
                max_bytes=cap,
                bytes_read=run.out_total,
                stderr=tail,
            )
            return Reading(name, value, False, code, err, duration)
        if run.timed_out:
            code = TIMEOUT_EXIT
            message = f"timed out after {self.limits.timeout:g}s; process group ended"
            value = error_value({"exit_code": code}, message, stderr=tail)
            return Reading(name, value, False, code, err, duration)
        if self.stopping:
            value = error_value({"exit_code": code}, "stopped with the pulse", stderr=tail)
            return Reading(name, value, False, code, err, duration)
        if code != 0:
            value = error_value({"exit_code": code}, f"exited with status {code}", stderr=tail)
            return Reading(name, value, False, code, err, duration)
        ok, value = parse_output(bytes(run.out))
        if not ok:
            value["detail"]["stderr"] = tail
        return Reading(name, value, ok, code, b"" if ok else err, duration)
