"""A shell command read as the shell will read it, for ``_ run``'s guard rail (``agent.gate``).

``read(text, cwd, env)`` parses the command with tree-sitter's bash grammar
and returns a ``Reading``: every simple command the text contains, in the
order the shell meets them (in lists and pipelines, subshells and brace
groups, ``if``/``while``/``for``/``case`` bodies, function bodies, after
``!``, inside command and process substitutions, arithmetic, ``[[ ]]`` and
heredocs), and every pipeline, stage by stage, so a rule can ask what feeds
what. Each simple command carries its words as the shell would pass them,
where that is known without running anything: quotes removed, backslashes
undone, ``$'...'`` decoded, ``~`` and ``$HOME``/``${HOME:?}`` from the
environment the command gets, ``$PWD`` and ``$(pwd)`` from the directory it
runs in (followed through ``cd``), variables assigned a literal earlier in
the same text (met before the use, in the order the text gives). A word
only running could tell (``$(date)``, ``$1``, a name set by ``read`` or a
``for`` loop) is ``None``; each word keeps the simple commands of its own
substitutions, so a rule can ask whether a download is a program's code or
merely its argument.

Why tree-sitter-bash: it is the grammar editors and agent CLIs read shell
with, maintained, a C parser shipped as wheels, and it recovers from errors,
so a command that does not parse still shows what it would run before the
error (``Reading.broken`` says so). Rejected: ``shlex`` (a tokenizer; it
knows no subshell, substitution or ``case``, which is how the pattern guard
before this one let ``( sudo x )`` through), bashlex (a port of bash's
grammar that raises NotImplementedError on arithmetic, and stops at the
first error), and a grammar of our own. The parser is imported here only,
and this module only by ``agent.gate``, so no command but ``_ run`` pays
for it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

import tree_sitter
import tree_sitter_bash

_PARSER = tree_sitter.Parser(tree_sitter.Language(tree_sitter_bash.language()))
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BRACED = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?=])[^}]*)?\}")
_ANSI_C = re.compile(
    r"\\(x[0-9A-Fa-f]{1,2}|u[0-9A-Fa-f]{1,4}|U[0-9A-Fa-f]{1,8}|[0-7]{1,3}|c.|.)",
    re.S,
)
_ANSI_C_CHARS = {"a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f", "n": "\n"}
_ANSI_C_CHARS |= {"r": "\r", "t": "\t", "v": "\v"}
# Commands that set a variable from what only running tells (read x, for x in).
_SETTERS = {"read", "mapfile", "readarray", "getopts"}
_SUBSTITUTIONS = {"command_substitution", "process_substitution"}
# Past these the text is not read further, and the gate refuses it as unreadable:
# a person's or an agent's command is never near them, and the walk stays
# well inside Python's recursion limit and a fraction of a second.
MAX_DEPTH = 150
MAX_COMMANDS = 5_000
MAX_BYTES = 1024 * 1024  # the parser takes about 2 s a MiB of short commands


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
    (longer than ``MAX_BYTES``, nested deeper than ``MAX_DEPTH``, more than
    ``MAX_COMMANDS``), if it was not."""

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

    def copy(self) -> _State:
        return _State(self.cwd, dict(self.vars))


