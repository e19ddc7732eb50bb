"""``looop _ wait`` (SPEC §8) against a real pulse beating every second.

Every behaviour runs twice: on file-system events and with the polling
fallback forced (``LOOOP_WAIT_POLL=1``). A wait announces that it is armed
(``LOOOP_TEST_WAIT_READY``) so a test never changes the world before the wait
has taken its starting reading.

"Stays asleep" is shown without timing: after the change that must not wake
it is published (and one more beat has passed), a goal is edited as a
sentinel, and the wait must report exactly ``["goals"]``. A wait that had
woken for the earlier change would have returned with that change's category
(or still be returning it), never with the sentinel's alone.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import count
from typing import Any

import pytest
from conftest import LOOOP, Processes, Profile, wait_for

MODES = ("events", "poll")
SIGNAL_SENSOR = """\
printf '{"signal": {"v": "%s"}, "detail": {"d": "%s"}}\\n' "$(cat "$SIG")" "$(cat "$DET")"
"""
_ready_ids = count()


@dataclass
class Loop:
    """A profile with a pulse beating every second, and helpers to wait on it."""

    profile: Profile
    procs: Processes
    mode: str
    pulse: subprocess.Popen[str] | None = None
    backend: str | None = None  # what the last wait announced it sleeps on

    @property
    def data(self) -> Any:
        return self.profile.data

    def start_pulse(self) -> None:
        self.pulse = self.procs.add(
            self.profile.popen("pulse", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
        wait_for(lambda: (self.data / "snapshots" / "sensor-signal.json").exists())

    def generation(self) -> str | None:
        try:
            return os.readlink(self.data / "snapshots")
        except OSError:
            return None

    def next_beat(self) -> None:
        """Block until the pulse has published one more generation."""
        before = self.generation()
        wait_for(lambda: self.generation() != before)

    def reading(self) -> Any:
        return self.profile.snapshot("sensor-signal")

    def start_wait(self, *args: str, wrapper: Sequence[str] = ()) -> subprocess.Popen[str]:
        """Start ``looop _ wait --json ARGS`` (under ``wrapper``, a command prefix) once armed."""
        ready = self.profile.root / f"ready-{next(_ready_ids)}"
        env = dict(self.profile.env, LOOOP_TEST_WAIT_READY=str(ready))
        proc = self.procs.add(
            subprocess.Popen(
                [*wrapper, LOOOP, "_", "wait", "--json", *args],
                env=env,
                text=True,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        )
        wait_for(lambda: ready.exists() or proc.poll() is not None)
        if ready.exists():
            self.backend = ready.read_text().split()[0]
            assert (self.backend == "poll") == (self.mode == "poll"), self.backend
        return proc

    def finish(self, proc: subprocess.Popen[str], timeout: float = 30) -> tuple[int, Any]:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, (json.loads(out) if out.strip() else None)

    def edit_goal(self) -> None:
        with open(self.data / "goals" / "g1.md", "a") as fh:
            fh.write(f"- step {time.time_ns()}\n")


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest, profile: Profile) -> str:
    profile.env["LOOOP_INTERVAL"] = "1"
    if request.param == "poll":
        profile.env["LOOOP_WAIT_POLL"] = "1"
    return str(request.param)


@pytest.fixture
def loop(profile: Profile, procs: Processes, mode: str) -> Loop:
    """A seeded world (a fixed heartbeat so midnight never moves it) and a live pulse."""
    return seeded_loop(profile, procs, mode)


def seeded_loop(profile: Profile, procs: Processes, mode: str) -> Loop:
    sig, det = profile.root / "sig", profile.root / "det"
    sig.write_text("one")
    det.write_text("a")
    profile.env.update(SIG=str(sig), DET=str(det))
    profile.sensor("today", """echo '{"signal": {"date": "fixed"}}'""")
    profile.sensor("signal", SIGNAL_SENSOR)
    (profile.data / "goals").mkdir(parents=True)
    (profile.data / "goals" / "g1.md").write_text("# goal one\n")
    (profile.data / "PLAYBOOK.md").write_text("# playbook\n")
    world = Loop(profile, procs, mode)
    world.start_pulse()
    return world


def write_json(path: Any, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


# --- 1. wakes on what matters ------------------------------------------------
def new_ask(loop: Loop) -> None:
    write_json(loop.data / "asks" / "q1.json", {"id": "q1", "worker": "w", "prompt": "?", "ts": 1})


def edit_playbook(loop: Loop) -> None:
    (loop.data / "PLAYBOOK.md").write_text("# playbook\n\nAsk before spending money.\n")


def change_signal(loop: Loop) -> None:
    (loop.profile.root / "sig").write_text("two")


WAKERS: dict[str, tuple[Callable[[Loop], None], list[str]]] = {
    "new-ask": (new_ask, ["asks"]),
    "goal-edit": (Loop.edit_goal, ["goals"]),
    "playbook-edit": (edit_playbook, ["playbook"]),
    "signal-change": (change_signal, ["snapshots"]),
}


@pytest.mark.parametrize("case", WAKERS)
def test_wakes_with_what_changed(loop: Loop, case: str) -> None:
    change, expected = WAKERS[case]
    waiter = loop.start_wait("--timeout", "20")
    change(loop)
    code, state = loop.finish(waiter)
    assert code == 0
    assert state["changed"] == expected
    assert state["pulse_alive"] is True
    if case == "new-ask":
        assert [a["id"] for a in state["asks"]] == ["q1"]
    if case == "signal-change":
        assert state["snapshots"]["sensor-signal"]["signal"] == {"v": "two"}


def test_a_pending_ask_returns_at_once(loop: Loop) -> None:
    new_ask(loop)
    code, state = loop.finish(loop.start_wait("--timeout", "20"))
    assert code == 0
    assert state["changed"] == ["asks"]


def test_new_goal_file_wakes(loop: Loop) -> None:
    waiter = loop.start_wait("--timeout", "20")
    (loop.data / "goals" / "g2.md").write_text("# goal two\n")
    code, state = loop.finish(waiter)
    assert (code, state["changed"]) == (0, ["goals"])
    assert "g2" in state["goals"]


@pytest.mark.parametrize("name", ["PLAYBOOK.md", "goals/g1.md"])
def test_an_edit_behind_a_symlinked_playbook_or_goal_wakes(
    profile: Profile, procs: Processes, mode: str, name: str
) -> None:
    """A PLAYBOOK.md or goal linked from elsewhere (a notes repo) changes where
    no watch on the data dir can see it: the link's target is watched too.

    The pulse beats once an hour here: a beat re-reads the hash, and one a
    second would hide a target that is not watched."""
    profile.env["LOOOP_INTERVAL"] = "3600"
    loop = seeded_loop(profile, procs, mode)
    target = loop.profile.root / "notes" / name.replace("/", "-")
    target.parent.mkdir(exist_ok=True)
    target.write_text("# kept in a notes repo\n")
    link = loop.data / name
    link.unlink()
    link.symlink_to(target)
    waiter = loop.start_wait("--timeout", "20")
    with open(target, "a") as fh:
        fh.write("- edited where the notes live\n")
    code, state = loop.finish(waiter)
    assert (code, state["changed"]) == (0, ["playbook" if name == "PLAYBOOK.md" else "goals"])


# --- 2. stays asleep through what does not -----------------------------------
def change_detail(loop: Loop) -> None:
    (loop.profile.root / "det").write_text("b")
    wait_for(lambda: loop.reading()["detail"] == {"d": "b"})


def answered_ask(loop: Loop) -> None:
    write_json(loop.data / "answers" / "q9.json", {"id": "q9", "answer": "yes", "ts": 2})
    write_json(loop.data / "asks" / "q9.json", {"id": "q9", "worker": "w", "prompt": "?", "ts": 1})
    loop.next_beat()


def edit_sensor_script(loop: Loop) -> None:
    script = loop.data / "sensors" / "signal.sh"
    script.write_text(script.read_text() + "# a comment changes the script, not its reading\n")
    loop.next_beat()


SLEEPERS: dict[str, Callable[[Loop], None]] = {
    "detail-only": change_detail,
    "answered-ask": answered_ask,
    "sensor-script-edit": edit_sensor_script,
    "identical-beats": lambda loop: None,
}


@pytest.mark.parametrize("case", SLEEPERS)
def test_stays_asleep(loop: Loop, case: str) -> None:
    waiter = loop.start_wait("--timeout", "20")
    SLEEPERS[case](loop)
    loop.next_beat()  # at least one more (identical) beat while asleep
    assert waiter.poll() is None, loop.finish(waiter)
    loop.edit_goal()
    code, state = loop.finish(waiter)
    assert (code, state["changed"]) == (0, ["goals"])
    assert state["asks"] == []


# --- 3. the pulse going away --------------------------------------------------
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["stopped", "killed"])
def test_pulse_down_while_waiting(loop: Loop, how: int) -> None:
    waiter = loop.start_wait("--timeout", "20")
    assert loop.pulse is not None
    loop.pulse.send_signal(how)
    loop.pulse.wait(timeout=10)
    gone = time.monotonic()
    code, state = loop.finish(waiter)
    woke_after = time.monotonic() - gone
    assert code == 3
    assert state["changed"] == ["pulse-down"]
    assert state["pulse_alive"] is False
    # The issue asks for "within a second"; the bound is loose so that a busy
    # machine cannot fail it, yet a wait that missed the exit and slept on to
    # its timeout (or a much slower lock probe) still does.
    assert woke_after < 5, f"woke {woke_after:.2f}s after the pulse exited"


def test_no_pulse_returns_at_once(profile: Profile, mode: str) -> None:
    out = profile.run("_", "wait", "--json", "--timeout", "20", timeout=30)
    assert out.returncode == 3, out.stderr
    state = json.loads(out.stdout)
    assert state["changed"] == ["pulse-down"]
    assert state["pulse_alive"] is False


def test_human_output_names_what_changed(profile: Profile, mode: str) -> None:
    out = profile.run("_", "wait", timeout=30)
    assert out.returncode == 3, out.stderr
    assert out.stdout.splitlines()[0].split() == ["changed", "pulse-down"]


# --- 4. timeout ------------------------------------------------------------------
def test_timeout_exits_124_and_prints_nothing(loop: Loop) -> None:
    # How close to its timeout it returns is bench/bench_wait.py's to measure.
    waiter = loop.start_wait("--timeout", "1")
    out, err = waiter.communicate(timeout=30)
    assert waiter.returncode == 124, err
    assert out == ""


# --- durations and the watches they sleep on ------------------------------------
@pytest.mark.parametrize("mode", ["events"], indirect=True)
def test_a_timeout_of_a_year_sleeps_like_any_other(loop: Loop) -> None:
    """Past what one kernel sleep can take (about 24.8 days in ms), the wait naps in turns.

    Events mode only: the polling fallback never sleeps long enough to overflow.
    """
    waiter = loop.start_wait("--timeout", "31536000")
    loop.edit_goal()
    code, state = loop.finish(waiter)
    assert (code, state["changed"]) == (0, ["goals"])


@pytest.mark.parametrize("seconds", ["nan", "inf", "1e999"])
@pytest.mark.parametrize(
    "argv", [("_", "wait", "--timeout"), ("reap", "--dry-run", "--ttl")], ids=["wait", "reap"]
)
def test_a_duration_that_is_not_finite_is_a_usage_error(
    profile: Profile, argv: tuple[str, ...], seconds: str
) -> None:
    out = profile.run(*argv, seconds, timeout=30)
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stdout == ""
    assert "finite" in out.stderr, out.stderr


def unshare_with_inotify_watches(limit: int) -> list[str] | None:
    """A command prefix running its command in a private user namespace that may
    hold at most ``limit`` inotify watches (the machine-wide limit is untouched);
    None where user namespaces or that per-namespace limit are not available."""
    unshare = shutil.which("unshare")
    if not sys.platform.startswith("linux") or unshare is None:
        return None
    wrapper = [
        unshare,
        "--user",
        "--map-root-user",
        "sh",
        "-c",
        f'echo {limit} > /proc/sys/user/max_inotify_watches && exec "$@"',
        "sh",
    ]
    probe = subprocess.run([*wrapper, "true"], capture_output=True, timeout=30)
    return wrapper if probe.returncode == 0 else None


@pytest.mark.parametrize("mode", ["events"], indirect=True)
@pytest.mark.parametrize("case", ["goal-edit", "new-ask"])
def test_watches_that_cannot_be_set_up_are_polled(loop: Loop, case: str) -> None:
    """With no inotify watch to spare past the data dir's own, goals/, asks/ and
    answers/ cannot be watched (ENOSPC): the wait must still see them change."""
    wrapper = unshare_with_inotify_watches(1)
    if wrapper is None:
        pytest.skip("needs unshare and user namespaces with their own inotify limits")
    for name in ("asks", "answers"):
        (loop.data / name).mkdir(exist_ok=True)
    waiter = loop.start_wait("--timeout", "20", wrapper=wrapper)
    assert loop.backend == "inotify+poll", loop.backend
    change, expected = WAKERS[case]
    change(loop)
    code, state = loop.finish(waiter)
    assert (code, state["changed"]) == (0, expected)
    assert state["pulse_alive"] is True


# --- 6. no busy loop ---------------------------------------------------------------
def cpu_seconds_so_far(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc for CPU times")
@pytest.mark.parametrize("mode", ["events"], indirect=True)
def test_a_blocked_wait_costs_almost_no_cpu(loop: Loop) -> None:
    """4 s asleep (through four beats) costs < 0.1 s CPU, start-up not counted.

    The bound is for the event-driven wait (issue item 6); the forced polling
    fallback wakes ten times a second by design and is not held to it.
    """
    waiter = loop.start_wait("--timeout", "4")
    armed = cpu_seconds_so_far(waiter.pid)  # interpreter start-up and arming
    _, status, usage = os.wait4(waiter.pid, 0)
    waiter.returncode = os.waitstatus_to_exitcode(status)
    assert waiter.returncode == 124
    total = usage.ru_utime + usage.ru_stime
    blocked = total - armed
    assert blocked < 0.1, f"{blocked:.3f}s CPU while blocked ({total:.3f}s in all)"


# --- 5. nothing lost between two waits (--since) ---------------------------------
def cursor_after(loop: Loop, change: Callable[[Loop], None]) -> str:
    """The cursor of a wait woken by ``change``: the agent's last look at the world."""
    waiter = loop.start_wait("--timeout", "20")
    change(loop)
    code, state = loop.finish(waiter)
    assert code == 0, state
    return str(state["cursor"])


