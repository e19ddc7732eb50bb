"""The pulse's room: what the long-running service (and a one-off ``looop sense``) does.

``lock`` (who runs: the single-instance lock; the beat lock), ``sensors``
(running the user's scripts), ``cadence`` (which of them a beat runs, and
the readings it republishes between their runs), ``orphans`` (their descendants that left
their group), ``probes`` (the in-process ``sys-*`` sensors),
``beat`` (one beat: sense and publish), ``beatlog`` (what the log says
about beats: what changed, once), ``worldhash`` (the hash the root
agent wakes on), ``record`` (the last-beat record), ``notify`` (sd_notify
and the watchdogs), ``loop`` (the pulse itself), ``sense`` (one beat now)
and ``status`` (is it running?).
Nothing here imports the service manager's installer, the agent, the
workers, the CLI or click (``tests/test_layout.py``).
"""

__all__ = [
    "beat",
    "beatlog",
    "cadence",
    "lock",
    "loop",
    "notify",
    "orphans",
    "probes",
    "record",
    "sense",
    "sensors",
    "status",
    "worldhash",
]
