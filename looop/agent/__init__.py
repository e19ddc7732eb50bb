"""The root agent's room: ``state`` (its one read of the world), ``wait`` (block until
there is something to act on), ``verbs`` (the only way it changes the world), ``run``
and ``gate`` (its one gated command and the guard rail in front of it, which reads
the command with ``shellread``, takes the wrappers off with ``programs`` and judges
each program with ``harms``) and ``manual``
(``looop help``: its operating contract, and ``helpjson``: its tables as JSON); and
``mail``, the mailbox's commands past their parsing (``_ ask``, a worker's, ``_ answer``,
``_ asks``)."""

__all__ = [
    "gate",
    "harms",
    "helpjson",
    "mail",
    "manual",
    "programs",
    "run",
    "shellread",
    "state",
    "verbs",
    "wait",
]
