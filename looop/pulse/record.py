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
