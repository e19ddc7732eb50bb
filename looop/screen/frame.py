"""The text of ``looop watch``'s screen: one function, ``lines``, for both of its modes.

``lines(view, ui, width, height)`` turns ``looop.screen.view.read``'s dict,
and what the person is doing (``Ui``: the selected ask or worker, the
answer being typed, the log followed, the last action's message), into at
most ``height`` lines of at most ``width`` cells, each with a style name
(``STYLES``) or None. The live screen (``looop.screen.live``) draws them in
colour; ``looop watch --once`` prints their text and nothing else. So the
plain frame is the live frame's text by construction, not by a second
printer kept in step. This module imports no terminal library: ``--once``
costs what ``_ state`` costs.

The screen, top to bottom: a title, the pulse (running or not, the last
beat's number and time, the next beat's time, a failing streak or an
overdue beat), then the sections in this order of priority for the rows
there are: the pending asks (age, worker, prompt), the workers (state,
health, last output line), the sensors (signal or error), the files that
could not be read (``_ state``'s ``problems``) and the schedules (each only
when there are any), the journal's last lines (the rows left over),
and a footer with the keys. A section cut short says how many it hides.
Every text from the profile passes through ``say.escaped``: a prompt or an
output line cannot move the cursor or change the colours.
"""

from __future__ import annotations

import json
import unicodedata

from looop.say import escaped
from looop.screen import view as views

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

Line = tuple[str, "str | None"]
Section = tuple[Line, list[Line], bool]  # heading, lines, whether its last lines matter most
# The style names a line may carry; the live screen maps them to colours.
STYLES = ("title", "head", "good", "bad", "warn", "dim", "selected")
KEYS = "↑↓ select  a answer  k kill  l log  q quit"
LOG_KEYS = "esc back  k kill  q quit"
MARK = "> "  # before the selected ask or worker
FIRST = 3  # rows each section is given before any is given more
COLUMN = 16  # sensor names and worker ids are padded to the longest, up to this many


class Ui:
    """What the person is doing: the selection (``(kind, id)``), typing, following, told."""

    __slots__ = ("answering", "chosen", "follow", "message", "selected", "typed")

    def __init__(self) -> None:
        self.selected: tuple[str, str] | None = None  # ("ask", id) or ("worker", id)
        self.chosen = False  # moved by the person: it stays; else it is the first item
        self.answering: str | None = None  # the ask being answered
        self.typed = ""
        self.follow: str | None = None  # the worker whose log is followed
        self.message: str | None = None  # what the last action did, until the next key


def selectable(view: dict[str, Any]) -> list[tuple[str, str]]:
    """What ``↑``/``↓`` move over: the pending asks, then the live workers, as shown."""
    asks = [("ask", str(a["id"])) for a in view["asks"]]
    return asks + [("worker", w["id"]) for w in view["workers"] if w["alive"]]


def settle(view: dict[str, Any], ui: Ui) -> None:
    """The selection: the first item (an ask, when one is pending) until the person moves it.

    One the person chose stays chosen while it is shown; when it is gone,
    the first item is selected again.
    """
    items = selectable(view)
    if not (ui.chosen and ui.selected in items):
        ui.selected, ui.chosen = (items[0] if items else None), False


def lines(view: dict[str, Any], ui: Ui, width: int, height: int) -> list[Line]:
    """The screen's lines: at most ``height``, each at most ``width`` cells."""
    width, height = max(width, 20), max(height, 3)
    if ui.follow is not None:
        body = _log(view, ui.follow, height)
    else:
        body = _title(view) + _pulse(view["pulse"])
        body += _fit(_sections(view, ui), height - len(body) - 1)
    # The footer on the last row, whatever the rows above hold.
    body = body[: height - 1] + [("", None)] * (height - 1 - len(body))
    return [(crop(text, width), style) for text, style in [*body, _footer(ui)]]


