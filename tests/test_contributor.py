"""The README's test command, run by a contributor: a normal user in a fresh venv of their own.

The suite must pass for anyone who clones the project, not only for root:
tests that need root skip there with a one-line reason (``tests/root_only.py``).
This runs the README's command exactly as written, as the normal user
``looop-test``, in a virtualenv it makes itself from the system's Python, on
a copy of the tree as a fresh clone has it (owned by that user, as a clone
would be). So it is root-only itself: only root can be someone else.

It runs a subset of the suite, through ``PYTEST_ADDOPTS`` (the command
stays the README's): the whole suite a second time would double CI's time,
and what this checks is what a normal user's run says, which a few files
show: one that needs nothing (``test_jsonfile.py``), one marked root-only
by hand (``test_big_files.py``) and one root-only as systemd tests are
(``test_systemd_workers.py``). The full run as a normal user is a
contributor's, before a release. Then, in the same venv, the switch CI sets
makes those same skips fail the run.

The venv is made once a run (``contributor_venv``), as a contributor would:
``python3 -m venv``, activated, then the README's command, which installs the
test extra into it from the user's own pip configuration and cache.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
from conftest import PROJECT, fresh_clone
from root_only import SKIP_PREFIX, SWITCH
from systemd_harness import TEST_USER, _ensure_user

pytestmark = pytest.mark.root("runs the suite as another user")

SUBSET = ("tests/test_jsonfile.py", "tests/test_big_files.py", "tests/test_systemd_workers.py")
ROOT_ONLY = {  # a file of SUBSET -> the reason its tests skip with for a normal user
    "tests/test_big_files.py": "reads an exited process's /proc/<pid>/io",
    "tests/test_systemd_workers.py": "private systemd user managers",
}


def readme_test_command() -> str:
    """The README's one test command, as written there."""
    text = (PROJECT / "README.md").read_text()
    found = re.findall(r"^python3 -m pip install .*&& pytest$", text, re.MULTILINE)
    assert len(set(found)) == 1, f"the README's test command is not one line: {found}"
    return found[0]


class Contributor(NamedTuple):
    user: pwd.struct_passwd
    tree: Path
    venv: Path

    def run(self, script: str, **env: str) -> subprocess.CompletedProcess[str]:
        """``script`` in bash as the contributor, with an environment of their own."""
        keep = {k: v for k, v in os.environ.items() if k.startswith(("PIP_", "LANG", "LC_"))}
        env = {
            **keep,
            "HOME": self.user.pw_dir,
            "USER": self.user.pw_name,
            "LOGNAME": self.user.pw_name,
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "PYTEST_ADDOPTS": " ".join(("-n", "0", "-p", "no:cacheprovider", *SUBSET)),
            # Settings, not the command: no byte-compiling of every installed
            # module (9 s of CPU, which the subset never imports) and no index
            # round trip to ask for a newer pip.
            "PIP_NO_COMPILE": "1",
            "PIP_DISABLE_PIP_VERSION_CHECK": "1",
            **env,
        }
        return subprocess.run(
            ["runuser", "-u", self.user.pw_name, "--", "env", "-i", *_pairs(env), "bash", "-c",
             f'set -e; . "{self.venv}/bin/activate"; cd "{self.tree}"; {script}'],
            capture_output=True,
            text=True,
            timeout=900,
        )  # fmt: skip


def _pairs(env: dict[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in env.items()]


@pytest.fixture(scope="session")
def contributor_venv() -> Iterator[Contributor]:
    """A fresh clone owned by the test user and an empty venv it made; removed at the end.

    In a directory of its own under the system's temp dir: pytest's own is
    root's, closed to everyone else.
    """
    user = _ensure_user(TEST_USER)
    base = Path(tempfile.mkdtemp(prefix="looop-contributor-"))
    tree = fresh_clone(base / "looop")
    for path in [base, *base.rglob("*")]:
        os.chown(path, user.pw_uid, user.pw_gid, follow_symlinks=False)
    venv = base / "venv"
    made = subprocess.run(
        ["runuser", "-u", user.pw_name, "--", "/usr/bin/python3", "-m", "venv", str(venv)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert made.returncode == 0, made.stderr
    try:
        yield Contributor(user, tree, venv)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_the_readme_test_command_passes_for_a_normal_user_and_lists_its_root_only_skips(
    contributor_venv: Contributor,
) -> None:
    command = readme_test_command()
    ran = contributor_venv.run(command, **{SWITCH: ""})
    out = ran.stdout + ran.stderr
    assert ran.returncode == 0, out[-4000:]
    assert (contributor_venv.venv / "bin" / "looop").exists()
    # `-ra` (the project's addopts): each root-only file's skips, with the reason.
    skipped = [line for line in out.splitlines() if line.startswith("SKIPPED ")]
    for path, reason in ROOT_ONLY.items():
        assert any(path in line and SKIP_PREFIX + reason in line for line in skipped), skipped
    assert not any("test_jsonfile" in line for line in skipped), skipped

    # As CI runs it: the switch turns each of those skips into a failure.
    strict = contributor_venv.run("pytest", **{SWITCH: "1"})
    out = strict.stdout + strict.stderr
    assert strict.returncode == 1, out[-4000:]
    for path in ROOT_ONLY:
        assert re.search(rf"ERROR {re.escape(path)}::", out), out[-4000:]
    assert f"{SWITCH} is set: this root-only test must run, but it skipped: {SKIP_PREFIX}" in out
