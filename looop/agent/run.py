"""``looop _ run``: the root agent's one gated command (SPEC §11).

The command (the words joined by spaces, as ``ssh`` does) runs under
``/bin/sh -c`` in the data dir, stdin ``/dev/null``, stdout and stderr on
one pipe, with the environment sensors and workers get
(``paths.child_environment``: the ``LOOOP_*`` variables, not the service
manager's ``NOTIFY_SOCKET``), in its own process group (``looop.group``, which the worker
supervisor shares). Its record (``data.runs``) is written
before it starts and completed when it ends. The output is echoed as it
comes (``looop.group``'s echo, with back-pressure) and the last
``KEEP_BYTES`` are kept in the record.

How it ends, and what ``_ run`` exits with:

* the command exits: its status (a death by signal N: 128+N), and whatever
  it left running in its process group is killed, so one command is one
  command and a background child cannot hold the pipe (and ``_ run``) open;
* the timeout (``--timeout`` or ``[run] timeout``): SIGTERM to the group,
  SIGKILL after ``GRACE`` seconds, exit 124;
* ``_ run`` itself gets SIGTERM, SIGINT or SIGHUP: the record says which
  signal at once, then the same two steps, exit 128+N;
* ``_ run``'s reader goes away (``| head -1``): the command's next write
  fails as in a shell pipeline (SIGPIPE, so usually 141), and the end is
  recorded all the same; a reader that takes nothing holds the command on a
  full pipe until its timeout (``looop.group``'s echo);
* ``_ run`` is killed outright (an agent's tool at its limit: SIGKILL): its
  command's group is killed with it (``looop.lifeline``), the record has no
  end and ``_ state`` shows it as interrupted.

Like every verb, a run appends one journal line (``run <id>: <cmd>``, with
``: <reason>``) when it starts and records one event (``ran``, with the exit
code) when it ends; a run that never ends has its record instead. The guard
rail is ``agent.gate`` (which brings the shell parser: this module is
imported for ``_ run`` alone); a refused command is journaled, recorded as a
``run_refused`` event and not run (exit 1). ``--allow-dangerous``, or
``LOOOP_RUN_ALLOW_DANGEROUS=1`` in the environment, runs it and is journaled
with the command.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from looop import group
from looop.agent import gate
from looop.data import events, journal, runs
from looop.data.layout import ensure_layout
from looop.errors import LooopError, UsageError
from looop.paths import Paths, child_environment

KEEP_BYTES = 64 * 1024
ALLOW_HINT = "--allow-dangerous to run it anyway, with the human's yes"
STDOUT = 1  # the echo: by fd, whatever sys.stdout is
GRACE = 2.0


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
    env = child_environment(paths, os.environ)
    refusal = gate.refused(command, str(paths.data_dir), env)
    rule = str(refusal) if refusal else None
    if rule and not (allow_dangerous or gate.allowed_by_environment(os.environ)):
        journal.append(paths, f"run refused ({rule}): {command}{why}")
        events.record(paths.events, "run_refused", cmd=command, rule=rule)
        raise LooopError(f"refused: {rule}; {ALLOW_HINT}")
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

    def stopping(sig: int) -> None:  # said at once: _ run may be killed before the end
        record["signal"] = signal.Signals(sig).name
        runs.update(path, record)

    record.update(_execute(paths, command, env, timeout, running, stopping))
    echo_error = record.pop("echo_error")
    runs.update(path, record)
    events.record(paths.events, "ran", id=run_id, cmd=command, exit_code=record["exit_code"])
    if echo_error is not None:
        raise echo_error  # recorded whole; what could not be shown is said, exit 1
    return int(record["exit_code"])


def _execute(
    paths: Paths,
    command: str,
    env: dict[str, str],
    timeout: float,
    started: Callable[[int], None],
    stopping: Callable[[int], None],
) -> dict[str, Any]:
    tail = group.Tail(KEEP_BYTES)
    sys.stdout.flush()  # what was printed before goes out first
    end = group.run(
        group.shell(command),
        cwd=paths.data_dir,
        env=env,
        timeout=timeout,
        on_output=tail,
        on_start=started,
        on_stop=stopping,
        echo=STDOUT,
        grace=GRACE,
    )
    return {
        "ended": time.time(),
        "exit_code": end.exit_code,
        "output": tail.text(),
        "truncated": tail.truncated,
        "timed_out": end.timed_out,
        "signal": signal.Signals(end.stopped_by).name if end.stopped_by else None,
        "echo_error": end.echo_error,
    }
