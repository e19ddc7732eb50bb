"""``looop _ run``: the root agent's one gated command (SPEC §11).

The command (the words joined by spaces, as ``ssh`` does) runs under
``/bin/sh -c`` in the data dir, stdin ``/dev/null``, stdout and stderr on
one pipe, in its own process group. Its record (``data.runs``) is written
before it starts and completed when it ends. The output is echoed as it
comes and the last ``KEEP_BYTES`` are kept in the record.

How it ends, and what ``_ run`` exits with:

* the command exits: its status (a death by signal N: 128+N), and whatever
  it left running in its process group is killed, so one command is one
  command and a background child cannot hold the pipe (and ``_ run``) open;
* the timeout (``--timeout`` or ``[run] timeout``): SIGTERM to the group,
  SIGKILL after ``GRACE`` seconds, exit 124;
* ``_ run`` itself gets SIGTERM, SIGINT or SIGHUP: the same two steps, the
  record says which signal, exit 128+N. Handlers only note the signal;
  ``signal.set_wakeup_fd`` wakes the one selector (the pulse's design), and
  SIGCHLD wakes it too, since the pipe does not close while a child the
  shell left behind holds it;
* ``_ run`` is killed outright: the record has no end and ``_ state`` shows
  it as interrupted.

Like every verb, a run appends one journal line (``run <id>: <cmd>``, with
``: <reason>``) when it starts and records one event (``ran``, with the exit
code) when it ends; a run that never ends has its record instead. The guard
rail is ``agent.gate``; a refused command is journaled, recorded as a
``run_refused`` event and not run (exit 1). ``--allow-dangerous`` is
journaled with the command.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from looop.agent import gate
from looop.data import events, journal, runs
from looop.data.layout import ensure_layout
from looop.errors import TIMED_OUT, LooopError, UsageError
from looop.paths import Paths

KEEP_BYTES = 64 * 1024
GRACE = 2.0
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def run(
    paths: Paths,
    words: tuple[str, ...],
    reason: str | None,
    timeout: float,
    allow_dangerous: bool,
) -> int:
    """Run the command; returns ``_ run``'s exit status."""
    command = " ".join(words)
    if not command.strip():
        raise UsageError("give the command after --")
    ensure_layout(paths)
    why = f": {reason}" if reason else ""
    rule = gate.refused(command, paths.data_dir)
    if rule and not allow_dangerous:
        journal.append(paths, f"run refused ({rule}): {command}{why}")
        events.record(paths.events, "run_refused", cmd=command, rule=rule)
        raise LooopError(f"refused: {rule}; add --allow-dangerous only with the human's yes")
    started = time.time()
    record: dict[str, Any] = {
        "cmd": command,
        "reason": reason,
        "started": started,
        "pid": os.getpid(),
        "allowed_dangerous": bool(rule),
    }
    run_id, path = runs.create(paths, record)
    flag = f" (allowed dangerous: {rule})" if rule else ""
    journal.append(paths, f"run {run_id}{flag}: {command}{why}")
    record["id"] = run_id

    def running(pgid: int) -> None:  # the group is known once it runs: put it on record
        record["pgid"] = pgid
        runs.update(path, record)

    record.update(_execute(paths, command, timeout, running))
    runs.update(path, record)
    events.record(paths.events, "ran", id=run_id, cmd=command, exit_code=record["exit_code"])
    return int(record["exit_code"])


def _execute(
    paths: Paths, command: str, timeout: float, started: Callable[[int], None]
) -> dict[str, Any]:
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda n, _f: caught.append(n)) for sig in SIGNALS}
    # SIGCHLD only wakes the selector: the shell may exit while a child it left holds the pipe.
    previous[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, lambda _n, _f: None)
    old_fd = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    try:
        child = subprocess.Popen(
            ["/bin/sh", "-c", command],
            cwd=paths.data_dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        started(child.pid)
        return _supervise(child, timeout, wake_r, caught)
    finally:
        signal.set_wakeup_fd(old_fd)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        os.close(wake_r)
        os.close(wake_w)


def _supervise(
    child: subprocess.Popen[bytes], timeout: float, wake_r: int, caught: list[int]
) -> dict[str, Any]:
    assert child.stdout is not None
    out_fd = child.stdout.fileno()
    os.set_blocking(out_fd, False)
    selector = selectors.DefaultSelector()
    selector.register(out_fd, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    kept = bytearray()
    total = 0
    deadline = time.monotonic() + timeout if timeout > 0 else None
    kill_at: float | None = None
    timed_out = False
    stopped_by: int | None = None
    open_pipe = True
    while open_pipe or child.poll() is None:
        now = time.monotonic()
        if kill_at is None and ((deadline is not None and now >= deadline) or caught):
            timed_out = not caught
            stopped_by = caught[0] if caught else None
            _signal_group(child.pid, signal.SIGTERM)
            kill_at = now + GRACE
        if kill_at is not None and now >= kill_at:
            _signal_group(child.pid, signal.SIGKILL)
            kill_at = float("inf")
        if not open_pipe and child.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(0.05)  # it closed its output but runs on: the deadline still holds
            continue
        waits = [t for t in (deadline, kill_at) if t is not None and t != float("inf")]
        wait = max(0.0, min(waits) - now) if waits else None
        for key, _ in selector.select(wait if child.poll() is None else 0.05):
            if key.fd == wake_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 64)
                continue
            try:
                chunk = os.read(out_fd, 65536)
            except BlockingIOError:
                continue
            if not chunk:
                selector.unregister(out_fd)
                open_pipe = False
                continue
            total += len(chunk)
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            kept += chunk
            del kept[:-KEEP_BYTES]
        if open_pipe and child.poll() is not None:
            # The command is over; what it left in its group (holding the pipe) ends with it.
            _signal_group(child.pid, signal.SIGKILL)
    _signal_group(child.pid, signal.SIGKILL)
    selector.close()
    child.stdout.close()
    code = child.returncode
    exit_code = TIMED_OUT if timed_out else (128 - code if code < 0 else code)
    if stopped_by is not None:
        exit_code = 128 + stopped_by
    return {
        "ended": time.time(),
        "exit_code": exit_code,
        "output": kept.decode("utf-8", errors="replace"),
        "truncated": total > KEEP_BYTES,
        "timed_out": timed_out,
        "signal": signal.Signals(stopped_by).name if stopped_by else None,
    }


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)
