"""The guard rail of ``looop _ run`` (SPEC §11): commands that cannot be undone.

A guard rail, not a sandbox. ``refused`` reads the command as the shell will
(``agent.shellread``: parsed, every simple command found wherever it sits)
and judges each simple command with its assignments and wrappers removed:
the wrappers that run their arguments as a command (``timeout``, ``nice``,
``ionice``, ``setsid``, ``nohup``, ``stdbuf``, ``env`` with its options,
``command``, ``builtin``, ``exec``, ``time``, ``coproc``, ``xargs``,
``flock``, ``chrt``, ``taskset``) are seen through, and the program is taken
by its base name. A literal string given to ``sh -c`` (``bash``, ``zsh``,
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
is a text past what is worth reading (``shellread.MAX_BYTES``,
``MAX_DEPTH``, ``MAX_COMMANDS``: 1 MiB, nesting 150 deep, 5,000
commands), which no person or agent writes and which would otherwise cost
the guard seconds or Python's recursion limit.

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
from looop.agent.shellread import Simple, Word

ENV_ALLOW = "LOOOP_RUN_ALLOW_DANGEROUS"
UNREADABLE = "could not be read safely"


@dataclass(frozen=True)
class Refusal:
    """The rule a command breaks and the simple command that broke it."""

    rule: str
    command: str

    def __str__(self) -> str:
        text = " ".join(self.command.split())
        text = text if len(text) <= 80 else text[:77] + "..."
        return f'{self.rule} in "{say.escaped(text)}"'


@dataclass(frozen=True)
class _Wrapper:
    values: str = ""  # short options that take a value
    long_values: frozenset[str] = frozenset()
    operands: int = 0  # operands before the command (timeout's duration)
    idle: str = ""  # short options that run no command (command -v, ionice -p)
    code: str = ""  # short options whose value is a shell command (flock -c)
    long_code: frozenset[str] = frozenset()


def _w(
    values: str = "",
    longs: str = "",
    operands: int = 0,
    idle: str = "",
    code: str = "",
    long_code: str = "",
) -> _Wrapper:
    return _Wrapper(
        values, frozenset(longs.split()), operands, idle, code, frozenset(long_code.split())
    )


WRAPPERS = {
    "env": _w("uC", "unset chdir", code="S", long_code="split-string"),
    "timeout": _w("sk", "signal kill-after", operands=1),
    "nice": _w("n", "adjustment"),
    "ionice": _w("cn", "class classdata", idle="pPu"),
    "setsid": _w(),
    "nohup": _w(),
    "stdbuf": _w("ioe", "input output error"),
    "command": _w(idle="vV"),
    "builtin": _w(),
    "exec": _w("a"),
    "time": _w("fo", "format output"),
    "coproc": _w(),
    "nocorrect": _w(),
    "noglob": _w(),
    "xargs": _w("adEILnPs", "arg-file delimiter max-args max-procs max-chars process-slot-var"),
    "flock": _w("wE", "wait timeout conflict-exit-code", operands=1, code="c", long_code="command"),
    "chrt": _w("TPD", "sched-runtime sched-period sched-deadline", operands=1, idle="pm"),
    "taskset": _w(operands=1, idle="p"),
}
SHELLS = {"sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "yash", "fish", "csh", "tcsh"}
# Interpreters: (options that give the code or a module, options that take a value).
INTERPRETERS = {name: ("c", "oO") for name in SHELLS} | {
    "perl": ("eE", ""),
    "ruby": ("e", ""),
    "node": ("ep", "r"),
    "nodejs": ("ep", "r"),
    "php": ("rB", ""),
    "lua": ("e", ""),
}
_PYTHON = re.compile(r"(python|pypy)[0-9.]*")
EVALUATORS = {"eval", "source", "."}
DOWNLOADERS = {"curl", "wget", "fetch", "http", "https", "xh"}
_WRITES = {">", ">>", ">|", "&>", "&>>", "<>", ">&"}
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*", re.S)


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

    def nested(self, code: str, simple: Simple, depth: int) -> Refusal | None:
        """A command string (``sh -c``, a heredoc fed to a shell), read one level deep."""
        if depth > 0:
            return None
        reading = shellread.read(code, simple.cwd, self.env)
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
        words, code = unwrap(simple.words)
        if code is not None:
            return (
                Refusal("a download run as a command", simple.text)
                if any(self.downloads(s) for s in code.subs)
                else (self.nested(code.value, simple, depth) if code.value is not None else None)
            )
        if not words:
            return None
        if words[0].value is None:
            if any(self.downloads(s) for s in words[0].subs):
                return Refusal("a download run as a command", simple.text)
            return None
        program = os.path.basename(words[0].value)
        args = [w.value for w in words[1:]]
        rule = harms.rule(program, args, simple.cwd, self.homes, self.data_dir)
        if rule:
            return Refusal(rule, simple.text)
        if program == "find":
            for section in _find_exec(words[1:]):
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
        mode = _interpreter(program, words)
        if mode is None:
            return None
        how, code = mode
        sources = [code] if code is not None else []
        if how == "stdin":
            sources = [r.target for r in simple.redirects if r.op in ("<", "<<<", "<<", "<>")]
        if any(self.downloads(s) for w in sources for s in w.subs):
            return Refusal(f"a download run by {program}", simple.text)
        if program in SHELLS and how == "code" and code is not None and code.value is not None:
            return self.nested(code.value, simple, depth)
        if program in SHELLS and how == "stdin" and simple.stdin is not None:
            return self.nested(simple.stdin, simple, depth)
        return None

    def downloads(self, simple: Simple) -> bool:
        words, _ = unwrap(simple.words)
        return bool(words) and os.path.basename(words[0].value or "") in DOWNLOADERS

    def reads_code_from_stdin(self, simple: Simple) -> str | None:
        words, _ = unwrap(simple.words)
        if not words or words[0].value is None:
            return None
        program = os.path.basename(words[0].value)
        if program in ("source", "."):
            return program if [w.value for w in words[1:2]] in (["/dev/stdin"], ["-"]) else None
        mode = _interpreter(program, words)
        redirected = any(r.op.startswith("<") for r in simple.redirects)
        return program if mode is not None and mode[0] == "stdin" and not redirected else None

    def scan(self, text: str, cwd: str | None) -> Refusal | None:
        """The rules over a text the parser could not read: split at the shell's
        operators, each piece's words taken literally."""
        pieces = []
        split = re.split(r"\|\||&&|[;&|\n(){}`]|\$\(|<\(|>\(", text)
        for piece in [p for p in split if p.strip()][: shellread.MAX_COMMANDS]:
            try:
                values = shlex.split(piece, comments=True)
            except ValueError:
                values = piece.split()
            simple = Simple(piece.strip(), [Word(v) for v in values], [], cwd)
            pieces.append(simple)
            found = self.simple(simple, depth=1)
            if found:
                return found
        for n, simple in enumerate(pieces):
            program = self.reads_code_from_stdin(simple)
            if program and any(self.downloads(s) for s in pieces[:n]):
                return Refusal(f"a download run by {program}", simple.text)
        return None


