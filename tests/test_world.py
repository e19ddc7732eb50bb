"""The world hash (SPEC §4) and the atomic publishing of snapshot generations (§3)."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Profile, tree

from looop import fs
from looop import paths as looop_paths
from looop.data import goals, layout
from looop.pulse import worldhash


def _paths(profile: Profile) -> looop_paths.Paths:
    return looop_paths.Paths(profile.data, profile.config, profile.runtime, False)


def _hash(profile: Profile) -> str:
    return worldhash.world_hash(_paths(profile))


def _value_sensor(profile: Profile) -> Path:
    """A sensor that prints the JSON held in ``value.json`` (so tests steer it)."""
    (profile.root / "value.json").write_text('{"signal": {"a": 1, "b": 2}, "detail": {"n": 1}}')
    return profile.sensor("value", f"cat {profile.root / 'value.json'}\n# comment one")


def test_world_hash_is_stable_and_moves_only_on_what_matters(profile: Profile) -> None:
    script = _value_sensor(profile)
    assert profile.run("sense").returncode == 0
    first = _hash(profile)
    assert first == _hash(profile) == profile.state()["world_hash"]

    # A detail-only change, a key reorder, a sensor script's comment: no move.
    (profile.root / "value.json").write_text('{"detail": {"n": 2}, "signal": {"b": 2, "a": 1}}')
    script.write_text(script.read_text().replace("comment one", "comment two"))
    assert profile.run("sense").returncode == 0
    assert _hash(profile) == first

    # The signal changes: it moves.
    (profile.root / "value.json").write_text('{"signal": {"a": 1, "b": 3}}')
    assert profile.run("sense").returncode == 0
    moved = _hash(profile)
    assert moved != first

    # A goal edit and a PLAYBOOK edit move it, with no beat at all.
    (profile.data / "goals" / "ship.md").write_text("# ship it\n")
    after_goal = _hash(profile)
    assert after_goal != moved
    (profile.data / "PLAYBOOK.md").write_text("# new judgment\n")
    assert _hash(profile) != after_goal


def test_readings_without_a_signal_key_count_whole() -> None:
    assert worldhash.wake_signal({"x": 1}) == {"x": 1}
    assert worldhash.wake_signal([1, 2]) == [1, 2]
    assert worldhash.wake_signal({"signal": 5, "detail": 6}) == 5
    assert worldhash.canonical({"b": 1, "a": 2}) == worldhash.canonical({"a": 2, "b": 1})


def test_readers_never_see_a_half_published_world(profile: Profile) -> None:
    for i in range(6):
        profile.sensor(f"s{i}", f"echo '{{\"signal\": {i}}}'")
    assert profile.run("sense").returncode == 0
    expected = _hash(profile)
    seen: set[str] = set()
    reads = 0
    stop = threading.Event()

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            seen.add(_hash(profile))
            reads += 1

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for _ in range(20):
            assert profile.run("sense").returncode == 0
    finally:
        stop.set()
        thread.join()
    assert reads > 20
    assert seen == {expected}


@contextlib.contextmanager
def _small_tmpfs(where: Path, size: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(directory: Path) -> None:
    with open(directory / "filler", "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass


@pytest.mark.root("mounts a small tmpfs")
@pytest.mark.parametrize("failure", ["disk-full", "read-only"])
def test_a_generation_that_cannot_be_written_leaves_the_previous_one(
    profile: Profile, failure: str
) -> None:
    with _small_tmpfs(profile.data, "2m"):
        _value_sensor(profile)
        assert profile.run("sense").returncode == 0
        before = profile.state()
        assert before["snapshots"]["sensor-value"]["signal"] == {"a": 1, "b": 2}

        (profile.root / "value.json").write_text('{"signal": {"a": 9}}')
        if failure == "disk-full":
            _fill(profile.data)
        else:
            subprocess.run(["mount", "-o", "remount,ro", str(profile.data)], check=True)
        out = profile.run("sense")
        assert out.returncode != 0
        assert "not published" in out.stdout
        after = profile.state()
        assert after["snapshots"] == before["snapshots"]
        assert after["world_hash"] == before["world_hash"]
        leftovers = [p for p in (profile.data / ".snapshots").iterdir()]
        assert len(leftovers) == 1, f"partial generation left behind: {leftovers}"


def test_a_directory_named_like_a_goal_is_no_goal_for_the_hash_or_the_state(
    profile: Profile,
) -> None:
    assert profile.run("sense").returncode == 0
    before = _hash(profile)
    (profile.data / "goals" / "x.md").mkdir()
    (profile.data / "goals" / ".draft.md").write_text("not yet a goal\n")
    assert _hash(profile) == before
    state = profile.state()
    assert state["goals"] == ["setup"]
    assert state["problems"] == [{"path": "goals/x.md", "why": "is a directory, not a goal file"}]
    assert [g.id for g in goals.listing(_paths(profile))] == ["setup"]


def test_a_goal_that_cannot_be_read_is_still_a_goal_and_is_reported(profile: Profile) -> None:
    assert profile.run("sense").returncode == 0
    before = _hash(profile)
    os.mkfifo(profile.data / "goals" / "x.md")
    assert _hash(profile) != before
    state = profile.state()
    assert state["goals"] == ["setup", "x"]
    assert state["problems"] == [{"path": "goals/x.md", "why": "is a FIFO, not a regular file"}]


def test_a_playbook_and_a_goal_linked_into_a_notes_repo_are_followed(profile: Profile) -> None:
    assert profile.run("sense").returncode == 0
    notes = profile.root / "notes"
    notes.mkdir()
    (notes / "PLAYBOOK.md").write_text("# mine\n")
    (notes / "g.md").write_text("# a goal\n")
    (profile.data / "PLAYBOOK.md").unlink()
    (profile.data / "PLAYBOOK.md").symlink_to(notes / "PLAYBOOK.md")
    (profile.data / "goals" / "g.md").symlink_to(notes / "g.md")
    first = _hash(profile)
    (notes / "PLAYBOOK.md").write_text("# mine, edited\n")
    second = _hash(profile)
    (notes / "g.md").write_text("# a goal, edited\n")
    assert len({first, second, _hash(profile)}) == 3
    assert profile.state()["problems"] == []


def test_a_first_start_that_fails_half_way_leaves_no_starter_empty_and_marks_nothing_seeded(
    profile: Profile, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _paths(profile)
    real = fs.write_whole
    calls: list[Path] = []

    def full_disk(path: str | os.PathLike[str], data: bytes, **kw: Any) -> Path:
        calls.append(Path(path))
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, data, **kw)

    monkeypatch.setattr(fs, "write_whole", full_disk)
    with pytest.raises(OSError, match="No space left"):
        layout.ensure_layout(paths)
    assert not (profile.data / layout.MARKER).exists()
    for name in layout.STARTERS:
        target = profile.data / name
        assert not target.exists() or target.read_text() == layout.STARTERS[name][0]
    assert sorted(p.name for p in profile.data.rglob(".*.tmp")) == []

    monkeypatch.setattr(fs, "write_whole", real)
    (profile.data / "sensors" / "today.sh").write_text("#!/bin/sh\necho '{}'  # mine\n")
    written = layout.ensure_layout(paths)
    assert (profile.data / layout.MARKER).exists()
    assert profile.data / "sensors" / "today.sh" not in written
    assert "# mine" in (profile.data / "sensors" / "today.sh").read_text()
    for name, (text, mode) in layout.STARTERS.items():
        if name != "sensors/today.sh":
            assert (profile.data / name).read_text() == text
            assert stat.S_IMODE((profile.data / name).stat().st_mode) == mode


def test_a_fifo_inside_the_published_generation_hangs_neither_a_read_nor_the_next_beat(
    profile: Profile,
) -> None:
    assert profile.run("sense").returncode == 0
    before = _hash(profile)
    gen = Path(os.path.realpath(profile.data / "snapshots"))
    (gen / "sensor-today.json").unlink()
    os.mkfifo(gen / "sensor-today.json")
    assert _hash(profile) != before  # the reading is gone from the world, not waited on
    assert "sensor-today" not in profile.state()["snapshots"]
    assert profile.run("sense", timeout=10).returncode == 0
    assert _hash(profile) == before


def _unrelated(where: Path) -> dict[str, str]:
    """A directory of the user's files, some named like looop's own generations."""
    where.mkdir(parents=True)
    (where / "thesis.tex").write_text("chapter one\n")
    for looop_like in ("gen-1-2", "legacy-3", "trash-gen-4-5"):
        (where / looop_like).mkdir()
        (where / looop_like / "keep.txt").write_text(f"inside {looop_like}\n")
    (where / "trash-notes").write_text("mine\n")
    (where / "photos").mkdir()
    (where / "photos" / "a.jpg").write_bytes(b"\xff\xd8\xff")
    return tree(where)


def _sense_three_times(profile: Profile) -> list[subprocess.CompletedProcess[str]]:
    outs = [profile.run("sense") for _ in range(3)]
    for out in outs:
        assert "Traceback" not in out.stderr
    return outs


def test_a_symlinked_dot_snapshots_is_moved_aside_and_its_target_left_whole(
    profile: Profile,
) -> None:
    profile.sensor("one", "echo '{\"signal\": 1}'")
    profile.data.mkdir(parents=True, exist_ok=True)
    victim = profile.root / "victim"
    before = _unrelated(victim)
    (profile.data / ".snapshots").symlink_to(victim)

    outs = _sense_three_times(profile)

    assert tree(victim) == before
    assert all(out.returncode == 0 for out in outs), outs
    # Repaired: a real directory of looop's own, the user's link kept aside.
    gens = profile.data / ".snapshots"
    assert gens.is_dir() and not gens.is_symlink()
    aside = [p for p in profile.data.iterdir() if p.name.startswith(".snapshots.not-looop-")]
    assert len(aside) == 1 and os.readlink(aside[0]) == str(victim)
    assert "not-looop" in outs[0].stderr
    assert profile.snapshot("sensor-one")["signal"] == 1


def test_a_dot_snapshots_that_is_a_plain_file_is_moved_aside_not_deleted(
    profile: Profile,
) -> None:
    profile.sensor("one", "echo '{\"signal\": 1}'")
    (profile.data / ".snapshots").write_text("my notes\n")
    outs = _sense_three_times(profile)
    assert all(out.returncode == 0 for out in outs), outs
    aside = [p for p in profile.data.iterdir() if p.name.startswith(".snapshots.not-looop-")]
    assert [p.read_text() for p in aside] == ["my notes\n"]
    assert "not-looop" in outs[0].stderr
    assert profile.snapshot("sensor-one")["signal"] == 1


def test_a_snapshots_name_holding_a_plain_file_is_moved_aside_not_replaced(
    profile: Profile,
) -> None:
    profile.sensor("one", "echo '{\"signal\": 1}'")
    (profile.data / "snapshots").write_text("not a link\n")
    outs = _sense_three_times(profile)
    assert all(out.returncode == 0 for out in outs), outs
    aside = [p for p in profile.data.iterdir() if p.name.startswith("snapshots.not-looop-")]
    assert [p.read_text() for p in aside] == ["not a link\n"]
    assert (profile.data / "snapshots").is_symlink()
    assert profile.snapshot("sensor-one")["signal"] == 1


def test_pruning_removes_only_looops_own_generations_and_leftovers(profile: Profile) -> None:
    profile.sensor("one", "echo '{\"signal\": 1}'")
    assert profile.run("sense").returncode == 0
    gens = profile.data / ".snapshots"
    victim = profile.root / "victim"
    victim_before = _unrelated(victim)
    # The user's entries inside a real .snapshots/ (names looop never makes).
    (gens / "notes.txt").write_text("mine\n")
    (gens / "mine").mkdir()
    (gens / "mine" / "deep.txt").write_text("deep\n")
    (gens / "gen-not-a-number").mkdir()
    (gens / "trash-mine").write_text("mine too\n")
    (gens / "elsewhere").symlink_to(victim)
    (gens / "gen-5-5-extra").symlink_to(victim / "gen-1-2")
    ours_now = re.compile(r"gen-\d+-\d+(/|$)")
    theirs = {n: v for n, v in tree(gens).items() if not ours_now.match(n)}
    # Leftovers of looop's own, of every type: a killed prune, a killed swap.
    (gens / "trash-gen-1-1").write_text("half-removed\n")
    (gens / "trash-gen-2-2").symlink_to(victim)
    (gens / "trash-gen-3-3").mkdir()
    (gens / "trash-gen-3-3" / "sensor-x.json").write_text("{}\n")
    (gens / "trash-legacy-4").symlink_to(victim / "photos")
    (gens / "gen-6-6").symlink_to(victim / "legacy-3")
    (gens / "legacy-7").mkdir()
    (profile.data / ".snapshots.link-999999").symlink_to(".snapshots/gen-1-1")

    _sense_three_times(profile)

    after = tree(gens)
    for name, value in theirs.items():
        assert after.get(name) == value, name
    assert tree(victim) == victim_before
    ours = sorted(p.name for p in gens.iterdir() if p.name.startswith(("gen-", "trash-gen")))
    ours = [n for n in ours if n not in ("gen-not-a-number", "gen-5-5-extra")]
    assert len(ours) == 2 and all(n.startswith("gen-") for n in ours), ours
    for gone in ("trash-gen-1-1", "trash-gen-2-2", "trash-gen-3-3", "trash-legacy-4", "legacy-7"):
        assert not os.path.lexists(gens / gone), gone
    assert not os.path.lexists(profile.data / ".snapshots.link-999999")
    assert profile.snapshot("sensor-one")["signal"] == 1
