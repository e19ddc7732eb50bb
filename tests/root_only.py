"""Root-only tests: one marker, one reason, one switch.

A contributor runs the suite as a normal user; CI runs it as root. A test
that needs root (a mount, a device node, a file given to another user, the
private systemd user managers of ``systemd_harness``) says so with
``@pytest.mark.root("what needs it")``; a test marked ``systemd`` carries it
implicitly. For anyone but root such a test is skipped at collection with
the one-line reason ``needs root: <what>``, which ``-ra`` lists at the end
of the run.

``LOOOP_TEST_ROOT_REQUIRED=1`` (``.ci/run`` sets it) turns any skip of a
root-only test into a failure of that test: for not being root, or for what
its fixtures found missing as root (no systemd, no cgroup2, no immutable
flag). So CI never passes having run less than the whole suite, while a
contributor's run passes and says what it left out.

A test that uses a root-only fixture (``ROOT_FIXTURES``) without the marker
is a usage error at collection: where a fixture tells, the marker cannot be
forgotten.

Rejected: each test skipping on ``os.geteuid()`` itself (each would have to
check the switch too, and a forgotten check passes CI silently); failing the
session's exit status at the end (a failed test names itself in the summary
and works with ``-x`` and ``--lf``).
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

SWITCH = "LOOOP_TEST_ROOT_REQUIRED"
SKIP_PREFIX = "needs root: "
SYSTEMD_NEEDS = "private systemd user managers (cgroup delegation, a test user)"
# Fixtures that need root themselves: whoever uses one is a root-only test.
ROOT_FIXTURES = frozenset(
    {"systemd_harness", "user_manager", "root_manager", "any_manager", "tiny_fs", "mounts"}
)


def root_required() -> bool:
    """True where a skipped root-only test must fail the run (CI, as root)."""
    return os.environ.get(SWITCH, "") not in ("", "0")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the systemd tests root-only, skip root-only tests for a normal user."""
    unmarked, bare = [], []
    for item in items:
        if item.get_closest_marker("systemd") and not item.get_closest_marker("root"):
            item.add_marker(pytest.mark.root(SYSTEMD_NEEDS))
        mark = item.get_closest_marker("root")
        if mark is None:
            if ROOT_FIXTURES.intersection(getattr(item, "fixturenames", ())):
                unmarked.append(item.nodeid)
            continue
        if not mark.args or not isinstance(mark.args[0], str):
            bare.append(item.nodeid)
        elif os.geteuid() != 0:
            item.add_marker(pytest.mark.skip(reason=SKIP_PREFIX + mark.args[0]))
    if unmarked:
        raise pytest.UsageError(
            "these tests use a root-only fixture without @pytest.mark.root(...): "
            + ", ".join(unmarked)
        )
    if bare:
        raise pytest.UsageError("@pytest.mark.root needs what needs root: " + ", ".join(bare))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Under the switch, a skipped root-only test is a failed one, with the skip's reason."""
    report = yield
    if report.skipped and root_required() and item.get_closest_marker("root") is not None:
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        report.outcome = "failed"
        report.longrepr = f"{SWITCH} is set: this root-only test must run, but it skipped: {reason}"
    return report
