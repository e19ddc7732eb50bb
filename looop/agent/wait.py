"""``looop _ wait``: block until there is something to act on, then say what.

This module owns the root agent's blocking read. A wait returns the state (as
``looop _ state``) plus ``changed`` when a pending ask exists, the world hash
differs from its value when the wait began, or the pulse is not running; each
of those is checked once at the start, so a wait never sleeps on a world that
already needs attention or that nothing will update.

Why it is shaped this way:

* **Events, not a poll.** Every millisecond a wait oversleeps is the agent
  reacting late, so it sleeps (``looop.watch``, which owns the notifications,
  their filtering and settling, and the polling fallback) on exactly what
  feeds the hash and the mailbox: the data dir itself (``PLAYBOOK.md`` and the
  ``snapshots`` symlink, whose atomic swap is a rename *in the data dir*),
  ``goals/``, ``asks/`` and ``answers/``, and ``PLAYBOOK.md`` and each goal in
  their own right where one is a symlink. A wake says only which reads may
  have moved (``WORLD``: the hash; ``ASKS``: the mailbox), so a beat's append
  to ``events.jsonl`` costs no read and an ask costs no hash. A wake whose
  hash equals the starting one (a file rewritten with the same bytes, a
  ``detail``-only beat) goes back to sleep.
* **Pulse death by process handle, not by lock.** The lock holder's pid comes
  from ``lock.pulse_holder`` (which never stands in a starting pulse's way, and
  counts a one-off ``looop sense`` as no pulse); the wait then holds a handle
  on that process (``Watch.watch_pid``: a pidfd or an ``EVFILT_PROC`` event)
  and is woken the instant it exits, then asks the lock again: only a free
  lock is ``pulse-down``. It never blocks on the lock: a shared ``flock``
  would be granted the instant the pulse dies, but a waiter still holding it
  when a pulse restarts (a stopped or starved agent process) would make that
  pulse fail to start. Arming re-reads the holder after opening the handle,
  so a reused pid cannot be watched by mistake. Where no handle can be had
  (the polling fallback), the lock is probed every 500 ms. While the handle is
  quiet the holder is known to live, so the returned state takes
  ``pulse_alive`` from it rather than reading ``/proc/locks`` again, which
  can cost an RCU grace period (about 10 ms) on the wake path.
* **Leaving fast.** Latency is measured to the waiter's exit: the watch is
  closed the moment the wait decides to return, before the state is read and
  printed (``Watch.close`` releases inotify on a thread).
* **A polling fallback** (``LOOOP_WAIT_POLL=1``, or wherever notifications
  cannot be set up: ``looop.watch``) compares a cheap stat signature every
  100 ms and reads the full hash once a second, so the same tests run on it.

**Nothing lost between two waits** (``--since CURSOR``, SPEC §8). The
starting point is then not the world when the wait began but what the
output carrying the cursor showed (``state.Cursor``): the world parts are
compared against its digests, and an ask is news only when the cursor had
not seen it (``Cursor.new_asks``), so a change made while the agent was
acting returns at once and an ask the agent has already seen does not wake
it again. Workers are news when the session generation moved (every start
and end pokes ``sessions/.changed``: a worker that started and ended
between two waits is news although the live set is the same again) or the
live set differs (a supervisor killed outright pokes nothing; the live set
and the next beat's ``sys-sessions`` report it), a worker's turning stuck
included (``state.live_digest``); all are compared at the start, whenever
``sessions/.changed`` moves, and in the returned state. Nothing announces a
worker turning stuck, so the wait computes the moment the next one would
(``state.workers_now``: its last output plus its ``worker.stuck_after``)
and wakes then, as at a deadline (``_HealthWatch``).
Without ``--since`` the starting point is the world measured once the
watches are armed, with no ask seen and the workers of that moment. Either
way the returned ``changed`` also covers what the returned state itself
shows against that starting point, so it never shows more than it says.

Two environment variables are read here. ``LOOOP_WAIT_POLL`` (set, and not
``0``) forces the polling fallback, so the tests and the bench can run every
behaviour on it too. ``LOOOP_TEST_WAIT_READY`` names a file written (``<watch
name> <world hash>``, atomically) once the wait is armed: a test or the bench
changes the world only after that, and learns which watch the wait sleeps on.

Blocked, a wait sleeps in the kernel: no timer ticks unless it probes the lock,
the watch polls (or once an hour under a longer timeout: ``looop.watch``), or a
worker's stuck deadline comes (at most once per ``worker.stuck_after`` each).
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from typing import Any

from looop import errors, fs, watch
from looop.agent import state
from looop.data import goals, mailbox, sessions
from looop.paths import Paths
from looop.pulse import lock, worldhash

POLL_ENV = "LOOOP_WAIT_POLL"  # set (not "0") to force the polling fallback
READY_ENV = "LOOOP_TEST_WAIT_READY"  # a file written once the wait is armed (tests, bench)

PULSE_POLL = 0.5  # lock probe period when the holder cannot be watched directly

ORDER = ("asks", "goals", "playbook", "snapshots", "workers", "pulse-down")

# What a wake may have moved, so only the needed reads are done.
WORLD, ASKS, PULSE, WORKERS = "world", "asks", "pulse", "workers"


# --- the wait ----------------------------------------------------------------
def wait(
    paths: Paths, timeout: float | None = None, since: state.Cursor | None = None
) -> dict[str, Any] | None:
    """The state plus ``changed`` once there is something to act on; None on timeout.

    ``timeout`` is in seconds; None or infinity waits for as long as it takes.
    ``since`` is the cursor of an earlier output: changes are relative to it.
    """
    if timeout is not None and math.isnan(timeout):
        raise ValueError("timeout must be a number of seconds, not NaN")
    deadline = None if timeout is None or timeout == math.inf else time.monotonic() + timeout
    watcher = watch.open_watch(_watched(paths), poll=os.environ.get(POLL_ENV, "") not in ("", "0"))
    try:
        # Watches first, then the starting reads: a change after this point
        # is seen either by the reads or by an event, never by neither.
        world = worldhash.measure(paths)
        generation, live, stuck = state.workers_now(paths)
        base = since or state.Cursor(world.parts, state.digest(set()), 0, 0, generation, live)
        pulse = _PulseWatch(paths, watcher)
        health = _HealthWatch(stuck)
        changed = base.moved(world.parts)
        if base.workers_moved(generation, live):
            changed.add("workers")
        if _has_new_ask(paths, base):
            changed.add("asks")
        if not pulse.arm():
            changed.add("pulse-down")
        _announce_ready(watcher.name, world.hash)
        while not changed:
            now = time.monotonic()
            remaining = None if deadline is None else deadline - now
            if remaining is not None and remaining <= 0:
                return None
            naps = [t for t in (remaining, pulse.probe_in(now), health.nap()) if t is not None]
            woke = watcher.wait(min(naps) if naps else None)
            hints = set(woke.roles)
            if woke.pid_exited or (
                pulse.next_probe is not None and time.monotonic() >= pulse.next_probe
            ):
                hints.add(PULSE)
            if health.due():
                hints.add(WORKERS)
            changed = _what_changed(paths, base, hints, pulse, health)
        alive = False if "pulse-down" in changed else watcher.pid_alive()
    finally:
        watcher.close()
    return _result(paths, base, changed, alive)


def exit_code(result: dict[str, Any]) -> int:
    """``_ wait``'s exit once it woke: 3 when the pulse is down (the loop ends), else 0."""
    return errors.NOT_RUNNING if "pulse-down" in result["changed"] else errors.OK


