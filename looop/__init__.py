"""looop: a tiny, Kubernetes-shaped control loop for one person's work.

The package is laid out by audience (SPEC §14), each sub-package over the
same small foundation:

- ``looop.pulse``: the pulse, the long-running service that senses on a beat;
- ``looop.service``: looop as a systemd/launchd user service, or detached;
- ``looop.agent``: the root agent's reads (``_ state``, ``_ wait``), its
  verbs, its gated ``_ run`` and its manual;
- ``looop.workers``: worker sessions: start, supervise, kill, reap;
- ``looop.data``: the data dir everyone shares, one module per kind of file;
- ``looop.screen``: a person's screens (``looop watch``);
- ``looop.cli``: parsing and printing only, one module per audience.

The foundation: ``errors`` (exit codes and the exception carrying one),
``argv`` (the plain forms of a command line the entry point reads without click),
``paths`` (where everything is), ``config`` (the knobs; ``knobs``: their
table; ``config_edit``: writing the file; ``runners``: named worker commands
and the agent CLIs' presets), ``log`` (log lines), ``say`` (durations, counts
and tables in words), ``style`` (colour and a progress line, on a terminal only),
``fs`` (the one safe small-file reader and the one atomic writer), ``lines``
(the one appender of a line, and reading a file's end), ``lockfile`` (taking
a lock file), ``jsonfile`` (reading a JSON object record), ``tree``
(emptying a directory tree through descriptors, never through a link or off
its mount), ``proc`` (is this pid alive and that process), ``signals``
(handlers that only queue, and the one list of stop signals), ``group`` (one
command in its own process group), ``lifeline`` (process groups that end
when the process watching them dies), ``watch`` (file-system notifications)
and ``digest`` (SHA-256 without OpenSSL's start-up).
"""

__version__ = "0.1.0"
# The day this version was (or will be) released: the man page's date. Bump with the version.
RELEASED = "2026-12-08"

__all__ = [
    "agent",
    "argv",
    "cli",
    "config",
    "config_edit",
    "data",
    "digest",
    "errors",
    "fs",
    "group",
    "jsonfile",
    "knobs",
    "lifeline",
    "lines",
    "lockfile",
    "log",
    "paths",
    "proc",
    "pulse",
    "runners",
    "say",
    "screen",
    "service",
    "signals",
    "style",
    "tree",
    "watch",
    "workers",
]
