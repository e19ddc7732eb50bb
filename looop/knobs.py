"""The knobs' table (``KNOBS``): every key, its environment variable, default, kind,
bounds and help, in one place.

``looop.config`` loads, checks and prints them (and re-exports ``KNOBS``
and ``Knob``: ``config.KNOBS`` is how the rest of looop names the table);
the manual, the man page and ``help --json`` render them. Kept apart from
the loader so the table, which grows with every knob, is read as a table.
"""

from __future__ import annotations

Argv = tuple[str, ...]
Value = int | float | bool | str | Argv | None
Kind = type[int] | type[float] | type[bool] | type[str] | type[tuple]  # a float takes an int


class Knob:
    """One row of the schema.

    ``Knob`` and ``Config`` are plain slotted classes, not dataclasses or ``typing.NamedTuple``:
    every command loads the config, and importing ``dataclasses`` (with ``inspect``) cost
    each one about 5 ms, ``typing`` and building two named tuples about 6 ms more.
    """

    __slots__ = ("choices", "default", "env", "help", "key", "kind", "maximum", "minimum")

    def __init__(
        self,
        key: str,  # dotted for a knob in a table: "worker.max_live"
        env: str,
        default: Value,  # None: unset (the knob's help says what unset means)
        kind: Kind,
        help: str,
        minimum: int = 0,
        maximum: int | None = None,  # a time knob's bound: what the loop's arithmetic handles
        choices: tuple[str, ...] = (),  # a str knob's allowed values
    ) -> None:
        self.key, self.env, self.default, self.kind, self.help = key, env, default, kind, help
        self.minimum, self.maximum, self.choices = minimum, maximum, choices

    def __repr__(self) -> str:
        return f"Knob({self.key!r})"

    @property
    def attr(self) -> str:
        """The ``Config`` field that holds it: ``worker.max_live`` -> ``worker_max_live``."""
        return self.key.replace(".", "_")


DAY = 86400
YEAR = 365 * DAY

KNOBS: dict[str, Knob] = {
    k.key: k
    for k in (
        Knob(
            "interval",
            "LOOOP_INTERVAL",
            60,
            float,
            f"seconds between beat starts (1 to {DAY}, a day)",
            maximum=DAY,
        ),
        Knob(
            "session_ttl",
            "LOOOP_SESSION_TTL",
            259200,
            float,
            f"age in seconds after which a dead session is reaped (at most {YEAR}, a year)",
            maximum=YEAR,
        ),
        Knob(
            "sensor_timeout",
            "LOOOP_SENSOR_TIMEOUT",
            60,
            float,
            f"seconds per sensor, at most {DAY} (a day); 0 = none",
            maximum=DAY,
        ),
        Knob("sensor_max_bytes", "LOOOP_SENSOR_MAX_BYTES", 8192, int, "output cap; 0 = no cap"),
        Knob(
            "sensor_concurrency",
            "LOOOP_SENSOR_CONCURRENCY",
            8,
            int,
            "sensors run at once",
            minimum=1,
        ),
        Knob(
            "worker.command",
            "LOOOP_WORKER_COMMAND",
            ("claude", "-p", "{prompt}"),
            tuple,
            "a worker's argv, never run by a shell; {prompt}, {prompt_file}, {id} are replaced",
        ),
        Knob(
            "worker.runner",
            "LOOOP_WORKER_RUNNER",
            None,
            str,
            "the default runner: a [runners.NAME] (`config runner add`); unset: worker.command",
        ),
        Knob("worker.max_live", "LOOOP_WORKER_MAX_LIVE", 8, int, "live workers at once", minimum=1),
        Knob(
            "worker.timeout",
            "LOOOP_WORKER_TIMEOUT",
            0,
            float,
            f"seconds a worker may run, at most {YEAR} (a year); 0 = unbounded",
            maximum=YEAR,
        ),
        Knob(
            "worker.supervisor",
            "LOOOP_WORKER_SUPERVISOR",
            "auto",
            str,
            "systemd (a transient user unit), detached, or auto (systemd when a manager answers)",
            choices=("auto", "systemd", "detached"),
        ),
        Knob(
            "worker.max_prompt_bytes",
            "LOOOP_WORKER_MAX_PROMPT_BYTES",
            4 << 20,
            int,
            "the largest task _ worker start takes, in bytes (one too long for argv goes by file)",
            minimum=1,
            maximum=64 << 20,
        ),
        Knob(
            "worker.quiet_after",
            "LOOOP_WORKER_QUIET_AFTER",
            60,
            float,
            f"seconds without output after which a live worker is quiet, not busy (at most {DAY})",
            maximum=DAY,
        ),
        Knob(
            "worker.stuck_after",
            "LOOOP_WORKER_STUCK_AFTER",
            900,
            float,
            f"seconds with no output and no ask before a worker is stuck, at most {DAY}; 0 = never",
            maximum=DAY,
        ),
        Knob("worker.stuck_kill", "LOOOP_WORKER_STUCK_KILL", False, bool, "end a stuck worker"),
        Knob(
            "run.timeout",
            "LOOOP_RUN_TIMEOUT",
            300,
            float,
            f"seconds before `_ run` ends its command, at most {DAY} (a day); 0 = none",
            maximum=DAY,
        ),
        Knob(
            "wait.timeout",
            "LOOOP_WAIT_TIMEOUT",
            0,
            float,
            "seconds `_ wait` waits without --timeout, then exits 124 (nothing yet: wait again with"
            f" the same cursor); set it below your shell tool's limit; at most {DAY}; 0 = none",
            maximum=DAY,
        ),
        Knob(
            "notify.command",
            "LOOOP_NOTIFY_COMMAND",
            None,
            tuple,
            "`_ notify`'s argv, {message} replaced, never a shell (put -- before {message} if the"
            " program takes options); unset = the desktop's notifier, given the message after --",
        ),
    )
}

# The file's tables are the first parts of the dotted keys: worker, run, wait, notify.
TABLES = frozenset(key.split(".", 1)[0] for key in KNOBS if "." in key)
# The knobs the pulse reads, once at start and again on reload (``looop reload``);
# every other knob is read by each command as it runs. ``config set`` says to
# reload only after one of these (tests/test_config.py holds it to the pulse's code).
PULSE_READS = frozenset({"interval", "sensor_timeout", "sensor_max_bytes", "sensor_concurrency"})
