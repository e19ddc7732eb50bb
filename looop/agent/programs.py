"""Which program a simple command runs and how an interpreter takes its code, for
``_ run``'s guard rail (``agent.gate``).

``unwrap`` takes off what runs its arguments as a command: the reserved
words the grammar leaves in front of one (``time { ...; }``, ``! if``),
assignments, and the wrappers in ``WRAPPERS`` with their options (each
wrapper's options that take a value, the operands before the command, the
options that run no command at all, like ``command -v``), so ``timeout -s
KILL 5 nice -n 5 env -u X sudo id`` is ``sudo id``; ``env -S`` splits its
string into more words, and ``flock -c`` hands back a command string for the
gate to read. ``interpreter`` says how a shell, Python, Perl, Ruby, Node,
PHP or Lua gets its code: a ``-c``/``-e`` string (for a shell, the first
operand after the options wherever ``c`` sits in them), a script operand, a
module, or stdin (no operand, ``-``, ``/dev/stdin``). Tables rather than
code, so a wrapper or interpreter is one line.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass

from looop.agent.shellread import Word


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
# Reserved words a command can start with when the grammar reads ``time { ...; }``,
# ``! if ...`` or ``coproc { ...; }`` as a plain command: the rest is what runs
# (``time`` and ``coproc`` themselves are wrappers, with their options).
RESERVED = {"{", "}", "!", "if", "then", "do", "else", "elif", "while", "until"}
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
STDIN_PATHS = {"-", "/dev/stdin", "/dev/fd/0", "/proc/self/fd/0"}
DOWNLOADERS = {"curl", "wget", "fetch", "http", "https", "xh"}
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*", re.S)


def unwrap(words: list[Word]) -> tuple[list[Word], Word | None]:
    """The command a simple command's words run once the wrappers are taken off, or
    the command string a wrapper gives a shell (``flock -c``)."""
    while words and words[0].value is not None:
        name = os.path.basename(words[0].value)
        if name in RESERVED:
            words = words[1:]
            continue
        if name == "coproc" and len(words) > 2 and words[2].value == "{":
            words = words[3:]  # coproc NAME { ...; }
            continue
        spec = WRAPPERS.get(name)
        if spec is None:
            return words, None
        i, code = _options(name, spec, words)
        if code is None:
            words = words[i:]
            continue
        given = code[0]
        if name != "env" or given is None or given.value is None:
            return [], given
        try:  # env -S: its string is more of env's words
            split = shlex.split(given.value)
        except ValueError:
            return [], given
        words = [Word("env"), *(Word(v) for v in split), *words[code[1] :]]
    return words, None


def _options(
    name: str, spec: _Wrapper, words: list[Word]
) -> tuple[int, tuple[Word | None, int] | None]:
    """Where a wrapper's command starts, or its command string (and the index after
    it); ``len(words)`` when it runs none."""
    i, operands = 1, 0
    while i < len(words):
        word = words[i].value
        if word is None:
            break
        if word == "--":
            return i + 1, None
        if word.startswith("--") and len(word) > 2:
            option, eq, value = word[2:].partition("=")
            if option in spec.long_code:
                return i, ((Word(value), i + 1) if eq else (_next(words, i), i + 2))
            i += 1 if eq or option not in spec.long_values else 2
            continue
        if word.startswith("-") and len(word) > 1 and operands == 0:
            for n, letter in enumerate(word[1:], 1):
                rest = word[n + 1 :]
                if letter in spec.idle:
                    return len(words), None
                if letter in spec.code:
                    return i, ((Word(rest), i + 1) if rest else (_next(words, i), i + 2))
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
                return i, (_next(words, i), i + 2)
            continue
        break
    return i, None


def _next(words: list[Word], i: int) -> Word | None:
    """The word after ``words[i]`` (an option's value), if there is one."""
    return words[i + 1] if i + 1 < len(words) else None


def interpreter(program: str, words: list[Word]) -> tuple[str, Word | None, int] | None:
    """How an interpreter gets its code: ("code", the -c/-e word), ("file", the script
    operand), ("module", None) or ("stdin", None), with the index of the word after
    the code (a shell's ``$0``, then its arguments); None if not an interpreter."""
    if _PYTHON.fullmatch(program):
        code, values = "cm", "WXQ"
    elif program in INTERPRETERS:
        code, values = INTERPRETERS[program]
    else:
        return None
    shell = program in SHELLS
    by_operand = False  # a shell's -c: the code is its first operand
    i = 1
    while i < len(words):
        word = words[i].value
        if word is None or word == "-" or not word.startswith(("-", "+")):
            break
        if word == "--":
            i += 1
            break
        if word.startswith("--"):
            i += 2 if word in ("--rcfile", "--init-file") else 1
            continue
        for n, letter in enumerate(word[1:], 1):
            if shell and letter in "cs":
                if letter == "s":
                    return "stdin", None, i + 1
                by_operand = True
            elif letter in code:
                if letter == "m":
                    return "module", None, i + 1
                rest = word[n + 1 :]
                given = Word(rest) if rest else _next(words, i)
                return ("code", given, i + 2) if given is not None else ("stdin", None, i + 1)
            elif letter in values:
                i += 0 if word[n + 1 :] else 1
                break
        i += 1
    operand = words[i] if i < len(words) else None
    if by_operand:
        return ("code", operand, i + 1) if operand is not None else ("stdin", None, i)
    if operand is None or operand.value in STDIN_PATHS:
        return "stdin", None, i + 1
    return "file", operand, i + 1


def find_exec(words: list[Word]) -> list[list[Word]]:
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
