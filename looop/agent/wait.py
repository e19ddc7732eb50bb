"""``looop _ wait``: block until there is something to act on, then say what.

This module owns the root agent's blocking read. A wait returns the state (as
``looop _ state``) plus ``changed`` when a pending ask exists, the world hash
differs from its value when the wait began, a schedule's instant comes, or
the pulse is not running; each
of those is checked once at the start, so a wait never sleeps on a world that
already needs attention or that nothing will update.

Why it is shaped this way:

* **Events, not a poll.** Every millisecond a wait oversleeps is the agent
  reacting late, so it sleeps (``looop.watch``, which owns the notifications,
  their filtering and settling, and the polling fallback) on exactly what
  feeds the hash and the mailbox: the data dir itself (``PLAYBOOK.md`` and the
  ``snapshots`` symlink, whose atomic swap is a rename *in the data dir*),
  ``goals/``, ``asks/`` and ``answers/``, and ``PLAYBOOK.md`` and each goal in
  their own right where one is a symlink (``watched``; ``looop watch`` sleeps
  on the same list, widened by what only a person looks at). A wake says only which reads may
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

**Waking only for some kinds** (``--for``, ``wake_on``): an agent that
handles only asks, or a script that relays them, should not be woken by
every beat. The starting reads and every wake still compute what moved (a
read whose kinds cannot wake the wait is skipped), but only a moved kind
that was asked for, or ``pulse-down``, ends it; the returned ``changed`` and
cursor cover everything, so the next wait does not report what this one let
pass. Rejected: a cursor that leaves the unwanted kinds behind (the next
plain wait would return at once for a beat long gone) and two fixed filters
(the reference's ``--actionable``/``--only-asks``), which named no kind.
``schedules`` (a schedule come due) is one of the kinds it may name.

A wait with no ``--timeout`` takes the config's ``[wait] timeout`` (read by
the command, not here): a root agent's shell tool kills a call after a few
minutes, and a wait that ends by itself first (exit 124, nothing lost: the
same cursor again) is a turn, not a failure.

Two environment variables are read here. ``LOOOP_WAIT_POLL`` (set, and not
``0``) forces the polling fallback, so the tests and the bench can run every
behaviour on it too. ``LOOOP_TEST_WAIT_READY`` names a file written (``<watch
name> <world hash>``, atomically) once the wait is armed: a test or the bench
changes the world only after that, and learns which watch the wait sleeps on.

**Schedules at their instant** (``data.schedules``). The wait reads
``schedules/`` once armed, computes the first instant of any schedule after
its starting point (the cursor's ``rang_us``, or the moment it was armed),
and makes that a deadline of its sleep beside the timeout: it wakes at the
instant itself, with no beat in between (the pulse has no part in it, so a
pulse restart loses nothing). ``schedules/`` is watched (``SCHEDULES``): a
schedule written or removed while the wait sleeps moves the deadline, so
one removed before it is due wakes nothing. An instant already past the
starting point (missed while the agent acted) returns at once. While a
deadline is set the sleep is cut to ``CLOCK_CHECK`` seconds: the deadline
is wall time, and the monotonic clock a sleep is measured in stops while
the machine is suspended, so a laptop that slept through 09:00 wakes the
wait within that much of resuming, not hours late.

Blocked, a wait sleeps in the kernel: no timer ticks unless it probes the lock
or the watch polls, or a schedule is ahead (every ``CLOCK_CHECK``), or a
worker's stuck deadline comes (at most once per ``worker.stuck_after`` each),
or once an hour under a longer timeout (``looop.watch``).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time

from looop import errors, fs, watch
from looop.agent import state
from looop.data import goals, mailbox, schedules, sessions
from looop.paths import Paths
from looop.pulse import lock, worldhash

TYPE_CHECKING = False  # not typing's: `_ wait` is run in a loop
if TYPE_CHECKING:
    from typing import Any

POLL_ENV = "LOOOP_WAIT_POLL"  # set (not "0") to force the polling fallback
READY_ENV = "LOOOP_TEST_WAIT_READY"  # a file written once the wait is armed (tests, bench)

PULSE_POLL = 0.5  # lock probe period when the holder cannot be watched directly
CLOCK_CHECK = 60.0  # seconds: the longest sleep while a schedule's instant is ahead

ORDER = ("asks", "goals", "playbook", "snapshots", "workers", "schedules", "pulse-down")

# What ``--for`` may name: the kinds of ``changed`` a wait can be asked to wake
# for. ``pulse-down`` is not among them: it always wakes (nothing else would).
CATEGORIES = ("asks", "workers", "goals", "playbook", "snapshots", "schedules")

# What a wake may have moved, so only the needed reads are done.
WORLD, ASKS, PULSE, WORKERS, SCHEDULES = "world", "asks", "pulse", "workers", "schedules"

# The kinds of ``changed`` each read may find, so a wait reads only what can wake it.
ROLE_KINDS = {
    WORLD: frozenset(worldhash.PARTS),
    ASKS: frozenset({"asks"}),
    WORKERS: frozenset({"workers"}),
}


# --- the wait ----------------------------------------------------------------
def wait(
    paths: Paths,
    timeout: float | None = None,
    since: state.Cursor | None = None,
    wake_on: frozenset[str] | None = None,
) -> dict[str, Any] | None:
    """The state plus ``changed`` once there is something to act on; None on timeout.

    ``timeout`` is in seconds; None or infinity waits for as long as it takes.
    ``since`` is the cursor of an earlier output: changes are relative to it.
    ``wake_on`` (``--for``) names the ``CATEGORIES`` that end the wait (None:
    all of them); a change of another kind is let pass, but the returned
    ``changed`` and cursor still cover it, so the next wait does not take it
    for news. ``pulse-down`` ends every wait.
    """
    if timeout is not None and math.isnan(timeout):
        raise ValueError("timeout must be a number of seconds, not NaN")
    deadline = None if timeout is None or timeout == math.inf else time.monotonic() + timeout
    watcher = watch.open_watch(watched(paths), poll=os.environ.get(POLL_ENV, "") not in ("", "0"))
    try:
        # Watches first, then the starting reads: a change after this point
        # is seen either by the reads or by an event, never by neither.
        world = worldhash.measure(paths)
        fresh: worldhash.World | None = world  # taken since the last sleep: the state reuses it
        generation, live, stuck = state.workers_now(paths)
        clock = _Clock(paths, since)
        base = since or state.Cursor(
            world.parts, state.digest(set()), 0, 0, generation, live, clock.mark
        )
        wakes = {"pulse-down", *(CATEGORIES if wake_on is None else wake_on)}
        reads = {PULSE, *(role for role, kinds in ROLE_KINDS.items() if kinds & wakes)}
        pulse = _PulseWatch(paths, watcher)
        health = _HealthWatch(stuck)
        changed = base.moved(world.parts)
        if base.workers_moved(generation, live):
            changed.add("workers")
        if _has_new_ask(paths, base):
            changed.add("asks")
        if not pulse.arm():
            changed.add("pulse-down")
        if clock.rang():
            changed.add("schedules")
        _announce_ready(watcher.name, world.hash)
        while not changed & wakes:
            now = time.monotonic()
            remaining = None if deadline is None else deadline - now
            if remaining is not None and remaining <= 0:
                return None
            # A deadline of a kind let pass is not slept to: it would come again at once.
            ring = clock.nap() if "schedules" in wakes else None
            stuck_in = health.nap() if "workers" in wakes else None
            naps = [t for t in (remaining, pulse.probe_in(now), ring, stuck_in) if t is not None]
            woke = watcher.wait(min(naps) if naps else None)
            fresh = None  # a measure from before this sleep may be stale now
            hints = set(woke.roles)
            if woke.pid_exited or (
                pulse.next_probe is not None and time.monotonic() >= pulse.next_probe
            ):
                hints.add(PULSE)
            if health.due():
                hints.add(WORKERS)
            moved, fresh = _what_changed(paths, base, hints & reads, pulse, health)
            changed |= moved
            if SCHEDULES in hints:
                clock.read()
            if clock.rang():
                changed.add("schedules")
        alive = False if "pulse-down" in changed else watcher.pid_alive()
    finally:
        watcher.close()
    return _result(paths, base, changed, alive, fresh)


def command(
    paths: Paths,
    as_json: bool,
    timeout: float | None,
    since: str | None,
    wake_for: tuple[str, ...] | list[str],
) -> int:
    """``looop _ wait``, its options parsed (by click, or by ``looop.__main__``'s fast path).

    Prints the state and ends the process at once with ``exit_code``; returns
    124 (``errors.TIMED_OUT``) when nothing came within the timeout, which
    without one is the config's ``[wait] timeout`` (0: never).
    """
    cursor = None if since is None else state.Cursor.decode(since)
    if timeout is None:
        from looop import config

        timeout = config.load_logged(paths.config_file).wait_timeout or None
    wake_on = categories(wake_for) if wake_for else None
    data = wait(paths, timeout=timeout, since=cursor, wake_on=wake_on)
    if data is None:
        return errors.TIMED_OUT
    sys.stdout.write(state.formatted(data, as_json) + "\n")
    # The agent is blocked on this exit: once the answer is out, skip the
    # interpreter's teardown (about 10 ms of freeing modules).
    sys.stdout.flush()
    os._exit(exit_code(data))


def categories(given: tuple[str, ...] | list[str]) -> frozenset[str]:
    """``--for``'s names, each option comma-separated; an unknown one is a usage error."""
    names = {name.strip() for option in given for name in option.split(",")} - {""}
    unknown = sorted(names - set(CATEGORIES))
    if unknown or not names:
        said = ", ".join(map(repr, unknown)) or "nothing"
        raise errors.UsageError(f"--for: unknown {said} (known: {', '.join(CATEGORIES)})")
    return frozenset(names)


def exit_code(result: dict[str, Any]) -> int:
    """``_ wait``'s exit once it woke: 3 when the pulse is down (the loop ends), else 0."""
    return errors.NOT_RUNNING if "pulse-down" in result["changed"] else errors.OK


def watched(paths: Paths) -> list[watch.Dir]:
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
        watch.Dir(paths.schedules, SCHEDULES, names=schedules.named),
    ]


