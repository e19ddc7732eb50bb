"""How tight is the shipped unit, and do real sensors still work inside it?

    sudo python bench/bench_unit_security.py [--keep]

Starts private systemd user managers (a normal user's and root's, via the test
harness), installs looop with ``looop install --systemd``, and prints:

1. ``systemd-analyze --user security`` exposure of ``looop.service`` under a
   normal user's manager, next to the user units the distribution ships,
   scored by the same analyzer in the same run (the baseline). Goal: <= 6.0.
2. Whether the unit starts under both managers.
3. A sensor compatibility check under the running unit, under both managers:
   a sensor that opens a loopback TCP connection (to a server this script
   runs, which answers a bounded number of times and stops by itself), one
   that reads and writes ``~/.cache``, one that runs ``git`` and ``python3``,
   and, where node is installed, one that runs ``node`` (a JIT runtime, which
   ``MemoryDenyWriteExecute`` would break).

Needs root (it creates the test user and delegated cgroups) and
/lib/systemd/systemd. Everything it starts is stopped and removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from systemd_harness import (
    Harness,
    Manager,
    add_test_drop_in,
    unavailable_reason,
)

GOAL = 6.0
EXPOSURE = re.compile(r"Overall exposure level for (\S+): ([0-9.]+)")

SENSORS = {
    "tcp": """\
exec python3 - "$BENCH_PORT" <<'EOF'
import json, socket, sys
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5) as s:
    s.sendall(b"ping\\n")
    reply = s.makefile().readline().strip()
print(json.dumps({"signal": {"reply": reply}}))
EOF""",
    "cache": """\
set -e
mkdir -p "$HOME/.cache/looop-bench"
echo "written $$" > "$HOME/.cache/looop-bench/probe"
read -r word _ < "$HOME/.cache/looop-bench/probe"
printf '{"signal": {"cache": "%s"}}\\n' "$word"
""",
    "tools": """\
set -e
repo="$HOME/.cache/looop-bench/repo"
rm -rf "$repo"; mkdir -p "$repo"; cd "$repo"
git init -q .
echo hello > file
git add file
git -c user.name=bench -c user.email=bench@example.invalid commit -q -m one
commits=$(git rev-list --count HEAD)
py=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
printf '{"signal": {"git_commits": %s, "python": "%s"}}\\n' "$commits" "$py"
""",
    "node": """\
exec node -e 'let s = 0; for (let i = 0; i < 1e6; i++) s += i; \
console.log(JSON.stringify({signal: {node: s > 0 ? "jit ok" : "bad"}}))'""",
}


class LoopbackServer(threading.Thread):
    """Answers ``pong`` to a bounded number of connections on 127.0.0.1, then stops."""

    def __init__(self, answers: int = 20, lifetime: float = 120.0) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.port = self.sock.getsockname()[1]
        self.answers, self.deadline = answers, time.monotonic() + lifetime

    def run(self) -> None:
        with self.sock:
            while self.answers > 0 and time.monotonic() < self.deadline:
                try:
                    conn, _ = self.sock.accept()
                except TimeoutError:
                    continue
                with conn:
                    conn.settimeout(5)
                    conn.makefile().readline()
                    conn.sendall(b"pong\n")
                self.answers -= 1


def exposure(m: Manager, unit: str) -> float | None:
    out = m.run("systemd-analyze", "--user", "security", "--no-pager", unit, timeout=60)
    found = EXPOSURE.search(out.stdout)
    return float(found.group(2)) if found else None


def baseline_units() -> list[str]:
    shipped = Path("/usr/lib/systemd/user")
    names = sorted(p.name for p in shipped.glob("*.service") if "@" not in p.name)
    return [n for n in names if not n.startswith("systemd-")][:6]


def compatibility(m: Manager, server: LoopbackServer) -> dict[str, Any]:
    m.write(m.data_dir / "config.toml", "interval = 3600\nsensor_timeout = 30\n")
    wanted = [n for n in SENSORS if n != "node" or shutil.which("node")]
    for name in wanted:
        m.sensor(name, SENSORS[name])
    add_test_drop_in(m)
    m.drop_in("looop.service", f"[Service]\nEnvironment=BENCH_PORT={server.port}\n", "bench.conf")
    out = m.looop_cmd("install", "--systemd", timeout=180)
    started = out.returncode == 0
    results: dict[str, Any] = {"started": started}
    if not started:
        results["error"] = out.stderr.strip()
        return results
    for name in wanted:
        try:
            reading = json.loads((m.data_dir / "snapshots" / f"sensor-{name}.json").read_text())
        except (OSError, ValueError) as exc:
            reading = {"unreadable": str(exc)}
        results[name] = reading
    return results


def ok(reading: Any) -> bool:
    signal = reading.get("signal") if isinstance(reading, dict) else None
    return isinstance(signal, dict) and not signal.get("error")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep", action="store_true", help="keep the managers' files")
    args = parser.parse_args()
    reason = unavailable_reason()
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return 2
    if args.keep:
        os.environ["LOOOP_KEEP_SYSTEMD_LOGS"] = "1"
    harness = Harness()
    server = LoopbackServer()
    server.start()
    failures = 0
    try:
        user = harness.manager("user")
        user.reset()
        add_test_drop_in(user)
        user.looop_cmd("install", "--systemd", "--no-start", check=True, timeout=180)
        ours = exposure(user, "looop.service")
        print("1. systemd-analyze --user security (a normal user's manager)")
        print(f"   looop.service                {ours}")
        for unit in baseline_units():
            print(f"   {unit:<28} {exposure(user, unit)}   (shipped by the distribution)")
        verdict = "meets" if ours is not None and ours <= GOAL else "MISSES"
        print(f"   goal <= {GOAL}: {verdict}")
        failures += verdict != "meets"

        print("2-3. the unit under each manager, and sensors inside it")
        for name in ("user", "root"):
            m = harness.manager(name)
            m.reset()
            results = compatibility(m, server)
            print(f"   {name} manager: unit started: {results.pop('started')}")
            if "error" in results:
                print(f"     {results['error']}")
                failures += 1
                continue
            for sensor, reading in results.items():
                mark = "ok  " if ok(reading) else "FAIL"
                failures += not ok(reading)
                print(f"     {mark} sensor-{sensor:<6} {json.dumps(reading)}")
            m.reset()
    finally:
        harness.close()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
