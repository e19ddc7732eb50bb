"""Hostile files (issue 8, acceptance 3; SPEC §9): nothing hangs, nothing eats memory.

A FIFO, a character device (like ``/dev/zero``), a directory and a 100 MB
file are put where looop expects a small file: a claim, an ask, an answer,
the journal, a goal, the playbook, the config, the lock and the beat record.
For each, every reading command returns within seconds using no more than a
few MiB over a clean run, says what it found (``_ state``'s ``problems``,
the config's exit 78, ``status``), and a running pulse keeps beating and
stops on SIGTERM.

Commands run at once, each measured by ``wait4`` (its own peak RSS), under a
bounded address space so a regression fails the test instead of the machine.
The pulse part places every entry of one kind at once: one pulse per kind.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import LOOOP, Processes, Profile, wait_for

from looop.paths import Paths

# A device node needs root (mknod): that kind is root-only.
KINDS = (
    "fifo",
    pytest.param("device", marks=pytest.mark.root("makes a device node")),
    "directory",
    "big",
)
DATA_ENTRIES = {
    "claim": "claims/x.json",
    "ask": "asks/x.json",
    "answer": "answers/x.json",
    "journal": "journal.md",
    "goal": "goals/x.md",
    "playbook": "PLAYBOOK.md",
}
# Entries that can share a profile share one (an answer would answer the ask).
GROUPS = (
    ("claim", "ask", "journal", "goal", "playbook", "beat"),
    ("answer",),
    ("config",),
    ("lock",),
)
# What a reader says about each kind.
WORDS = {
    "fifo": ("FIFO",),
    "device": ("device",),
    "directory": ("directory",),
    "big": ("larger than",),
}
COMMANDS = {
    "status": ("status",),
    "state": ("_", "state", "--json"),
    "wait": ("_", "wait", "--json", "--timeout", "1"),
    "sense": ("sense",),
    "config": ("config", "show"),
}
RETURNS_WITHIN = 5.0  # seconds: "a few", for every command
EXTRA_RSS = 8 << 20  # bytes a command may use over its clean run
ADDRESS_SPACE = 2 << 30  # a child reading /dev/zero whole fails at this, not at the machine's end
BIG = 100 << 20

_baseline: dict[str, int] = {}


def _paths(profile: Profile) -> Paths:
    return Paths(Path(os.path.realpath(profile.data)), profile.config, profile.runtime, False)


def _where(profile: Profile, entry: str) -> Path:
    paths = _paths(profile)
    if entry == "config":
        return paths.config_file
    if entry == "lock":
        return Path(paths.lock_file)
    if entry == "beat":
        return Path(paths.beat_file)
    return paths.data_dir / DATA_ENTRIES[entry]


def _place(path: Path, kind: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path, 0o600)
    elif kind == "device":
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 5))
    elif kind == "directory":
        path.mkdir()
    else:
        with open(path, "wb") as fh:
            fh.truncate(BIG)


def _fresh(profile: Profile) -> None:
    """A profile as a first run leaves it, with the runtime dir in place."""
    for name in ("goals", "claims", "asks", "answers", "sensors"):
        (profile.data / name).mkdir(parents=True, exist_ok=True)
    profile.runtime.mkdir(mode=0o700, exist_ok=True)


def _bounded() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


@dataclass
class Ran:
    code: int
    stdout: str
    stderr: str
    peak_rss: int  # bytes


def _run_all(profile: Profile, procs: Processes) -> tuple[dict[str, Ran], list[str]]:
    """Every command of COMMANDS at once; (what returned, the names that did not in time)."""
    with contextlib.ExitStack() as files:
        return _run_all_into(profile, procs, files)


def _run_all_into(
    profile: Profile, procs: Processes, files: contextlib.ExitStack
) -> tuple[dict[str, Ran], list[str]]:
    started = {}
    for name, args in COMMANDS.items():
        out = files.enter_context(tempfile.TemporaryFile())  # noqa: SIM115 (closed by the stack)
        err = files.enter_context(tempfile.TemporaryFile())  # noqa: SIM115
        proc = subprocess.Popen(
            [LOOOP, *args],
            env=profile.env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            preexec_fn=_bounded,
        )
        started[name] = (procs.add(proc), out, err)
    done: dict[str, Ran] = {}
    deadline = time.monotonic() + RETURNS_WITHIN
    try:
        while len(done) < len(started) and time.monotonic() < deadline:
            for name, (proc, out, err) in started.items():
                if name in done:
                    continue
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if not pid:
                    continue
                proc.returncode = os.waitstatus_to_exitcode(status)
                out.seek(0)
                err.seek(0)
                done[name] = Ran(
                    proc.returncode,
                    out.read().decode(errors="replace"),
                    err.read().decode(errors="replace"),
                    usage.ru_maxrss * 1024,
                )
            time.sleep(0.005)
    finally:
        for proc, _, _ in started.values():
            if proc.returncode is None:
                proc.kill()
                proc.wait()
    return done, [name for name in started if name not in done]


def _clean_rss(tmp_path: Path, profile: Profile, procs: Processes) -> dict[str, int]:
    """Each command's peak RSS on a clean profile of the same shape, measured once."""
    if not _baseline:
        clean = Profile(
            tmp_path / "clean",
            tmp_path / "clean" / "data",
            tmp_path / "clean" / "run",
            dict(
                profile.env,
                LOOOP_DATA_DIR=str(tmp_path / "clean" / "data"),
                LOOOP_RUNTIME_DIR=str(tmp_path / "clean" / "run"),
            ),
        )
        _fresh(clean)
        done, hung = _run_all(clean, procs)
        assert not hung, f"a clean profile hung {hung}"
        _baseline.update({name: ran.peak_rss for name, ran in done.items()})
    return _baseline


