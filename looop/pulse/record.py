"""The last-beat record: ``<profile>.beat.json`` in the runtime dir.

Written (atomically: temp file + rename) by whoever just beat while holding
the lock; read by ``looop status`` and ``looop sense``. It lives in the
runtime dir because it is volatile and per profile, like the lock, and it is
kept in its own small module so a status probe can read it without importing
the sensing machinery.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from looop.paths import Paths

if TYPE_CHECKING:
    from looop.pulse.beat import BeatResult


def write(paths: Paths, result: BeatResult, **extra: Any) -> None:
    from dataclasses import asdict  # writers only: the status probe stays light

    record = asdict(result)
    record.update(ok=result.ok, duration=round(result.duration, 3), summary=result.summary())
    record.update(extra)
    tmp = paths.beat_file.with_name(f".{paths.beat_file.name}.{os.getpid()}")
    try:
        tmp.write_text(json.dumps(record) + "\n")
        os.replace(tmp, paths.beat_file)
    except OSError:
        tmp.unlink(missing_ok=True)


def read(paths: Paths) -> dict[str, Any] | None:
    try:
        value = json.loads(paths.beat_file.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None
