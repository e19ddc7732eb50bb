"""What a shell may complete where a verb takes an id: one finder per kind, click-free.

A TAB is a process the shell starts on every key press, so the common ones
(the id after ``looop _ goal write``, ``_ answer``, ``logs``...) are answered
by ``looop.__main__`` without loading click, and the click completers of
``looop.cli.complete`` answer the rest; both take their candidates from here,
so the two can never offer different ids. Each finder reads the data dir
through the reader that owns it (``data.goals``, ``data.sensors``,
``data.schedules``, ``data.mailbox``, ``data.sessions``); ``matching`` keeps
only the ids a verb takes (``data.ids``: a file named with a newline or a
comma, or with bytes that are not UTF-8, could otherwise add a candidate of
its own, since the shell reads one per line) and never raises: a broken or
missing data dir completes nothing rather than printing a traceback into
the user's prompt.
"""

from __future__ import annotations

from looop.paths import resolve

TYPE_CHECKING = False  # not typing's: a TAB loads this module
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable


def goal_ids() -> Iterable[str]:
    from looop.data import goals

    return goals.ids(resolve())


def sensor_names() -> Iterable[str]:
    from looop.data import sensors

    return map(sensors.name, sensors.discover(resolve().sensors))


def schedule_names() -> Iterable[str]:
    from looop.data import schedules

    return (s.name for s in schedules.listing(resolve()))


def ask_ids() -> Iterable[str]:
    from looop.data import mailbox

    return (a["id"] for a in mailbox.pending(resolve()) if isinstance(a.get("id"), str))


def worker_ids() -> Iterable[str]:
    from looop.data import sessions

    return (s.id for s in sessions.scan(resolve().sessions))


def matching(find: Callable[[], Iterable[str]], incomplete: str) -> list[str]:
    """The ids ``find`` gives that a verb takes and that start with ``incomplete``, sorted."""
    from looop.data import ids

    try:
        found = {v for v in find() if v.startswith(incomplete)}
        return sorted(v for v in found if ids.PATTERN.fullmatch(v))
    except Exception:  # a completion must never break the prompt
        return []
