"""``looop.lockfile``: a lock file is opened one way, and only a regular file is locked."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from looop import fs, lockfile


def test_open_lock_refuses_a_fifo_or_a_directory_naming_the_path(tmp_path: Path) -> None:
    fifo, folder, link = tmp_path / "fifo.lock", tmp_path / "dir.lock", tmp_path / "link.lock"
    os.mkfifo(fifo)
    folder.mkdir()
    link.symlink_to(tmp_path / "target")
    for path, words in ((fifo, "a FIFO"), (folder, "a directory"), (link, "a symlink")):
        with pytest.raises(fs.BadFile) as info:
            lockfile.open_lock(path)
        assert info.value.filename == str(path)
        assert info.value.strerror == f"is {words}, not a lock file"
    assert not (tmp_path / "target").exists()


def test_a_lock_held_elsewhere_answers_false_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / ".start.lock"
    with lockfile.held(path) as taken:
        assert taken
        fd = lockfile.open_lock(path)
        try:
            assert lockfile.lock(fd, path=path) is False
            assert lockfile.lock(fd, shared=True, path=path) is False
        finally:
            os.close(fd)
    with lockfile.held(path, block=False) as taken:
        assert taken  # let go when the first block closed its file
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_opening_without_create_reads_only_and_misses_as_such(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        lockfile.open_lock(tmp_path / "none.lock", create=False)
    assert not (tmp_path / "none.lock").exists()


def test_a_failing_lock_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    fd = lockfile.open_lock(path)
    os.close(fd)
    with pytest.raises(OSError) as info:
        lockfile.lock(fd, path=path)  # a closed descriptor: EBADF, as any failure would
    assert info.value.filename == str(path)
