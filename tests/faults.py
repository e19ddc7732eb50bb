"""Fault injection: run a looop command with one system call failing, or killed there.

Shared by ``tests/test_faults.py`` (a sampled subset) and
``bench/fault_sweep.py`` (the whole sweep). A *case* is one command, one
system call, one fault and one ``N``:

* ``strace -f -qq -o /dev/null -e trace=SYSCALL -e
  inject=SYSCALL:error=ERRNO:when=N``: the Nth call of SYSCALL (counted per
  process) fails with ERRNO (strace injects only into calls it traces, so
  ``-e trace=none`` would inject nothing);
* the same with ``signal=KILL``: the process is killed as it makes that call
  (a crash point);
* ``prlimit --fsize=BYTES``: a write past BYTES is cut short, then fails
  with EFBIG (a short write, as on a nearly full disk).

Which ``N`` matter is found by tracing the command once, cleanly, and
keeping the calls that name a file of the sandbox (a path argument, or a
descriptor shown by ``-y``): the interpreter's own start-up calls are
counted too, and failing those tests Python, not looop.

After each case the promise is checked (``check``), and every breach is a
``Breach(kind, detail)``:

* an exit code from ``looop.errors``' table (a KILL case is exempt);
* when the command failed, stderr is exactly one ``looop: `` line that names
  a file of the sandbox and says why, never a traceback;
* every file that existed before is byte-identical or wholly the new
  version: a JSON file parses as an object, an append-only file
  (``*.jsonl``, ``journal.md``) only grew, by whole lines, each of them valid;
* the next normal run of the command (or its designated follow-up) succeeds,
  the command's own end state holds (``settled``), and no dot-temp file of a
  writer that is gone is left once it has run.

A sandbox is a directory holding ``data/``, ``run/`` and ``home/``; the
environment points looop at them and at nothing of the real home. The
commands themselves, and the end state each must reach, are
``tests/fault_commands.py``'s.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

LOOOP = str(Path(sys.executable).parent / "looop")
if not os.path.exists(LOOOP):  # pragma: no cover - an unusual install layout
    LOOOP = shutil.which("looop") or "looop"

EXIT_CODES = frozenset({0, 1, 2, 3, 4, 78, 124, 127, 130})
TIMEOUT = 60.0
JOURNAL_LINE = re.compile(r"- \d{4}-\d\d-\d\d \d\d:\d\d \S")

# The calls looop meets its files through, and how each may fail.
ERRORS: dict[str, tuple[str, ...]] = {
    "write": ("ENOSPC", "EIO", "EDQUOT", "EFBIG"),
    "fsync": ("EIO", "ENOSPC"),
    "fdatasync": ("EIO",),
    "rename": ("EIO", "ENOSPC", "EACCES"),
    "renameat": ("EIO", "ENOSPC", "EACCES"),
    "renameat2": ("EIO", "ENOSPC", "EACCES"),
    "link": ("EIO", "ENOSPC", "EACCES"),
    "linkat": ("EIO", "ENOSPC", "EACCES"),
    "openat": ("EACCES", "EIO", "ENOSPC", "EDQUOT"),
    "mkdir": ("EACCES", "ENOSPC", "EIO"),
    "mkdirat": ("EACCES", "ENOSPC", "EIO"),
    "flock": ("ENOLCK", "EIO"),
    "getdents64": ("EIO",),
    "unlink": ("EIO", "EACCES"),
    "unlinkat": ("EIO", "EACCES"),
    "ftruncate": ("EIO",),
}
# The calls that change something: a crash point each.
MUTATING = frozenset(ERRORS) - {"getdents64", "flock"}
KILL = "KILL"

WORKER_CONFIG = '[worker]\ncommand = ["true"]\nsupervisor = "detached"\n'


@dataclass(frozen=True)
class Sandbox:
    """One isolated profile: ``data/``, ``run/`` and ``home/`` under ``root``."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def runtime(self) -> Path:
        return self.root / "run"

    @property
    def env(self) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("LOOOP_", "NOTIFY_", "WATCHDOG_", "XDG_RUNTIME"))
        }
        env.pop("JOURNAL_STREAM", None)
        home = self.root / "home"
        env.update(
            LOOOP_DATA_DIR=str(self.data),
            LOOOP_RUNTIME_DIR=str(self.runtime),
            HOME=str(home),
            XDG_CONFIG_HOME=str(home / ".config"),
            XDG_STATE_HOME=str(home / ".local" / "state"),
        )
        return env

    def run(self, argv: Iterable[str], prefix: Iterable[str] = ()) -> Outcome:
        """Run ``prefix looop argv`` here; a hang is ended (its whole group) and reported."""
        proc = subprocess.Popen(
            [*prefix, LOOOP, *argv],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            return Outcome(None, out.decode(errors="replace"), err.decode(errors="replace"))
        return Outcome(proc.returncode, out.decode(errors="replace"), err.decode(errors="replace"))

    def copy(self, to: Path) -> Sandbox:
        shutil.copytree(self.root, to, symlinks=True)
        return Sandbox(to)


@dataclass(frozen=True)
class Outcome:
    code: int | None  # None: it hung and was killed
    stdout: str
    stderr: str


Snapshot = dict[str, bytes | None]  # relative path -> content (None: not a regular file)


def snapshot(box: Sandbox) -> Snapshot:
    """Every entry under ``data/`` and ``run/``: a regular file's bytes, else None."""
    found: Snapshot = {}
    for top in (box.data, box.runtime):
        for where, dirs, files in os.walk(top):
            for name in dirs + files:
                path = os.path.join(where, name)
                rel = os.path.relpath(path, box.root)
                try:
                    if os.path.isfile(path) and not os.path.islink(path):
                        with open(path, "rb") as fh:
                            found[rel] = fh.read()
                    else:
                        found[rel] = None
                except OSError:
                    found[rel] = None
    return found


@dataclass(frozen=True)
class Command:
    """A command under test: how to prepare its sandbox, run it, and tell it settled."""

    name: str
    argv: tuple[str, ...]
    prepare: tuple[tuple[str, ...], ...] = ()  # looop command lines run first
    follow: tuple[str, ...] | None = None  # the retry; None: argv again
    settled: Callable[[Sandbox], str | None] | None = None  # what is wrong, or None
    config: str = ""
    worker: bool = False  # it starts a detached supervisor: wait for it to end

    @property
    def retry(self) -> tuple[str, ...]:
        return self.argv if self.follow is None else self.follow


def wait_workers(box: Sandbox, timeout: float = 20.0) -> None:
    """Until no session of the sandbox is starting or running (its supervisor ended)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = box.run(["_", "worker", "list", "--json"])
        try:
            rows = json.loads(out.stdout) if out.code == 0 else []
        except ValueError:
            rows = []
        if not any(r.get("state") in ("starting", "running") for r in rows):
            return
        time.sleep(0.05)


def prepare(command: Command, root: Path) -> Sandbox:
    """A sandbox seeded by a few normal commands, ready for ``command``."""
    box = Sandbox(root)
    (root / "home").mkdir(parents=True)
    seeds: list[tuple[str, ...]] = [
        ("_", "goal", "write", "g0", "the first goal"),
        ("_", "cost", "seed", "w0", "claude", "0.5"),
        ("sense",),
    ]
    for seed in seeds:
        box.run(seed)
    (box.data / "config.toml").write_text(WORKER_CONFIG)
    two = box.data / "sensors" / "two.sh"
    two.write_text("#!/bin/sh\necho '{\"signal\": 2}'\n")
    two.chmod(0o755)
    box.run(("sense",))
    for argv in command.prepare:
        box.run(argv)
        if command.worker:
            wait_workers(box)
    return box


@dataclass(frozen=True)
class Case:
    command: str
    syscall: str  # or "fsize"
    fault: str  # an errno name, KILL, or the byte limit for fsize
    when: int = 0

    @property
    def label(self) -> str:
        if self.syscall == "fsize":
            return f"{self.command} fsize={self.fault}"
        return f"{self.command} {self.syscall}:{self.fault}:when={self.when}"

    def prefix(self) -> list[str]:
        if self.syscall == "fsize":
            return ["prlimit", f"--fsize={self.fault}", "--"]
        how = "signal=KILL" if self.fault == KILL else f"error={self.fault}"
        inject = f"inject={self.syscall}:{how}:when={self.when}"
        # Only a traced call can be failed: trace the one call, into /dev/null.
        return [
            "strace",
            "-f",
            "-qq",
            "-o",
            os.devnull,
            "-e",
            f"trace={self.syscall}",
            "-e",
            inject,
        ]


_CALL = re.compile(r"^(\d+)\s+(\w+)\(")
_CWD = re.compile(r"AT_FDCWD<[^>]*>")  # the working directory named, not the file


def touching_calls(box: Sandbox, command: Command, work: Path) -> dict[str, list[int]]:
    """For each call of ``ERRORS``, the ``N`` (per process) whose call names a sandbox file."""
    out = work / "trace.txt"
    prefix = ["strace", "-f", "-qq", "-yy", "-o", str(out), "-e", "trace=" + ",".join(ERRORS)]
    box.run(command.argv, prefix)
    counts: dict[tuple[str, str], int] = {}
    found: dict[str, set[int]] = {}
    root = str(box.root)
    for line in out.read_text(errors="replace").splitlines():
        match = _CALL.match(line)
        if match is None or "resumed>" in line:
            continue
        pid, call = match.groups()
        n = counts[pid, call] = counts.get((pid, call), 0) + 1
        if root in _CWD.sub("AT_FDCWD", line.partition(") = ")[0]):
            found.setdefault(call, set()).add(n)
    return {call: sorted(ns) for call, ns in found.items()}


def cases_for(command: Command, box: Sandbox, clean: Snapshot, work: Path) -> list[Case]:
    """Every case of ``command``: each touching call with each fault, and short writes."""
    found: list[Case] = []
    for call, ns in sorted(touching_calls(box.copy(work / "traced"), command, work).items()):
        faults = ERRORS[call] + ((KILL,) if call in MUTATING else ())
        found += [Case(command.name, call, fault, n) for fault in faults for n in ns]
    before = snapshot(box)
    for rel, data in sorted(before.items()):
        after = clean.get(rel)
        if data is None or after is None or not _append_file(rel) or len(after) <= len(data):
            continue
        for limit in sorted({len(data) + 1, len(data) + (len(after) - len(data)) // 2}):
            found.append(Case(command.name, "fsize", str(limit)))
    return found


@dataclass(frozen=True)
class Breach:
    kind: str
    detail: str


@dataclass
class Result:
    case: Case
    outcome: Outcome
    breaches: list[Breach] = field(default_factory=list)


def _scratch(rel: str) -> bool:
    """A dot-name on the way (a temp file, an unpublished snapshot generation): not data."""
    return any(part.startswith(".") for part in Path(rel).parts[1:-1]) or Path(rel).name[0] == "."


def _append_file(rel: str) -> bool:
    return rel.endswith(".jsonl") or os.path.basename(rel) == "journal.md"


def _json_object(data: bytes) -> bool:
    try:
        return isinstance(json.loads(data), dict)
    except ValueError:
        return False


def _bad_lines(rel: str, data: bytes) -> str | None:
    """What is wrong with an append-only file's lines, or None."""
    if data and not data.endswith(b"\n"):
        torn = data.rsplit(b"\n", 1)[-1]
        return f"{rel} ends in a torn line {torn[:60]!r}"
    for line in data.splitlines():
        if rel.endswith(".jsonl") and not _json_object(line):
            return f"{rel} holds a malformed line {line[:60]!r}"
        if not rel.endswith(".jsonl") and not JOURNAL_LINE.match(line.decode(errors="replace")):
            return f"{rel} holds a malformed line {line[:60]!r}"
    return None


NAMED_PATH = re.compile(r"looop: (?:cannot load [\w.]+: )?(/[^:]+|<stdout>): ")


def check_message(box: Sandbox, case: Case, out: Outcome, clean: Outcome) -> list[Breach]:
    """(a) the exit code, (b) the one line naming a file."""
    if out.code is None:
        return [Breach("hang", f"still running after {TIMEOUT:g}s")]
    if case.fault == KILL and out.code == -signal.SIGKILL:
        return []
    found = []
    if out.code not in EXIT_CODES:
        found.append(Breach("exit-code", f"exit {out.code}"))
    if "Traceback" in out.stderr:
        return [*found, Breach("traceback", out.stderr.strip().splitlines()[-1][:200])]
    if out.code == clean.code:
        return found
    lines = out.stderr.splitlines()
    if not lines:
        return [*found, Breach("no-message", f"exit {out.code} and nothing on stderr")]
    if len(lines) != 1 or not lines[0].startswith("looop: "):
        return [*found, Breach("stderr-shape", " | ".join(lines)[:200])]
    rest = lines[0].replace(str(box.root), "")
    if rest == lines[0]:
        named = NAMED_PATH.match(lines[0])
        where = named.group(1) if named else ""
        if where != "<stdout>" and not (where and os.path.lexists(where)):
            return [*found, Breach("unnamed-file", lines[0][:200])]
        # A call failing outside the data dir (the installed looop's own
        # files, as an import lists them; a redirected stdout) is named too.
        rest = lines[0].replace(where, "")
    if not re.search(r"[A-Za-z]{3}", rest[len("looop: ") :].replace("/", " ")):
        return [*found, Breach("no-reason", lines[0][:200])]
    return found


def check_files(before: Snapshot, after: Snapshot, clean: Snapshot) -> list[Breach]:
    """(c) every file there before is as it was or wholly new; no torn line anywhere."""
    found = []
    for rel, old in sorted(before.items()):
        if old is None:
            continue
        if rel not in after:
            if rel in clean:
                found.append(Breach("lost-file", f"{rel} is gone"))
            continue
        new = after[rel]
        if new is None or new == old:
            continue
        if _append_file(rel):
            if not new.startswith(old):
                found.append(Breach("torn-file", f"{rel} was rewritten, not appended to"))
            elif why := _bad_lines(rel, new[len(old) :]):
                found.append(Breach("torn-line", why))
        elif rel.endswith(".json"):
            if not _json_object(new):
                found.append(Breach("torn-file", f"{rel} is not a whole JSON object"))
        elif new != clean.get(rel):
            found.append(Breach("torn-file", f"{rel} is neither the old nor the new version"))
    for rel, new in sorted(after.items()):
        if rel in before or new is None or _scratch(rel):
            continue
        if rel.endswith(".json") and not _json_object(new):
            found.append(Breach("torn-file", f"{rel} (new) is not a whole JSON object"))
        elif _append_file(rel) and (why := _bad_lines(rel, new)):
            found.append(Breach("torn-line", why))
    return found


def leftover_temps(before: Snapshot, after: Snapshot, clean: Snapshot) -> list[Breach]:
    """(d) dot-files a writer left that neither the start nor a clean run has."""
    known = {os.path.basename(rel) for rel in (*before, *clean)}
    return [
        Breach("temp-left", rel)
        for rel in sorted(after)
        if os.path.basename(rel).startswith(".")
        and os.path.basename(rel) not in known
        and rel not in before
    ]


@dataclass
class Baseline:
    """A command's prepared sandbox and its clean run: what a case is measured against."""

    command: Command
    box: Sandbox
    outcome: Outcome
    before: Snapshot
    after: Snapshot


def baseline(command: Command, work: Path) -> Baseline:
    """Prepare ``command``'s sandbox under ``work`` and run it once cleanly on a copy."""
    box = prepare(command, work / "template")
    before = snapshot(box)
    clean_box = box.copy(work / "clean")
    out = clean_box.run(command.argv)
    if command.worker:
        wait_workers(clean_box)
    if command.settled and (why := command.settled(clean_box)):
        raise AssertionError(f"{command.name} run cleanly is not settled: {why}")
    return Baseline(command, box, out, before, snapshot(clean_box))


def run_case(base: Baseline, case: Case, where: Path) -> Result:
    """Run one case on a fresh copy of the sandbox and check the promise."""
    box = base.box.copy(where)
    try:
        out = box.run(base.command.argv, case.prefix())
        if base.command.worker:
            wait_workers(box)
        after = snapshot(box)
        breaches = check_message(box, case, out, base.outcome)
        breaches += check_files(base.before, after, base.after)
        retry = box.run(base.command.retry)
        if base.command.worker:
            wait_workers(box)
        if retry.code not in (0, base.outcome.code):
            line = retry.stderr.strip().splitlines()[-1:] or [""]
            breaches.append(Breach("retry-fails", f"exit {retry.code}: {line[0][:200]}"))
        elif base.command.settled and (why := base.command.settled(box)):
            breaches.append(Breach("unsettled", why))
        breaches += leftover_temps(base.before, snapshot(box), base.after)
        return Result(case, out, breaches)
    finally:
        shutil.rmtree(where, ignore_errors=True)


def have_tools() -> str | None:
    """Why the sweep cannot run here, or None."""
    if not sys.platform.startswith("linux"):
        return "strace fault injection needs Linux"
    for tool in ("strace", "prlimit"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: apt-get install -y strace util-linux)"
    return None
