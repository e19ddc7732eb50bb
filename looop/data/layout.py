"""The data dir's layout and its one-time starter content.

Directories are created on every start (cheap, idempotent). The starter files
are written once, for a fresh data dir, and recorded by a marker file: a user
who edits or deletes a starter file keeps that choice, and looop never
rewrites the user's words.

Starter files are written whole and exclusively (``looop.fs.write_whole``):
a file that appeared meanwhile is never overwritten, and the marker is written
only after every starter was, so a first start that fails half-way (a full
disk) leaves no starter empty and marked as seeded; the next start finishes.

This module also says how a bad entry of the layout is *reported*
(``problem``): every data-dir reader that meets a FIFO, a directory or an
oversized file where a file belongs adds one, and ``_ state`` lists them.
Its readers show any entry's name with ``say.shown`` (re-exported here as
``shown``): a name the file system allows need not be text (bytes that are
not UTF-8), and what looop prints as JSON or in a log line must be.
"""

from __future__ import annotations

import os
from pathlib import Path

from looop import fs
from looop.paths import Paths
from looop.say import shown

MARKER = ".looop-seeded"

DIRECTORIES = (
    "goals",
    "goals/archive",
    "sensors",
    "sessions",
    "claims",
    "asks",
    "answers",
    "reports",
    "schedules",
)

PLAYBOOK = """\
# Playbook

How you want your work looked after. The root agent reads this before every
move; write it the way you would brief a trusted colleague.

- What matters most to me right now:
- What may be done without asking me:
- What must always be asked first:
- How I like to be told about results (a report in `reports/`, a line in
  `journal.md`, nothing at all):

This page is a starter. The goal in `goals/setup.md` asks the root agent to
interview you and replace it with your own.
"""

SETUP_GOAL = """\
# Set up this loop with me

Interview me, briefly, about the work I want looked after: what I care about,
what I want to be told, and what must never happen without my say-so. Then:

1. Rewrite `PLAYBOOK.md` in my words from the answers.
2. Write one goal file in `goals/` per outcome I named.
3. Propose sensors (`sensors/*.sh`, each printing one JSON object) that would
   show whether those goals are met, and add the ones I agree to.
4. Move this file to `goals/archive/` when done.
"""

TODAY_SENSOR = """\
#!/bin/sh
# Heartbeat: the date changes once a day, so the loop wakes at least daily.
printf '{"signal": {"date": "%s"}}\\n' "$(date +%Y-%m-%d)"
"""

GITIGNORE = """\
# Scratch that looop rewrites on its own; the rest is yours to keep in git.
snapshots
.snapshots/
sessions/
claims/
events.jsonl
events.jsonl.1
pulse.log
pulse.log.1
.looop-beat.lock
"""

STARTERS: dict[str, tuple[str, int]] = {
    "PLAYBOOK.md": (PLAYBOOK, 0o644),
    "goals/setup.md": (SETUP_GOAL, 0o644),
    "sensors/today.sh": (TODAY_SENSOR, 0o755),
    ".gitignore": (GITIGNORE, 0o644),
}


def ensure_layout(paths: Paths) -> list[Path]:
    """Create the layout; seed starter files once. Returns the files written.

    Raises OSError when a starter cannot be written; the marker is then not
    written, so the next start tries again.
    """
    root = paths.data_dir
    root.mkdir(parents=True, exist_ok=True)
    for name in DIRECTORIES:
        target = root / name
        try:
            target.mkdir(exist_ok=True)
        except FileExistsError:  # a dangling link, a file: not ours to replace
            raise fs.BadFile(target, not_a_directory(target)) from None
    marker = root / MARKER
    if os.path.lexists(marker):
        return []
    written = []
    for name, (text, mode) in STARTERS.items():
        target = root / name
        try:
            fs.write_whole(target, text.encode(), mode=mode, exclusive=True)
        except (FileExistsError, fs.BadFile):
            continue  # the name is taken (by the user's file, or by anything else): keep it
        written.append(target)
    fs.write_whole(marker, b"seeded by looop; delete to have missing starter files written again\n")
    return written


Problem = dict[str, str]


def not_a_directory(path: Path) -> str:
    """Why the layout directory ``path`` is not one, and the fix, in words."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        return f"cannot be read: {exc.strerror}"
    if os.path.islink(path) and not os.path.exists(path):
        return "is a symlink to a missing directory: remove the link or create its target"
    return f"is {fs.kind(st.st_mode)}, not a directory: move it aside"


def unlisted(paths: Paths, directory: Path, exc: OSError, problems: list[Problem] | None) -> None:
    """A layout directory that could not be listed, said in ``problems`` (when given).

    A missing one is no problem (nothing was written yet); a name holding
    something else is said with its fix (``not_a_directory``), any other
    error as itself.
    """
    if problems is None:
        return
    if isinstance(exc, FileNotFoundError | NotADirectoryError):
        if os.path.lexists(directory):
            problems.append(problem(paths, directory, not_a_directory(directory)))
    else:
        problems.append(problem(paths, directory, exc))


def problem(paths: Paths, path: Path, why: str | OSError) -> Problem:
    """``{"path": <relative to the data dir>, "why": ...}`` for a bad entry of the layout."""
    if isinstance(why, OSError):
        why = fs.why(why)
    try:
        relative = str(path.relative_to(paths.data_dir))
    except ValueError:
        relative = str(path)
    return {"path": shown(relative), "why": why}
