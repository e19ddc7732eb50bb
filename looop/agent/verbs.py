"""The root agent's verbs (SPEC §11): goals, sensors, the playbook, schedules and notify.

The root agent changes the world only through these, never by editing files,
so each verb is the single writer of what it touches. Every verb here

* checks its id with ``data.ids.check`` before any file is touched (SPEC §9);
* writes whole or not at all (``fs.write_whole``: temp file, fsync, rename),
  so a beat hashing the world never sees half a goal or half a sensor, and a
  FIFO or device at the name is refused, not written into;
* opens ``journal.md`` before the change (``data.journal.opened``), so a
  journal that cannot take the line fails the verb before anything moved,
  then appends the line and records one event (``data.events.record``)
  after the change is made: all of the work or none of it.

The journal line is ``<verb> <id>`` (``goal write deploy``, ``sensor remove
ci``, ``playbook write``, ``schedule write check (due 2026-12-08 09:00, every
1d)``, ``notify: <message>``), with ``: <reason>`` added
when the agent gives ``--journal REASON``: the journal says what moved and,
when the agent says it, why. The event is ``goal_written``,
``goal_archived``, ``sensor_written``, ``sensor_removed``,
``playbook_written``, ``schedule_written`` (with its ``at`` and ``every``),
``schedule_removed`` or ``notified``, naming the id. A schedule coming due
writes nothing (``data.schedules``: it is the clock's, not a move).

Parsing the body (arguments or stdin, the refusal of a lone flag-shaped
body) is the CLI's (``looop.cli.body``); these functions take text.

``notify`` hands the message to ``[notify] command`` (argv, ``{message}``
replaced inside each element) or, when that is unset, to the desktop's own
notifier when one is on ``PATH`` (``notify-send`` on Linux, ``osascript`` on
macOS, whose script reads the message from its ``argv`` and never has it
spliced into its text). The message is always one argv element, never shell
text, and always after a ``--`` on the notifiers looop builds, so a message
that starts with ``-`` (``-u critical``) is shown, not taken for an option
(a ``[notify] command`` is the user's argv: its ``--`` is theirs to write).
With no notifier at all the message is still journaled and recorded, and
``notify`` says so (exit 0): a headless machine is not an error.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from looop import fs
from looop.data import events, ids, journal, playbook, schedules, sensors
from looop.data.layout import ensure_layout
from looop.errors import NOT_FOUND, LooopError, UsageError
from looop.paths import Paths

NOTIFY_TIMEOUT = 10.0  # seconds a notifier may take before it is abandoned
SENSOR_MODE = 0o755
GOAL_MODE = 0o644


@contextmanager
def _move(
    paths: Paths, text: str, reason: str | None, event: str, **fields: object
) -> Iterator[None]:
    """The journal opened before the move in the block, its line and event written after."""
    with journal.opened(paths) as note:
        yield
        note(text, reason)
    events.record_many(paths.events, [(event, dict(fields))])


def _as_file(text: str) -> bytes:
    return (text if text.endswith("\n") else text + "\n").encode("utf-8")


def write_goal(paths: Paths, goal_id: str, body: str, reason: str | None = None) -> Path:
    ids.check("goal", goal_id)
    ensure_layout(paths)
    with _move(paths, f"goal write {goal_id}", reason, "goal_written", goal=goal_id):
        written = fs.write_whole(paths.goals / f"{goal_id}.md", _as_file(body), mode=GOAL_MODE)
    return written


def goal_written(paths: Paths, goal_id: str, body: str, reason: str | None = None) -> str:
    """``_ goal write``'s answer: ``write_goal``, then what it wrote (for click and the fast
    path alike)."""
    return f"wrote goal {goal_id} ({write_goal(paths, goal_id, body, reason)})"


def archive_goal(paths: Paths, goal_id: str, reason: str | None = None) -> Path:
    """Move ``goals/ID.md`` into ``goals/archive/``, never over an archived goal of that name.

    ``link`` then ``unlink``: the link fails if the archived name is taken
    (``rename`` would replace it silently), and for a moment the goal has two
    names, never none.
    """
    ids.check("goal", goal_id)
    source = paths.goals / f"{goal_id}.md"
    target = paths.goals / "archive" / f"{goal_id}.md"
    try:
        st = os.lstat(source)
    except FileNotFoundError:
        raise LooopError(f"no goal named {goal_id!r}") from None
    if not stat.S_ISREG(st.st_mode):
        raise fs.BadFile(source, f"is {fs.kind(st.st_mode)}, not a goal; refusing to move it")
    target.parent.mkdir(exist_ok=True)
    with _move(paths, f"goal archive {goal_id}", reason, "goal_archived", goal=goal_id):
        try:
            os.link(source, target, follow_symlinks=False)
        except FileExistsError:
            raise LooopError(
                f"goal {goal_id!r} is already archived; archive it under another id"
            ) from None
        os.unlink(source)
        fs.sync_dir(paths.goals)
    return target


def write_sensor(paths: Paths, name: str, script: str, reason: str | None = None) -> Path:
    ids.check("sensor", name)
    if not script.startswith("#!"):
        raise UsageError("a sensor script must start with a #! line (e.g. #!/bin/sh)")
    ensure_layout(paths)
    with _move(paths, f"sensor write {name}", reason, "sensor_written", sensor=name):
        written = fs.write_whole(sensors.path(paths, name), _as_file(script), mode=SENSOR_MODE)
    return written


def remove_sensor(paths: Paths, name: str, reason: str | None = None) -> Path:
    ids.check("sensor", name)
    return _remove(paths, "sensor", name, sensors.path(paths, name), reason)


def _remove(paths: Paths, kind: str, name: str, path: Path, reason: str | None) -> Path:
    """Remove ``path``, the file of ``kind`` ``name``; journaled ``<kind> remove <name>``."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise LooopError(f"no {kind} named {name!r}") from None
    if stat.S_ISDIR(st.st_mode):
        raise fs.BadFile(path, f"is a directory, not a {kind}; refusing to remove it")
    with _move(paths, f"{kind} remove {name}", reason, f"{kind}_removed", **{kind: name}):
        os.unlink(path)  # a link is removed as a link; what it points to is untouched
    return path


