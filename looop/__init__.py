"""looop: a tiny, Kubernetes-shaped control loop for one person's work.

The package is laid out by audience (SPEC §14), each sub-package over the
same small foundation:

- ``looop.pulse``: the pulse, the long-running service that senses on a beat;
- ``looop.service``: looop as a systemd/launchd user service, or detached;
- ``looop.agent``: the root agent's reads (``_ state``, ``_ wait``), its
  verbs, its gated ``_ run`` and its manual;
- ``looop.workers``: worker sessions: start, supervise, kill, reap;
- ``looop.data``: the data dir everyone shares, one module per kind of file;
- ``looop.cli``: parsing and printing only, one module per audience.

The foundation: ``errors`` (exit codes and the exception carrying one),
``paths`` (where everything is), ``config`` (the knobs), ``log`` (log lines),
``fs`` (the one safe small-file reader and the one atomic writer), ``proc``
(is this pid alive and that process), ``group`` (one command in its own
process group, watched until it is over), ``watch`` (file-system
notifications), ``say`` (a duration or a count in words) and ``digest``
(SHA-256 without OpenSSL's start-up). ``looop.__main__`` is the entry point.
The rooms' boundaries are tests/test_layout.py; ``__all__`` below, and each
room's, list the modules (tests/test_docstrings.py).
"""

__version__ = "0.1.0"

__all__ = [
    "agent",
    "cli",
    "config",
    "data",
    "digest",
    "errors",
    "fs",
    "group",
    "log",
    "paths",
    "proc",
    "pulse",
    "say",
    "service",
    "watch",
    "workers",
]