def new_goal(loop: Loop) -> None:
    (loop.data / "goals" / "g2.md").write_text("# goal two\n")


def second_ask(loop: Loop) -> None:
    write_json(loop.data / "asks" / "q2.json", {"id": "q2", "worker": "w", "prompt": "!", "ts": 2})


def test_a_goal_written_between_two_waits_is_reported_at_once(loop: Loop) -> None:
    cursor = cursor_after(loop, Loop.edit_goal)
    new_goal(loop)  # while the agent is acting: no wait is running
    code, state = loop.finish(loop.start_wait("--since", cursor, "--timeout", "20"))
    assert (code, state["changed"]) == (0, ["goals"])
    assert "g2" in state["goals"]
    assert state["cursor"] != cursor


def test_a_change_after_state_is_reported_by_a_wait_since_its_cursor(loop: Loop) -> None:
    cursor = loop.profile.state()["cursor"]
    edit_playbook(loop)
    code, state = loop.finish(loop.start_wait("--since", cursor, "--timeout", "20"))
    assert (code, state["changed"]) == (0, ["playbook"])


def test_an_ask_pending_at_the_cursor_does_not_wake_a_wait_since_it(loop: Loop) -> None:
    cursor = cursor_after(loop, new_ask)
    waiter = loop.start_wait("--since", cursor, "--timeout", "2")
    out, err = waiter.communicate(timeout=30)
    assert (waiter.returncode, out) == (124, ""), err