def plain(view: dict[str, Any], ui: Ui, width: int, height: int) -> str:
    """``lines``' text alone, one line each: what ``--once`` prints."""
    return "\n".join(text.rstrip() for text, _ in lines(view, ui, width, height)) + "\n"


def _title(view: dict[str, Any]) -> list[Line]:
    return [(escaped(f"looop watch  {view['data_dir']}"), "title")]


def _pulse(pulse: dict[str, Any]) -> list[Line]:
    if not pulse["running"]:
        why = f" ({pulse['error']})" if pulse["error"] else ""
        return [(escaped(f"pulse    {pulse['state']}{why}"), "bad")]
    said = [f"running (pid {pulse['pid']})"]
    if pulse["beats"] is not None:
        said.append(f"beat #{pulse['beats']} at {views.clock(pulse['last_beat_at'])}")
    if pulse["overdue"]:
        said.append(f"next beat OVERDUE since {views.clock(pulse['next_beat'])}")
    elif pulse["next_beat"] is not None:
        said.append(f"next {views.clock(pulse['next_beat'])}")
    found: list[Line] = [(escaped("pulse    " + ", ".join(said)), "good")]
    failing = pulse["failing"]
    if failing:
        count, why = failing.get("count"), failing.get("why")
        since = views.clock(failing.get("since"))
        found.append((escaped(f"failing  {count} beats since {since}: {why}"), "bad"))
    elif pulse["overdue"]:
        found[0] = (found[0][0], "warn")
    return found


def _sections(view: dict[str, Any], ui: Ui) -> list[Section]:
    """Each section: its heading, its lines, and whether its last lines matter most."""
    asks = view["asks"]
    live = [w for w in view["workers"] if w["alive"]]
    column, ids = _column(view["sensors"]), _column(w["id"] for w in view["workers"])
    found: list[Section] = [
        ((f"asks ({len(asks)} pending)", "head"), [_ask(view, a, ui) for a in asks], False),
        (
            (f"workers ({len(live)} live, {len(view['workers'])} in all)", "head"),
            [_worker(w, ui, ids) for w in _workers_shown(view["workers"])],
            False,
        ),
        (
            (f"sensors ({len(view['sensors'])})", "head"),
            [_sensor(name, value, column) for name, value in view["sensors"].items()],
            False,
        ),
    ]
    if view["problems"]:
        bad: list[Line] = [(escaped(f"  {p['path']}  {p['why']}"), "bad") for p in view["problems"]]
        found.append(((f"problems ({len(bad)})", "head"), bad, False))
    if view["schedules"]:
        said: list[Line] = [_schedule(s) for s in view["schedules"]]
        found.append(((f"schedules ({len(said)})", "head"), said, False))
    tail: list[Line] = [(escaped("  " + line), "dim") for line in view["journal"]]
    found.append((("journal", "head"), tail, True))
    return found


def _fit(sections: list[Section], rows: int) -> list[Line]:
    """The sections in ``rows`` rows: each its heading, then its items.

    Rows go first ``FIRST`` per section, in order of priority, then the rest
    in that order again, so a long list of asks leaves the workers and the
    journal a few rows. A section cut short ends with ``… N more`` (a
    tail-first one, the journal, keeps its last lines and begins with it);
    sections that find no row for their heading are left out.
    """
    shown = sections[: max(0, rows)]
    takes, left = [0] * len(shown), rows - len(shown)
    for cap in (FIRST, None):
        for i, (_, items, _) in enumerate(shown):
            want = len(items) if cap is None else min(len(items), cap)
            extra = max(0, min(want - takes[i], left))
            takes[i], left = takes[i] + extra, left - extra
    found: list[Line] = []
    for (heading, items, tail_first), take in zip(shown, takes, strict=True):
        found += [heading, *(items if take == len(items) else _cut(items, take, tail_first))]
    return found


def _cut(items: list[Line], take: int, tail_first: bool) -> list[Line]:
    if take == 0:
        return []
    more = (f"  … {len(items) - take + 1} more", "dim")
    if tail_first:
        return [more, *items[len(items) - take + 1 :]]
    return [*items[: take - 1], more]


