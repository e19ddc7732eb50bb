"""The root agent's room: ``state`` (its one read of the world), ``wait`` (block until
there is something to act on), ``verbs`` (the only way it changes the world) and
``manual`` (``looop help``: its operating contract)."""
