"""The data dir everyone shares: one module per kind of file in it (SPEC §1).

``layout`` (the directories and the starter files), ``goals``, ``journal``,
``mailbox`` (asks and answers), ``sessions`` (worker sessions and the one
judgment of their liveness), ``claims``, ``events`` (``events.jsonl``) and
``snapshots`` (the published generations).
"""