def _column(names: Any) -> int:
    """The width of a column of names: the longest, up to ``COLUMN``."""
    return min(COLUMN, max(map(len, names), default=0))


def _selected(ui: Ui, kind: str, ident: str) -> bool:
    return ui.follow is None and ui.selected == (kind, ident)


def _ask(view: dict[str, Any], ask: dict[str, Any], ui: Ui) -> Line:
    ident = str(ask["id"])
    what = ask.get("error") or ask.get("prompt", "")
    options = ask.get("options")
    if isinstance(options, list) and options:
        what = f"{what} [{'/'.join(map(str, options))}]"
    stranded = "  stranded" if ask.get("stranded") else ""
    mine = _selected(ui, "ask", ident)
    text = f"{ident}  {views.ask_age(ask, view['now'])}{stranded}  {' '.join(str(what).split())}"
    return (escaped((MARK if mine else "  ") + text), "selected" if mine else "warn")


def _workers_shown(workers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The live workers, then the others, newest first: the ones ended last matter next."""
    live = [w for w in workers if w["alive"]]
    ended = sorted((w for w in workers if not w["alive"]), key=lambda w: -(w["started"] or 0))
    return live + ended


def _worker(worker: dict[str, Any], ui: Ui, column: int) -> Line:
    said = worker["state"]
    if worker["alive"]:
        said += f", {worker['health']}"
        style = {"stuck": "bad", "waiting": "warn"}.get(str(worker["health"]))
    else:
        if worker["exit_code"] is not None:
            said += f" {worker['exit_code']}"
        if worker.get("verify") == "failed":
            said += ", verify failed"
        style = "bad" if worker.get("verify") == "failed" else "dim"
    last = worker.get("last_line")
    text = f"{worker['id']:<{column}}  {said}" + (f"  | {' '.join(last.split())}" if last else "")
    mine = _selected(ui, "worker", worker["id"])
    return (escaped((MARK if mine else "  ") + text), "selected" if mine else style)


def _sensor(name: str, reading: Any, column: int) -> Line:
    signal = reading.get("signal") if isinstance(reading, dict) else None
    if isinstance(signal, dict) and signal.get("error"):
        detail = reading.get("detail")
        why = detail.get("message") if isinstance(detail, dict) else None
        return (escaped(f"  {name:<{column}}  error: {why or signal}"), "bad")
    shown = signal if isinstance(reading, dict) and "signal" in reading else reading
    said = json.dumps(shown, ensure_ascii=False, default=str)
    return (escaped(f"  {name:<{column}}  {said}"), None)


def _schedule(s: dict[str, Any]) -> Line:
    from looop.say import duration

    said = [f"next {views.clock(s['next'])}" if s["next"] is not None else "done"]
    if s["every"]:
        said.append(f"every {duration(s['every'])}")
    note = " ".join(str(s["note"] or "").split())
    return (escaped(f"  {s['name']}  {', '.join(said)}" + (f": {note}" if note else "")), None)


def _log(view: dict[str, Any], wid: str, height: int) -> list[Line]:
    tail = view["log"]
    return [(escaped(f"log of {wid} (output.log)"), "title")] + [
        (escaped(line), None) for line in tail[-(height - 2) :]
    ]


def _footer(ui: Ui) -> Line:
    if ui.answering is not None:
        return (escaped(f"answer {ui.answering}: {ui.typed}") + "_", "selected")
    if ui.message is not None:
        return (escaped(ui.message), "warn")
    return (LOG_KEYS if ui.follow is not None else KEYS, "dim")


def cells(ch: str) -> int:
    """The terminal cells ``ch`` takes: 2 for wide (East Asian) ones, 0 for combining ones."""
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def crop(text: str, width: int) -> str:
    """``text`` cut to at most ``width`` cells."""
    used = 0
    for i, ch in enumerate(text):
        used += cells(ch)
        if used > width:
            return text[:i]
    return text
