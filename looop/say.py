"""How looop says a number to a person: a duration (``3d 5h``) and a count (``1 sensor``).

Status, the reaper's summary, ``looop down``'s report and the pulse's log
talk to people; one module answers "how long is that, in words?" and "one
or many?" for them, so an age they say reads ``3d 5h``, not ``278220s``.
(Not yet everywhere: the human forms of ``_ state`` and ``_ asks`` still say
an ask's age in plain seconds.) Only the two largest units of a duration are
said: a person reading ``3d 5h`` does not want the minutes. Machine output
(``--json``) keeps plain seconds.
Imports nothing: ``looop status`` uses it on its fast path.
"""

from __future__ import annotations

UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def duration(seconds: float) -> str:
    """``3d 5h``, ``5h 0m``, ``4m 12s``, ``9s``: the two largest units, rounded down."""
    left = int(max(0.0, seconds))
    for i, (unit, size) in enumerate(UNITS):
        if left >= size or size == 1:
            whole, rest = divmod(left, size)
            if size == 1:
                return f"{whole}{unit}"
            next_unit, next_size = UNITS[i + 1]
            return f"{whole}{unit} {rest // next_size}{next_unit}"
    raise AssertionError("unreachable: the last unit is one second")


def count(n: int, word: str, plural: str | None = None) -> str:
    """``1 sensor``, ``2 sensors``, ``0 sensors``."""
    return f"{n} {word if n == 1 else plural or word + 's'}"
