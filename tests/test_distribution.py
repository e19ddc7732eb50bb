"""What the distributions carry besides the service files: the man page, the license, the tests.

The man page is rendered from the commands' help by ``looop.cli.manpage`` and
committed as ``man/looop.1``; these tests hold the committed page to a fresh
render, hold the renderer to ``--help``, and check that ``man`` reads the
page without a warning. The wheel must install it where ``man looop`` finds
it, and carry the license. The sdist must carry everything its own tests
need: it is unpacked, installed with its test extra and a few of its tests
are run from it (the whole suite from an sdist is run by hand before a
release: ``pytest -m 'not systemd'`` in the unpacked tree). Both must pass
``twine check --strict``, as an index would check them.

One build serves the whole run, shared with test_packaging.py (conftest's
``dists``): a fresh clone's files, built by ``python -m build``.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import click
import pytest
from conftest import PROJECT, Dists

from looop.cli import cli, manpage

MAN_PAGE = PROJECT / "man" / "looop.1"
MAN = shutil.which("man")
# What the sdist's tests read besides the package: the tests themselves (with
# conftest.py, the helper modules, tests/fake-agent), the benchmarks mypy
# checks with them, the service files, the man page, and the project's files.
SDIST_TREES = ("tests/", "bench/", "packaging/", "man/")
SDIST_FILES = ("README.md", "LICENSE", "pyproject.toml", "MANIFEST.in")


def plain_env(**extra: str) -> dict[str, str]:
    """This environment without what would point a child at the checkout's code."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH")}
    env.update(extra)
    return env


def man_env(**extra: str) -> dict[str, str]:
    """An environment where ``man`` prints plain text at 80 columns and pages nothing."""
    env = plain_env(MANWIDTH="80", MANPAGER="cat", PAGER="cat", **extra)
    for key in ("MANPATH", "MANOPT", "MANROFFOPT", "MAN_KEEP_FORMATTING"):
        env.pop(key, None)
    return env


def roff_to_text(roff: str) -> str:
    """The words a roff line shows, without the page's font changes and escapes."""
    text = re.sub(r"\\f[BIRP]", "", roff)
    for escaped, char in (("\\-", "-"), ("\\(aq", "'"), ("\\(ga", "`"), ("\\(dq", '"')):
        text = text.replace(escaped, char)
    text = re.sub(r"\\\[u([0-9A-F]{4,})\]", lambda m: chr(int(m.group(1), 16)), text)
    return text.replace("\\&", "").replace("\\e", "\\")


def pinned_by_test_extra(name: str) -> str | None:
    """The version the test extra pins ``name`` to (``name==X``), if it does."""
    with open(PROJECT / "pyproject.toml", "rb") as fh:
        extra = tomllib.load(fh)["project"]["optional-dependencies"]["test"]
    pins = [req.split("==", 1)[1] for req in extra if req.split("==", 1)[0].strip() == name]
    return pins[0].strip() if pins else None


def test_the_committed_man_page_is_the_one_the_help_texts_render(tmp_path: Path) -> None:
    # Rendered by the checkout's own code (-m from the project's root), as
    # the command that regenerates it does.
    rendered = tmp_path / "looop.1"
    with rendered.open("w") as out:
        done = subprocess.run(
            [sys.executable, "-m", "looop.cli.manpage"],
            cwd=PROJECT,
            env=plain_env(),
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr
    fresh = rendered.read_text()
    committed = MAN_PAGE.read_text() if MAN_PAGE.exists() else ""
    if committed != fresh:
        pinned = pinned_by_test_extra("click")
        installed = importlib.metadata.version("click")
        hint = (
            f"This Python has click {installed}, the test extra pins {pinned}: the help\n"
            "output depends on click's version, so install the test extra first\n"
            "(pip install '.[test]').\n"
            if pinned not in (None, installed)
            else ""
        )
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                fresh.splitlines(keepends=True),
                "man/looop.1 (committed)",
                "man/looop.1 (rendered from the help texts now)",
                n=1,
            )
        )
        pytest.fail(
            "man/looop.1 is stale: it is not what the commands' help renders now.\n"
            f"Regenerate it from the project's root with\n\n    {manpage.REGENERATE}\n\n"
            f"and commit the result. {hint}The difference:\n{diff[:4000]}",
            pytrace=False,
        )


