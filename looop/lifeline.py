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
reaches it) that does nothing but wait for end of file on a pipe whose only
write end the watcher holds (close-on-exec, so none of its children
inherits it). The groups it guards are a list in an anonymous file the two
share (a ``memfd`` on Linux, an unlinked temporary file elsewhere): ``N``
adds group N, ``-N`` forgets it once the watcher has ended it. The watcher
appends each line with ``pwrite`` at the list's end, so the file offset
the guardian inherited stays at 0 and nothing wakes the guardian; when the
pipe reaches end of file, the watcher is gone, however it died, and the
guardian reads the list from the start and SIGKILLs every group still on
it. A watcher that ends normally kills the guardian first (its own
unreaped child, so the pid is still that process) and only then lets the
pipe close, so the guardian never acts on groups the watcher has dealt
with; and it writes ``-N`` (or ends the guardian) before it reaps a group's
leader, the moment the id could be handed out again (``pid_max`` may be
32768), so the guardian never kills a stranger's group that took the id.

Rejected: the list sent down the pipe itself, as it once was. Every line
woke the guardian, which read it a byte at a time (a shell's ``read``
cannot read ahead on a pipe), and the wake-up cost the watcher its CPU
while the guardian ran: a beat of 200 trivial sensors spent a tenth of
its time on those 400 writes. A line in a file wakes nobody.

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

# Waits for end of file on stdin (the watcher gone), then reads the list on fd 3
# ("N" / "-N" lines) from its start and SIGKILLs each group still listed.
GUARD = (
    "read -r w; g=' '; "
    "while read -r w; do case $w in "
    '-*) w=${w#-}; case $g in *" $w "*) g="${g%% $w *} ${g#* $w }";; esac;; '
    '*) g="$g$w ";; esac; done <&3; '
    'for w in $g; do kill -s KILL -- "-$w"; done 2>/dev/null'
)
_RESET = tuple(signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP})


class Lifeline:
    """The guardian of one watcher's process groups (``pid`` None: none could be started)."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.fd = -1  # the pipe's write end: its closing is the watcher's death
        self.list_fd = -1  # the groups guarded, appended at ``size``
        self.size = 0
        try:
            self.list_fd = _anonymous_file()
            read_end, self.fd = os.pipe()
        except OSError:
            self._let_go()
            return
        try:
            self.pid = _spawn(read_end, self.list_fd)
        except OSError:
            self._let_go()
        finally:
            os.close(read_end)

    def add(self, pgid: int) -> None:
        """Guard the process group ``pgid``."""
        self._append(f"{pgid}\n")

    def drop(self, pgid: int) -> None:
        """Forget ``pgid``: the watcher has ended it and is about to reap its leader."""
        self._append(f"-{pgid}\n")

    def close(self) -> None:
        """The watcher is done with its groups: end the guardian, then let go of the pipe."""
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self.pid = None
        self._let_go()

    def _let_go(self) -> None:
        for fd in (self.fd, self.list_fd):
            if fd >= 0:
                os.close(fd)
        self.fd = self.list_fd = -1

    def _append(self, line: str) -> None:
        if self.pid is None:
            return
        data = line.encode()
        try:
            written = os.pwrite(self.list_fd, data, self.size)
        except OSError:
            written = -1
        if written != len(data):
            # A list that no longer says what is true must not be acted on:
            # the guard is lost, never the run.
            self.close()
            return
        self.size += written


def _anonymous_file() -> int:
    """A file nobody else can name, for the list (close-on-exec)."""
    if hasattr(os, "memfd_create"):
        with contextlib.suppress(OSError):  # refused (a seccomp filter): a temporary file
            return os.memfd_create("looop-lifeline", os.MFD_CLOEXEC)
    import tempfile  # not Linux: an unlinked temporary file

    fd, name = tempfile.mkstemp(prefix="looop-lifeline-")
    os.unlink(name)
    return fd


def _spawn(read_end: int, list_fd: int) -> int:
    devnull = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
    try:
        actions = [
            (os.POSIX_SPAWN_DUP2, read_end, 0),
            (os.POSIX_SPAWN_DUP2, devnull, 1),
            (os.POSIX_SPAWN_DUP2, devnull, 2),
            (os.POSIX_SPAWN_DUP2, list_fd, 3),
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