def test_a_new_ask_wakes_a_wait_since_a_cursor_that_had_another(loop: Loop) -> None:
    cursor = cursor_after(loop, new_ask)
    waiter = loop.start_wait("--since", cursor, "--timeout", "20")
    loop.next_beat()  # an identical beat, and the old ask still pending: asleep
    assert waiter.poll() is None, loop.finish(waiter)
    second_ask(loop)
    code, state = loop.finish(waiter)
    assert (code, state["changed"]) == (0, ["asks"])
    assert sorted(ask["id"] for ask in state["asks"]) == ["q1", "q2"]


def test_a_new_ask_raised_between_two_waits_is_reported_at_once(loop: Loop) -> None:
    cursor = cursor_after(loop, new_ask)
    second_ask(loop)
    code, state = loop.finish(loop.start_wait("--since", cursor, "--timeout", "20"))
    assert (code, state["changed"]) == (0, ["asks"])


def test_an_answered_ask_does_not_wake_a_wait_since_a_cursor_that_had_it(loop: Loop) -> None:
    cursor = cursor_after(loop, new_ask)
    waiter = loop.start_wait("--since", cursor, "--timeout", "20")
    write_json(loop.data / "answers" / "q1.json", {"id": "q1", "answer": "yes", "ts": 3})
    loop.next_beat()
    assert waiter.poll() is None, loop.finish(waiter)
    loop.edit_goal()
    code, state = loop.finish(waiter)
    assert (code, state["changed"], state["asks"]) == (0, ["goals"], [])


