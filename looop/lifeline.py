"""A watcher's lifeline: process groups that end when the process watching them dies.

A looop process that runs commands in process groups of their own
(``looop.group`` for ``_ run`` and a worker's supervisor, the sensor runner
for a pulse or a one-off ``looop sense``) ends them itself on every way out
it can see: an exit, an exception, a signal it handles. It cannot when it
dies outright (SIGKILL, an agent's tool at its time limit; SIGQUIT; a
crash): its commands are re-parented and run on with nobody to end them, a
``_ run`` command looping for its whole timeout, a SIGKILLed pulse's slow
sensor and everything that sensor started.

``Lifeline`` is the guardian of those groups: a small ``/bin/sh`` started
in a session of its own (so no signal meant for its watcher's process group
reaches it) that reads group ids from a pipe: ``N`` adds group N, ``-N``
forgets it once the watcher has ended it. The watcher holds the only write
end (close-on-exec, so none of its children inherits it); when the pipe
reaches end of file, the watcher is gone, however it died, and the guardian
SIGKILLs every group it still has. A watcher that ends normally kills the
guardian first (its own unreaped child, so the pid is still that process)
and only then lets the pipe close, so the guardian never acts on groups the
watcher has dealt with; and it sends ``-N`` (or ends the guardian) before
it reaps a group's leader, the moment the id could be handed out again
(``pid_max`` may be 32768), so the guardian never kills a stranger's group
that took the id.

Rejected: ``PR_SET_PDEATHSIG`` in each child. It ends only the process it
is set in (a ``sh -c 'yes | cat'`` or a sensor's ``sleep`` child outlives
it), it fires on the death of the parent *thread*, it is Linux-only, and
setting it needs code between fork and exec: ``preexec_fn``, which costs
every spawn its ``vfork``/``posix_spawn`` path (the sensor runner's beat is
built on ``posix_spawn``), or a wrapper exec per command. The lifeline is
one extra process per run or beat, works wherever there is ``/bin/sh``, and
reaches a whole group; what leaves its group (``setsid``) stays the
subreaper sweep's (``looop.pulse.orphans``) and a unit's cgroup's. A
forked Python guardian was rejected for its memory (a copy of the
watcher's interpreter) where a shell costs a few hundred KiB.

Where the guardian cannot be started (out of processes or descriptors) the
watcher runs unguarded, as it did before: a failed guardian never fails a
run or a beat. Messages are never waited for: a guardian that stalls or
died costs the watcher nothing but its guard.
"""

from __future__ import annotations

import contextlib
import os
import signal

# Reads "N" / "-N" lines until end of file, then SIGKILLs each group still listed.
GUARD = (
    "g=' '; "
    "while read -r w; do case $w in "
    '-*) w=${w#-}; case $g in *" $w "*) g="${g%% $w *} ${g#* $w }";; esac;; '
    '*) g="$g$w ";; esac; done; '
    'for w in $g; do kill -s KILL -- "-$w"; done 2>/dev/null'
)
_RESET = tuple(signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP})


class Lifeline:
    """The guardian of one watcher's process groups (``pid`` None: none could be started)."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.fd = -1
        try:
            read_end, self.fd = os.pipe()
        except OSError:
            return
        try:
            self.pid = _spawn(read_end)
            os.set_blocking(self.fd, False)
        except OSError:
            os.close(self.fd)
            self.fd = -1
        finally:
            os.close(read_end)

    def add(self, pgid: int) -> None:
        """Guard the process group ``pgid``."""
        self._send(f"{pgid}\n")

    def drop(self, pgid: int) -> None:
        """Forget ``pgid``: the watcher has ended it and is about to reap its leader."""
        self._send(f"-{pgid}\n")

    def close(self) -> None:
        """The watcher is done with its groups: end the guardian, then let go of the pipe."""
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self.pid = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _send(self, line: str) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):  # stalled or gone: the guard is lost, not the run
                os.write(self.fd, line.encode())


def _spawn(read_end: int) -> int:
    devnull = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    try:
        actions = [
            (os.POSIX_SPAWN_DUP2, read_end, 0),
            (os.POSIX_SPAWN_DUP2, devnull, 1),
            (os.POSIX_SPAWN_DUP2, devnull, 2),
        ]
        argv = ["/bin/sh", "-c", GUARD]
        try:
            return os.posix_spawn(
                argv[0], argv, os.environ, file_actions=actions, setsid=True, setsigdef=_RESET
            )
        except NotImplementedError:  # no POSIX_SPAWN_SETSID here: a group of its own
            return os.posix_spawn(
                argv[0], argv, os.environ, file_actions=actions, setpgroup=0, setsigdef=_RESET
            )
    finally:
        os.close(devnull)
