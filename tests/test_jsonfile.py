"""``looop.jsonfile``: one strict reader of a JSON object record, one error shape."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from looop import fs, jsonfile


def test_a_record_reads_as_its_object(tmp_path: Path) -> None:
    path = tmp_path / "meta.json"
    path.write_text('{"id": "w1", "started": 1.5}')
    assert jsonfile.read_object(path) == {"id": "w1", "started": 1.5}
    fd = os.open("meta.json", os.O_RDONLY, dir_fd=os.open(tmp_path, os.O_RDONLY))
    try:
        os.lseek(fd, 5, os.SEEK_SET)
        assert jsonfile.read_object_fd(fd, path=path)[0]["id"] == "w1"  # read from its start
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ('{"ended": NaN}', "holds a non-finite number"),
        ('{"ended": 1e999}', "holds a non-finite number"),
        ('{"ended": -Infinity}', "holds a non-finite number"),
        ("[1, 2]", "is not a JSON object"),
        ('{"ended": 1', "is not a JSON object"),
        ("\xff", "is not a JSON object"),
    ],
)
def test_a_record_that_is_not_a_finite_object_is_refused_naming_it(
    tmp_path: Path, text: str, why: str
) -> None:
    path = tmp_path / "status.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(fs.BadFile) as info:
        jsonfile.read_object(path)
    assert (info.value.filename, info.value.strerror) == (str(path), why)
    assert jsonfile.parse_object(path.read_bytes()) is None


def test_a_missing_record_is_missing_and_a_link_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        jsonfile.read_object(tmp_path / "none.json")
    link = tmp_path / "claim.json"
    link.symlink_to(tmp_path / "none.json")
    with pytest.raises(fs.BadFile, match="symlink"):
        jsonfile.read_object(link)


def test_finite_takes_real_finite_numbers_only() -> None:
    assert jsonfile.finite(3) == 3.0 and jsonfile.finite(2.5) == 2.5
    for value in (True, None, "1", float("nan"), float("inf"), 10**400, [1]):
        assert jsonfile.finite(value) is None
