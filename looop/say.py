"""How looop says things to a person: a duration, a count, and any text on one line.

Status, the reaper's summary, ``looop down``'s report and the pulse's log
talk to people; one module answers "how long is that, in words?" and "one
or many?" for them, so an age they say reads ``3d 5h``, not ``278220s``.
(Not yet everywhere: the human forms of ``_ state`` and ``_ asks`` still say
an ask's age in plain seconds.) Only the two largest units of a duration are
said: a person reading ``3d 5h`` does not want the minutes. Machine output
(``--json``) keeps plain seconds.

Text looop did not write itself (an id, a prompt, an answer, a file name, a
sensor's message) reaches people's lines too, and such text can hold a
newline, a carriage return or an escape sequence that would add a line of its
own: a fake ask in ``_ asks``, a fake worker in ``workers``, a fake check in
``doctor``, a fake candidate in a completion. ``escaped`` is the one answer
to "how is this text shown on one line?": every character Python does not
call printable (controls, line and paragraph separators, format characters
such as bidi overrides, and bytes that were not UTF-8) is written as a
backslash escape (``\\n``, ``\\x1b``, ``\\u202e``, ``\\xff``), the rest as is.
Every human printer calls it on every such field; JSON output needs no help
(its writer escapes). ``shown`` is its half for names and JSON: a file name
that is not UTF-8 as ``\\xNN`` text any writer accepts. Rejected: escaping the
backslash too (injective, but a path or a regex in a prompt would read
doubled), and escaping at the stream (that would also escape the printer's
own newlines).

A duration a person or an agent *says to looop* (``_ schedule write --in
2h``) is read back by ``seconds``, in the same units ``duration`` writes
(``90s``, ``10m``, ``1h30m``, ``3d 5h``; a bare number is seconds), so
what looop says can be said back to it. ``print_json`` is how every command
prints its ``--json`` answer (indented two spaces, keys in their order).
Imports nothing: ``looop status`` uses it on its fast path.
"""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: ``status`` uses this module on its fast path
if TYPE_CHECKING:
    from typing import TypeAlias

    Cell: TypeAlias = str | tuple[str, str | None]  # text, or (text, a ``style`` role)

UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
_SIZES = {"": 1, "w": 604800, **dict(UNITS)}  # what ``seconds`` reads: a bare number is seconds


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


def seconds(text: str) -> float:
    """The seconds ``text`` says: ``90``, ``90s``, ``1.5h``, ``1h30m``, ``3d 5h``, ``2w``.

    ValueError for anything else (an empty text, a negative or non-finite
    number, an unknown unit); the caller says which option it was.
    """
    total, rest = 0.0, text.strip().lower()
    bad = ValueError(f"{text!r} is not a duration (say 90s, 10m, 2h, 1d, 1h30m)")
    if not rest:
        raise bad
    while rest:
        digits = len(rest) - len(rest.lstrip("0123456789."))
        number, rest = rest[:digits], rest[digits:].lstrip()
        unit = rest[:1] if rest[:1].isalpha() else ""
        rest = rest[len(unit) :].lstrip()
        size = _SIZES.get(unit)
        if not number or number.count(".") > 1 or number == "." or size is None:
            raise bad
        total += float(number) * size
    return total


def count(n: int, word: str, plural: str | None = None) -> str:
    """``1 sensor``, ``2 sensors``, ``0 sensors``."""
    return f"{n} {word if n == 1 else plural or word + 's'}"


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def shown(name: str) -> str:
    """``name`` as text: itself when it is valid UTF-8, else each byte that is not as ``\\xNN``.

    Stable (the same name always shows the same) and printable by any JSON
    writer; a name that shows differently from itself cannot be named back
    as text, which is how readers tell such a name (``shown(n) != n``).
    """
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        pass
    try:
        raw = name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that no file name decoded to
        return name.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def escaped(text: object) -> str:
    """``text`` for one human line: what is not printable as a backslash escape.

    ``a\\n- [ask] x`` stays one line; ``\\x1b[2K`` cannot erase the line before it.
    """
    text = text if isinstance(text, str) else str(text)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in shown(text))


def _escape(ch: str) -> str:
    code = ord(ch)
    if ch in _NAMED:
        return _NAMED[ch]
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def table(header: tuple[str, ...], rows: list[tuple[Cell, ...]]) -> str:
    """``rows`` under a ``header`` row, each column as wide as its widest cell, one item a line.

    A cell is text, or ``(text, role)``: painted in that role (``style.paint``)
    where stdout gets colour. Every cell is escaped first (``escaped``), so a
    cell never adds a line or moves the columns; the last column is not padded.
    """
    from looop import style

    cells = [[(c, None) if isinstance(c, str) else c for c in row] for row in rows]
    cells = [[(escaped(text), role) for text, role in row] for row in cells]
    widths = [max([len(h)] + [len(row[i][0]) for row in cells]) for i, h in enumerate(header)]
    last = len(header) - 1
    head = "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip()
    lines = [style.paint(head, "head")]
    for row in cells:
        parts = []
        for i, (text, role) in enumerate(row):
            text = text if i == last else text.ljust(widths[i])
            parts.append(style.paint(text, role) if role else text)
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def print_json(value: object) -> None:
    """``value`` on stdout as a command's ``--json`` answer; ``json`` is loaded only here."""
    import json
    import sys

    sys.stdout.write(json.dumps(value, indent=2, sort_keys=False, default=str) + "\n")
