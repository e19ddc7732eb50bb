"""Human-facing log lines, shaped for wherever stderr goes.

Under journald (``JOURNAL_STREAM`` names our stderr) lines carry ``<N>``
priority prefixes and no timestamps, because the journal adds its own and
shows priorities; in a terminal they are short human lines; with
``--log-format json`` they are NDJSON for machines. One process-wide logger,
configured once by the CLI, so no module decides formatting on its own.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

PRIORITY = {"error": 3, "warning": 4, "info": 6, "debug": 7}
FORMATS = ("auto", "human", "journal", "json")


def stderr_is_journal() -> bool:
    """True when stderr is the stream systemd connected to journald."""
    stream = os.environ.get("JOURNAL_STREAM", "")
    try:
        dev, ino = (int(x) for x in stream.split(":"))
        st = os.fstat(sys.stderr.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return st.st_dev == dev and st.st_ino == ino


def log_tail(path: Path, since: int = 0, lines: int = 5) -> str:
    """The last lines written to a log file after offset ``since``, on one line.

    For telling a user why a pulse that was started elsewhere did not come up.
    """
    try:
        with open(path, "rb") as fh:
            if fh.seek(0, os.SEEK_END) >= since:  # a shorter file was started anew
                fh.seek(since)
            else:
                fh.seek(0)
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    said = [line.strip() for line in text.splitlines() if line.strip()]
    return " · ".join(said[-lines:])


class Logger:
    def __init__(self, fmt: str = "auto") -> None:
        self.configure(fmt)

    def configure(self, fmt: str) -> None:
        if fmt == "auto":
            fmt = "journal" if stderr_is_journal() else "human"
        self.format = fmt

    def emit(self, level: str, message: str, **fields: Any) -> None:
        if self.format == "json":
            record = {"ts": round(time.time(), 3), "level": level, "msg": message, **fields}
            line = json.dumps(record, separators=(",", ":"), default=str)
        elif self.format == "journal":
            line = f"<{PRIORITY[level]}>{message}"
        else:
            prefix = "" if level == "info" else f"{level}: "
            line = f"{time.strftime('%H:%M:%S')} looop: {prefix}{message}"
        try:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass  # a closed or full stderr must never stop the pulse

    def info(self, message: str, **fields: Any) -> None:
        self.emit("info", message, **fields)

    def warning(self, message: str, **fields: Any) -> None:
        self.emit("warning", message, **fields)

    def error(self, message: str, **fields: Any) -> None:
        self.emit("error", message, **fields)


log = Logger()