def _says(why: str, kind: str) -> bool:
    return any(word in why for word in WORDS[kind])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("group", GROUPS, ids="+".join)
def test_a_hostile_entry_hangs_no_command_costs_no_memory_and_is_reported(
    profile: Profile, procs: Processes, tmp_path: Path, group: tuple[str, ...], kind: str
) -> None:
    baseline = _clean_rss(tmp_path, profile, procs)
    _fresh(profile)
    for entry in group:
        _place(_where(profile, entry), kind)

    done, hung = _run_all(profile, procs)

    assert not hung, f"{hung} did not return within {RETURNS_WITHIN}s with {kind} at {group}"
    for name, ran in done.items():
        assert "Traceback" not in ran.stderr, (name, ran.stderr)
        extra = ran.peak_rss - baseline[name]
        assert extra <= EXTRA_RSS, f"{name} used {extra >> 20} MiB more with {kind} at {group}"
    if group == ("config",):
        for name in ("sense", "config"):
            assert done[name].code == 78, (name, done[name].stderr)
            assert str(_where(profile, "config")) in done[name].stderr, (name, done[name].stderr)
        return
    if group == ("lock",):
        if kind != "big":  # a big lock file is still a lock: it is locked, never read
            said = done["status"].stdout + done["status"].stderr
            assert str(_where(profile, "lock")) in said and _says(said, kind), said
        return
    assert done["state"].code == 0, done["state"].stderr
    assert done["wait"].code in (0, 3), done["wait"].stderr
    state = json.loads(done["state"].stdout)
    problems = {p["path"]: p["why"] for p in state["problems"]}
    # The beat record is read only while a pulse runs (see the pulse test); a
    # big journal is a journal, read from its end and never reported.
    unread = {"beat"} | ({"journal"} if kind == "big" else set())
    expected = sorted(DATA_ENTRIES[entry] for entry in group if entry not in unread)
    assert sorted(problems) == expected, state["problems"]
    assert all(_says(why, kind) for why in problems.values()), problems
    if "journal" in group:
        assert state["journal_tail"] == []
    if "ask" in group:
        # Unreadable is still pending: somebody asked.
        assert [a["id"] for a in state["asks"]] == ["x"]
        assert _says(state["asks"][0]["error"], kind)
        assert "asks" in json.loads(done["wait"].stdout)["changed"]
    if "goal" in group:
        assert ("x" in state["goals"]) is (kind != "directory")


def _beats(counter: Path) -> int:
    try:
        return counter.read_text().count("\n")
    except FileNotFoundError:
        return 0


@pytest.mark.parametrize("kind", KINDS)
def test_a_pulse_keeps_beating_beside_hostile_entries_and_stops_on_sigterm(
    profile: Profile, procs: Processes, kind: str
) -> None:
    _fresh(profile)
    counter = profile.root / "beats"
    profile.sensor("count", f'echo beat >> "{counter}"; echo "{{}}"')
    for entry in (*DATA_ENTRIES, "beat"):
        _place(_where(profile, entry), kind)
    env = dict(profile.env, LOOOP_INTERVAL="1")
    pulse = procs.add(profile.popen("pulse", env=env, preexec_fn=_bounded))

    wait_for(lambda: _beats(counter) >= 2 or pulse.poll() is not None)
    assert pulse.poll() is None, pulse.communicate()[1]
    waiting = procs.add(profile.popen("_", "wait", "--json", "--timeout", "1"))
    status = profile.run("status", "--json", timeout=RETURNS_WITHIN)
    report = json.loads(status.stdout)
    assert report["running"] is True
    if kind != "big":  # a big regular file is simply replaced by the next record
        beat = str(_where(profile, "beat"))
        assert report["error"] and beat in report["error"] and _says(report["error"], kind)
    state = json.loads(profile.run("_", "state", "--json", timeout=RETURNS_WITHIN).stdout)
    assert state["pulse_alive"] is True
    reported = {p["path"] for p in state["problems"]}
    # The ask is pending (answers/x.json is no answer: reported), so read too;
    # a big journal is a journal.
    unread = {"journal"} if kind == "big" else set()
    assert reported == {path for entry, path in DATA_ENTRIES.items() if entry not in unread}
    before = _beats(counter)
    wait_for(lambda: _beats(counter) > before)
    _, err = waiting.communicate(timeout=RETURNS_WITHIN)
    assert waiting.returncode in (0, 124), err

    pulse.send_signal(signal.SIGTERM)
    _, err = pulse.communicate(timeout=10)
    assert pulse.returncode == 0, err
    assert "Traceback" not in err


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("entry", ("config", "lock"))
def test_a_pulse_beside_a_hostile_config_or_lock_file_says_so_instead_of_hanging(
    profile: Profile, procs: Processes, entry: str, kind: str
) -> None:
    _fresh(profile)
    counter = profile.root / "beats"
    profile.sensor("count", f'echo beat >> "{counter}"; echo "{{}}"')
    where = _where(profile, entry)
    _place(where, kind)
    env = dict(profile.env, LOOOP_INTERVAL="1")
    pulse = procs.add(profile.popen("pulse", env=env, preexec_fn=_bounded))

    wait_for(lambda: pulse.poll() is not None or _beats(counter) >= 2, timeout=RETURNS_WITHIN)
    if entry == "config" or pulse.poll() is not None:
        _, err = pulse.communicate(timeout=RETURNS_WITHIN)
        assert pulse.returncode == (78 if entry == "config" else 1), err
        assert str(where) in err and "Traceback" not in err, err
        return
    # A lock it could take anyway: then it beats, and stops on SIGTERM.
    pulse.send_signal(signal.SIGTERM)
    _, err = pulse.communicate(timeout=10)
    assert pulse.returncode == 0, err
