"""The guard rail of ``looop _ run`` (SPEC §11): commands that cannot be undone.

A guard rail, not a sandbox. ``refused`` reads the command as the shell will
(``agent.shellread``: parsed, every simple command found wherever it sits)
and judges each simple command with its assignments and wrappers removed
(``agent.programs``): the wrappers that run their arguments as a command
(``timeout``, ``nice``, ``ionice``, ``setsid``, ``nohup``, ``stdbuf``,
``env`` with its options, ``command``, ``builtin``, ``exec``, ``time``,
``coproc``, ``xargs``, ``flock``, ``chrt``, ``taskset``) are seen through,
and the program is taken by its base name; what each program does is
``agent.harms``'s to say. A literal string given to ``sh -c`` (``bash``, ``zsh``,
``dash``..., ``flock -c``, ``env -S``) or fed to a shell as a heredoc is read
the same way, one level deep; so is ``find -exec``'s command. Refused,
unless ``--allow-dangerous`` or ``LOOOP_RUN_ALLOW_DANGEROUS=1``:

- ``sudo``, ``doas``, ``su``, ``pkexec``, ``run0``: they run as another user;
- a recursive ``rm`` (``-r``, ``-R``, ``--recursive``, in any cluster) of
  ``/``, the home dir or the data dir, or a directory holding one of them,
  or everything in one (``*``), however the shell spells it: ``~``,
  ``$HOME``, ``"${HOME:?}/"``, ``$PWD``, ``"$(pwd)"``, ``.`` in the
  directory the command runs in (the data dir, followed through ``cd``),
  ``$LOOOP_DATA_DIR``, an unset variable before ``/``;
- ``git push`` with ``-f``/``--force``/``--force-with-lease`` (in any short
  cluster), ``--mirror``, a ``+refspec`` or a deletion onto ``main``,
  ``master`` or the remote's default branch when the repository says it
  (with no refspec: the branch checked out);
- a download (``curl``, ``wget``, ``fetch``, ``http``, ``xh``) whose output
  reaches an interpreter's code (a shell, ``python``, ``perl``, ``ruby``,
  ``node``, ``php``, ``eval``, ``source``): piped into one reading its
  program from stdin (through ``tee`` and other stages too, or into
  ``tee >(sh)``), or as its ``-c`` string, script, here-string or input by
  command or process substitution;
- ``mkfs*``, ``mke2fs``, ``mkswap``, ``wipefs``;
- ``dd of=`` a block device, and any write redirection (``>``, ``>>``,
  ``>|``, ``&>``, ``<>``) or ``tee`` onto one (``/dev/sd*``, ``/dev/nvme*``,
  ``/dev/disk*``, ``/dev/rdisk*``, ``/dev/mmcblk*``, ``/dev/vd*``,
  ``/dev/xvd*`` and whatever this machine has as a block device), while
  ``/dev/null``, ``/dev/zero``, ``/dev/stdout`` and ``/dev/stderr`` are fine;
- ``shutdown``, ``reboot``, ``halt``, ``poweroff``, ``init 0|6``,
  ``systemctl poweroff|reboot|halt|kexec``.

Text that only looks like a command (quoted, given to ``echo``, ``grep`` or
a commit message) is never judged. A command the parser cannot read is left
to the shell, which will fail on it, unless what can be read of it (the
parser's recovery, or its words split at the shell's operators) shows one
of the forms above: then it is refused as "could not be read safely". So
is a text past what is worth reading (``shellread``'s limits: 1 MiB, a
parse over 2 s, nesting 150 deep, 5,000 commands, 50,000 words and
operators), which no person or agent writes and which would otherwise cost
the guard seconds, gigabytes or Python's recursion limit.

Out of its reach, by design (each example here runs unrefused, and
``tests/test_guard.py`` runs every one of them so this list cannot drift):

- a name built at run time: ``x=$(printf su); ${x}do id``
- text run as code later: ``eval "su""do id"``
- a script file that does it: ``printf 'sudo id' > s.sh; sh s.sh``
- another interpreter's code: ``python3 -c 'import os; os.system("sudo id")'``
- a function that runs its arguments: ``f() { "$@"; }; f sudo id``
- a command string two levels deep: ``sh -c "sh -c 'sudo id'"``
- a target read at run time: ``echo / | xargs rm -rf``
- a link made by the same command: ``ln -sfn ~ h; rm -rf h/``
- a download made into arguments: ``curl -s u | xargs -I{} sh -c {}``

The human's yes is the real gate; this catches the slips an agent makes.
"""