def help_tree() -> list[tuple[str, str]]:
    """Every command ``--help`` lists, recursively from the root: (command path, its --help)."""
    found = []

    def visit(command: click.Command, ctx: click.Context) -> None:
        text = command.get_help(ctx)  # what the help option prints
        found.append((ctx.command_path, text))
        _, listed, commands = text.partition("\nCommands:\n")
        if not listed or not isinstance(command, click.Group):
            return
        for line in commands.splitlines():
            if not line.startswith("  ") or line.startswith("   "):
                break  # the end of the list (a wrapped short help is never this deep)
            name = line.split()[0]
            sub = command.get_command(ctx, name)
            assert sub is not None, f"{ctx.command_path} --help lists {name!r}"
            visit(sub, click.Context(sub, info_name=name, parent=ctx, **sub.context_settings))

    visit(cli, click.Context(cli, info_name="looop", **cli.context_settings))
    return found


def test_the_man_page_has_every_command_its_usage_and_its_options_as_help_prints_them() -> None:
    page = manpage.render()
    lines = page.splitlines()
    shown = roff_to_text(page)
    tree = help_tree()
    paths = [path for path, _ in tree]
    assert "looop _" in paths and "looop _ worker start" in paths and "looop config set" in paths
    for path, text in tree:
        if path != "looop":
            assert f'.SS "{manpage.escape(path)}"' in lines, path
        usage = " ".join(text.split("\n\n", 1)[0].split()).removeprefix("Usage: ")
        assert usage in " ".join(shown.split()), (path, usage)
        for option in re.findall(r"^  (-[^ ,]+(?:, -[^ ,]+)*)", text, re.MULTILINE):
            if path == "looop" or option not in ("--help", "-h, --help"):
                assert option in shown, (path, option)
    headings = [line for line in lines if line.startswith(".SS ")]
    assert len(headings) == len(tree) - 1  # nothing --help hides (the hidden `_ supervise`)
    assert "supervise" not in "".join(headings)


def test_the_man_page_escapes_what_roff_would_act_on() -> None:
    @click.group("looop")
    def root() -> None:
        """A root\\with a backslash.

        .starts with a dot
        'starts with an apostrophe', --long-option and café.
        """

    @root.command("sub")
    @click.option("--dry-run", help="Say -- and \\n; nothing else.")
    def sub(dry_run: bool) -> None:
        """\b
        a block
          kept as it is
        """

    page = manpage.render(root)
    assert page.isascii()
    assert "looop \\- A root\\ewith a backslash" in page
    assert "\\fB\\-\\-dry\\-run\\fR" in page
    assert "Say \\-\\- and \\en; nothing else." in page
    assert ".nf\na block\n  kept as it is\n.fi" in page
    assert "caf\\[u00E9]" in page and "\\(aqstarts with an apostrophe\\(aq" in page
    requests = [line for line in page.splitlines() if line.startswith((".", "'"))]
    assert all(re.match(r"\.(\\\"|[A-Z]{1,2}\b|nh|ad|nf|fi)", line) for line in requests), requests
    shown = roff_to_text(page)
    assert ".starts with a dot 'starts with an apostrophe', --long-option and café." in shown


@pytest.mark.skipif(MAN is None, reason="needs man(1) to render the page")
def test_man_renders_the_committed_man_page_without_a_warning() -> None:
    assert MAN is not None
    out = subprocess.run(
        [MAN, "--warnings", "-l", str(MAN_PAGE)],
        env=man_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (out.returncode, out.stderr) == (0, ""), out.stderr
    assert out.stdout.startswith("LOOOP(1)")
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "COMMANDS", "EXIT STATUS"):
        assert f"\n{section}\n" in out.stdout, section
    assert "looop _ worker start" in out.stdout


