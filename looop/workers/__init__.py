"""The workers' room: agent sessions looop starts, supervises and reaps.

- ``start``: ``_ worker start`` (admission under ``sessions/.start.lock``,
  the session's records, and the choice of supervisor: a transient systemd
  user unit where the user manager answers, else a detached process).
- ``supervise``: the process that runs one worker in its own process group,
  keeps its transcript and writes how it ended (the same code under both).
- ``fleet``: what is done to workers from outside: list, kill, done, stop all.
- ``records``: the session's files (prompt, meta, status, the one-shot env).
- ``transcript``: the capped ``output.log``, its tail and its follow.
- ``contract``: the rules every worker is given before its task.
- ``reap``: removing dead sessions (with their asks and answers), stale
  claims and old run records.
"""

__all__ = ["contract", "fleet", "reap", "records", "start", "supervise", "transcript"]
