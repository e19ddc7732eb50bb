"""What a sensor started, outliving it or the runner: found and ended.

**The runner dies outright** (a pulse or a one-off ``looop sense`` killed by
SIGKILL, or by SIGQUIT, which no handler sees): each sensor's group was
handed to a ``looop.lifeline.Lifeline`` as it started (``guard``, and
``release`` once the runner ended it), whose guardian kills what is still
listed the moment the runner is gone, and what carries the lifeline's
mark (the sensors' environment, from ``start``), even a sensor the runner
was starting when it died, so no sensor outlives its beat's runner. Under
a service manager the unit's cgroup would do it too; a detached pulse and
a one-off beat have only this.

**Descendants that leave the group.** A process group is only a convention:
a sensor's child may call ``setsid`` or ``setpgid``, and then no signal to
the group reaches it. On Linux the process running sensors is therefore a
*child subreaper* (``become_subreaper``, called by ``Orphans.start`` at the
start of every ``looop.pulse.sensors.SensorRun.run``, which both the pulse
and a one-off ``looop sense`` go through): every orphaned descendant of a
sensor is re-parented to it instead of to init, so it can be found among our
own children (``looop.proc.children``) and, being our unreaped child,
signalled with no risk of a reused pid. A sweep, every
``looop.pulse.sensors.SWEEP_EVERY`` while sensors run, kills every such
re-parented process that no running sensor can own, and reaps the zombies
re-parented to us so none accumulate; whatever is left is killed when the
run ends. Not a sweep after each sensor's end, as once: with quick
sensors that read the process table every few sensors, for an escaped
descendant found half a second sooner. "Can own" is decided by start
time: a process started (by the kernel's clock, ``looop.proc.stat``) before a sensor was
spawned cannot descend from it, so a process is spared only while some
running sensor was spawned no later than it. Our children that existed
before the run (the pulse starts none, but the rule does not depend on it; a
descendant an earlier run killed but could not reap yet is not one of them)
and running sensors' own leaders are never touched.

The subreaper flag is one ``prctl`` call made through ``ctypes`` with
symbols from the running process, as the inotify binding in ``looop.watch``
does: ``python-prctl`` is a C extension that needs libcap headers to build,
and ``psutil`` has no ``prctl``; a dependency for one system call would cost
every install more than these lines. A kernel (or seccomp filter) that
refuses the call leaves process groups only.

On macOS there is no subreaper: process groups are all there is, so a
descendant that calls ``setsid`` or ``setpgid`` and outlives its parent is
re-parented to launchd and survives the beat. Everything else holds there.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Mapping

from looop import proc
from looop.lifeline import Lifeline

PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>

_subreaper: bool | None = None  # None: not asked yet (the answer never changes)
# (pid, start) of descendants killed by an earlier run that were not dead when it
# ended (stuck in the kernel): ours to reap still, though they predate this run.
_unreaped: set[tuple[int, int]] = set()


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux); True if it is.

    Idempotent and cheap after the first call. The flag is not inherited by
    children, so a sensor never becomes one.
    """
    global _subreaper
    if _subreaper is None:
        _subreaper = False
        if sys.platform.startswith("linux"):
            import ctypes  # only here: a macOS run never pays for it

            libc = ctypes.CDLL(None, use_errno=True)
            one, zero = ctypes.c_ulong(1), ctypes.c_ulong(0)
            done = libc.prctl(ctypes.c_int(PR_SET_CHILD_SUBREAPER), one, zero, zero, zero)
            _subreaper = done == 0
    return _subreaper


class Orphans:
    """One run's re-parented descendants; ``active`` once ``start`` made us their reaper."""

    def __init__(self) -> None:
        self.active = False
        self.foreign: set[tuple[int, int]] = set()  # (pid, start) of children not ours to end
        self.lifeline: Lifeline | None = None

    def start(self) -> dict[str, str]:
        """Start the lifeline, become the subreaper, set aside the children we already have.

        Returns the lifeline's mark, for the sensors' environment.
        """
        self.lifeline = Lifeline()  # first: the guardian is one of the children set aside
        self.active = become_subreaper()
        if self.active:
            present = {(pid, st[1]) for pid in proc.children() if (st := proc.stat(pid))}
            _unreaped.intersection_update(present)
            self.foreign = present - _unreaped
        self.lifeline.starting()  # sensors, one after another, until the run ends
        return self.lifeline.marked({})

    def guard(self, pgid: int) -> None:
        """A sensor's group, ended by the lifeline if the runner dies before it does."""
        if self.lifeline is not None:
            self.lifeline.add(pgid)

    def release(self, pgid: int) -> None:
        """The runner has ended that group and is about to reap its leader."""
        if self.lifeline is not None:
            self.lifeline.drop(pgid)

    def sweep(self, running: Mapping[int, int], final: bool = False) -> int:
        """Reap re-parented zombies; kill re-parented processes no running sensor can own.

        ``running`` maps each running sensor's pid to its start (boot-clock
        ticks just before its spawn). Returns how many of our re-parented
        children are still alive. A process is spared only while a running
        sensor was spawned no later than it (it may descend from that one);
        ``final`` spares none.
        """
        oldest = None if final or not running else min(running.values())
        alive = 0
        for pid in proc.children():
            if pid in running:
                continue  # a sensor's leader: its own finish reaps it
            st = proc.stat(pid)
            if st is None or (pid, st[1]) in self.foreign:
                continue
            state, start = st
            if state in ("Z", "X"):
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)
                continue
            alive += 1
            if oldest is None or start < oldest:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)  # our unreaped child: the pid is still its own
        return alive

    def end(self, grace: float) -> None:
        """The run is over: kill every re-parented descendant and reap it (waiting ``grace``).

        The lifeline goes first: every sensor's group has been ended by now.
        """
        if self.lifeline is not None:
            self.lifeline.close()
            self.lifeline = None
        if not self.active:
            return
        deadline = time.monotonic() + grace
        while self.sweep({}, final=True) and time.monotonic() < deadline:
            time.sleep(0.002)
        # One not dead yet (stuck in the kernel) is reaped by the next run's sweeps.
        for pid in proc.children():
            st = proc.stat(pid)
            if st is not None and (pid, st[1]) not in self.foreign:
                _unreaped.add((pid, st[1]))
