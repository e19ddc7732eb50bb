"""Any name the file system allows costs at most its own entry (issue 9, acceptance 4).

Names that are not valid UTF-8, names as long as the file system allows,
dot-files and the leftovers editors and operating systems leave beside a file,
each class in several generated instances, in every directory looop lists.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from conftest import Profile

NAME_MAX = 255

# Byte strings no UTF-8 decoder accepts: a lone continuation byte, a Latin-1
# letter, an encoded surrogate, a truncated sequence, an overlong encoding.
NOT_UTF8 = [b"bad\xff", b"caf\xe9", b"\xed\xa0\x80x", b"trunc\xe2\x82", b"\xc0\xafslash"]


def _long_stems(suffix: bytes) -> list[bytes]:
    """Stems that make names as long as allowed, in ASCII and in multi-byte text."""
    room = NAME_MAX - len(suffix)
    return [
        b"a" * room,
        "é".encode() * (room // 2) + b"e" * (room % 2),
        b"b" * (room - 2),
        # Exactly as long as a snapshot name may be: `sensor-<stem>.json` is 255 bytes.
        b"c" * (NAME_MAX - len(b"sensor-") - len(b".json")),
    ]


def _dot_names(suffix: bytes) -> list[bytes]:
    return [b".x" + suffix, b".hidden" + suffix, b"._x" + suffix, b"." + suffix.lstrip(b".")]


def _leftovers(suffix: bytes) -> list[bytes]:
    return [
        b"x" + suffix + b"~",
        b".x" + suffix + b".swp",
        b"x" + suffix + b".swp",
        b"#x" + suffix + b"#",
        b"x" + suffix + b".orig",
        b"x" + suffix + b".rej",
        b"x" + suffix + b".bak",
        b"4913",
        b".DS_Store",
        b"Thumbs.db",
    ]


def _create(directory: Path, name: bytes, body: bytes, mode: int = 0o644) -> None:
    path = os.path.join(os.fsencode(directory), name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(body)
    os.chmod(path, mode)


def _text_all_the_way(value: Any) -> None:
    """Valid JSON whose every string is real text (no lone surrogates)."""
    json.dumps(value, ensure_ascii=False).encode("utf-8")


def _world_hashes(profile: Profile, beats: int = 3) -> list[dict[str, Any]]:
    records = []
    for _ in range(beats):
        out = profile.run("sense", "--json")
        assert out.returncode == 0, (out.stdout, out.stderr)
        assert "Traceback" not in out.stderr
        record = json.loads(out.stdout)
        _text_all_the_way(record)
        records.append(record)
    return records


def _agent_reads(profile: Profile) -> dict[str, Any]:
    state = profile.run("_", "state", "--json")
    assert state.returncode == 0, state.stderr
    parsed = json.loads(state.stdout)
    _text_all_the_way(parsed)
    # No pulse runs, so the wait answers at once ("pulse-down"), with the whole state.
    waited = profile.run("_", "wait", "--json", "--timeout", "1")
    assert waited.returncode == 3, waited.stderr
    woke = json.loads(waited.stdout)
    _text_all_the_way(woke)
    assert woke["changed"] == ["pulse-down"]
    human = profile.run("_", "state")
    assert human.returncode == 0, human.stderr
    return dict(parsed)


def test_odd_names_in_sensors_and_goals_cost_only_their_own_entry(profile: Profile) -> None:
    beats = profile.root / "beats"
    count = f"$(wc -l < {beats})"
    profile.sensor(
        "good",
        f'echo x >> {beats}\nprintf \'{{"signal": "fine", "detail": {{"n": %d}}}}\' "{count}"',
    )
    sensors = profile.data / "sensors"
    goals = profile.data / "goals"
    goals.mkdir(parents=True, exist_ok=True)
    ran = profile.root / "ran"
    ran.mkdir()

    runnable = b'#!/bin/sh\necho \'{"signal": "odd"}\'\n'
    never = f'#!/bin/sh\ntouch {ran}/$$\necho \'{{"signal": "ran"}}\'\n'.encode()
    odd_sensors = [stem + b".sh" for stem in NOT_UTF8 + _long_stems(b".sh")]
    for name in odd_sensors:
        _create(sensors, name, runnable, 0o755)
    for name in _dot_names(b".sh") + _leftovers(b".sh"):
        _create(sensors, name, never, 0o755)
    for name in [stem + b".md" for stem in NOT_UTF8 + _long_stems(b".md")]:
        _create(goals, name, b"# an odd goal\n")
    for name in _dot_names(b".md") + _leftovers(b".md"):
        _create(goals, name, b"# not a goal\n")

    records = _world_hashes(profile)

    assert len({r["world_hash"] for r in records}) == 1, [r["world_hash"] for r in records]
    assert profile.snapshot("sensor-good") == {"signal": "fine", "detail": {"n": 3}}
    assert os.listdir(ran) == [], "a dot-file or a leftover was run as a sensor"

    published = os.listdir(os.fsencode(profile.data / "snapshots"))
    for name in published:
        assert len(name) <= NAME_MAX
        name.decode("utf-8")  # every snapshot name is text
    readings = [n for n in published if n.startswith(b"sensor-") and n.endswith(b".json")]
    # One reading each for the good sensor, the starter and every odd-but-real name.
    assert len(readings) == 2 + len(odd_sensors), sorted(readings)
    exact = b"sensor-" + b"c" * (NAME_MAX - len(b"sensor-.json")) + b".json"
    assert exact in readings, "a name that fits is kept as it is"

    state = _agent_reads(profile)
    assert state["world_hash"] == records[-1]["world_hash"]
    odd_readings = [v for k, v in state["snapshots"].items() if k not in ("sensor-good",)]
    assert sum(1 for v in odd_readings if v == {"signal": "odd"}) == len(odd_sensors)
    # Long goals are goals (their names are text); the others are not.
    long_goals = {os.fsdecode(stem) for stem in _long_stems(b".md")}
    assert set(state["goals"]) == {"setup"} | long_goals
    undecodable = [p for p in state["problems"] if p["path"].startswith("goals/")]
    assert len(undecodable) == len(NOT_UTF8), state["problems"]
    assert all("UTF-8" in p["why"] for p in undecodable)


def test_odd_names_in_the_mailbox_claims_and_sessions_crash_no_reader(profile: Profile) -> None:
    profile.sensor("good", 'echo \'{"signal": "fine"}\'')
    assert profile.run("sense").returncode == 0
    names = [stem + b".json" for stem in NOT_UTF8 + _long_stems(b".json")]
    names += _dot_names(b".json") + _leftovers(b".json")
    for directory in ("asks", "answers", "claims"):
        for name in names:
            _create(profile.data / directory, name, b'{"session": "s", "answer": "a"}\n')
    for stem in NOT_UTF8 + _long_stems(b""):
        os.mkdir(os.path.join(os.fsencode(profile.data / "sessions"), stem))

    records = _world_hashes(profile)

    assert len({r["world_hash"] for r in records}) == 1
    state = _agent_reads(profile)
    assert state["snapshots"]["sensor-good"] == {"signal": "fine"}
    assert len(state["workers"]) == len(NOT_UTF8) + len(_long_stems(b""))
