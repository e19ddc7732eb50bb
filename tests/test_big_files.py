"""A 2 GB log or journal costs looop its end: ``logs -n 5`` and ``_ state``'s journal tail.

Each command runs twice, once with a small file and once with the same end
after 2 GB of (sparse) start; what the second read more than the first
(``rchar`` of ``/proc/<pid>/io``, read while the child is a zombie) is what
the big file cost, and its peak resident size is the child's own. A
zombie's ``/proc/<pid>/io`` belongs to root (the kernel gives the files of a
process without memory to root), so these tests are root-only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import LOOOP, Profile

pytestmark = pytest.mark.root("reads an exited process's /proc/<pid>/io")

BIG = 2 << 30
TAIL = b"".join(b"2026-12-07 10:00:%02d+0000 looop: line %d\n" % (i % 60, i) for i in range(40))


# Measures from a small parent of its own: a child forked from pytest itself
# would carry pytest's peak memory in its ru_maxrss (the kernel keeps the
# high-water mark of the image it replaced at exec).
MEASURE = """
import json, os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # a zombie: its counters remain
with open(f"/proc/{pid}/io") as f:
    rchar = int(next(line for line in f if line.startswith("rchar:")).split()[1])
_, status, usage = os.wait4(pid, 0)
print(json.dumps([os.waitstatus_to_exitcode(status), rchar, usage.ru_maxrss]), file=sys.stderr)
"""


def measured(profile: Profile, *args: str) -> tuple[str, int, int]:
    """(stdout, bytes read, peak RSS in KiB) of ``looop ARGS``."""
    done = subprocess.run(
        [sys.executable, "-I", "-c", MEASURE, LOOOP, *args],
        env=profile.env,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    code, rchar, maxrss = json.loads(done.stderr.decode().splitlines()[-1])
    assert code == 0, done
    return done.stdout.decode(), rchar, maxrss


def write(path: Path, end: bytes, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)
        f.seek(0, os.SEEK_END)
        f.write(end)


def test_logs_n_5_of_a_2gb_pulse_log_reads_its_end_only(profile: Profile) -> None:
    log = profile.data / "pulse.log"  # where a pulse ``looop up`` detached writes
    write(log, TAIL, 0)
    small, small_read, _ = measured(profile, "logs", "-n", "5")
    write(log, TAIL, BIG)
    big, big_read, rss_kib = measured(profile, "logs", "-n", "5")
    assert big == small and big.splitlines()[-1].endswith("line 39")
    assert len(big.splitlines()) == 5
    assert big_read - small_read < 1 << 20
    assert rss_kib < 50 << 10


def test_the_journal_tail_of_a_2gb_journal_reads_its_end_only(profile: Profile) -> None:
    journal = profile.data / "journal.md"
    end = b"".join(b"- 2026-12-07 10:%02d line %d\n" % (i % 60, i) for i in range(40))
    write(journal, end, 0)
    _, small_read, _ = measured(profile, "_", "state", "--json")
    write(journal, end, BIG)
    out, big_read, rss_kib = measured(profile, "_", "state", "--json")
    assert json.loads(out)["journal_tail"][-1] == "- 2026-12-07 10:39 line 39"
    assert big_read - small_read < 1 << 20
    assert rss_kib < 50 << 10


def test_logs_since_of_a_big_log_reads_from_where_the_time_begins(profile: Profile) -> None:
    """``--since`` bisects a log (appended in time order) instead of reading it from the start."""
    now = time.time()

    def stamped(when: float, text: str) -> bytes:
        clock = time.strftime("%Y-%m-%d %H:%M:%S%z", time.localtime(when))
        return f"{clock} looop: {text}\n".encode()

    recent = b"".join(stamped(now - 600 + i, f"recent {i}") for i in range(40))
    log = profile.data / "pulse.log"
    log.parent.mkdir(parents=True)
    log.write_bytes(stamped(now - 86400, "yesterday") + recent)
    small, small_read, _ = measured(profile, "logs", "--since", "-1h")
    old = stamped(now - 3 * 86400, "three days ago, " + "x" * 60) * 16384  # 1.5 MiB a write
    with open(log, "wb") as fh:
        for _ in range(40):  # 60 MiB of old lines, each stamped
            fh.write(old)
        fh.write(recent)
    big, big_read, rss_kib = measured(profile, "logs", "--since", "-1h")
    assert big == small == recent.decode()
    assert big_read - small_read < 1 << 20
    assert rss_kib < 50 << 10
