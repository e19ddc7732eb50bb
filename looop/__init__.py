"""looop: a tiny, Kubernetes-shaped control loop for one person's work.

The pulse senses (``looop.pulse``, ``looop.beat``, ``looop.sensors``), the root
agent reads and waits (``looop.state``), and everything lives as plain files
in a data dir (``looop.paths``).
"""

__version__ = "0.1.0"
