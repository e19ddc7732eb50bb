"""Process liveness: the one answer to "is this pid alive, and still that process?".

A pid is a name the kernel hands out again, so "alive" has two questions in
it. ``alive`` asks whether a process by that pid runs at all (a zombie has
exited; only its parent has not collected it). ``runs_since`` also asks
whether it is the process that started at a known time: a process created
later than that is a stranger that reused the pid. Sessions (``meta.json``
records when the worker started), the detached start (``looop up`` watching
the pulse it forked) and the supervisor all ask here. ``group_runs_since``
asks the same of a process group: a worker whose supervisor was killed
outright is still found by the group it was started in.

Signal 0 answers the commonest case (no such pid) without loading the
process table. A pid that exists is looked up in ``/proc/<pid>/stat`` on
Linux (its state and start time, as psutil itself computes them) and
through ``psutil`` elsewhere: looop depends on psutil only off Linux
(pyproject's marker), so nothing here imports it where ``/proc`` answers.

A cgroup is asked the same way (``own_cgroup``, ``cgroup_populated``): a
worker whose unit supervises it alone (``workers.unit``) has ended once its
pid is gone, but its end is recorded by the unit's ``ExecStopPost=``, which
runs in the unit's cgroup; while it is populated, the session is still
ending, not dead.

``/proc/<pid>/stat`` is read here and nowhere else (``stat``): the sensor
runner asks it too, for the state and start of the descendants re-parented
to it (``children``), on the same clock as ``boot_ticks``.
"""

from __future__ import annotations

import os
import sys
import time

# Start times have coarse granularity (Linux reports them from a boot time
# rounded to a second), and a record of "started" is written just after the
# process began: allow this much before calling a process "started later".
START_SLACK = 2.0


def _exists(pid: int) -> bool | None:
    """False when no process has ``pid``; True when one is ours; None when it is not ours."""
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the pid exists
    except ProcessLookupError:
        return False
    except (OverflowError, ValueError):
        return False  # a pid no system hands out
    except PermissionError:
        return None
    return True


def alive(pid: int) -> bool:
    """True while a process (not a zombie) has ``pid``."""
    return runs_since(pid, None)


def runs_since(pid: int, started: float | None) -> bool:
    """True when ``pid`` runs and did not start after ``started`` (Unix seconds).

    A process that exists but cannot be examined (another user's) counts as
    running: never call a process dead on a guess.
    """
    if pid <= 0 or _exists(pid) is False:
        return False
    seen = _from_proc(pid) if _PROC_STAT else None
    if seen is None:
        seen = _from_psutil(pid)
    if seen is None:
        return True  # cannot be examined: running
    zombie, created = seen
    if zombie:
        return False
    return started is None or created <= started + START_SLACK


def group_runs_since(pgid: int, started: float | None) -> bool:
    """True while process group ``pgid`` has a member and is the one led by a process
    that did not start after ``started``.

    A group's id is its leader's pid, which the system does not hand out
    again while any member lives; so a group whose leader has exited but
    whose members run on is still the same group, and one whose id names a
    later process now is another group.
    """
    if pgid <= 1:
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except (OverflowError, ValueError):
        return False
    except PermissionError:
        pass
    if _exists(pgid) is False:
        return True  # its leader is gone, its members run on
    seen = (_from_proc(pgid) if _PROC_STAT else None) or _from_psutil(pgid)
    # A zombie leader still leads its group: only a later start says "another group".
    return seen is None or started is None or seen[1] <= started + START_SLACK


def _from_psutil(pid: int) -> tuple[bool, float] | None:
    """(is a zombie, start time), or None when the process cannot be examined.

    Where there is ``/proc`` (Linux, which installs no psutil) ``_from_proc``
    has answered already; its None means gone (no ``/proc/<pid>``: as
    psutil's NoSuchProcess) or unreadable.
    """
    if _PROC_STAT:
        return None if os.path.exists(f"/proc/{pid}") else (True, 0.0)
    import psutil

    try:
        proc = psutil.Process(pid)
        created = proc.create_time()
        return proc.status() == psutil.STATUS_ZOMBIE, created
    except psutil.NoSuchProcess:  # ZombieProcess is a NoSuchProcess too
        return True, 0.0
    except (psutil.AccessDenied, OSError):
        return None


# On Linux the answer is two small files, read as psutil reads them; psutil
# itself costs every command that judges a live session ~12 ms of imports.
_PROC_STAT = os.path.exists("/proc/self/stat") and sys.platform.startswith("linux")
_boot_time: float | None = None


def stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks since boot) of ``pid`` from ``/proc/<pid>/stat``.

    None when it cannot be read: the process is gone, or there is no such
    file (not Linux) or no reading it.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        # After the ")" closing the command: state is field 3, starttime field 22.
        return fields[0].decode(), int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def boot_ticks() -> int:
    """Now, on the clock ``stat`` gives a process's start in (floored)."""
    return int(time.clock_gettime(time.CLOCK_BOOTTIME) * os.sysconf("SC_CLK_TCK"))


def children() -> list[int]:
    """This process's children, from every thread's ``children`` list (Linux)."""
    pids: list[int] = []
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        tasks = []
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/children", "rb") as fh:
                pids.extend(int(p) for p in fh.read().split())
        except FileNotFoundError:
            if not os.path.exists(f"/proc/self/task/{tid}"):
                continue  # the thread ended meanwhile
            return _children_by_parent()  # a kernel without CONFIG_PROC_CHILDREN
    return pids


def _children_by_parent() -> list[int]:
    """This process's children, as psutil finds them: every ``/proc/<pid>/stat`` naming us."""
    me, found = os.getpid(), []
    for name in os.listdir("/proc"):
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
            if int(fields[1]) == me:  # after the ")": state, then the parent's pid
                found.append(int(name))
        except (OSError, IndexError, ValueError):
            continue  # not a process, or gone meanwhile
    return found


def _from_proc(pid: int) -> tuple[bool, float] | None:
    """(is a zombie, start time) from ``stat``; None to ask ``_from_psutil`` instead."""
    global _boot_time
    seen = stat(pid)
    if seen is None:
        return None  # gone since it was signalled, or unreadable: _from_psutil tells which
    if _boot_time is None:
        try:
            with open("/proc/stat", "rb") as f:
                _boot_time = next(
                    float(line.split()[1]) for line in f if line.startswith(b"btime ")
                )
        except (OSError, IndexError, ValueError, StopIteration):
            return None
    state, start = seen
    return state in ("Z", "X"), _boot_time + start / os.sysconf("SC_CLK_TCK")


def own_cgroup() -> str | None:
    """This process's cgroup (v2) as a directory, or None where there is none to name."""
    try:
        with open("/proc/self/cgroup", encoding="utf-8", errors="replace") as fh:
            path = next((line[3:].strip() for line in fh if line.startswith("0::/")), None)
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
            mounts = [
                left.split()[4]
                for left, _, right in (line.partition(" - ") for line in fh)
                if right.split()[:1] == ["cgroup2"] and len(left.split()) > 4
            ]
    except OSError:
        return None
    if path is None or not mounts:
        return None
    return mounts[0] + path


def cgroup_populated(directory: str) -> bool:
    """Does a process still run in the cgroup ``directory`` (or one beneath it)?"""
    try:
        fd = os.open(os.path.join(directory, "cgroup.events"), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return b"populated 1" in os.read(fd, 4096)
    except OSError:
        return False
    finally:
        os.close(fd)
