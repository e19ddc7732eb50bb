"""``looop _ wait``: block until there is something to act on, then say what.

This module owns the root agent's blocking read. A wait returns the state (as
``looop _ state``) plus ``changed`` when a pending ask exists, the world hash
differs from its value when the wait began, or the pulse is not running; each
of those is checked once at the start, so a wait never sleeps on a world that
already needs attention or that nothing will update.

Why it is shaped this way:

* **Events, not a poll.** Every millisecond a wait oversleeps is the agent
  reacting late, so it sleeps on file-system notifications for exactly what
  feeds the hash and the mailbox: the data dir itself (``PLAYBOOK.md`` and the
  ``snapshots`` symlink, whose atomic swap is a rename *in the data dir*),
  ``goals/``, ``asks/`` and ``answers/``. Events are filtered by name (a beat
  also appends to ``events.jsonl``; that must cost a read, never a hash), a
  burst is let settle for a couple of milliseconds (and until a file being
  written is closed, so an edit is not read half-written), and only then is
  the hash recomputed. A wake whose hash equals the starting one (a file
  rewritten with the same bytes, a ``detail``-only beat) goes back to sleep.
* **inotify through ctypes.** The standard library has no inotify. Three libc
  calls (``inotify_init1``, ``inotify_add_watch``, ``inotify_rm_watch``) and a
  16-byte event header are all that is needed, so a small binding here beats a
  dependency: ``watchdog`` runs observer threads and emitter queues that add
  latency and start-up cost to a process whose whole job is to wake fast, and
  ``inotify_simple`` is itself exactly this ctypes binding. Symbols come from
  the running process (``CDLL(None)``), not ``ctypes.util.find_library``,
  which spawns ``ldconfig`` and would cost more than the wait's own start-up.
  On macOS and the BSDs ``select.kqueue`` (standard library) watches the same
  directories and files.
* **Pulse death by process handle, not by lock.** The lock holder's pid comes
  from ``lock.pulse_holder`` (which never stands in a starting pulse's way, and
  counts a one-off ``looop sense`` as no pulse); the wait then holds
  a pidfd (Linux) or an ``EVFILT_PROC`` event (kqueue) on that process and is
  woken the instant it exits, then asks the lock again: only a free lock is
  ``pulse-down``. It never blocks on the lock: a shared ``flock`` would be
  granted the instant the pulse dies, but a waiter still holding it when a
  pulse restarts (a stopped or starved agent process) would make that pulse
  fail to start. Arming re-reads the holder
  after opening the handle, so a reused pid cannot be watched by mistake.
  Where no handle can be had, the lock is probed every 500 ms. While the
  handle is quiet the holder is known to live, so the returned state takes
  ``pulse_alive`` from it rather than reading ``/proc/locks`` again, which
  can cost an RCU grace period (about 10 ms) on the wake path.
* **Leaving fast.** Latency is measured to the waiter's exit. Releasing an
  inotify instance waits for the kernel to retire its watches (another grace
  period); the watches are dropped the moment the wait decides to return and
  the descriptor is closed on a thread, so that wait overlaps reading and
  printing the state instead of following it.
* **A polling fallback** (``LOOOP_WAIT_POLL=1``, or wherever notifications
  cannot be set up) compares a cheap stat signature every 100 ms and the full
  hash once a second (timestamps can be too coarse to see two quick
  same-size edits), so the same tests run on it and it stays cheap. A watch
  that fails for want of the path is fine (its parent's watch sees the path
  appear); one that fails for any other reason (the inotify watch limit
  reached, no memory, no access, out of descriptors) would leave changes
  unseen, so the wait keeps its other notifications and polls as well.

Blocked, a wait sleeps in the kernel: no timer ticks unless it polls the lock
or runs the fallback (or, under a timeout longer than an hour, once an hour:
one kernel sleep cannot take weeks, so a long timeout is slept in turns).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from pathlib import Path
from typing import Any

from looop.agent import state
from looop.paths import Paths
from looop.pulse import lock, worldhash
from looop.watch import ASKS, PULSE, WORLD, Backend, open_backend

READY_ENV = "LOOOP_TEST_WAIT_READY"  # a file written once the wait is armed (tests, bench)

PULSE_POLL = 0.5  # lock probe period when the holder cannot be watched directly
MAX_NAP = 3600.0  # one sleep in the kernel at most this long (poll(2) takes an int of ms)

ORDER = ("asks", "goals", "playbook", "snapshots", "pulse-down")


# --- the wait ----------------------------------------------------------------
def wait(paths: Paths, timeout: float | None = None) -> dict[str, Any] | None:
    """The state plus ``changed`` once there is something to act on; None on timeout.

    ``timeout`` is in seconds; None or infinity waits for as long as it takes.
    """
    if timeout is not None and math.isnan(timeout):
        raise ValueError("timeout must be a number of seconds, not NaN")
    deadline = None if timeout is None or timeout == math.inf else time.monotonic() + timeout
    backend = open_backend(paths)
    try:
        # Watches first, then the starting reads: a change after this point
        # is seen either by the reads or by an event, never by neither.
        start = worldhash.measure(paths)
        pulse = _PulseWatch(paths, backend)
        changed: set[str] = set()
        if _has_pending_ask(paths):
            changed.add("asks")
        if not pulse.arm():
            changed.add("pulse-down")
        _announce_ready(backend.name, start.hash)
        while not changed:
            now = time.monotonic()
            remaining = None if deadline is None else deadline - now
            if remaining is not None and remaining <= 0:
                return None
            # A long timeout is slept in turns: one kernel sleep cannot take it.
            naps = [t for t in (remaining, pulse.probe_in(now)) if t is not None]
            hints = backend.wait(min(*naps, MAX_NAP) if naps else None)
            if pulse.next_probe is not None and time.monotonic() >= pulse.next_probe:
                hints.add(PULSE)
            changed = _what_changed(paths, start, hints, pulse)
        alive = False if "pulse-down" in changed else backend.pid_alive()
    finally:
        backend.close()
    return _result(paths, changed, alive)


def _what_changed(
    paths: Paths, start: worldhash.World, hints: set[str], pulse: _PulseWatch
) -> set[str]:
    changed: set[str] = set()
    if ASKS in hints and _has_pending_ask(paths):
        changed.add("asks")
    if WORLD in hints:
        now = worldhash.measure(paths)
        if now.hash != start.hash:
            changed.update(part for part in worldhash.PARTS if now.parts[part] != start.parts[part])
    if PULSE in hints and not pulse.arm():
        changed.add("pulse-down")
    return changed


def _result(paths: Paths, changed: set[str], alive: bool | None) -> dict[str, Any]:
    # ``alive`` is known when the lock holder is watched (asking the lock
    # again reads /proc/locks, which can wait a whole RCU grace period).
    data = state.collect(paths, alive=alive)
    # The state is read after the wake; report what it shows, too. No ask was
    # pending when the wait began (it would have returned at once), so any
    # pending now is news.
    if data["asks"]:
        changed.add("asks")
    if not data["pulse_alive"]:
        changed.add("pulse-down")
    data["changed"] = [name for name in ORDER if name in changed]
    return data


def _has_pending_ask(paths: Paths) -> bool:
    """Is any ``asks/<id>.json`` without ``answers/<id>.json``? Names only, no parsing."""
    try:
        names = [e.name for e in os.scandir(paths.asks) if e.name.endswith(".json")]
    except OSError:
        return False
    return any(not (paths.answers / name).exists() for name in names)


def _announce_ready(backend: str, world_hash: str) -> None:
    target = os.environ.get(READY_ENV)
    if not target:
        return
    tmp = f"{target}.{os.getpid()}.tmp"
    with contextlib.suppress(OSError):
        Path(tmp).write_text(f"{backend} {world_hash}\n")
        os.replace(tmp, target)


# --- the pulse ---------------------------------------------------------------
class _PulseWatch:
    """Is the pulse (the lock holder) still there? Woken by its exit where possible."""

    def __init__(self, paths: Paths, backend: Backend) -> None:
        self.paths, self.backend = paths, backend
        self.next_probe: float | None = None  # set while the lock must be probed

    def _holder(self) -> int | None:
        return lock.pulse_holder(self.paths)  # a one-off beat is no pulse: pulse-down

    def probe_in(self, now: float) -> float | None:
        return None if self.next_probe is None else max(0.0, self.next_probe - now)

    def arm(self) -> bool:
        """False when no pulse holds the lock; else watch the holder and return True."""
        self.backend.unwatch_pid()
        self.next_probe = None
        for _ in range(3):
            pid = self._holder()
            if pid is None:
                return False
            if pid <= 0:
                break
            try:
                if not self.backend.watch_pid(pid):
                    break  # this backend cannot: probe the lock instead
            except ProcessLookupError:
                continue  # it went away while being armed: ask the lock again
            # The handle names whichever process had this pid when it was
            # opened; if the lock still names that pid now, it is the holder.
            # (Had it exited in between, the handle is already signalled and
            # the next wake re-arms.)
            if self._holder() == pid:
                return True
            self.backend.unwatch_pid()
        self.next_probe = time.monotonic() + PULSE_POLL
        return True