from __future__ import annotations

import os
import pwd
import re
import shlex
from dataclasses import dataclass

from looop import say
from looop.agent import harms, shellread
from looop.agent.programs import DOWNLOADERS, EVALUATORS, SHELLS, find_exec, interpreter, unwrap
from looop.agent.shellread import Simple, Word

ENV_ALLOW = "LOOOP_RUN_ALLOW_DANGEROUS"
UNREADABLE = "could not be read safely"
_WRITES = {">", ">>", ">|", "&>", "&>>", "<>", ">&"}
_OPERATORS = {";", "&", "|", "&&", "||", "(", ")", ";;", "|&", "&>", ">", "<", ">>", "<<"}


@dataclass(frozen=True)
class Refusal:
    """The rule a command breaks and the simple command that broke it."""

    rule: str
    command: str

    def __str__(self) -> str:
        text = " ".join(self.command.split())
        text = text if len(text) <= 80 else text[:77] + "..."
        return f'{self.rule} in "{say.escaped(text)}"'


def allowed_by_environment(environ: dict[str, str] | os._Environ[str]) -> bool:
    """Whether ``LOOOP_RUN_ALLOW_DANGEROUS`` says yes (``1``, ``true``, ``yes``)."""
    return environ.get(ENV_ALLOW, "").strip().lower() in ("1", "true", "yes")


def refused(command: str, data_dir: str, env: dict[str, str]) -> Refusal | None:
    """The rule ``command`` breaks when ``/bin/sh -c`` runs it in the data dir with
    ``env``; None when it may run."""
    try:
        account = pwd.getpwuid(os.getuid()).pw_dir
    except KeyError:  # a uid with no passwd entry (a container's)
        account = None
    homes = {os.path.normpath(h) for h in (env.get("HOME"), os.path.expanduser("~"), account) if h}
    data_dir = os.path.normpath(data_dir)
    judge = _Judge(env, homes, data_dir)
    reading = shellread.read(command, data_dir, env)
    if reading.unread:
        return Refusal(f"{UNREADABLE} ({reading.unread})", command)
    found = judge.reading(reading, depth=0)
    if reading.broken:
        found = found or judge.scan(command, data_dir)
        return Refusal(f"{UNREADABLE} ({found.rule})", found.command) if found else None
    return found


