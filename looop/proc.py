"""Process liveness: the one answer to "is this pid alive, and still that process?".

A pid is a name the kernel hands out again, so "alive" has two questions in
it. ``alive`` asks whether a process by that pid runs at all (a zombie has
exited; only its parent has not collected it). ``runs_since`` also asks
whether it is the process that started at a known time: a process created
later than that is a stranger that reused the pid. Sessions (``meta.json``
records when the worker started), the detached start (``looop up`` watching
the pulse it forked) and the supervisor all ask here.

Signal 0 answers the commonest case (no such pid) without loading the
process table; only a pid that exists costs a ``psutil`` look-up.
"""

from __future__ import annotations

import os

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
    import psutil  # only a pid that exists needs the process table

    try:
        proc = psutil.Process(pid)
        created = proc.create_time()
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
    except psutil.NoSuchProcess:  # ZombieProcess is a NoSuchProcess too
        return False
    except (psutil.AccessDenied, OSError):
        return True
    return started is None or created <= started + START_SLACK