def sensor_script(paths: Paths, name: str) -> Path:
    """The script ``_ sensor test NAME`` runs; LooopError when there is none."""
    ids.check("sensor", name)
    path = sensors.path(paths, name)
    if not os.path.lexists(path):
        raise LooopError(f"no sensor named {name!r}")
    return path


def write_playbook(paths: Paths, body: str, reason: str | None = None) -> Path | None:
    """Replace ``PLAYBOOK.md``; returns where the previous version was kept."""
    ensure_layout(paths)
    with _move(paths, "playbook write", reason, "playbook_written"):
        kept = playbook.replace(paths, body if body.endswith("\n") else body + "\n")
    return kept


def write_schedule(paths: Paths, schedule: schedules.Schedule, reason: str | None = None) -> Path:
    """Write ``schedules/NAME.json`` (``schedules.new``'s), replacing one of that name."""
    from looop import say

    name = schedule.name
    ids.check("schedule", name)
    ensure_layout(paths)
    first = schedule.next(time.time()) or schedule.at  # an --every's phase may be past
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(first))
    said = f"due {when}" + (f", every {say.duration(schedule.every)}" if schedule.every else "")
    data = schedules.record(schedule.at, schedule.every, schedule.note, time.time())
    fields = {"schedule": name, "at": schedule.at, "every": schedule.every}
    with _move(paths, f"schedule write {name} ({said})", reason, "schedule_written", **fields):
        written = fs.write_whole(schedules.path(paths, name), data)
    return written


def remove_schedule(paths: Paths, name: str, reason: str | None = None) -> Path:
    ids.check("schedule", name)
    return _remove(paths, "schedule", name, schedules.path(paths, name), reason)


def notifier(command: tuple[str, ...] | None, message: str) -> list[str] | None:
    """The argv that delivers ``message``; None when there is no notifier."""
    if command is not None:
        return [part.replace("{message}", message) for part in command]
    if sys.platform == "darwin" and shutil.which("osascript"):
        return [
            "osascript",
            "-e",
            "on run argv",
            "-e",
            'display notification (item 1 of argv) with title "looop"',
            "-e",
            "end run",
            "--",
            message,
        ]
    if shutil.which("notify-send"):
        return ["notify-send", "--", "looop", message]
    return None


def notify(
    paths: Paths, message: str, command: tuple[str, ...] | None, reason: str | None = None
) -> str:
    """Journal, record and deliver ``message``; returns what was done, in words."""
    ensure_layout(paths)
    with _move(paths, f"notify: {message}", reason, "notified", message=message):
        pass  # journaled and recorded first: a notifier that fails leaves the record
    argv = notifier(command, message)
    if argv is None:
        return "notified: recorded only (no notifier: set [notify] command)"
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=paths.data_dir,
            timeout=NOTIFY_TIMEOUT,
            check=False,
        )
    except FileNotFoundError:
        raise LooopError(f"notifier not found: {argv[0]}", NOT_FOUND) from None
    except PermissionError as exc:
        raise LooopError(f"cannot run the notifier {argv[0]}: {exc.strerror}", NOT_FOUND) from None
    except subprocess.TimeoutExpired:
        raise LooopError(f"the notifier {argv[0]} took over {NOTIFY_TIMEOUT:g}s") from None
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        why = f": {said[-1]}" if said else ""
        raise LooopError(f"the notifier {argv[0]} exited {done.returncode}{why}")
    return f"notified via {os.path.basename(argv[0])}"