@pytest.mark.parametrize("while_blocked", [False, True], ids=["before", "while-blocked"])
def test_a_wait_since_a_cursor_exits_3_when_the_pulse_stops(
    loop: Loop, while_blocked: bool
) -> None:
    cursor = loop.profile.state()["cursor"]
    assert loop.pulse is not None
    if while_blocked:
        waiter = loop.start_wait("--since", cursor, "--timeout", "20")
    loop.pulse.send_signal(signal.SIGTERM)
    loop.pulse.wait(timeout=10)
    if not while_blocked:
        waiter = loop.start_wait("--since", cursor, "--timeout", "20")
    code, state = loop.finish(waiter)
    assert (code, state["changed"], state["pulse_alive"]) == (3, ["pulse-down"], False)


def _encoded(payload: Any) -> str:
    import base64

    raw = json.dumps(payload).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


BAD_CURSORS = {
    "empty": "",
    "not-base64": "not a cursor!",
    "not-json": _encoded("x")[:-2] + "@@",
    "not-a-list": _encoded({"v": 1}),
    "short": _encoded([1, "a", "b"]),
    "ids-not-text": _encoded([1, "a", "b", "c", [1], []]),
    "other-format": _encoded([2, "a", "b", "c", [], []]),
}


@pytest.mark.parametrize("case", BAD_CURSORS)
def test_a_malformed_cursor_is_a_usage_error(profile: Profile, case: str) -> None:
    out = profile.run("_", "wait", "--json", "--since", BAD_CURSORS[case], "--timeout", "5")
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stdout == ""
    assert len(out.stderr.splitlines()) == 1 and out.stderr.startswith("looop: "), out.stderr


def test_every_state_and_wait_output_carries_a_cursor(profile: Profile) -> None:
    state = profile.state()
    human = profile.run("_", "state").stdout
    waited = profile.run("_", "wait", "--json", "--timeout", "5")
    assert waited.returncode == 3, waited.stderr
    assert f"cursor      {state['cursor']}" in human.splitlines()
    assert json.loads(waited.stdout)["cursor"] == state["cursor"]
