"""Data dirs big enough to measure: shared by the tests and the benchmarks.

A test asserts behaviour on them (tests/test_budget.py); a benchmark prints
what they cost (bench/bench_probes.py). One builder, so both measure the
same data dir.
"""

from __future__ import annotations

from pathlib import Path

GOALS = 2000
JOURNAL_BYTES = 50 << 20


def big_data_dir(data: Path, last_line: str = "") -> None:
    """``goals/g0..g1999.md`` and a 50 MiB journal of SPEC §1 lines naming goals."""
    goals = data / "goals"
    goals.mkdir(parents=True, exist_ok=True)
    for i in range(GOALS):
        (goals / f"g{i}.md").write_text(f"# goal {i}\n\nKeep thing {i} in shape.\n")
    block = "".join(
        f"- 2026-12-0{1 + j % 2} {j % 24:02d}:{j % 60:02d} worked on "
        f"g{j % GOALS}, goals/g{(j * 7) % GOALS}.md and g{(j * 13) % GOALS}-notes\n"
        for j in range(4096)
    ).encode()
    with open(data / "journal.md", "wb") as fh:
        written = 0
        while written < JOURNAL_BYTES:
            fh.write(block)
            written += len(block)
        fh.write(last_line.encode())
