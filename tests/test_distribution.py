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
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import click
import pytest
from conftest import PROJECT, Dists

from looop import RELEASED
from looop.cli import cli, manpage

MAN_PAGE = PROJECT / "man" / "looop.1"
MAN = shutil.which("man")
GROFF = shutil.which("groff")
SECTIONS = (
    "NAME",
    "SYNOPSIS",
    "DESCRIPTION",
    "OPTIONS",
    "COMMANDS",
    "ENVIRONMENT",
    "FILES",
    "EXIT STATUS",
    "EXAMPLES",
    "SEE ALSO",
)
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
            f"and commit the result. The difference:\n{diff[:4000]}",
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
        # The same words as click's usage line, whichever click prints it:
        # 8.5 brackets a group's COMMAND and writes an argument differently.
        usage = " ".join(text.split("\n\n", 1)[0].split()).removeprefix("Usage: ")
        ours = next(line for line in shown.splitlines() if line.startswith(f"{path} ["))
        assert words(ours) == words(usage), (path, usage, ours)
        for option in re.findall(r"^  (-[^ ,]+(?:, -[^ ,]+)*)", text, re.MULTILINE):
            if path == "looop" or option not in ("--help", "-h, --help"):
                assert option in shown, (path, option)
    headings = [line for line in lines if line.startswith(".SS ")]
    assert len(headings) == len(tree) - 1  # nothing --help hides (the hidden `_ supervise`)
    assert "supervise" not in "".join(headings)


def words(usage: str) -> list[str]:
    """A usage line's words, without the brackets and ellipses click's versions write apart."""
    return re.sub(r"[][{}]|\.\.\.", " ", usage).split()


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
    assert out.stdout.rstrip().endswith("LOOOP(1)") and f" {RELEASED} " in out.stdout
    found = [line for line in out.stdout.splitlines() if line[:1].isalpha()]
    assert found[1:-1] == [*SECTIONS], found
    assert "looop _ worker start" in out.stdout
    see_also = out.stdout.split("\nSEE ALSO\n", 1)[1]
    for page in ("systemctl(1)", "journalctl(1)", "systemd.service(5)", "launchd.plist(5)"):
        assert page in see_also, page


@pytest.mark.skipif(GROFF is None, reason="needs groff(1) to check the page's roff")
def test_groff_reads_the_committed_man_page_without_a_warning() -> None:
    assert GROFF is not None
    out = subprocess.run(
        [GROFF, "-ww", "-man", "-z", str(MAN_PAGE)], capture_output=True, text=True, timeout=60
    )
    assert (out.returncode, out.stderr) == (0, ""), out.stderr


def test_the_man_page_puts_a_persons_commands_first_and_names_every_variable_looop_reads() -> None:
    page = manpage.render()
    headings = [line[5:-1] for line in page.splitlines() if line.startswith('.SS "')]
    first = ["looop up", "looop status", "looop install", "looop logs", "looop doctor"]
    assert headings[:5] == first, headings[:8]
    verbs = [i for i, h in enumerate(headings) if h.startswith("looop _")]
    assert verbs == list(range(len(headings) - len(verbs), len(headings)))  # the `_` verbs last
    environment = roff_to_text(page.split(".SH ENVIRONMENT\n")[1].split("\n.SH ")[0])
    read = set()
    for source in (PROJECT / "looop").rglob("*.py"):
        code = source.read_text()
        read |= set(re.findall(r"environ(?:\.get\(|\[)\"([A-Z_]+)\"", code))
        read |= set(re.findall(r"getenv\(\"([A-Z_]+)\"", code))
        read |= set(re.findall(r"\"(LOOOP_[A-Z_]+)\"", code))  # a knob's, a constant's
    read -= {"LOOOP_COMMAND"}  # a placeholder in the shipped unit templates, not a variable
    assert {"LOOOP_DATA_DIR", "LOOOP_CONFIG", "NO_COLOR", "LOOOP_INTERVAL"} <= read
    assert sorted(read - set(re.findall(r"[A-Z][A-Z0-9_]+", environment))) == []
    files = roff_to_text(page.split(".SH FILES\n")[1].split("\n.SH ")[0])
    assert "PLAYBOOK.md" in files and "looop.service" in files and "org.looop.pulse.plist" in files


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


def test_the_wheel_carries_every_module_of_the_source_tree(dists: Dists) -> None:
    """A sub-package missing from pyproject's list would install a looop without it."""
    tree = {
        str(path.relative_to(dists.clone))
        for path in (dists.clone / "looop").rglob("*.py")
        if "__pycache__" not in path.parts
    }
    with zipfile.ZipFile(dists.wheel) as wheel:
        carried = {name for name in wheel.namelist() if name.endswith(".py")}
    assert tree - carried == set()


def test_the_build_warns_of_no_ignored_package_and_the_metadata_names_its_authors(
    dists: Dists,
) -> None:
    assert "would be ignored" not in dists.log, dists.log
    name, version = dists.wheel.name.split("-")[:2]
    with zipfile.ZipFile(dists.wheel) as wheel:
        metadata = wheel.read(f"{name}-{version}.dist-info/METADATA").decode()
    headers = metadata.split("\n\n", 1)[0].splitlines()
    assert "Author: the looop authors" in headers
    # psutil only where looop.proc uses it: no /proc to read a process from.
    assert 'Requires-Dist: psutil>=5.9; sys_platform != "linux"' in headers
    assert not [h for h in headers if h.startswith("Requires-Dist: click") and "==" in h]


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
