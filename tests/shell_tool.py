"""How a root agent's shell tool calls looop, for the tests of the agent's half.

An agent (Claude Code, Codex, ...) runs each command as ``bash -c TEXT`` in
a process group of its own, with a time limit: when it is reached the whole
group gets SIGTERM, then SIGKILL a moment later. It reads stdout and stderr
up to a size and cuts the rest; often the command itself pipes into
``head``. A command it lost, it runs again. ``ShellTool.call`` does exactly
that and returns a ``Call``; ``survivors`` finds every process a call left
behind, even one that left the group (``setsid``), by a marker in the
environment every descendant inherits.

Nothing here sleeps to wait for a state: the limit is the tool's own clock,
and what a test asserts is the state a call left behind.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

MARKER = "LOOOP_TEST_SHELL_CALL"


@dataclass
class Call:
    """What the tool saw of one command."""

    text: str
    returncode: int  # the shell's exit status, or -SIGNAL when the group was killed
    stdout: bytes
    stderr: bytes
    killed: bool  # the time limit was reached and the group signalled
    marker: str  # the value of MARKER in every process of the call

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace")


@dataclass
class ShellTool:
    """An agent's shell tool over one looop profile's environment."""

    env: Mapping[str, str]
    limit: float = 10.0  # seconds before SIGTERM to the group
    grace: float = 1.0  # seconds between SIGTERM and SIGKILL
    cut: int = 30_000  # bytes kept of each of stdout and stderr
    cwd: Path | None = None
    calls: list[Call] = field(default_factory=list)
    # How a command line becomes the argv to run, given the variables to add
    # (another user's world: ``systemd_harness.Manager.command``). None: as is.
    wrap: Callable[[list[str], dict[str, str]], list[str]] | None = None

    def call(self, text: str, *, limit: float | None = None, stdin: bytes | None = None) -> Call:
        """Run ``bash -c text`` as the tool does; ``looop`` there is the installed one."""
        from conftest import LOOOP_BIN

        marker = uuid.uuid4().hex
        env = dict(self.env)
        env[MARKER] = marker
        env["PATH"] = os.path.dirname(LOOOP_BIN) + os.pathsep + env.get("PATH", os.defpath)
        argv = ["bash", "-c", text]
        if self.wrap is not None:
            argv = self.wrap(argv, {MARKER: marker})
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=self.cwd,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        if stdin is not None:
            assert proc.stdin is not None
            try:
                proc.stdin.write(stdin)
                proc.stdin.close()
            except BrokenPipeError:
                pass
        out, err, killed = self._collect(proc, self.limit if limit is None else limit)
        done = Call(text, proc.returncode, out, err, killed, marker)
        self.calls.append(done)
        return done

    def retry(self, text: str, *, tries: int = 3, limit: float | None = None) -> Call:
        """Run ``text`` until it is not killed by the limit, as an agent retries a lost call."""
        for _ in range(tries - 1):
            done = self.call(text, limit=limit)
            if not done.killed:
                return done
        return self.call(text, limit=limit)

    def _collect(self, proc: subprocess.Popen[bytes], limit: float) -> tuple[bytes, bytes, bool]:
        assert proc.stdout is not None and proc.stderr is not None
        kept = {proc.stdout: bytearray(), proc.stderr: bytearray()}
        sel = selectors.DefaultSelector()
        for pipe in kept:
            sel.register(pipe, selectors.EVENT_READ)
        deadline = time.monotonic() + limit
        killed = False
        term_sent_at: float | None = None
        while sel.get_map():
            now = time.monotonic()
            if now >= deadline and term_sent_at is None:
                killed = True
                term_sent_at = now
                _signal_group(proc.pid, signal.SIGTERM)
            if term_sent_at is not None and now >= term_sent_at + self.grace:
                _signal_group(proc.pid, signal.SIGKILL)
                # The tool stops reading once it has killed the group.
                break
            wait = (term_sent_at + self.grace if term_sent_at else deadline) - now
            for key, _ in sel.select(max(0.01, wait)):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                buf = kept[key.fileobj]  # type: ignore[index]
                buf += chunk[: max(0, self.cut - len(buf))]
        sel.close()
        for pipe in kept:
            pipe.close()
        remaining = max(0.1, deadline + self.grace - time.monotonic())
        try:
            proc.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            killed = True
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=self.grace)
            except subprocess.TimeoutExpired:
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
        return bytes(kept[proc.stdout]), bytes(kept[proc.stderr]), killed


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def survivors(marker: str) -> list[int]:
    """Live processes started by the call with ``marker``, wherever they went (not zombies)."""
    from conftest import live_with_env

    return live_with_env(f"{MARKER}={marker}")
