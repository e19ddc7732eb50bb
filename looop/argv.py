"""The plain forms of a command line, read without click, for ``looop.__main__``'s fast paths.

A hot command (``_ ask``, ``_ wait``, ``sense``...) is answered without
loading click only when its line is in a plain form whose meaning is not in
doubt: each option spelt out and given as its own word (``--name VALUE``,
never ``--name=VALUE`` or a bundle of short flags), no word or value that
looks like an option, no option given twice unless it may be, values click
would accept. Any other line is left to click (``None`` or ``False`` here),
which parses it, and reports its errors, as it always has; so this module
never has to know click's rules for the unusual, only to recognise the usual.
Rejected: a click-free parser for every form (a second reading of click's
rules to keep equal, for lines nobody types in a loop).
"""

from __future__ import annotations


def options(
    rest: list[str],
    flags: tuple[str, ...] = (),
    valued: tuple[str, ...] = (),
    repeated: tuple[str, ...] = (),
    most: int = 0,
) -> tuple[dict[str, list[str]], list[str]] | None:
    """``rest`` as each option given plainly (``--flag``, ``--name VALUE``; ``repeated`` ones
    any number of times, the others once) and at most ``most`` other words: (the values given
    by option, the words); None for anything else (``--name=V``, an unknown or doubled option,
    a value or word that looks like an option), which click then reads."""
    given: dict[str, list[str]] = {}
    words = []
    items = iter(rest)
    for word in items:
        if word[:1] != "-":
            words.append(word)
            continue
        if word in flags:
            given[word] = []
            continue
        value = next(items, None)
        if word not in valued or value is None or value[:1] == "-":
            return None
        if word in given and word not in repeated:
            return None  # given twice: click's rule decides
        given.setdefault(word, []).append(value)
    return (given, words) if len(words) <= most else None


def seconds(values: list[str] | None) -> float | bool | None:
    """A duration option's value as click's ``seconds_option`` takes it (None: not given);
    False for one it refuses (not a finite, non-negative number), which click then reports."""
    if values is None:
        return None
    try:
        seconds = float(values[0])
    except ValueError:
        return False
    return seconds if 0 <= seconds < float("inf") else False  # false for nan too


def plain_words(rest: list[str]) -> bool:
    """``ID WORDS...`` with no option and a body of words (no stdin, no flags): the plain form
    of ``_ worker start``, ``_ goal write`` and ``_ answer``, whose body is the words joined
    (``cli.body``)."""
    return (
        len(rest) >= 2
        and not any(word.startswith("-") for word in rest)
        and bool(" ".join(rest[1:]).strip())
    )
