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

**A start under way.** A child's group can be listed only once its pid is
known, when ``os.posix_spawn`` (the sensors) or ``subprocess.Popen``
(``looop.group``) returns, and both are vfork-based: the watcher is
suspended until the child has exec'd, milliseconds under load. A watcher
killed then never lists the child it was starting, which runs on. So every
process a watcher starts carries the lifeline's mark in its environment
(``Lifeline.marked``: ``LOOOP_LIFELINE``, the watcher's pid and 128 random
bits; the sensors' environment is encoded once a beat, so it costs nothing
per sensor), and the watcher says when starts are under way (``starting``:
``+``, then ``=``): ``looop.group`` around its one command's start, until
its group is listed; a sensor runner for its whole run, a beat's sensors
being started one after another (one line a beat, not one a sensor). A
guardian whose watcher died with starts under way also kills every process
carrying the mark and the group each one made: one ``grep -z`` over
``/proc/*/environ``, again until two scans in a row find none. The child
under way holds the guardian's pipe until its exec (the write end is
close-on-exec), so the guardian wakes when it has its new environment, or
all but: ``subprocess`` closes descriptors just before its exec, and the
kernel sets the new environment a moment after closing them; the second
scan is for that moment. A watcher that died with no start under way
(``_ run`` once its command is listed) costs the guardian nothing more than
before.

The mark cannot be carried by accident: it is unguessable, it is in no
command line (the guardian reads it from the list) and only the watcher's
descendants are given it; a process that took it from one (or from a
sensor's environment, which only its user can read) asked to share its
fate. The guardian never carries it (it has the watcher's own environment).
Descendants that kept it are found even where they left the group: for a
sensor what the subreaper's sweep would end anyway; for ``_ run``, whose
lifeline starts one command, only what it started before being listed.

Rejected: the scan on every outright death. It would end what a ``_ run``
command left its group for on purpose (a ``looop up`` from an agent's
shell), which the group rule spares. ``+`` and ``=`` around each sensor's
start: two writes a sensor, to spare a dead runner's guardian a scan that
ends only what was to end anyway. A mark per start: one environment per
sensor, encoded at every spawn. Registering before the start: no pid is
known yet, and a group made in advance cannot be joined by a child that
must lead a group of its own. The kernel writing the pid into the shared
list as the child is made (``CLONE_PARENT_SETTID``): neither
``posix_spawn`` nor ``subprocess`` offers it. Registering in the child
(``preexec_fn``): see ``PR_SET_PDEATHSIG`` below.

Off Linux there is no ``/proc/PID/environ``: the scan finds nothing, and a
watcher killed with a start under way leaves that one child unguarded, as
before. On macOS ``posix_spawn`` is one system call that returns once the
child is made, so for a sensor that leaves only the instants until ``add``;
``subprocess`` there forks and waits for the exec, the window as above.

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
from collections.abc import Mapping

MARK = "LOOOP_LIFELINE"  # in the environment of every process a watcher starts
# Waits for end of file on stdin (the watcher gone), then reads the list on fd 3
# (the mark, then "N" / "-N" lines, and "+" ... "=" around starts) from its start
# and SIGKILLs each group still listed. Starts under way at the end: every process
# carrying the mark, and the group it made, until two scans in a row find none
# (at most ten).
GUARD = (
    "read -r w; g=' '; s=; { read -r m; "
    "while read -r w; do case $w in "
    "+) s=1;; =) s=;; "
    '-*) w=${w#-}; case $g in *" $w "*) g="${g%% $w *} ${g#* $w }";; esac;; '
    '*) g="$g$w ";; esac; done; } <&3; '
    'for w in $g; do kill -s KILL -- "-$w"; done 2>/dev/null; '
    '[ -z "$s" ] && exit; n=0; q=0; '
    "while [ $n -lt 10 ] && [ $q -lt 2 ]; do n=$((n+1)); q=$((q+1)); "
    f'for f in $(grep -lsxzF -e "{MARK}=$m" /proc/[0-9]*/environ); do '
    'p=${f#/proc/}; p=${p%/environ}; [ "$p" = $$ ] && continue; q=0; '
    'kill -s KILL -- "-$p" "$p"; done 2>/dev/null; sleep 0.02; done'
)
_RESET = tuple(signal.valid_signals() - {signal.SIGKILL, signal.SIGSTOP})


class Lifeline:
    """The guardian of one watcher's process groups (``pid`` None: none could be started)."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.fd = -1  # the pipe's write end: its closing is the watcher's death
        self.list_fd = -1  # the groups guarded, appended at ``size``
        self.size = 0
        # Unguessable, and never in the watcher's own environment (nor so the guardian's).
        self.mark = f"{os.getpid()}-{os.urandom(16).hex()}"
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
        self._append(f"{self.mark}\n")

    def marked(self, env: Mapping[str, str]) -> dict[str, str]:
        """``env`` with this lifeline's mark: the environment of all the watcher starts."""
        return {**env, MARK: self.mark}

    def starting(self, under_way: bool = True) -> None:
        """Children (given the ``marked`` environment) are being started, until told otherwise.

        Meanwhile the guardian, should the watcher die, also ends what carries the mark.
        """
        self._append("+\n" if under_way else "=\n")

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