def _what_changed(
    paths: Paths, base: state.Cursor, hints: set[str], pulse: _PulseWatch, health: _HealthWatch
) -> tuple[set[str], worldhash.World | None]:
    """What moved, and the world when it was measured (the returned state then reuses it)."""
    changed: set[str] = set()
    world = None
    if ASKS in hints and _has_new_ask(paths, base):
        changed.add("asks")
    if WORLD in hints:
        world = worldhash.measure(paths)
        changed |= base.moved(world.parts)
    if PULSE in hints and not pulse.arm():
        changed.add("pulse-down")
    # An answered ask may set its worker's stuck clock going again: looked at
    # before sleeping on, never on an ask's own way out.
    if WORKERS in hints or (ASKS in hints and not changed):
        generation, live, health.stuck_at = state.workers_now(paths)
        if base.workers_moved(generation, live):
            changed.add("workers")
    return changed, world


def _result(
    paths: Paths,
    base: state.Cursor,
    changed: set[str],
    alive: bool | None,
    world: worldhash.World | None,
) -> dict[str, Any]:
    # ``alive`` is known when the lock holder is watched (asking the lock
    # again reads /proc/locks, which can wait a whole RCU grace period);
    # ``world`` when the wake that ends the wait measured it.
    data, cursor = state.observe(paths, alive=alive, world=world)
    # The state is read after the wake; report what it shows, too.
    changed |= base.changes_to(paths, cursor, data)
    if not data["pulse_alive"]:
        changed.add("pulse-down")
    for due in data["schedules"]:
        due["new"] = base.sees_instant(due["due"])  # what woke it, or came since
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


# --- the schedules -----------------------------------------------------------
class _Clock:
    """The first schedule instant after the wait's starting point, as a deadline."""

    def __init__(self, paths: Paths, since: state.Cursor | None) -> None:
        self.paths = paths
        # Without a cursor, the moment the wait is armed is its mark.
        self.mark = schedules.us(time.time()) if since is None else since.rang_us
        self.read()

    def read(self) -> None:
        """(Re)read ``schedules/``: one written or removed moves the deadline."""
        self.due = schedules.next_due(schedules.listing(self.paths), self.mark)

    def nap(self) -> float | None:
        """Seconds to sleep at most: until the instant, never over ``CLOCK_CHECK``."""
        return None if self.due is None else max(0.0, min(self.due - time.time(), CLOCK_CHECK))

    def rang(self) -> bool:
        """Has the first instant after the starting point come?"""
        return self.due is not None and time.time() >= self.due


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
