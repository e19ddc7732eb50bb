"""A runner's own report of its spend, read from the worker's output by the supervisor.

Claude Code run with ``--output-format json`` or ``stream-json`` ends with
one JSON line, ``{"type": "result", ..., "total_cost_usd": N}``
(https://code.claude.com/docs/en/headless). The supervisor hands every
chunk of the worker's output to a ``Reader`` as well as to the transcript;
each whole line of that shape is recorded in ``cost.jsonl`` as the worker's
spend (``kind`` ``worker``, its id, the runner's name: ``--runner``'s, else
the program's), at once, so a supervisor ended later loses none of it. The
ledger's rule of one source per session (``data.cost``) keeps a worker that
also calls ``_ cost`` from being counted twice.

Only a line that begins with ``{`` is kept while it arrives, and at most
``MAX_LINE`` bytes of it (a result line carries the whole answer): a worker
that prints without end costs the reader no more than that. A line that is
not such an object is the worker's business, never an error. What was
recorded, or why not, is said in the transcript once the worker has ended
(``notes``), so no note lands inside a line of the worker's. A worker its
unit supervises alone (``workers.unit``) has no reader while it runs: its
transcript's end is read once it has ended (``read_file``).
"""

from __future__ import annotations

import os

from looop import jsonfile
from looop.errors import LooopError, os_error_line
from looop.paths import Paths

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

MARK = b'"total_cost_usd"'
MAX_LINE = 4 << 20


class Reader:
    """Feed it the worker's output; it records each spend the runner reports."""

    def __init__(self, paths: Paths, wid: str, runner: str) -> None:
        self.paths, self.wid, self.runner = paths, wid, runner
        self.line = bytearray()
        self.skipping = False  # the rest of this line is not kept
        self.notes: list[str] = []

    def feed(self, data: bytes) -> None:
        start = 0
        while start <= len(data):
            end = data.find(b"\n", start)
            piece = data[start : len(data) if end < 0 else end]
            if piece and not self.line and not self.skipping and piece[:1] != b"{":
                self.skipping = True
            if not self.skipping:
                self.line += piece
                if len(self.line) > MAX_LINE:
                    self.line.clear()
                    self.skipping = True
            if end < 0:
                return
            self._ended()
            start = end + 1

    def close(self) -> list[str]:
        """The last line, if it had no newline; then what the transcript should say."""
        self._ended()
        return self.notes

    def _ended(self) -> None:
        line, self.skipping = bytes(self.line), False
        self.line.clear()
        if MARK not in line:
            return
        found = jsonfile.parse_object(line)
        if found is None or found.get("type") != "result":
            return
        usd = jsonfile.finite(found.get("total_cost_usd"))
        if usd is not None:
            self._record(usd)

    def _record(self, usd: float) -> None:
        from looop.data import cost  # only once a runner reports a spend

        try:
            entry = cost.record(self.paths, "worker", self.wid, self.runner, repr(usd), cost.RUNNER)
        except (LooopError, OSError) as exc:
            why = os_error_line(exc) if isinstance(exc, OSError) else str(exc)
            self.notes.append(f"spend {usd} USD from the runner's output not recorded: {why}")
            return
        if entry is None:
            self.notes.append(f"spend {usd} USD from the runner's output: the worker's own counts")
        else:
            self.notes.append(f"spend {usd} USD from the runner's output recorded in cost.jsonl")


def read_file(paths: Paths, wid: str, runner: str, path: Path, last: int) -> list[str]:
    """Record the spends in the last ``last`` bytes of a transcript; what it should say.

    For a worker whose unit supervised it (``workers.unit``): nobody read its
    output as it came, so it is read once the worker has ended. A missing or
    unreadable transcript holds no spend.
    """
    reader = Reader(paths, wid, runner)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return []
    try:
        start = max(0, os.fstat(fd).st_size - last)
        if start:
            reader.skipping = True  # from the middle of a line: the next one is the first
        while chunk := os.pread(fd, 1 << 16, start):
            reader.feed(chunk)
            start += len(chunk)
    except OSError:
        pass  # what was read is recorded
    finally:
        os.close(fd)
    return reader.close()
