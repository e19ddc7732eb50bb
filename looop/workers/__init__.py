"""The workers' room: agent sessions looop starts, supervises and reaps.

- ``start``: ``_ worker start`` (admission under ``sessions/.start.lock``,
  the session's records, and the choice of supervisor: a transient systemd
  user unit where the user manager answers, else a detached process).
- ``supervise``: the process that runs one worker in its own process group,
  keeps its transcript and writes how it ended (the same code under both),
  or, under a unit that can supervise the worker alone, execs it.
- ``unit``: such a unit's settings, and how its worker ended (its
  ``ExecStopPost=``, ``looop _ ended ID``).
- ``verify``: a worker's post-conditions (``--verify``), run by its supervisor
  once it ends well, through ``_ run``'s guard rail and runner.
- ``fleet``: what is done to workers from outside: list, kill, done, stop all.
- ``records``: the worker's prompt (the contract, then its task) and its one-shot
  env; the session's names, meta and status are ``looop.data.sessions``'s.
- ``transcript``: the capped ``output.log``, its tail and its follow.
- ``spend``: the spend a runner prints (Claude Code's result line), read from
  the worker's output and recorded in the cost ledger.
- ``contract``: the rules every worker is given before its task.
- ``reap``: removing dead sessions (with their asks and answers), stale
  claims and old run records: the run, its result and what its passes share.
- ``reap_sessions``: its sessions pass (judge, rename out of sight, empty).
- ``reap_files``: its mailbox, claims and runs passes.
"""

__all__ = [
    "contract",
    "fleet",
    "reap",
    "reap_files",
    "reap_sessions",
    "records",
    "spend",
    "start",
    "supervise",
    "transcript",
    "unit",
    "verify",
]