def read(text: str, cwd: str | None, env: dict[str, str]) -> Reading:
    """Parse ``text`` as ``/bin/sh -c`` would get it, run in ``cwd`` with ``env``."""
    source = text.encode("utf-8", "surrogateescape")
    if len(source) > MAX_BYTES:
        return Reading([], [], True, f"longer than {MAX_BYTES // 1024} KiB")
    root = _PARSER.parse(source).root_node
    walker = _Walker(env)
    try:
        walker.walk(root, _State(cwd, {}))
    except _Unread as stop:
        return Reading(walker.simples, walker.pipelines, root.has_error, str(stop))
    return Reading(walker.simples, walker.pipelines, root.has_error)


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
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.simples: list[Simple] = []
        self.pipelines: list[list[list[Simple]]] = []
        self.depth = 0

    def walk(self, node: Any, state: _State) -> None:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _Unread(f"nested more than {MAX_DEPTH} deep")
            if len(self.simples) > MAX_COMMANDS:
                raise _Unread(f"more than {MAX_COMMANDS} commands")
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
            name = node.child_by_field_name("variable")
            for child in node.named_children:
                if child.type == "do_group" and name is not None:
                    state.vars[_text(name)] = None  # set by the loop, as it runs
                self.walk(child, state)
        elif kind == "variable_assignment":
            value = node.child_by_field_name("value")
            name = node.child_by_field_name("name")
            if value is not None:
                self.walk(value, state)
            if name is not None:
                state.vars[_text(name)] = self.value(value, state) if value is not None else ""
        else:
            for child in node.named_children:
                self.walk(child, state)

    def command(
        self, node: Any, state: _State, redirects: list[Any], bare: bool = False, text: str = ""
    ) -> None:
        words: list[Word] = []
        found: list[Redirect] = []
        stdin = None
        parts = [] if bare else list(node.named_children)
        for child in [*parts, *redirects]:
            if child.type == "variable_assignment":  # for this command only
                value = child.child_by_field_name("value")
                if value is not None:
                    self.walk(value, state.copy())
                continue
            if child.type.endswith("_redirect"):
                redirect, given = self.redirect(child, state)
                found.append(redirect)
                stdin = given if given is not None else stdin
                continue
            target = child.named_children[0] if child.type == "command_name" else child
            words.append(self.word(target, state))
        simple = Simple(text or _text(node), words, found, state.cwd, stdin)
        self.simples.append(simple)
        names = [w.value for w in words[1:]]
        if words and words[0].value in _SETTERS:  # read x, mapfile x...: set as it runs
            state.vars.update((n, None) for n in names if n and _NAME.fullmatch(n))
        if words and words[0].value == "printf" and "-v" in names[:-1]:
            state.vars[names[names.index("-v") + 1] or ""] = None
        if words and words[0].value in ("cd", "pushd", "popd"):
            home = self.variable("HOME", state)
            state.cwd = _moved(state.cwd, [w.value for w in words], home)

    def redirect(self, node: Any, state: _State) -> tuple[Redirect, str | None]:
        """The redirect, and the text it gives the command's stdin if it is a heredoc
        or a here-string."""
        op = next((_text(c) for c in node.children if not c.is_named), "")
        if node.type == "heredoc_redirect":
            body = next((c for c in node.named_children if c.type == "heredoc_body"), None)
            if body is None:
                return Redirect(op, Word("")), ""
            return Redirect(op, self.word(body, state, literal=True)), _text(body)
        targets = [c for c in node.named_children if c.type != "file_descriptor"]
        target = self.word(targets[-1], state) if targets else Word(None)
        here = None
        if node.type == "herestring_redirect":
            here = None if target.value is None else target.value + "\n"
        return Redirect(op, target), here

    def word(self, node: Any, state: _State, literal: bool = False) -> Word:
        start = len(self.simples)
        self.walk(node, state)
        subs = self.simples[start:]
        return Word(_text(node) if literal else self.value(node, state), subs)

    def value(self, node: Any, state: _State) -> str | None:
        """The word's value as the shell would pass it; None when only running tells."""
        kind = node.type
        text = _text(node)
        if kind in ("word", "number", "extglob_pattern", "regex", "special_character"):
            if text.startswith("~"):
                head, sep, rest = text.partition("/")
                home = {"~": self.variable("HOME", state), "~+": state.cwd}.get(head)
                return None if home is None else home + sep + _unescape(rest)
            return _unescape(text)
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
            match = _BRACED.fullmatch(text)
            return self.variable(match.group(1), state) if match else None
        if kind == "command_substitution":
            inner = [c for c in node.named_children if c.type != "comment"]
            if len(inner) == 1 and inner[0].type == "command":
                words = [_text(c) for c in inner[0].named_children]
                if words and words[0] == "pwd" and all(w in ("-P", "-L") for w in words[1:]):
                    return state.cwd
        return None

    def variable(self, name: str, state: _State) -> str | None:
        if name in state.vars:
            return state.vars[name]
        if name == "PWD":
            return state.cwd
        if not _NAME.fullmatch(name):
            return None  # $1, $@, $?
        if name in ("RANDOM", "SECONDS", "LINENO", "BASHPID", "EPOCHREALTIME", "OLDPWD"):
            return None
        return self.env.get(name, "")  # unset expands to nothing


def _moved(cwd: str | None, words: list[str | None], home: str | None) -> str | None:
    """Where ``cd``/``pushd``/``popd`` with these words leaves a shell that was in ``cwd``."""
    args = [w for w in words[1:] if w not in ("-P", "-L", "-e", "-@", "--")]
    if words[0] == "popd" or (args and args[0] in (None, "-")):
        return None
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
