"""The sensors in the data dir: which files are sensors, their names, their snapshots' names.

A sensor is ``sensors/<name>.sh``: not a dot-file, not a directory. Its
reading is published as the snapshot ``sensor-<name>`` (``snapshot_name``),
and a file the kernel would not run is explained from its ``#!`` line
(``exec_advice``), and the cadence it declares in its first lines is read
here (``cadence``). The pulse's runner (``looop.pulse.sensors``) only runs
what ``discover`` lists; the verbs (``_ sensor write|remove|test``), doctor
and completion name sensors through here too, so "what is a sensor" has one
answer.

A listing that fails (``EIO``, ``EACCES``) raises: it is not "no sensors".
Rejected: answering ``[]`` when ``sensors/`` cannot be listed, as the runner
once did; a beat then published a world with every reading gone, exit 0,
as if every sensor had been removed. Only a ``sensors/`` that does not
exist has none.

**Cadence.** A sensor may declare how often it is to run with one line
among its first ``HEAD_LINES`` lines (and first ``HEAD_BYTES`` bytes, read
through ``looop.fs.open_regular``, never the whole file):
``# looop: every N`` followed by a unit, ``s``, ``m``, ``h`` or ``d``
(``every 30s``, ``every 10m``, ``every 2h``, ``every 1d``), from
``MIN_EVERY`` to ``MAX_EVERY``. Only the first ``# looop:`` line counts. A
``# looop:`` line that says anything else is malformed: ``cadence`` answers
no cadence and one warning naming the file and the line, and the sensor
runs every beat, as one without a declaration does. Rejected: refusing to
run such a sensor (a typo in a comment would cost its readings) and
reading the whole file (a declaration is a header; a big script costs a
beat nothing more).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from looop import fs
from looop.data.layout import shown
from looop.paths import Paths
from looop.say import escaped

TYPE_CHECKING = False  # not typing's: completion and `_ state` read sensors through here
if TYPE_CHECKING:
    from typing import Any

SUFFIX = ".sh"
PREFIX = "sensor-"  # of a sensor's snapshot name
SHEBANG_LINE = 4096  # bytes of a script read to explain why it could not be run
HEAD_LINES = 10  # a cadence is declared within a sensor's first lines...
HEAD_BYTES = 4096  # ...and within these bytes
# Patterns, compiled (and cached by ``re``) at first use: completion and
# ``_ state`` import this module and never read a declaration.
DECLARATION = rb"#\s*looop:"
EVERY = rb"#\s*looop:\s*every\s+(\d{1,9})([smhd])\s*"
UNIT_SECONDS = {b"s": 1, b"m": 60, b"h": 3600, b"d": 86400}
MIN_EVERY = 1  # seconds
MAX_EVERY = 30 * 86400
GRAMMAR = '"# looop: every N" with a unit s, m, h or d, from 1s to 30d'


def path(paths: Paths, name: str) -> Path:
    """The file of sensor ``name`` (``sensors/<name>.sh``)."""
    return paths.sensors / f"{name}{SUFFIX}"


def name(script: Path) -> str:
    """The sensor's name: its file's name without ``.sh``."""
    return script.name.removesuffix(SUFFIX)


def discover(sensors_dir: Path) -> list[Path]:
    """The sensors: ``sensors/*.sh`` that are not dot-files or directories, sorted by name.

    A dot-file (``.x.sh``, a macOS ``._x.sh``) is never a sensor, and an
    editor's leftover beside one (``x.sh~``, ``.x.sh.swp``, ``#x.sh#``,
    ``x.sh.orig``) does not end in ``.sh``. One ``scandir``; a name that is
    not text is still a sensor (see ``snapshot_name``). A ``sensors_dir``
    that does not exist has none; one that cannot be listed raises OSError
    naming it.
    """
    found: list[str] = []
    try:
        with os.scandir(sensors_dir) as it:
            for entry in it:
                file = entry.name
                if file.startswith(".") or not file.endswith(SUFFIX):
                    continue
                try:
                    if entry.is_dir():  # follows a link: a link to a directory is none either
                        continue
                except OSError:
                    pass
                found.append(file)
    except FileNotFoundError:
        return []
    return [sensors_dir / file for file in sorted(found, key=os.fsencode)]


def snapshot_name(script: Path) -> str:
    """``sensor-<stem>``, or a derived name when that cannot be a snapshot's name.

    A stem that is not valid UTF-8 or makes the name too long becomes
    ``sensor-<shown stem, cut>~<16 hex of the SHA-256 of the raw name>``:
    text, short enough, recognisable, distinct per file, and the same every
    beat, so the world hash does not move by itself. The sensor still runs
    and its reading is published under that name; the name is its only cost.
    Rejected: skipping such a sensor (its output would be lost for a name
    the file system allowed) and escaping alone (an escaped name can be too
    long, or equal another sensor's real name).
    """
    # A snapshot is `<name>.json` and `<name>.err`: its name must be text (it
    # is JSON's too) and leave room for the longer suffix within NAME_MAX (255).
    longest = 255 - len(".json")
    stem = name(script)
    snapshot = f"{PREFIX}{stem}"
    if shown(stem) == stem and len(snapshot.encode()) <= longest:
        return snapshot
    from looop.digest import sha256

    tag = "~" + sha256(os.fsencode(script.name)).hexdigest()[:16]
    readable = shown(stem)[:64]
    while len(f"{PREFIX}{readable}{tag}".encode()) > longest:
        readable = readable[:-1]
    return f"{PREFIX}{readable}{tag}"


def exec_advice(script: Path, named: str) -> str | None:
    """Why the kernel could not run ``script``, with the fix, when its #! line tells.

    A ``#!`` line ending in CR (a file saved with CRLF line endings) or
    naming an interpreter that does not exist makes the kernel say only "No
    such file or directory"; the runner asks here on ``ENOENT``/``ENOEXEC``.
    ``named`` is how the file is named in the message (``sensors/x.sh``).
    """
    try:
        head = fs.read_small(script, limit=1 << 20, follow=True)[:SHEBANG_LINE]
    except OSError:
        return None
    if head.startswith(b"\xef\xbb\xbf#!"):
        return f"{named} starts with a byte-order mark before its #! line; save it without one"
    if not head.startswith(b"#!"):
        return None
    line = head.split(b"\n", 1)[0]
    if line.endswith(b"\r"):
        return f"{named} has a CRLF line ending in its #! line; convert it with dos2unix"
    words = line[2:].split()
    if words and not os.path.exists(words[0]):
        interpreter = os.fsdecode(words[0])
        return f"{named} names {interpreter} in its #! line, which does not exist"
    return None


class Cadence:
    """What a sensor declares: ``every`` seconds (None: every beat), its line, or a warning."""

    __slots__ = ("every", "line", "warning")

    def __init__(self, every: int | None, line: int | None, warning: str | None = None) -> None:
        self.every, self.line, self.warning = every, line, warning


def cadence(script: Path) -> Cadence:
    """The cadence ``script`` declares in its first lines; none when it declares none.

    A file that cannot be read declares none (the runner says why it cannot
    run); a malformed declaration declares none, with a warning such as
    ``sensors/x.sh:2: "# looop: every 5x" is not a cadence (...); it runs every beat``.
    """
    try:
        fd, _ = fs.open_regular(script, follow=True)
        try:
            head = os.pread(fd, HEAD_BYTES, 0)
        finally:
            os.close(fd)
    except OSError:
        return Cadence(None, None)
    if b"looop:" not in head:
        return Cadence(None, None)  # what nearly every sensor declares: nothing to parse
    for number, line in enumerate(head.split(b"\n")[:HEAD_LINES], start=1):
        line = line.strip()
        if not re.match(DECLARATION, line):
            continue
        found = re.fullmatch(EVERY, line)
        every = int(found[1]) * UNIT_SECONDS[found[2]] if found else 0
        if MIN_EVERY <= every <= MAX_EVERY:
            return Cadence(every, number)
        said = escaped(line.decode("utf-8", "surrogateescape"))[:80]
        where = f"sensors/{escaped(shown(script.name))}:{number}"
        why = f'{where}: "{said}" is not a cadence ({GRAMMAR}); it runs every beat'
        return Cadence(None, number, why)
    return Cadence(None, None)


def every_text(seconds: int) -> str:
    """A cadence as declared: ``30s``, ``10m``, ``2h``, ``1d`` (its largest whole unit)."""
    for unit, size in reversed(UNIT_SECONDS.items()):
        if seconds % size == 0:
            return f"{seconds // size}{unit.decode()}"
    raise AssertionError("unreachable: every cadence is whole seconds")


def age(read_at: float, now: float) -> int:
    """A republished reading's age in whole seconds."""
    return max(0, round(now - read_at))


def with_age(reading: Any, now: float) -> Any:
    """``reading`` with ``detail.cached.age`` as of ``now``, when it is a republished one.

    The pulse marks a reading it republishes ``detail.cached = {read_at,
    every}`` (``looop.pulse.cadence.mark``): the same bytes every beat until
    the sensor runs again, so nothing is rewritten between its runs. Its age
    is said where it is read (``_ state``), and is right as of then.
    """
    if not isinstance(reading, dict) or not isinstance(detail := reading.get("detail"), dict):
        return reading
    cached = detail.get("cached")
    if not isinstance(cached, dict):
        return reading
    read_at = cached.get("read_at")
    if not isinstance(read_at, int | float) or isinstance(read_at, bool):
        return reading
    aged = {**cached, "age": age(read_at, now)}
    return {**reading, "detail": {**detail, "cached": aged}}
