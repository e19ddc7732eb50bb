"""The last-beat record: ``<profile>.beat.json`` in the runtime dir.

Written by whoever just beat while holding the lock; read by ``looop status``
and ``looop sense``. It lives in the runtime dir because it is volatile and
per profile, like the lock, and it is kept in its own small module so a
status probe can read it without importing the sensing machinery.

Written whole by ``looop.fs.write_whole`` (a reader sees the last record or
the one before, never half), not ``fsync``-ed (``durable=False``: a record
of the last beat outlives no reboot anyway, and the pulse writes one every
beat), mode 0600: it is nobody else's business, and
the 0700 runtime dir already says so; 0644 would promise readers it cannot
have. Read by ``looop.jsonfile.read_object``: something other than a small
regular file holding a JSON object at its name (a FIFO, a directory, a
device, 100 MB) is never waited on or read whole; ``read`` says why to a
caller that asks (``status``), and the writer refuses to replace it (a beat
goes on without its record).
"""

from __future__ import annotations

import contextlib
import json
import os
import time

from looop import fs, jsonfile
from looop.paths import Paths

TYPE_CHECKING = False  # not typing's: importing typing costs `looop status` ~4 ms
if TYPE_CHECKING:
    from typing import Any

    from looop.pulse.beat import BeatResult

MODE = 0o600


def write(paths: Paths, result: BeatResult, **extra: Any) -> None:
    """Replace the record; a record that cannot be written is skipped, never raised."""
    # Its fields as they are: ``dataclasses.asdict`` would deep-copy every sensor's row
    # only for them to be encoded at once.
    record = dict(vars(result))
    record.update(ok=result.ok, duration=round(result.duration, 3), summary=result.summary())
    record.update(extra)
    with contextlib.suppress(OSError):
        data = (json.dumps(record) + "\n").encode()
        fs.write_whole(paths.beat_file, data, mode=MODE, durable=False)


def read(paths: Paths, problems: list[str] | None = None) -> dict[str, Any] | None:
    """The last record, or None; why it could not be read goes to ``problems``.

    A missing record is not a problem (nothing has beaten yet).
    """
    try:
        return jsonfile.read_object(paths.beat_file)
    except FileNotFoundError:
        return None
    except OSError as exc:
        why = fs.why(exc)
    if problems is not None:
        problems.append(f"beat record {paths.beat_file} {why}")
    return None


# --- how the last pulse ended: ``<profile>.ended.json`` beside the record ----------
# Written once per run, when it ends: by the pulse itself on a clean stop, and
# under systemd by the unit's ``ExecStopPost=`` (``looop pulse --ended``), which
# systemd runs after every end, a crash included, with how it ended in
# ``$SERVICE_RESULT``, ``$EXIT_CODE`` and ``$EXIT_STATUS``. systemd itself
# forgets: once ``Restart=`` has started the next run, the unit's ``Result``
# and ``ExecMainStatus`` are the new run's. A detached pulse that was killed
# writes nothing, and that absence is the answer: the beat record names a
# pulse whose end is not recorded (``how_ended``), and the next pulse records
# that much before its first beat replaces the beat record (``close_unended``).


def ended_file(paths: Paths) -> str:
    return os.path.join(paths.runtime_dir, f"{paths.profile}.ended.json")


def write_end(paths: Paths, **how: Any) -> None:
    """Record how the run whose beat record this is ended; skipped, never raised, on failure."""
    last = read(paths) or {}
    how.update(pid=last.get("pid"), pulse_started=last.get("pulse_started"), at=time.time())
    with contextlib.suppress(OSError):
        fs.write_whole(ended_file(paths), (json.dumps(how) + "\n").encode(), mode=MODE)


def close_unended(paths: Paths) -> None:
    """At a pulse's start: record that the run before ended unseen, if its end is not recorded.

    The beat record still names that run; once this pulse beats it will name
    this one, and a crash of a detached pulse would be forgotten.
    """
    last, end = read(paths) or {}, read_end(paths) or {}
    if last.get("pulse_started") and last.get("pid") != end.get("pid"):
        write_end(paths, result=None, code=None, status=None)


def read_end(paths: Paths) -> dict[str, Any] | None:
    """The last run's end as recorded, or None (none recorded, or unreadable)."""
    try:
        return jsonfile.read_object(ended_file(paths))
    except OSError:
        return None


def how_ended(end: dict[str, Any] | None) -> str:
    """How a run ended, in words: "killed by signal KILL", "crashed: signal ABRT, core dumped"."""
    if not end or not end.get("code"):
        return "ended without a clean stop (killed or crashed); see looop logs"
    code, status, result = end.get("code"), end.get("status"), end.get("result")
    if code == "killed":
        said = f"killed by signal {status}"
    elif code == "dumped":
        said = f"crashed: signal {status}, core dumped"
    elif code == "exited" and str(status) != "0":
        said = f"exited {status}"
    else:
        said = "stopped cleanly"
    if result and result not in ("success", "exit-code", "signal", "core-dump"):
        said += f" ({result})"  # watchdog, timeout, start-limit-hit...
    return said
