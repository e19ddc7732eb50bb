"""The guard rail of ``looop _ run`` (SPEC §11): commands that cannot be undone.

A guard rail, not a sandbox. It reads the command's text, split at ``;``,
``&``, ``|``, newlines and the openings of ``$(`` and backticks, and looks at
each simple command with its leading ``VAR=value`` words and wrappers
(``env``, ``command``, ``exec``, ``nohup``, ``time``, ``nice``) removed and
the program taken by its base name, so ``/usr/bin/sudo``, ``env sudo`` and
``true && sudo x`` are all seen. Refused, unless ``--allow-dangerous``:
``sudo``/``doas``; a recursive ``rm`` of ``/``, the home dir or the data dir
(``~``, ``$HOME``, ``.``, ``*`` and their trailing-slash spellings, the data
dir being the command's working directory); a force-push to ``main`` or
``master``; a download (``curl``, ``wget``) piped or substituted into a
shell; ``mkfs``; ``dd`` onto a device; shutdown, reboot, halt, poweroff.

What it does not catch, by design: anything assembled at run time (``x=su;
${x}do``, ``eval``, a script file that does it, an alias), other
interpreters (``python -c``), and ``find -delete``. The human's yes is the
real gate; this catches the slips an agent actually makes.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

WRAPPERS = {"env", "command", "exec", "nohup", "time", "nice", "builtin"}
_SPLIT = re.compile(r"\|\||&&|[;&|\n]|\$\(|`|<\(")
_DOWNLOAD_INTO_SHELL = re.compile(
    r"\b(curl|wget)\b[^|;&]*\|\s*(sudo\s+)?(\S*/)?(ba|z|k|da|fi)?sh\b"
    r"|\b(ba|z|k|da)?sh\b[^;&|]*(\$\(|<\(|`)\s*(curl|wget)\b"
)
_SHELL_WORD = re.compile(r"^\$\{?HOME\}?(/.*)?$")


def _words(segment: str) -> list[str]:
    try:
        words = shlex.split(segment, comments=True)
    except ValueError:
        words = segment.split()
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        words.pop(0)
    while words and os.path.basename(words[0]) in WRAPPERS:
        words.pop(0)
        while words and words[0].startswith("-"):
            words.pop(0)
        while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
            words.pop(0)
    return words


def _precious(target: str, home: str, data_dir: Path) -> bool:
    """Is ``target`` (an ``rm`` operand) ``/``, the home dir or the data dir (the cwd)?"""
    if target in (".", "./", "*", "./*", "/*", "~/*", "..", "../"):
        return True
    if target == "~" or target.startswith("~/"):
        target = home + target[1:]
    elif _SHELL_WORD.match(target):
        target = home + (target.split("}", 1)[1] if "}" in target else target[5:])
    target = target.rstrip("/*") or "/"
    if not target.startswith("/"):
        target = str(data_dir / target)
    real = os.path.normpath(target)
    return real in ("/", os.path.normpath(home), os.path.normpath(str(data_dir)))


def _rule(words: list[str], home: str, data_dir: Path) -> str | None:
    if not words:
        return None
    program = os.path.basename(words[0])
    args = words[1:]
    if program in ("sudo", "doas"):
        return f"{program} (runs as another user)"
    if program.startswith("mkfs"):
        return "mkfs (formats a file system)"
    if program in ("shutdown", "reboot", "halt", "poweroff") or (
        program == "systemctl" and any(a in ("reboot", "poweroff", "halt") for a in args)
    ):
        return f"{program} (stops the machine)"
    if program == "dd" and any(a.startswith("of=/dev/") for a in args):
        return "dd onto a device"
    if program == "rm":
        flags = "".join(a[1:] for a in args if a.startswith("-") and not a.startswith("--"))
        recursive = "r" in flags or "R" in flags or "--recursive" in args
        if recursive and any(_precious(a, home, data_dir) for a in args if not a.startswith("-")):
            return "recursive rm of /, the home dir or the data dir"
    if program == "git" and "push" in args:
        after = args[args.index("push") + 1 :]
        forced = any(a in ("-f", "--force") or a.startswith("--force-with-lease") for a in after)
        refs = [a for a in after if not a.startswith("-")]
        plus = any(r.startswith("+") for r in refs)
        branch = any(re.search(r"(^|[:+/])(main|master)$", r) for r in refs)
        if (forced or plus) and branch:
            return "force-push to main/master"
    return None


def refused(command: str, data_dir: Path, home: str | None = None) -> str | None:
    """The rule ``command`` breaks, in words; None when it may run."""
    home = home if home is not None else os.path.expanduser("~")
    if _DOWNLOAD_INTO_SHELL.search(command):
        return "a download run by a shell"
    for segment in _SPLIT.split(command):
        rule = _rule(_words(segment.strip(" )")), home, data_dir)
        if rule:
            return rule
    return None