def _watched(paths: Paths) -> list[watch.Dir]:
    """What feeds the world hash (``WORLD``) and the mailbox (``ASKS``), to watch."""
    return [
        watch.Dir(
            paths.data_dir,
            WORLD,
            names=lambda name: name in (paths.playbook.name, paths.snapshots.name),
            follow=lambda name: name == paths.playbook.name,
        ),
        watch.Dir(paths.goals, WORLD, names=goals.named, follow=goals.named),
        watch.Dir(paths.asks, ASKS, names=mailbox.named),
        watch.Dir(paths.answers, ASKS, names=mailbox.named),
        # A session's start or end rewrites sessions/.changed (data.sessions.poke).
        watch.Dir(paths.sessions, WORKERS, names=lambda name: name == sessions.CHANGED),
    ]


def _what_changed(
    paths: Paths, base: state.Cursor, hints: set[str], pulse: _PulseWatch, health: _HealthWatch
) -> set[str]:
    changed: set[str] = set()
    if ASKS in hints and _has_new_ask(paths, base):
        changed.add("asks")
    if WORLD in hints:
        changed |= base.moved(worldhash.measure(paths).parts)
    if PULSE in hints and not pulse.arm():
        changed.add("pulse-down")
    # An answered ask may set its worker's stuck clock going again: looked at
    # before sleeping on, never on an ask's own way out.
    if WORKERS in hints or (ASKS in hints and not changed):
        generation, live, health.stuck_at = state.workers_now(paths)
        if base.workers_moved(generation, live):
            changed.add("workers")
    return changed


