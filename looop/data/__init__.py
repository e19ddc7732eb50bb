"""The data dir everyone shares: one module per kind of file in it (SPEC §1).

``layout`` (the directories and the starter files), ``goals``, ``journal``,
``playbook`` (``PLAYBOOK.md`` and ``playbook.d/``), ``mailbox`` (asks and
answers), ``sessions`` (worker sessions and the one judgment of their
liveness), ``health`` (a live worker's health, in words), ``inbox`` (the
messages ``_ tell`` queues for a live worker), ``claims``, ``events``
(``events.jsonl``), ``snapshots`` (the published generations), ``sensors``
(which files are sensors, and their snapshots' names), ``runs`` (``_ run``'s
records), ``cost`` (the spend ledger, ``cost.jsonl``), ``schedules`` (the
agent's time triggers, and when each is due), ``ids`` (the one rule for
an id a verb takes) and ``candidates`` (the ids a shell's TAB may offer).
"""

__all__ = [
    "candidates",
    "claims",
    "cost",
    "events",
    "goals",
    "health",
    "ids",
    "inbox",
    "journal",
    "layout",
    "mailbox",
    "playbook",
    "runs",
    "schedules",
    "sensors",
    "sessions",
    "snapshots",
]