def unwrap(words: list[Word]) -> tuple[list[Word], Word | None]:
    """The command a simple command's words run once the wrappers are taken off, or
    the command string a wrapper gives a shell (``flock -c``, ``env -S``)."""
    while words and words[0].value is not None:
        name = os.path.basename(words[0].value)
        spec = WRAPPERS.get(name)
        if spec is None:
            return words, None
        i, operands = 1, 0
        while i < len(words):
            word = words[i].value
            if word is None:
                break
            if word == "--":
                i += 1
                break
            if word.startswith("--") and len(word) > 2:
                option, eq, value = word[2:].partition("=")
                if option in spec.long_code:
                    return [], Word(value) if eq else _next(words, i)
                i += 1 if eq or option not in spec.long_values else 2
                continue
            if word.startswith("-") and len(word) > 1 and operands == 0:
                for n, letter in enumerate(word[1:], 1):
                    rest = word[n + 1 :]
                    if letter in spec.idle:
                        return [], None
                    if letter in spec.code:
                        return [], Word(rest) if rest else _next(words, i)
                    if letter in spec.values:
                        i += 0 if rest else 1
                        break
                i += 1
                continue
            if name == "env" and (word == "-" or _ASSIGNMENT.fullmatch(word)):
                i += 1
                continue
            if operands < spec.operands:
                operands += 1
                i += 1
                if name == "flock" and i < len(words) and words[i].value in ("-c", "--command"):
                    return [], _next(words, i)
                continue
            break
        words = words[i:]
    return words, None


def _next(words: list[Word], i: int) -> Word | None:
    """The word after ``words[i]`` (an option's value), if there is one."""
    return words[i + 1] if i + 1 < len(words) else None


def _interpreter(program: str, words: list[Word]) -> tuple[str, Word | None] | None:
    """How an interpreter gets its code: ("code", the -c/-e word), ("file", the
    script operand), ("module", None) or ("stdin", None); None if not one."""
    if _PYTHON.fullmatch(program):
        code, values = "cm", "WXQ"
    elif program in INTERPRETERS:
        code, values = INTERPRETERS[program]
    else:
        return None
    i = 1
    while i < len(words):
        word = words[i].value
        if word is None or word == "-" or not word.startswith(("-", "+")) or word == "--":
            break
        if word.startswith("--"):
            i += 2 if word in ("--rcfile", "--init-file") else 1
            continue
        for n, letter in enumerate(word[1:], 1):
            if letter in code:
                rest = word[n + 1 :]
                if letter == "m":
                    return "module", None
                given = Word(rest) if rest else _next(words, i)
                return ("code", given) if given is not None else ("stdin", None)
            if letter == "s" and program in SHELLS:
                return "stdin", None
            if letter in values:
                i += 0 if word[n + 1 :] else 1
                break
        i += 1
    if i < len(words) and words[i].value == "--":
        i += 1
    if i >= len(words) or words[i].value == "-":
        return "stdin", None
    return "file", words[i]


def _find_exec(words: list[Word]) -> list[list[Word]]:
    """The commands ``find -exec``/``-execdir``/``-ok``/``-okdir`` runs."""
    sections: list[list[Word]] = []
    current: list[Word] | None = None
    for word in words:
        if current is None:
            if word.value in ("-exec", "-execdir", "-ok", "-okdir"):
                current = []
        elif word.value in (";", "+"):
            sections.append(current)
            current = None
        else:
            current.append(word)
    return sections + ([current] if current else [])