def _result(
    paths: Paths, base: state.Cursor, changed: set[str], alive: bool | None
) -> dict[str, Any]:
    # ``alive`` is known when the lock holder is watched (asking the lock
    # again reads /proc/locks, which can wait a whole RCU grace period).
    data, cursor = state.observe(paths, alive=alive)
    # The state is read after the wake; report what it shows, too.
    changed |= base.changes_to(paths, cursor, data["asks"])
    if not data["pulse_alive"]:
        changed.add("pulse-down")
    data["changed"] = [name for name in ORDER if name in changed]
    return data


def _has_new_ask(paths: Paths, base: state.Cursor) -> bool:
    """Is an ask pending that ``base`` had not seen?

    With none seen, ``mailbox.has_pending`` answers from names alone (the
    wake path of a plain wait); otherwise the pending asks are listed
    (``Cursor.new_asks``).
    """
    if not base.asks_n:
        return mailbox.has_pending(paths)
    return base.new_asks(paths, mailbox.pending(paths))


def _announce_ready(backend: str, world_hash: str) -> None:
    """``$LOOOP_TEST_WAIT_READY``: say, in that file, that the watches are armed."""
    target = os.environ.get(READY_ENV)
    if not target:
        return
    with contextlib.suppress(OSError):
        fs.write_whole(target, f"{backend} {world_hash}\n".encode())


class _HealthWatch:
    """When the next live worker turns stuck (``state.workers_now``): a deadline, not a poll.

    A worker's output is not watched (it would wake the wait at every
    chunk); at the deadline its health is judged again, and one that showed
    life meanwhile only moves the deadline on.
    """

    def __init__(self, stuck_at: float | None) -> None:
        self.stuck_at = stuck_at  # wall clock, as the output's mtime it comes from

    def nap(self) -> float | None:
        return None if self.stuck_at is None else max(0.0, self.stuck_at - time.time())

    def due(self) -> bool:
        return self.stuck_at is not None and time.time() >= self.stuck_at


# --- the pulse ---------------------------------------------------------------
class _PulseWatch:
    """Is the pulse (the lock holder) still there? Woken by its exit where possible."""

    def __init__(self, paths: Paths, watcher: watch.Watch) -> None:
        self.paths, self.watcher = paths, watcher
        self.next_probe: float | None = None  # set while the lock must be probed

    def _holder(self) -> int | None:
        return lock.pulse_holder(self.paths)  # a one-off beat is no pulse: pulse-down

    def probe_in(self, now: float) -> float | None:
        return None if self.next_probe is None else max(0.0, self.next_probe - now)

    def arm(self) -> bool:
        """False when no pulse holds the lock; else watch the holder and return True."""
        self.watcher.unwatch_pid()
        self.next_probe = None
        for _ in range(3):
            pid = self._holder()
            if pid is None:
                return False
            if pid <= 0:
                break
            try:
                if not self.watcher.watch_pid(pid):
                    break  # this watch cannot: probe the lock instead
            except ProcessLookupError:
                continue  # it went away while being armed: ask the lock again
            # The handle names whichever process had this pid when it was
            # opened; if the lock still names that pid now, it is the holder.
            # (Had it exited in between, the handle is already signalled and
            # the next wake re-arms.)
            if self._holder() == pid:
                return True
            self.watcher.unwatch_pid()
        self.next_probe = time.monotonic() + PULSE_POLL
        return True