def test_the_wheel_installs_the_man_page_and_the_license(dists: Dists, tmp_path: Path) -> None:
    name, version = dists.wheel.name.split("-")[:2]
    data_page = f"{name}-{version}.data/data/share/man/man1/looop.1"
    license_file = f"{name}-{version}.dist-info/licenses/LICENSE"
    with zipfile.ZipFile(dists.wheel) as wheel:
        members = set(wheel.namelist())
        record = wheel.read(f"{name}-{version}.dist-info/RECORD").decode()
        metadata = wheel.read(f"{name}-{version}.dist-info/METADATA").decode()
        assert wheel.read(data_page) == (dists.clone / "man" / "looop.1").read_bytes()
        license_text = wheel.read(license_file).decode()
    assert {data_page, license_file} <= members
    recorded = {line.split(",", 1)[0] for line in record.splitlines()}
    assert {data_page, license_file} <= recorded
    assert license_text.startswith("MIT License\n")
    assert "Copyright (c) 2026 the looop authors" in license_text
    headers = metadata.split("\n\n", 1)[0].splitlines()
    assert "License-Expression: MIT" in headers and "License-File: LICENSE" in headers
    assert not [h for h in headers if h.startswith(("License:", "Classifier: License ::"))]

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True, timeout=60)
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q"]
    out = subprocess.run(
        [*pip, "--no-deps", "--no-index", str(dists.wheel)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    installed = venv / "share" / "man" / "man1" / "looop.1"
    assert installed.read_bytes() == (dists.clone / "man" / "looop.1").read_bytes()
    if MAN is not None:
        # man finds a venv's (or pipx's) pages from PATH alone: bin/../share/man.
        path = f"{venv / 'bin'}:/usr/bin:/bin"
        found = subprocess.run(
            [MAN, "-w", "looop"], env=man_env(PATH=path), capture_output=True, text=True
        )
        assert found.returncode == 0, found.stderr
        assert Path(found.stdout.strip()).resolve() == installed.resolve()


def unpack(sdist: Path, into: Path) -> Path:
    with tarfile.open(sdist) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(into, filter="data")
        else:  # pragma: no cover - a Python before the extraction filters
            tar.extractall(into)
    (tree,) = into.iterdir()
    return tree


def test_the_sdist_carries_everything_its_tests_need(dists: Dists, tmp_path: Path) -> None:
    with tarfile.open(dists.sdist) as tar:
        members = {m.name.split("/", 1)[1]: m for m in tar.getmembers() if "/" in m.name}
    needed = [
        path.relative_to(dists.clone).as_posix()
        for path in dists.clone.rglob("*")
        if path.is_file() and not {"dist", "__pycache__"} & set(path.relative_to(dists.clone).parts)
    ]
    needed = [name for name in needed if name.startswith(SDIST_TREES) or name in SDIST_FILES]
    assert "tests/conftest.py" in needed and "man/looop.1" in needed
    assert sorted(set(needed) - set(members)) == []
    assert members["tests/fake-agent"].mode & 0o111, "tests/fake-agent lost its executable bit"
    assert not [name for name in members if name.endswith(".pyc") or "__pycache__" in name]

    # Installed with its test extra into a venv, a few of its own tests run
    # from the unpacked tree. The venv sees this Python's packages, so the
    # extra resolves without downloading again.
    tree = unpack(dists.sdist, tmp_path / "unpacked")
    venv = tmp_path / "venv"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", venv],
        check=True,
        timeout=60,
    )
    python = venv / "bin" / "python"
    out = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", f"{tree}[test]"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert (venv / "bin" / "looop").exists()  # the command the tests run (conftest.LOOOP)
    ran = subprocess.run(
        [str(python), "-m", "pytest", "-p", "no:cacheprovider", "-n0", "tests/test_jsonfile.py"],
        cwd=tree,
        env=plain_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert f"rootdir: {tree}\n" in ran.stdout, ran.stdout  # the unpacked tree, not the checkout
    summary = ran.stdout.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 10, summary
    assert not re.search(r"failed|error|skipped", summary), summary


def test_the_distributions_pass_twine_check_strict(dists: Dists) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(dists.wheel), str(dists.sdist)],
        env=plain_env(NO_COLOR="1"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("PASSED") == 2, out.stdout
