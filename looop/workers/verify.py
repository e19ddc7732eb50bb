"""A worker's post-conditions: ``_ worker start ID --verify CMD``, checked once it ends well.

A worker that exits 0 may still have left its work undone (uncommitted, no
report). The root agent says what "done" means as commands, each a shell
command line: ``--verify 'test -f reports/x.md' --verify 'git diff --quiet'``.

* **When.** Once the worker ends by exiting 0 or by its own ``_ kill``
  (``status.json``: ``exited``, 0). A worker that failed, timed out or was
  killed is not checked: its exit already says it (``verify: skipped``).
* **Who.** The worker's supervisor (``workers.supervise``), which sees the
  end, runs the checks before it writes ``status.json``: the session stays
  ``running`` meanwhile, and the status is written once, with the worker's
  end and the verdict together, so the root agent is woken once, by the
  whole truth (rejected: the status first and the verdict later, which
  showed a clean ``exited 0`` for a moment and woke the agent twice).
* **How.** As ``_ run`` runs a command: ``_ run``'s guard rail
  (``agent.gate.refused``, which the agent room publishes to this one: it
  is a pure judgment of a command line, a directory and an environment),
  then ``looop.group``'s runner with ``group.shell``'s argv, in the
  worker's working directory (the data dir) and with its environment, each
  ended at ``[run] timeout`` (kept in the meta when the worker starts), its
  output copied into the transcript. A command the gate refuses is refused
  at ``_ worker start`` too (exit 1, nothing started), and again, judged
  afresh, when it would run (a refused check fails);
  ``LOOOP_RUN_ALLOW_DANGEROUS=1``, set when the worker was started, lets it
  through, as for ``_ run``. Rejected: the supervisor running ``looop _
  run`` as a child, which would put the checks among the root agent's own
  runs and could not tell a refusal from a command's exit 1.
* **What is kept.** ``status.json`` gains ``verify`` (``passed``, ``failed``
  or ``skipped``, ``data.sessions.VERDICTS``) and ``checks``: each command
  with its ``exit_code`` (null when it did not run), the last ``TAIL`` bytes
  of its output, and ``refused``, ``timed_out`` or ``signal`` when they
  apply. Every listing of workers shows the verdict; a failed one is
  ``verify failed`` in the text forms.
* **Stops.** A stop signal during the checks (``_ worker kill``, ``looop
  down``) ends the running check (128+N) and leaves the rest unrun: the
  verdict is failed, as nothing proved the work done. The worker's own
  ``_ kill`` meanwhile is ignored: its work is over already.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Mapping

from looop import group
from looop.data.sessions import State
from looop.errors import NOT_FOUND, LooopError, UsageError, os_error_line
from looop.signals import STOP_SIGNALS, SignalQueue
from looop.workers.transcript import Writer

TYPE_CHECKING = False  # not typing's: the supervisor loads this module
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

MAX_COMMANDS = 16
MAX_BYTES = 4096  # of one command line
TAIL = 2048  # bytes of a check's output kept in status.json
GRACE = 2.0  # from SIGTERM to SIGKILL of a check's group, as for ``_ run``


def checked(commands: tuple[str, ...], data_dir: Path, env: Mapping[str, str]) -> list[str]:
    """The ``--verify`` commands, refused before anything starts when one cannot be run.

    Empty, too long or too many: a usage error (exit 2); refused by the
    guard rail: exit 1, naming the rule and the command.
    """
    if len(commands) > MAX_COMMANDS:
        raise UsageError(f"at most {MAX_COMMANDS} --verify commands")
    for cmd in commands:
        if not cmd.strip():
            raise UsageError("an empty --verify command")
        if len(cmd.encode("utf-8", "surrogateescape")) > MAX_BYTES:
            raise UsageError(f"a --verify command is over {MAX_BYTES} bytes")
        refusal = _refused(cmd, data_dir, env)
        if refusal:
            raise LooopError(f"--verify refused: {refusal}; nothing started")
    return list(commands)


def _refused(cmd: str, data_dir: Path, env: Mapping[str, str]) -> str | None:
    """The guard rail's rule against ``cmd``, unless the environment allows it."""
    from looop.agent import gate  # the shell parser: only when there is a check to judge

    refusal = gate.refused(cmd, str(data_dir), dict(env))
    if refusal is None or gate.allowed_by_environment(dict(env)):
        return None
    return str(refusal)


def after(
    meta: dict[str, Any],
    ending: tuple[str, int],
    data_dir: Path,
    env: Mapping[str, str],
    out: Writer,
) -> dict[str, Any]:
    """What ``status.json`` adds for the worker's post-conditions: {} when none were asked.

    ``ending`` is the worker's ``(state, exit_code)``; ``out`` its transcript.
    """
    commands = [c for c in meta.get("verify") or () if isinstance(c, str)]
    if not commands:
        return {}
    if ending != (State.EXITED, 0):
        return {"verify": "skipped"}
    timeout = float(meta.get("verify_timeout") or 0)
    checks: list[dict[str, Any]] = []
    # A stop between two checks is queued, not fatal; the worker's late
    # `_ kill` (SIGUSR1) is taken and ignored.
    with SignalQueue((*STOP_SIGNALS, signal.SIGUSR1), stop=STOP_SIGNALS) as caught:
        for cmd in commands:
            if caught.stop_requested() is not None or any("signal" in c for c in checks):
                checks.append({"cmd": cmd, "exit_code": None, "output": ""})
                continue
            checks.append(_check(cmd, data_dir, env, timeout, out.write, out.note))
    passed = all(c["exit_code"] == 0 for c in checks)
    out.note(f"verify {'passed' if passed else 'failed'}")
    return {"verify": "passed" if passed else "failed", "checks": checks}


def _check(
    cmd: str,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    write: Callable[[bytes], None],
    note: Callable[[str], None],
) -> dict[str, Any]:
    """Run one check as ``_ run`` would; its result."""
    note(f"verify: {cmd}")
    refusal = _refused(cmd, cwd, env)
    if refusal:
        note(f"verify refused: {refusal}")
        return {"cmd": cmd, "exit_code": None, "output": "", "refused": refusal}
    tail = group.Tail(TAIL)

    def output(chunk: bytes) -> None:
        write(chunk)
        tail(chunk)

    try:
        end = group.run(
            group.shell(cmd), cwd=cwd, env=env, timeout=timeout, on_output=output, grace=GRACE
        )
    except OSError as exc:
        code = NOT_FOUND if isinstance(exc, FileNotFoundError) else 126
        note(f"verify: cannot run it: {os_error_line(exc)}")
        return {"cmd": cmd, "exit_code": code, "output": os_error_line(exc)}
    result: dict[str, Any] = {"cmd": cmd, "exit_code": end.exit_code, "output": tail.text()}
    if end.timed_out:
        result["timed_out"] = True
    if end.stopped_by is not None:
        result["signal"] = signal.Signals(end.stopped_by).name
    note(f"verify: exit {end.exit_code}")
    return result
