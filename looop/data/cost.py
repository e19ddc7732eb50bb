"""``cost.jsonl``: the spend ledger (SPEC §12), appended by ``_ cost``, summed by ``cost``.

A line is ``{"ts", "kind", "id", "runner", "usd"}``. Workers record their
spend at the same time, so ``record`` appends with ``looop.lines.append``:
the line whole or not at all, never interleaved with another writer's, and
never glued onto a line torn by a crash. A bad amount (not a number,
negative, NaN, an infinity, or over ``MAX_USD`` for one line) is a usage
error before anything is written: silence would make the ledger lie.

``summary`` reads the ledger with ``lines.whole_lines`` (no link followed,
never blocking: a FIFO named ``cost.jsonl`` is reported, never waited on),
a chunk at a time rather than whole, since a ledger only grows: its memory
is bounded whatever the ledger's size, its time linear in it. A line that
is not such an object (a crash mid-line elsewhere, a hand edit, a word no
encoder can print), or whose ``ts`` is no instant a calendar shows (outside
0 to ``MAX_TS``) or whose ``usd`` is absurd (over ``MAX_USD``), is skipped and counted, never fatal:
so every sum stays a finite number and ``--json`` stays valid JSON. Sums
are by local day, kind and runner, for at most ``MAX_ROWS`` such groups;
lines of further groups are summed into one ``other`` entry, so a ledger
naming a new runner on every line costs no more memory than one that does not.

**One source per worker session** (**beyond**). A worker's spend reaches the
ledger two ways: the worker's own ``_ cost worker ID ...``, and its runner's
report, which the supervisor reads from the output (``workers.spend``:
Claude Code's JSON result carries ``total_cost_usd``) so ``looop cost`` is
right when a worker forgets ``_ cost``. Both for one session would count it
twice, so the first to report a session's spend is its source from then on:
``record`` marks ``sessions/<ID>/spend.from`` (``self`` or ``runner``,
created only while the name is free, so of two at once one wins) and a line
from the other source is not written (``None``; ``_ cost`` says so). A worker
may report in several lines, and a runner in several results; they all
count. Rejected: summing the ledger with runner lines replacing the worker's
(the ledger is append-only and summed in bounded memory, and the worker's
``_ cost`` comes first: a runner prints its result as it exits), and
refusing ``_ cost`` from a runner that reports (a worker ended by ``_ kill``
never prints its result, and its spend would be lost). A ``kind`` other than
``worker``, or an id with no session, is counted as given.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from typing import Any

from looop import fs, jsonfile, lines
from looop.data import sessions
from looop.errors import UsageError
from looop.paths import Paths
from looop.say import escaped

FIELDS = ("kind", "id", "runner")
SELF, RUNNER = "self", "runner"  # who reports a worker session's spend
MAX_USD = 1_000_000.0  # one line's spend; more is a typo or a forgery, not a bill
MAX_TS = 32_503_680_000.0  # 3000-01-01 UTC: later is no time a ledger line was written
MAX_ROWS = 10_000  # groups (day, kind, runner) summed apart; the rest go to "other"


def amount(text: str) -> float:
    """USD as a finite, non-negative number; UsageError (exit 2) saying why otherwise."""
    try:
        usd = float(text)
    except ValueError:
        raise UsageError(f"invalid USD {text!r}: not a number") from None
    if jsonfile.finite(usd) is None or usd < 0:
        raise UsageError(f"invalid USD {text!r}: give a finite, non-negative amount")
    if usd > MAX_USD:
        raise UsageError(f"invalid USD {text!r}: over {MAX_USD:,.0f} for one record")
    return usd


def _word(name: str, value: str) -> str:
    if not (value.strip() and _text(value)) or "\n" in value or "\r" in value:
        raise UsageError(
            f"invalid {name.upper()} {value!r}: give a non-empty word of UTF-8 text on one line"
        )
    return value


def record(
    paths: Paths, kind: str, ident: str, runner: str, usd_text: str, source: str = SELF
) -> dict[str, Any] | None:
    """Append one line to the ledger; returns it. Everything is checked before the write.

    None, and nothing written, when the line is a worker session's spend
    that its other ``source`` reports (see the module's docstring).
    """
    words = [_word(name, value) for name, value in zip(FIELDS, (kind, ident, runner), strict=True)]
    entry: dict[str, Any] = {"ts": round(time.time(), 3), **dict(zip(FIELDS, words, strict=True))}
    entry["usd"] = amount(usd_text)
    if not _source_is(paths, kind, ident, source):
        return None
    line = (json.dumps(entry, ensure_ascii=False) + "\n").encode()
    paths.data_dir.mkdir(parents=True, exist_ok=True)
    lines.append(paths.cost, line)
    return entry


def _source_is(paths: Paths, kind: str, ident: str, source: str) -> bool:
    """Does ``source`` report this spend? The first to report a worker session's does.

    A marker that cannot be written or read counts the line: a spend
    counted twice shows in the ledger, one dropped does not.
    """
    session = paths.sessions / ident
    if kind != "worker" or not os.path.isdir(session) or os.path.islink(session):
        return True
    marker = session / sessions.SPEND
    try:
        fs.write_whole(marker, source.encode(), mode=0o600, exclusive=True)
        return True
    except FileExistsError:
        pass
    except OSError:
        return True
    try:
        return fs.read_small(marker, limit=64).decode("utf-8", "replace").strip() == source
    except OSError:
        return True


def _entry(line: bytes) -> dict[str, Any] | None:
    """A ledger line as ``{"ts", "kind", "runner", "usd"}``; None when it is not one."""
    value = jsonfile.parse_object(line)
    if value is None:
        return None
    ts, usd = jsonfile.finite(value.get("ts")), jsonfile.finite(value.get("usd"))
    if ts is None or usd is None or not (0 <= ts <= MAX_TS and 0 <= usd <= MAX_USD):
        return None
    if not all(isinstance(value.get(name), str) and _text(value[name]) for name in FIELDS):
        return None
    return {"ts": ts, "kind": value["kind"], "runner": value["runner"], "usd": usd}


def _text(value: str) -> bool:
    """Is ``value`` non-empty text any printer can write? (A lone surrogate from a
    ``\\ud800`` escape is not: no encoder takes it.)"""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return bool(value)


def _ledger(paths: Paths) -> Iterator[bytes]:
    """The ledger's lines, a chunk at a time; none when there is no ledger yet."""
    try:
        yield from lines.whole_lines(paths.cost)
    except FileNotFoundError:
        return


def day_of(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(ts))


def summary(paths: Paths, today: bool = False) -> dict[str, Any]:
    """``{"rows": [{"day", "kind", "runner", "usd", "count"}], "total", "skipped"}``.

    With more than ``MAX_ROWS`` groups, also ``"other": {"usd", "count"}``
    for the lines of the groups past them.
    """
    only = day_of(time.time()) if today else None
    sums: dict[tuple[str, str, str], list[float]] = {}
    other = [0.0, 0]
    skipped = 0
    for line in _ledger(paths):
        if not line.strip():
            continue
        entry = _entry(line)
        if entry is None:
            skipped += 1
            continue
        day = day_of(entry["ts"])
        if only is not None and day != only:
            continue
        key = (day, entry["kind"], entry["runner"])
        row = sums.get(key)
        if row is None:
            row = other if len(sums) >= MAX_ROWS else sums.setdefault(key, [0.0, 0])
        row[0] += entry["usd"]
        row[1] += 1
    rows = [
        {"day": day, "kind": kind, "runner": runner, "usd": round(usd, 6), "count": int(count)}
        for (day, kind, runner), (usd, count) in sorted(sums.items())
    ]
    total = round(sum(usd for usd, _ in sums.values()) + other[0], 6)
    report: dict[str, Any] = {"rows": rows, "total": total, "skipped": skipped}
    if other[1]:
        report["other"] = {"usd": round(other[0], 6), "count": int(other[1])}
    return report


def formatted(report: dict[str, Any]) -> str:
    """The human form: a small table, then the total (and the lines skipped)."""
    header = ("day", "kind", "runner", "usd", "count")
    table = [header] + [
        (r["day"], escaped(r["kind"]), escaped(r["runner"]), f"{r['usd']:.4f}", str(r["count"]))
        for r in report["rows"]
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = (
        [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in table
        ]
        if report["rows"]
        else ["no spend recorded"]
    )
    if "other" in report:
        extra = report["other"]
        lines.append(f"other groups (past {MAX_ROWS}): {extra['usd']:.4f} USD in {extra['count']}")
    lines.append(f"total {report['total']:.4f} USD")
    if report["skipped"]:
        lines.append(f"skipped {report['skipped']} malformed line(s) in cost.jsonl")
    return "\n".join(lines)
