"""The exit codes of every command, and the errors that carry them.

SPEC §6 has one table for every command, so it lives here once, codes
and meanings (``MEANINGS``, which the manual and the man page print): each
exception a command may end with carries its own exit status (as gunicorn's
``HaltServer`` does), and one handler at the top (``looop.__main__``) turns
it into a single ``looop: ...`` line on stderr and that status. An ordinary
OS error (permission, read-only, disk full, not a directory) that reaches the
top is also one line naming the file and the reason, never a traceback.

Rejected: exit codes chosen at each raise site (``die(msg, 78)`` scattered
through the CLI); they drifted, and ``config get nope`` and ``config set
nope 1`` ended up disagreeing (2 against 78).
"""

from __future__ import annotations

OK = 0
FAILED = 1
USAGE = 2
NOT_RUNNING = 3  # `status`, and `_ wait` on pulse-down
UNKNOWN = 4  # `status`: the lock cannot be examined
CONFIG = 78  # EX_CONFIG: the unit does not restart on it
TIMED_OUT = 124
NOT_FOUND = 127  # a command to run was not found
INTERRUPTED = 130  # 128 + SIGINT: the shell's convention for ^C

# What each code means, in the order the manual (``looop help``) and the man
# page's EXIT STATUS list them: both read this table, neither keeps a copy.
MEANINGS = {
    OK: "done",
    FAILED: "failed (one line on stderr says what and why)",
    USAGE: "usage: a bad command line, id or body",
    NOT_RUNNING: "not running (`status`; `_ wait` on pulse-down)",
    UNKNOWN: "unknown (`status`: the lock cannot be examined)",
    CONFIG: "the config is broken (file, line and key are named)",
    TIMED_OUT: "timed out (--timeout)",
    NOT_FOUND: "a command to run was not found",
    INTERRUPTED: "interrupted (^C)",
}


class LooopError(Exception):
    """A failure a user can act on: one line of message and an exit status."""

    exit_code = FAILED

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(LooopError):
    """The command line asked for something that does not exist (exit 2)."""

    exit_code = USAGE


def os_error_line(exc: OSError) -> str:
    """``cannot write /x/config.toml: Read-only file system``-style text for an OSError."""
    reason = exc.strerror or str(exc)
    where = exc.filename
    if where is None:
        return reason
    if exc.filename2 is not None:
        return f"{where} -> {exc.filename2}: {reason}"
    return f"{where}: {reason}"
