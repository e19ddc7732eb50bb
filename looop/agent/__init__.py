"""The root agent's room: ``state`` (its one read of the world) and ``wait`` (block until
there is something to act on)."""
