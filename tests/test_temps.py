"""A writer killed between its write and its rename leaves a temp file; the next writer sweeps it.

``fs.write_whole`` writes ``.<name>.<pid>-<hex>.tmp`` and renames it over the
name; killed in between, the temp stays. The next ``write_whole`` of another
process into that directory removes it once its writer is gone: never a
live writer's, never anything else.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import LOOOP, Profile

from looop import fs

OLD = 3600.0  # seconds: age alone sweeps nothing


def age(path: Path) -> None:
    then = path.stat().st_mtime - OLD
    os.utime(path, (then, then), follow_symlinks=False)


def dot_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_a_writer_killed_before_its_rename_leaves_a_temp_the_next_writer_sweeps(
    profile: Profile,
) -> None:
    assert profile.run("_", "goal", "write", "seed", "x").returncode == 0
    goals = profile.data / "goals"
    renames = "rename,renameat,renameat2"
    strace = ["strace", "-f", "-o", "/dev/null", "-e", f"trace={renames}"]
    killed = subprocess.run(
        [*strace, "-e", f"inject={renames}:signal=KILL", LOOOP, "_", "goal", "write", "lost", "y"],
        env=profile.env,
        capture_output=True,
        timeout=60,
    )
    assert killed.returncode != 0
    (temp,) = dot_files(goals)
    assert fs.temp_pid(temp) is not None and temp.startswith(".lost.md.")
    assert profile.run("_", "goal", "write", "next", "z").returncode == 0
    assert dot_files(goals) == []
    assert not (goals / "lost.md").exists()


def test_only_a_gone_writers_temp_files_are_swept(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    mine, gone = os.getpid(), dead.pid
    kept = {
        f".live.json.{os.getppid()}-abcdef.tmp": b"a live writer's",
        f".mine.json.{mine}-abcdef.tmp": b"this process's",
        f".odd.json.{gone}-abcdeg.tmp": b"not a temp name",
        "plain.tmp": b"not a dot file",
    }
    for name, body in kept.items():
        (tmp_path / name).write_bytes(body)
        age(tmp_path / name)
    swept = tmp_path / f".old.json.{gone}-012345.tmp"
    swept.write_bytes(b"left by a killed writer")
    age(swept)
    os.mkdir(tmp_path / f".dir.json.{gone}-012345.tmp")  # not a regular file: kept
    assert fs.sweep_temps(tmp_path) == 1
    assert not swept.exists()
    assert set(os.listdir(tmp_path)) == {*kept, f".dir.json.{gone}-012345.tmp"}


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_an_ask_killed_as_its_file_is_synced_or_named_leaves_no_temp_file(
    profile: Profile,
) -> None:
    # An ask is created exclusively: an unnamed file (O_TMPFILE), synced, then
    # linked to its name, so there is no temp name for a kill to leave behind.
    env = {**profile.env, "LOOOP_SESSION_ID": "w1"}
    asks = profile.data / "asks"
    for call in ("fsync", "linkat"):
        killed = subprocess.run(
            [
                "strace",
                "-f",
                "-qq",
                "-o",
                "/dev/null",
                "-e",
                f"trace={call}",
                "-e",
                f"inject={call}:signal=KILL:when=1",
                LOOOP,
                "_",
                "ask",
                "--prompt",
                "q?",
            ],
            env=env,
            capture_output=True,
            timeout=60,
        )
        assert killed.returncode != 0, call
        assert dot_files(asks) == [], call
        for whole in asks.iterdir():
            json.loads(whole.read_text())
