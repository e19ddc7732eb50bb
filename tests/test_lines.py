"""``looop.lines``: an append is whole or absent, and a tail costs the tail, not the file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from looop import fs, lines

# Runs looop-level code in a child, so a file-size limit or a memory figure is
# the child's alone; prints one JSON line of what it saw.
CHILD = """
import json, os, sys
from looop import errors, lines
path, what, arg = sys.argv[1], sys.argv[2], sys.argv[3]
def rchar():
    with open("/proc/self/io") as f:
        return int(next(l for l in f if l.startswith("rchar:")).split()[1])
if what == "tail":
    lines.tail(path, 1)  # first, so what a lazy import reads (a .py compiled afresh) is not counted
before = rchar()
out = {}
try:
    if what == "append":
        lines.append(path, arg.encode())
    else:
        out["lines"] = lines.tail(path, int(arg))
except OSError as exc:
    out["error"] = errors.os_error_line(exc)
out["read"] = rchar() - before
with open("/proc/self/status") as f:  # this image's peak; ru_maxrss counts pytest's too
    out["rss_kib"] = int(next(l for l in f if l.startswith("VmHWM:")).split()[1])
print(json.dumps(out))
"""


def child(path: Path, what: str, arg: str, fsize: int | None = None) -> dict[str, object]:
    argv = [sys.executable, "-c", CHILD, str(path), what, arg]
    if fsize is not None:
        argv = ["prlimit", f"--fsize={fsize}", "--", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True)
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_a_short_write_leaves_no_torn_line(tmp_path: Path) -> None:
    ledger = tmp_path / "cost.jsonl"
    ledger.write_bytes(b'{"a": 1}\n' * 3)  # 27 bytes
    seen = child(ledger, "append", '{"b": "' + "x" * 40 + '"}\n', fsize=40)
    assert seen["error"] == f"{ledger}: File too large"
    assert ledger.read_bytes() == b'{"a": 1}\n' * 3  # the part that fit was taken back


def test_a_torn_last_line_is_ended_by_the_next_append(tmp_path: Path) -> None:
    journal = tmp_path / "journal.md"
    journal.write_bytes(b"- one\n- tw")  # a writer died mid-line
    lines.append(journal, b"- three\n")
    assert journal.read_bytes() == b"- one\n- tw\n- three\n"
    lines.append(journal, b"- four\n- five\n")
    assert journal.read_bytes().endswith(b"- three\n- four\n- five\n")


def test_an_append_refuses_a_fifo_or_a_link_naming_it(tmp_path: Path) -> None:
    fifo = tmp_path / "events.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(fs.BadFile) as info:
        lines.append(fifo, b"x\n")  # never blocks: O_NONBLOCK, then refused
    assert info.value.filename == str(fifo) and "FIFO" in str(info.value.strerror)
    link = tmp_path / "journal.md"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(fs.BadFile, match="symlink"):
        lines.append(link, b"x\n")
    assert not (tmp_path / "elsewhere").exists()


def test_a_tail_of_a_2gb_sparse_file_reads_its_end_only(tmp_path: Path) -> None:
    log = tmp_path / "pulse.log"
    with open(log, "wb") as f:
        f.truncate(2 << 30)
        f.seek(0, os.SEEK_END)
        f.write(b"".join(b"line %d\n" % i for i in range(100)))
    seen = child(log, "tail", "5")
    assert seen["lines"] == [f"line {i}" for i in range(95, 100)]
    assert isinstance(seen["read"], int) and seen["read"] < 1 << 20
    assert isinstance(seen["rss_kib"], int) and seen["rss_kib"] < 50 << 10


def test_a_tail_counts_a_last_line_without_its_newline(tmp_path: Path) -> None:
    log = tmp_path / "output.log"
    log.write_bytes(b"a\nb\nc")
    assert lines.tail(log, 2) == ["b", "c"]
    assert lines.tail(log, 0) == []
    assert lines.tail(log, None) == ["a", "b", "c"]
    log.write_bytes(b"x" * 100 + b"\nlast\n")
    assert lines.tail(log, None, max_bytes=50) == ["last"]  # the cut line is dropped
    with pytest.raises(FileNotFoundError):
        lines.tail(tmp_path / "missing", 5)


def test_whole_lines_reads_in_chunks_and_cuts_an_overlong_line(tmp_path: Path) -> None:
    ledger = tmp_path / "cost.jsonl"
    ledger.write_bytes(b"one\n" + b"y" * 50 + b"\ntwo\n\nthree")
    found = list(lines.whole_lines(ledger, chunk=7, max_line=10))
    assert found == [b"one", b"y" * 10, b"two", b"", b"three"]


def test_an_event_after_a_torn_line_starts_a_line_of_its_own(tmp_path: Path) -> None:
    from looop.data import events

    log = tmp_path / "events.jsonl"
    log.write_bytes(b'{"ts": 1, "event": "beat"}\n{"ts": 2, "ev')
    events.record(log, "reaped", id="w1")
    *_, torn, last = log.read_bytes().split(b"\n")[:-1]
    assert torn == b'{"ts": 2, "ev' and json.loads(last)["event"] == "reaped"
    events.record(log, "big", max_bytes=log.stat().st_size + 5, pad="x" * 10)
    assert json.loads((tmp_path / "events.jsonl.1").read_bytes().split(b"\n")[-2])["id"] == "w1"
    assert json.loads(log.read_bytes())["event"] == "big"  # rotated: one whole line
