"""``_ wait --since`` at any scale (SPEC §8): nothing missed between two waits, one cursor size.

Driven the way a root agent's shell tool drives it (``shell_tool``): the
cursor travels through the shell as one argument, so it must stay small
whatever the number of pending asks and live workers (Linux refuses one
argument over 128 KiB at exec); a worker that started and ended while the
agent was acting must wake the next wait although the live set looks the
same; and a cursor of any shape that looop did not print is a usage error.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator

import pytest
from conftest import LOOOP, Processes, Profile, strace_prefix, wait_for
from shell_tool import ShellTool
from workers_kit import session_file, worker_script

CURSOR_OF = "python3 -c 'import json,sys; print(json.load(sys.stdin)[\"cursor\"])'"


@pytest.fixture
def pulse(profile: Profile, procs: Processes) -> Iterator[Profile]:
    """A running pulse that beats once: nothing it publishes moves while a test runs."""
    profile.env["LOOOP_INTERVAL"] = "3600"
    procs.add(profile.popen("pulse", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    wait_for(lambda: profile.run("status").returncode == 0, timeout=30)
    yield profile
    profile.run("down", timeout=120)


def test_a_worker_that_started_and_ended_between_two_waits_wakes_the_next_one_at_once(
    pulse: Profile,
) -> None:
    worker = worker_script(pulse.root / "w", "echo did it")
    pulse.write_config(f'[worker]\ncommand = ["{worker}"]\nsupervisor = "detached"\n')
    tool = ShellTool(pulse.env, limit=20)
    cursor = tool.call(f"looop _ state --json | {CURSOR_OF}").out.strip()
    assert cursor, tool.calls[-1].err
    started = tool.call("looop _ worker start quick 'do it'")
    assert started.returncode == 0, started.err
    wait_for(lambda: session_file(pulse.data, "quick", "status.json"), timeout=30)
    # The live set is empty again, as at the cursor: only a generation can tell.
    woke = tool.call(f'looop _ wait --json --timeout 5 --since "{cursor}"')
    assert woke.returncode == 0, (woke.returncode, woke.err)
    assert "workers" in json.loads(woke.out)["changed"]
    again = json.loads(woke.out)["cursor"]
    quiet = tool.call(f'looop _ wait --json --timeout 1 --since "{again}"')
    assert quiet.returncode == 124, (quiet.out, quiet.err)


def test_a_worker_killed_mid_step_is_recorded_and_wakes_a_wait_blocked_on_the_cursor(
    pulse: Profile, procs: Processes
) -> None:
    mid_step = 'echo \'{"type":"assistant","message":"step 1"}\'; kill -KILL $$; echo never'
    pulse.write_config(
        f'[worker]\ncommand = ["{worker_script(pulse.root / "w", mid_step)}"]\n'
        'supervisor = "detached"\n'
    )
    tool = ShellTool(pulse.env, limit=30)
    cursor = tool.call(f"looop _ state --json | {CURSOR_OF}").out.strip()
    assert tool.call("looop _ worker start dies 'one step'").returncode == 0
    woke = tool.call(f'looop _ wait --json --timeout 20 --since "{cursor}"')
    assert woke.returncode == 0 and "workers" in json.loads(woke.out)["changed"], woke.err
    status = wait_for(lambda: session_file(pulse.data, "dies", "status.json"), timeout=30)
    assert (status["state"], status["exit_code"]) == ("exited", 137), status
    log = tool.call("looop logs dies").out
    assert "step 1" in log and "never" not in log


def test_the_cursor_has_one_size_whatever_the_pending_asks_and_a_wait_takes_it(
    pulse: Profile,
) -> None:
    tool = ShellTool(pulse.env, limit=60)
    small = tool.call(f"looop _ state --json | {CURSOR_OF}").out.strip()
    asks = pulse.data / "asks"
    asks.mkdir(exist_ok=True)
    for n in range(10_000):
        record = {"id": f"w-{n}", "worker": "w", "prompt": "which?", "ts": 1.0}
        (asks / f"w-{n}.json").write_text(json.dumps(record))
    big = tool.call(f"looop _ state --json | {CURSOR_OF}").out.strip()
    # Bounded: a count and a time are the only numbers in it.
    assert len(small) <= len(big) < 256, (len(small), len(big))
    # The asks were pending at the cursor: the wait sleeps through them.
    slept = tool.call(f'looop _ wait --json --timeout 1 --since "{big}"')
    assert slept.returncode == 124, (slept.returncode, slept.err[:300])
    # One more ask, and one answered: news, although the count is the same.
    (pulse.data / "answers").mkdir(exist_ok=True)
    (pulse.data / "answers" / "w-0.json").write_text(json.dumps({"id": "w-0", "answer": "a"}))
    (asks / "x-1.json").write_text(json.dumps({"id": "x-1", "worker": "x", "prompt": "?"}))
    changed_of = "python3 -c 'import json,sys; print(*json.load(sys.stdin)[\"changed\"])'"
    woke = tool.call(
        f'set -o pipefail; looop _ wait --json --timeout 10 --since "{big}" | {changed_of}'
    )
    assert (woke.returncode, woke.out) == (0, "asks\n"), woke.err[:300]


def _encoded(payload: object) -> str:
    raw = json.dumps(payload).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


FORGED: dict[str, bytes] = {
    "huge": b"A" * 100_000,
    "deep": base64.urlsafe_b64encode(b"[" * 40 + b"1" + b"]" * 40).rstrip(b"="),
    "nested-bomb": base64.urlsafe_b64encode(b"[" * 60_000).rstrip(b"="),
    "not-utf8": b"\xff\xfe\x80cursor",
    "non-ascii": "curs\u00f6r".encode(),
    "nan": _encoded([2, "NaN"]).encode(),
    "numbers": _encoded([2, 1e308, -1, True, None, {}, [], "x" * 16]).encode(),
    "old-format": _encoded([1, "a", "b", "c", [], []]).encode(),
    "a-dict": _encoded({"v": 2}).encode(),
    "a-string": _encoded("x").encode(),
    "padding": b"====",
    "empty": b"",
}


@pytest.mark.parametrize("case", FORGED)
def test_a_forged_cursor_of_any_shape_is_a_usage_error(profile: Profile, case: str) -> None:
    out = subprocess.run(
        [LOOOP.encode(), b"_", b"wait", b"--json", b"--timeout", b"1", b"--since", FORGED[case]],
        env=profile.env,
        capture_output=True,
        timeout=60,
    )
    assert out.returncode == 2, (out.returncode, out.stderr[-500:])
    assert out.stdout == b""
    lines = out.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(b"looop: "), out.stderr[-500:]
    assert len(lines[0]) < 300


def test_state_reads_a_bounded_number_of_run_records_whatever_runs_holds(
    profile: Profile,
) -> None:
    runs = profile.data / "runs"
    runs.mkdir(parents=True)
    for n in range(2_000):
        stamp = f"20260101T{n // 3600:02d}{n // 60 % 60:02d}{n % 60:02d}.000000-1"
        record = {"id": stamp, "cmd": "true", "started": 1.0, "pid": 1, "ended": 2.0}
        (runs / f"{stamp}.json").write_text(json.dumps({**record, "output": "o" * 4000}))
    trace = profile.root / "trace"
    traced = strace_prefix("-f", "-e", "trace=open,openat", "-o", str(trace))
    out = ShellTool(profile.env, limit=60).call(" ".join([*traced, "looop _ state --json"]))
    assert out.returncode == 0, out.err
    opened = [line for line in trace.read_text().splitlines() if "/runs/2026" in line]
    assert 5 <= len(opened) <= 200, len(opened)