class _Judge:
    def __init__(self, env: dict[str, str], homes: set[str], data_dir: str) -> None:
        self.env = env
        self.homes = homes
        self.data_dir = data_dir
        self.switched = False  # a git checkout/switch ran before: the branch is not known

    def reading(self, reading: shellread.Reading, depth: int) -> Refusal | None:
        for simple in reading.simples:
            found = self.simple(simple, depth)
            if found:
                return found
        for stages in reading.pipelines:
            downloaded = False  # by a stage before this one
            for stage in stages:
                for simple in stage if downloaded else ():
                    program = self.reads_code_from_stdin(simple)
                    if program:
                        return Refusal(f"a download run by {program}", simple.text)
                downloaded = downloaded or any(self.downloads(s) for s in stage)
        return None

    def nested(
        self, code: str, simple: Simple, depth: int, args: tuple[str | None, ...] = ()
    ) -> Refusal | None:
        """A command string (``sh -c``, a heredoc fed to a shell), read one level deep."""
        if depth > 0:
            return None
        reading = shellread.read(code, simple.cwd, self.env, args)
        if reading.unread:
            return Refusal(f"{UNREADABLE} ({reading.unread})", simple.text)
        found = self.reading(reading, depth + 1)
        if reading.broken and not found:
            found = self.scan(code, simple.cwd)
        return found

    def simple(self, simple: Simple, depth: int) -> Refusal | None:
        for redirect in simple.redirects:
            target = redirect.target.value
            if redirect.op in _WRITES and target is not None and harms.block_device(target):
                return Refusal(f"a write onto the disk {target}", simple.text)
        if self.downloads(simple):  # curl u > >(sh)
            for redirect in simple.redirects:
                for inner in redirect.target.subs:
                    program = self.reads_code_from_stdin(inner)
                    if program:
                        return Refusal(f"a download run by {program}", simple.text)
        words, code = unwrap(simple.words)
        if code is not None:
            if any(self.downloads(s) for s in code.subs):
                return Refusal("a download run as a command", simple.text)
            return self.nested(code.value, simple, depth) if code.value is not None else None
        if not words:
            return None
        if words[0].value is None:
            if any(self.downloads(s) for s in words[0].subs):
                return Refusal("a download run as a command", simple.text)
            return None
        program = os.path.basename(words[0].value)
        args = [w.value for w in words[1:]]
        if program == "git" and {"checkout", "switch"} & set(args):
            self.switched = True
        cwd = simple.cwd
        rule = harms.rule(program, args, cwd, self.homes, self.data_dir, self.switched)
        if rule:
            return Refusal(rule, simple.text)
        if program == "find":
            for section in find_exec(words[1:]):
                found = self.simple(Simple(simple.text, section, [], simple.cwd), depth)
                if found:
                    return found
        return self.interpreted(program, words, simple, depth)

    def interpreted(
        self, program: str, words: list[Word], simple: Simple, depth: int
    ) -> Refusal | None:
        """A download or a command string given to an interpreter as its code."""
        if program in EVALUATORS:
            if any(self.downloads(s) for w in words[1:] for s in w.subs):
                return Refusal(f"a download run by {program}", simple.text)
            return None
        mode = interpreter(program, words)
        if mode is None:
            return None
        how, code, after = mode
        sources = [code] if code is not None else []
        if how == "stdin":
            sources = [r.target for r in simple.redirects if r.op in ("<", "<<<", "<<", "<>")]
        if any(self.downloads(s) for w in sources for s in w.subs):
            return Refusal(f"a download run by {program}", simple.text)
        if program in SHELLS and how == "code" and code is not None and code.value is not None:
            args = tuple(w.value for w in words[after + 1 :])  # after $0
            return self.nested(code.value, simple, depth, args)
        if program in SHELLS and how == "stdin" and simple.stdin is not None:
            return self.nested(simple.stdin, simple, depth)
        return None

    def downloads(self, simple: Simple) -> bool:
        words, _ = unwrap(simple.words)
        return bool(words) and os.path.basename(words[0].value or "") in DOWNLOADERS

    def reads_code_from_stdin(self, simple: Simple) -> str | None:
        """The interpreter (or ``eval``/``source``) that would take its code from
        what this command reads: its stdin, or a substitution in its code."""
        words, _ = unwrap(simple.words)
        if not words or words[0].value is None:
            return None
        program = os.path.basename(words[0].value)
        if program in EVALUATORS:
            from_stdin = [w.value for w in words[1:2]] in (["/dev/stdin"], ["-"])
            return program if from_stdin or any(w.subs for w in words[1:]) else None
        mode = interpreter(program, words)
        if mode is None or any(r.op.startswith("<") for r in simple.redirects):
            return None
        how, code, _ = mode
        return program if how == "stdin" or (how == "code" and code and code.subs) else None

    def scan(self, text: str, cwd: str | None) -> Refusal | None:
        """The rules over a text the parser could not read: its words taken as
        ``shlex`` splits them (quotes kept whole), cut at the shell's operators."""
        pieces: list[Simple] = []
        for values in _pieces(text)[: shellread.MAX_COMMANDS]:
            simple = Simple(" ".join(values), [Word(v) for v in values], [], cwd)
            pieces.append(simple)
            found = self.simple(simple, depth=1)
            if found:
                return found
        for n, simple in enumerate(pieces):
            program = self.reads_code_from_stdin(simple)
            if program and any(self.downloads(s) for s in pieces[:n]):
                return Refusal(f"a download run by {program}", simple.text)
        return None


def _pieces(text: str) -> list[list[str]]:
    """A text the parser could not read, as lists of words between operators; where
    even ``shlex`` fails (an open quote), split at the operators' characters."""
    lexer = shlex.shlex(text, posix=True, punctuation_chars=";&|()<>")
    lexer.whitespace_split = True
    lexer.commenters = ""
    pieces: list[list[str]] = [[]]
    try:
        for token in lexer:
            if token in _OPERATORS or set(token) <= set(";&|()<>"):
                pieces.append([])
            else:
                pieces[-1].append(token)
    except ValueError:
        split = re.split(r"\|\||&&|[;&|\n(){}`]|\$\(|<\(|>\(", text)
        return [piece.split() for piece in split if piece.strip()]
    return [piece for piece in pieces if piece]
