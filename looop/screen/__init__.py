"""A person's screens: what someone keeps open to see the loop at work.

The modules: ``view`` reads what the screen shows through the readers every
printer uses (``_ state``'s, ``status``'s, the schedules', a worker's
``output.log``) and says what to watch and when the text would change by
itself; ``frame`` turns that into the screen's lines (the one function both
the live screen and ``looop watch --once`` print); ``live`` is the terminal:
its keys, its redraws on file notifications, drawn with Rich.

The room's rules (tests/test_layout.py): it may read every other room (it
is a window on all of them, and acts only through their own functions:
``mailbox.answer``, ``fleet.kill``), and nothing imports it but the CLI.
"""

__all__ = ["frame", "live", "view"]
