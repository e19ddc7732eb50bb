"""What the worker tests share, with and without a systemd user manager.

``FAKE_AGENT`` is a worker that keeps the contract (``tests/fake-agent``);
``ROOT_AGENT`` a root agent that loops on ``_ wait --json --since`` and
answers every ask "yes" until the pulse goes down; ``worker_script`` writes
the small workers the other tests need (one that sleeps, one that exits 3,
one that leaves a ``setsid`` child behind).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FAKE_AGENT = Path(__file__).resolve().parent / "fake-agent"

ROOT_AGENT = """#!/bin/bash
field() { "$PY" -c "import json, sys; s = json.load(sys.stdin); print($1)"; }
c=""
while :; do
    state=$("$LOOOP" _ wait --json ${c:+--since "$c"}); rc=$?
    [ "$rc" -eq 0 ] || break
    c=$(printf '%s' "$state" | field 's["cursor"]')
    echo "woke $(printf '%s' "$state" | field '",".join(s["changed"])')" >> "$LOG"
    for id in $(printf '%s' "$state" | field '" ".join(a["id"] for a in s["asks"])'); do
        "$LOOOP" _ answer "$id" yes && echo "answered $id" >> "$LOG"
    done
done
echo "exit $rc" >> "$LOG"
"""

SLEEPER = "exec sleep 60"
EXITS_3 = "echo working; exit 3"
# A child that leaves the process group (setsid), one double-forked inside
# it, then the worker sleeps: what a kill must end.
ESCAPER = """\
setsid sleep 600 &
echo "escaped $!" >> "$LOOOP_REPORTS_DIR/$LOOOP_SESSION_ID.pids"
( sleep 601 & echo "forked $!" >> "$LOOOP_REPORTS_DIR/$LOOOP_SESSION_ID.pids" )
echo "worker $$" >> "$LOOOP_REPORTS_DIR/$LOOOP_SESSION_ID.pids"
exec sleep 60
"""


def worker_script(path: Path, body: str) -> Path:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def session_file(data: Path, wid: str, name: str) -> Any:
    """A session's JSON file, or None while it does not exist."""
    try:
        return json.loads((data / "sessions" / wid / name).read_text())
    except (FileNotFoundError, ValueError):
        return None


def group_members(pgid: int) -> list[int]:
    """The live (not zombie) processes whose process group is ``pgid``, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            found.append(int(entry.name))
    return found


def pids_of(data: Path, wid: str) -> dict[str, int]:
    """The pids ``ESCAPER`` wrote: escaped, forked, worker."""
    path = data / "reports" / f"{wid}.pids"
    found = {}
    for line in path.read_text().splitlines():
        role, pid = line.split()
        found[role] = int(pid)
    return found


# A stand-in shaped like an agent CLI run non-interactively (``claude -p``):
# the brief is the argument after ``-p``, or its stdin when it has none; it
# records both where the test can read them, and ends with a JSON result line.
AGENT_CLI = """\
out="$LOOOP_REPORTS_DIR/$LOOOP_SESSION_ID"
mkdir -p "$LOOOP_REPORTS_DIR"
if [ "${1:-}" = "-p" ] && [ $# -ge 2 ]; then printf '%s' "$2" > "$out.argv"; fi
cat > "$out.stdin"
echo '{"type":"result","subtype":"success","total_cost_usd":0.01,"result":"done"}'
"""

# A worker for the health tests, by a word in its brief (``{prompt}``):
# ``ROLE=tick`` prints four times a second; ``ROLE=ask`` asks and waits for
# its answer, then goes silent (the answer kept, never printed); any other
# says nothing at all.
HEALTH = """\
case "$1" in
*ROLE=tick*) while :; do echo tick; sleep 0.25; done ;;
*ROLE=ask*) answer=$(looop _ ask "$LOOOP_SESSION_ID" --prompt "go on?"); exec sleep 600 ;;
*) exec sleep 600 ;;
esac
"""
