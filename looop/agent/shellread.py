"""A shell command read as the shell will read it, for ``_ run``'s guard rail (``agent.gate``).

``read(text, cwd, env)`` parses the command with tree-sitter's bash grammar
and returns a ``Reading``: every simple command the text contains, in the
order the shell meets them (in lists and pipelines, subshells and brace
groups, ``if``/``while``/``for``/``case`` bodies, function bodies, after
``!``, inside command and process substitutions, arithmetic, ``[[ ]]`` and
heredocs), and every pipeline, stage by stage, so a rule can ask what feeds
what. Each simple command carries its words as the shell would pass them,
where that is known without running anything: quotes removed, backslashes
undone, ``$'...'`` decoded, ``{a,b}`` expanded, ``~`` and ``~user``,
``$HOME``, ``${HOME:?}`` and ``${X:-default}`` from the environment the
command gets, ``$PWD`` and ``$(pwd)`` from the directory it runs in
(followed through ``cd`` and ``cd -``), positional parameters (none at the
top; a ``sh -c`` string's own), variables assigned a literal earlier in the
same text and a ``for`` loop's literal list (met before the use, in the
order the text gives). A word only running could tell (``$(date)``, a name
set by ``read``) is ``None``; each word keeps the simple commands of its own
substitutions, and of those a variable it names was assigned from
(``x=$(curl u); eval "$x"``), so a rule can ask whether a download is a
program's code or merely its argument.

Why tree-sitter-bash: it is the grammar editors and agent CLIs read shell
with, maintained, a C parser shipped as wheels, and it recovers from errors,
so a command that does not parse still shows what it would run before the
error (``Reading.broken`` says so). Rejected: ``shlex`` (a tokenizer; it
knows no subshell, substitution or ``case``, which is how the pattern guard
before this one let ``( sudo x )`` through), bashlex (a port of bash's
grammar that raises NotImplementedError on arithmetic, and stops at the
first error), and a grammar of our own. Its error recovery can take time
that grows with the square of a broken text's length (40 KB of ``a|``: a
minute and gigabytes), and its cancellation callback is not consulted there,
so a text over ``TRIAL_ABOVE`` is first parsed in a forked child that a
timer ends (``_parses_in_time``): only a text that parsed in time is parsed
here. The parser is imported here only,
and this module only by ``agent.gate``, so no command but ``_ run`` pays
for it.
"""

from __future__ import annotations

import os
import pwd
import re
import signal
from dataclasses import dataclass, field
from typing import Any

import tree_sitter
import tree_sitter_bash

_PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_bash.language()))
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BRACED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#])(:?[-?=+])?")
_BRACES = re.compile(r"([^{}]*)\{([^{}]*,[^{}]*)\}([^{}]*)")
_ANSI_C = re.compile(
    r"\\(x[0-9A-Fa-f]{1,2}|u[0-9A-Fa-f]{1,4}|U[0-9A-Fa-f]{1,8}|[0-7]{1,3}|c.|.)",
    re.S,
)
_ANSI_C_CHARS = {"a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "n": "\n"}
_ANSI_C_CHARS |= {"r": "\r", "t": "\t", "v": "\v"}
# Commands that set a variable from what only running tells (read x, mapfile x).
_SETTERS = {"read", "mapfile", "readarray", "getopts"}
_SUBSTITUTIONS = {"command_substitution", "process_substitution"}
_RUNTIME = {"RANDOM", "SECONDS", "LINENO", "BASHPID", "EPOCHREALTIME", "EPOCHSECONDS"}
_LOOP_VALUES = 8  # a for loop over at most this many literal words is walked once for each
# Past these the text is not read further, and the gate refuses it as unreadable:
# a person's or an agent's command is never near them, and the walk stays
# well inside Python's recursion limit and a fraction of a second.
MAX_DEPTH = 150
MAX_COMMANDS = 5_000
MAX_NODES = 50_000  # words, operators, substitutions: each costs the walk about 20 us
MAX_BYTES = 1024 * 1024
TRIAL_ABOVE = 8 * 1024  # longer texts are parsed in a child first, within TRIAL_SECONDS
TRIAL_SECONDS = 2.0


@dataclass
class Word:
    """One word of a simple command: its value (None when only running tells) and the
    simple commands of the substitutions inside it."""

    value: str | None
    subs: list[Simple] = field(default_factory=list)


@dataclass
class Redirect:
    """``op`` (``>``, ``>>``, ``<``, ``&>``, ``<<``, ``<<<``...) onto ``target``."""

    op: str
    target: Word


@dataclass
class Simple:
    """One simple command: what it runs, as written and as the shell would pass it."""

    text: str
    words: list[Word]
    redirects: list[Redirect]
    cwd: str | None  # the directory it runs in, when known
    stdin: str | None = None  # a heredoc's or here-string's text

    @property
    def subs(self) -> list[Simple]:
        """Every simple command inside this one's substitutions."""
        return [s for w in [*self.words, *(r.target for r in self.redirects)] for s in w.subs]


@dataclass
class Reading:
    """What ``read`` found: the simple commands, the pipelines' stages, whether the
    parser met text it could not read, and why the text was not read to its end
    (longer than ``MAX_BYTES``, parsed slower than ``TRIAL_SECONDS``, nested
    deeper than ``MAX_DEPTH``, more than ``MAX_COMMANDS`` or ``MAX_NODES``),
    if it was not."""

    simples: list[Simple]
    pipelines: list[list[list[Simple]]]
    broken: bool
    unread: str | None = None


class _Unread(Exception):
    """The walk stopped: the text is nested too deep or holds too many commands."""


@dataclass
class _State:
    cwd: str | None
    vars: dict[str, str | None]
    oldcwd: str | None = None
    subs_of: dict[str, list[Simple]] = field(default_factory=dict)

    def copy(self) -> _State:
        return _State(self.cwd, dict(self.vars), self.oldcwd, dict(self.subs_of))


def read(
    text: str, cwd: str | None, env: dict[str, str], args: tuple[str | None, ...] = ()
) -> Reading:
    """Parse ``text`` as ``/bin/sh -c`` would get it, run in ``cwd`` with ``env`` and
    ``args`` as its positional parameters."""
    try:
        source = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate no argv could carry
        source = text.encode("utf-8", "surrogatepass")
    if len(source) > MAX_BYTES:
        return Reading([], [], True, f"longer than {MAX_BYTES // 1024} KiB")
    if len(source) > TRIAL_ABOVE and not _parses_in_time(source):
        return Reading([], [], True, f"not parsed within {TRIAL_SECONDS:g} s")
    root = _PARSER.parse(source).root_node
    walker = _Walker(env, args)
    try:
        walker.walk(root, _State(cwd, {}))
    except _Unread as stop:
        return Reading(walker.simples, walker.pipelines, root.has_error, str(stop))
    return Reading(walker.simples, walker.pipelines, root.has_error)


def _parses_in_time(source: bytes) -> bool:
    """Whether a forked child parses ``source`` before a timer ends it."""
    pid = os.fork()
    if pid == 0:  # the child: parse, or die of SIGALRM at its default action
        try:
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.setitimer(signal.ITIMER_REAL, TRIAL_SECONDS)
            _PARSER.parse(source)
        finally:
            os._exit(0)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
        except InterruptedError:
            continue
        return os.waitstatus_to_exitcode(status) == 0


def _text(node: Any) -> str:
    return bytes(node.text).decode("utf-8", "surrogateescape")


def _in_order(node: Any) -> list[Any]:
    """A ``list`` node's commands in order: ``a && b || c`` nests to the left, one
    level per operator, so it is unrolled here rather than walked level by level."""
    out: list[Any] = []
    stack = [node]
    while stack:
        here = stack.pop()
        if here.type == "list":
            stack.extend(reversed(here.named_children))
        else:
            out.append(here)
    return out


class _Walker:
    def __init__(self, env: dict[str, str], args: tuple[str | None, ...]) -> None:
        self.env = env
        self.args = args
        self.simples: list[Simple] = []
        self.pipelines: list[list[list[Simple]]] = []
        self.depth = 0
        self.nodes = 0

    def walk(self, node: Any, state: _State) -> None:
        self.depth += 1
        self.nodes += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _Unread(f"nested more than {MAX_DEPTH} deep")
            if len(self.simples) > MAX_COMMANDS:
                raise _Unread(f"more than {MAX_COMMANDS} commands")
            if self.nodes > MAX_NODES:
                raise _Unread(f"more than {MAX_NODES} words and operators")
            self.node(node, state)
        finally:
            self.depth -= 1

    def node(self, node: Any, state: _State) -> None:
        kind = node.type
        if kind == "list":
            for child in _in_order(node):
                self.walk(child, state)
        elif kind == "command":
            self.command(node, state, [])
        elif kind == "redirected_statement":
            body = node.child_by_field_name("body")
            redirects = [c for c in node.named_children if c.type.endswith("_redirect")]
            if body is not None and body.type == "command":
                self.command(body, state, redirects, text=_text(node))
            else:
                if body is not None:
                    self.walk(body, state)
                self.command(node, state, redirects, bare=True)
        elif kind == "pipeline":
            stages = []
            for stage in node.named_children:
                start = len(self.simples)
                self.walk(stage, state.copy())  # each stage runs in a subshell
                stages.append(self.simples[start:])
            self.pipelines.append(stages)
        elif kind in ("subshell", *_SUBSTITUTIONS):
            inner = state.copy()
            for child in node.named_children:
                self.walk(child, inner)
        elif kind == "for_statement":
            self.loop(node, state)
        elif kind == "variable_assignment":
            self.assign(node, state)
        else:
            for child in node.named_children:
                self.walk(child, state)

    def loop(self, node: Any, state: _State) -> None:
        """A ``for`` loop: its body walked once per literal value (up to
        ``_LOOP_VALUES``), else once with the variable unknown."""
        name = node.child_by_field_name("variable")
        body = [c for c in node.named_children if c.type == "do_group"]
        head = [c for c in node.named_children if c.type != "do_group" and c != name]
        values = []
        for child in head:
            values.append(self.word(child, state).value)
        known = 0 < len(values) <= _LOOP_VALUES and None not in values
        for value in values if known else [None]:
            if name is not None:
                state.vars[_text(name)] = value
            for child in body:
                self.walk(child, state)

    def assign(self, node: Any, state: _State) -> None:
        value = node.child_by_field_name("value")
        name = node.child_by_field_name("name")
        if name is not None and name.type == "subscript":
            self.walk(name, state)  # a[$(cmd)]=x runs cmd
            return
        word = self.word(value, state) if value is not None else Word("")
        if name is not None:
            state.vars[_text(name)] = word.value
            state.subs_of[_text(name)] = word.subs

    def command(
        self, node: Any, state: _State, redirects: list[Any], bare: bool = False, text: str = ""
    ) -> None:
        words: list[Word] = []
        found: list[Redirect] = []
        stdin = None
        parts = [] if bare else list(node.named_children)
        for child in [*parts, *redirects]:
            if child.type == "variable_assignment":  # for this command only
                self.assign(child, state.copy())
                continue
            if child.type.endswith("_redirect"):
                redirect, given = self.redirect(child, state)
                found.append(redirect)
                stdin = given if given is not None else stdin
                continue
            target = child.named_children[0] if child.type == "command_name" else child
            words.extend(self.words(target, state))
        simple = Simple(text or _text(node), words, found, state.cwd, stdin)
        self.simples.append(simple)
        self.after(simple, state)

    def after(self, simple: Simple, state: _State) -> None:
        """What a simple command changes for those after it: the directory, variables."""
        words = [w.value for w in simple.words]
        names = words[1:]
        if words and words[0] in _SETTERS:  # read x, mapfile x...: set as it runs
            state.vars.update((n, None) for n in names if n and _NAME.fullmatch(n))
        if words and words[0] == "printf" and "-v" in names[:-1]:
            state.vars[names[names.index("-v") + 1] or ""] = None
        if words and words[0] in ("cd", "pushd", "popd"):
            home = self.variable("HOME", state)
            state.cwd, state.oldcwd = _moved(state.cwd, state.oldcwd, words, home), state.cwd

    def redirect(self, node: Any, state: _State) -> tuple[Redirect, str | None]:
        """The redirect, and the text it gives the command's stdin if it is a heredoc
        or a here-string."""
        op = next((_text(c) for c in node.children if not c.is_named), "")
        if node.type == "heredoc_redirect":
            body = next((c for c in node.named_children if c.type == "heredoc_body"), None)
            if body is None:
                return Redirect(op, Word("")), ""
            start = next((_text(c) for c in node.named_children if c.type == "heredoc_start"), "")
            text = _text(body)
            text = text if any(q in start for q in "'\"\\") else _dquoted(text)
            return Redirect(op, self.word(body, state, literal=True)), text
        targets = [c for c in node.named_children if c.type != "file_descriptor"]
        target = self.word(targets[-1], state) if targets else Word(None)
        here = None
        if node.type == "herestring_redirect":
            here = None if target.value is None else target.value + "\n"
        return Redirect(op, target), here

    def words(self, node: Any, state: _State) -> list[Word]:
        """The words one argument becomes: more than one for ``{a,b}``."""
        word = self.word(node, state)
        if node.type != "concatenation" or any(c.type != "word" for c in node.named_children):
            return [word]
        braces = _BRACES.fullmatch(_text(node))
        if braces is None:
            return [word]
        head, alternatives, tail = braces.groups()
        return [
            Word(self.literal(head + alt + tail, state), word.subs)
            for alt in alternatives.split(",")
        ]

    def word(self, node: Any, state: _State, literal: bool = False) -> Word:
        start = len(self.simples)
        self.walk(node, state)
        subs = self.simples[start:] + self.carried(node, state)
        return Word(_text(node) if literal else self.value(node, state), subs)

    def carried(self, node: Any, state: _State) -> list[Simple]:
        """The substitutions of the variables a word names (``x=$(cmd); eval "$x"``)."""
        if not state.subs_of:
            return []
        found: list[Simple] = []
        stack = [node]
        while stack:
            here = stack.pop()
            if here.type in ("simple_expansion", "expansion"):
                names = [c for c in here.named_children if c.type == "variable_name"]
                for name in names:
                    found += state.subs_of.get(_text(name), [])
            stack.extend(here.named_children)
        return found

    def value(self, node: Any, state: _State) -> str | None:
        """The word's value as the shell would pass it; None when only running tells."""
        kind = node.type
        text = _text(node)
        if kind in ("word", "number", "extglob_pattern", "regex", "special_character"):
            return self.literal(text, state)
        if kind == "raw_string":
            return text[1:-1]
        if kind == "ansi_c_string":
            return _ANSI_C.sub(_ansi_c, text[2:-1])
        if kind in ("string", "translated_string", "concatenation"):
            parts = []
            for child in node.named_children if kind != "concatenation" else node.children:
                got = _dquoted(_text(child)) if child.type == "string_content" else None
                got = got if got is not None else self.value(child, state)
                if got is None:
                    return None
                parts.append(got)
            return "".join(parts)
        if kind == "simple_expansion":
            return self.variable(text[1:], state)
        if kind == "expansion":
            return self.expansion(node, text, state)
        if kind == "command_substitution":
            inner = [c for c in node.named_children if c.type != "comment"]
            if len(inner) == 1 and inner[0].type == "command":
                words = [_text(c) for c in inner[0].named_children]
                while words and words[0] in ("command", "builtin"):
                    words = words[1:]
                if words and os.path.basename(words[0]) == "pwd" and set(words[1:]) <= {"-P", "-L"}:
                    return state.cwd
        return None

    def literal(self, text: str, state: _State) -> str | None:
        """An unquoted word's value: backslashes undone, a leading ``~`` expanded."""
        if not text.startswith("~"):
            return _unescape(text)
        head, sep, rest = text.partition("/")
        if head in ("~", "~+", "~-"):
            home = {"~": self.variable("HOME", state), "~+": state.cwd, "~-": state.oldcwd}[head]
        else:
            try:
                home = pwd.getpwnam(head[1:]).pw_dir
            except (KeyError, ValueError):
                return None
        return None if home is None else home + sep + _unescape(rest)

    def expansion(self, node: Any, text: str, state: _State) -> str | None:
        """``${X}``, ``${X:?}``, ``${X:-word}``, ``${X:=word}``, ``${X:+word}``."""
        match = _BRACED.match(text)
        if match is None:
            return None
        name, op = match.groups()
        rest = text[match.end() : -1]
        if op is None:
            return self.variable(name, state) if not rest else None
        value = self.variable(name, state)
        if value is None:
            return None  # not known, so neither is which side the shell takes
        never_set = name not in state.vars and name not in self.env and _NAME.fullmatch(name)
        unset = bool(never_set) or (value == "" and op.startswith(":"))
        if op.endswith("?"):
            return None if unset else value  # unset: the shell stops before the command
        if op.endswith("+"):
            return "" if unset else self.default(node, state)
        return self.default(node, state) if unset else value

    def default(self, node: Any, state: _State) -> str | None:
        """The word after an expansion's operator (``/`` in ``${X:-/}``)."""
        words = [c for c in node.named_children if c.type != "variable_name"]
        parts = [self.value(c, state) for c in words]
        return None if None in parts else "".join(p for p in parts if p is not None)

    def variable(self, name: str, state: _State) -> str | None:
        if name in state.vars:
            return state.vars[name]
        if name == "PWD":
            return state.cwd
        if name.isdigit():
            n = int(name)
            return "" if n > len(self.args) else (self.args[n - 1] if n else "sh")
        if name in ("@", "*"):
            return None if None in self.args else " ".join(a or "" for a in self.args)
        if name == "#":
            return str(len(self.args))
        if not _NAME.fullmatch(name) or name in _RUNTIME or name == "OLDPWD":
            return None if name != "OLDPWD" else state.oldcwd
        return self.env.get(name, "")  # unset expands to nothing


def _moved(
    cwd: str | None, oldcwd: str | None, words: list[str | None], home: str | None
) -> str | None:
    """Where ``cd``/``pushd``/``popd`` with these words leaves a shell that was in ``cwd``."""
    args = [w for w in words[1:] if w not in ("-P", "-L", "-e", "-@", "--")]
    if words[0] == "popd" or (args and args[0] is None):
        return None
    if args and args[0] == "-":
        return oldcwd
    target = args[0] if args else home
    if target is None:
        return None
    if not target.startswith("/"):
        if cwd is None:
            return None
        target = os.path.join(cwd, target)
    return os.path.normpath(target)


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    return re.sub(r"\\(.)", r"\1", text.replace("\\\n", ""), flags=re.S)


def _dquoted(text: str) -> str:
    if "\\" not in text:
        return text
    return re.sub(r'\\([\\"$`])', r"\1", text.replace("\\\n", ""))


def _ansi_c(match: re.Match[str]) -> str:
    code = match.group(1)
    if code[0] in "xuU" and len(code) > 1:
        return chr(min(int(code[1:], 16), 0x10FFFF))
    if code[0] in "01234567":
        return chr(int(code, 8) & 0xFF)
    if code[0] == "c" and len(code) == 2:
        return chr(ord(code[1].upper()) ^ 0x40)
    return _ANSI_C_CHARS.get(code, code)
