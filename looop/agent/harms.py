"""What a program run with its arguments does that cannot be undone: the rules of
``_ run``'s guard rail (``agent.gate``), one program at a time.

``agent.gate`` reads the command (``agent.shellread``), takes the wrappers
off each simple command and asks ``rule`` about the program that remains:
``sudo`` and its kin, a recursive ``rm`` of ``/``, a home dir or the data
dir (``_precious``, which sees ``DIR/*``, a directory holding one and a glob
that matches one), a force-push or deletion of a protected branch
(``_force_push``, which reads the repository's checked-out branch and the
remote's default branch from ``.git`` when the refspec leaves it open),
``mkfs``, ``dd`` or ``tee`` onto a block device (``block_device``, which
gate also asks about redirections) and what stops the machine. Kept apart
from the reading so each side stays one question: how the shell reads the
text, and what a program does with what it is given.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat

from looop import fs

ESCALATORS = {"sudo", "doas", "su", "pkexec", "run0"}
FORMATTERS = {"mke2fs", "mkswap", "wipefs"}
POWER = {"shutdown", "reboot", "halt", "poweroff"}
_BLOCK = re.compile(r"/dev/(sd|hd|vd|xvd|nvme|mmcblk|disk|rdisk|md|dm-|mapper/|nbd|loop)")
_HARMLESS_DEVICES = {"/dev/null", "/dev/zero", "/dev/stdout", "/dev/stderr"}
_PROTECTED_BRANCHES = {"main", "master"}
_PUSH_VALUES = {"repo", "receive-pack", "exec", "push-option"}
_GLOB = re.compile(r"[*?[]")
_POWER_TARGETS = {"reboot.target", "poweroff.target", "halt.target", "kexec.target"}
_SYSTEMCTL_VALUES = frozenset(
    {"--host", "--machine", "--type", "--state", "--property", "--signal", "--kill-whom"}
    | {"--kill-value", "--root", "--image", "--lines", "--output", "--job-mode", "--what"}
    | {"--when", "--message", "--reboot-argument"}
)


def rule(
    program: str,
    args: list[str | None],
    cwd: str | None,
    homes: set[str],
    data_dir: str,
    switched: bool = False,
) -> str | None:
    """The rule ``program`` (a base name) with these arguments (None: known only when
    run), run in ``cwd``, breaks, in words; None if it breaks none. ``switched``: a
    ``git checkout``/``switch`` runs before it, so the branch checked out is not known."""
    if program in ESCALATORS:
        return f"{program} (runs as another user)"
    if program.startswith("mkfs") or program in FORMATTERS:
        return f"{program} (formats a disk)"
    if program in POWER:
        return f"{program} (stops the machine)"
    operands = [a for a in args if a is not None and not a.startswith("-")]
    if program in ("init", "telinit") and operands[:1] in (["0"], ["6"]):
        return f"{program} {operands[0]} (stops the machine)"
    if program in ("systemctl", "loginctl"):
        verbs = _operands(args, "HMtspnoP", _SYSTEMCTL_VALUES)
        verb = verbs[0] if verbs else None
        if verb in ("poweroff", "reboot", "halt", "kexec", "soft-reboot"):
            return f"{program} {verb} (stops the machine)"
        targets = sorted(set(verbs[1:]) & _POWER_TARGETS)
        if verb in ("isolate", "start", "restart") and targets:
            return f"{program} {verb} {targets[0]} (stops the machine)"
    if program == "dd":
        for arg in args:
            if arg is not None and arg.startswith("of=") and block_device(arg[3:]):
                return f"dd onto the disk {arg[3:]}"
    if program == "tee":
        for target in _operands(args, ""):
            if block_device(target):
                return f"a write onto the disk {target}"
    if program == "rm" and _recursive(args):
        for target in _operands(args, ""):
            hit = _precious(target, cwd, homes, data_dir)
            if hit:
                return f"a recursive rm of {hit}"
    if program == "git":
        return _force_push(args, cwd, switched)
    return None


def _operands(
    args: list[str | None], values: str, long_values: frozenset[str] = frozenset()
) -> list[str]:
    """The operands among ``args`` (known ones only), skipping options and the values
    of the short options in ``values`` and the long ones in ``long_values``."""
    found: list[str] = []
    skip = False
    ended = False
    for arg in args:
        if skip:
            skip = False
        elif arg is None:
            continue
        elif ended or not arg.startswith("-") or arg == "-":
            found.append(arg)
        elif arg == "--":
            ended = True
        elif arg.startswith("--"):
            skip = "=" not in arg and arg in long_values
        elif arg[-1] in values:
            skip = True
    return found


def _long(arg: str, name: str, shortest: int) -> bool:
    """Whether ``arg`` is ``--name`` or an abbreviation of it that getopt and git take
    (a prefix at least ``shortest`` letters long)."""
    given = arg[2:].partition("=")[0]
    return arg.startswith("--") and len(given) >= shortest and name.startswith(given)


def _recursive(args: list[str | None]) -> bool:
    for arg in args:
        if arg == "--":
            return False
        if arg and (_long(arg, "recursive", 3) or re.fullmatch(r"-[a-zA-Z]*[rR][a-zA-Z]*", arg)):
            return True
    return False


def _precious(target: str, cwd: str | None, homes: set[str], data_dir: str) -> str | None:
    """What a recursive ``rm`` of ``target`` would take: ``/``, the home dir, the data
    dir or a directory holding one (everything in one, for ``DIR/*``); None for
    anything else, or for a relative path where the directory is not known."""
    if not target:
        return None  # rm "" removes nothing
    if not target.startswith("/"):
        if cwd is None:
            return None
        target = os.path.join(cwd, target)
    path = os.path.normpath(target).replace("//", "/")
    head, last = os.path.split(path)
    if _GLOB.search(last) and not re.search(r"[A-Za-z0-9_-]", last):
        path = head  # everything (or every hidden thing) in it: *, .*, .[!.]*
    kept = {"/": "/", **{home: "the home dir" for home in homes}, data_dir: "the data dir"}
    for place, what in kept.items():
        for above in _ancestry(place):
            if above == path or (_GLOB.search(path) and _matches(path, above)):
                return what if above == place else f"{above}, which holds {what}"
    return None


def _ancestry(place: str) -> list[str]:
    """``place`` and every directory above it, ``/`` last."""
    out = [place]
    while out[-1] != "/":
        out.append(os.path.dirname(out[-1]))
    return out


def _matches(pattern: str, path: str) -> bool:
    """Whether the glob ``pattern`` matches ``path``, one component at a time (``*``
    never crosses a ``/``, and takes a leading dot only when the pattern has one)."""
    wanted, parts = pattern.split("/"), path.split("/")
    if len(wanted) != len(parts):
        return False
    for glob_part, part in zip(wanted, parts, strict=True):
        if part.startswith(".") and not glob_part.startswith("."):
            return False
        if not fnmatch.fnmatchcase(part, glob_part):
            return False
    return True


def block_device(path: str) -> bool:
    """Whether ``path`` names a disk: by its name, or as this machine's block device."""
    path = os.path.normpath(path).replace("//", "/")
    if not path.startswith("/dev/") or path in _HARMLESS_DEVICES:
        return False
    if _BLOCK.match(path):
        return True
    try:
        return stat.S_ISBLK(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _force_push(args: list[str | None], cwd: str | None, switched: bool) -> str | None:
    """``git [opts] push`` that forces (or deletes) a protected branch, in words."""
    i = 0
    while i < len(args) and args[i] != "push":
        arg = args[i]
        if arg is None or not arg.startswith("-"):
            return None  # another subcommand
        if arg in ("-C", "-c", "--git-dir", "--work-tree", "--namespace", "--config-env"):
            if arg == "-C" and i + 1 < len(args):
                given = args[i + 1]
                cwd = None if given is None or cwd is None else os.path.join(cwd, given)
            i += 1
        i += 1
    if i >= len(args):
        return None
    force, delete, everything, operands = _push_options(args[i + 1 :])
    remote = operands[0] if operands else None
    refspecs = operands[1:]
    current = None if switched else _current_branch(cwd)
    protected = _PROTECTED_BRANCHES | set(filter(None, [_default_branch(cwd, remote or "origin")]))
    if force and everything:
        return "a force-push of every branch"
    if not refspecs and force:
        return f"a force-push to {current}" if current in protected else None
    for spec in refspecs:
        if spec is None:
            continue
        plus = spec.startswith("+")
        source, colon, dest = spec.lstrip("+").rpartition(":")
        if not colon:
            source = dest
        if dest in ("HEAD", "@"):
            dest = current or dest
        dest = dest.removeprefix("refs/heads/")
        hit = next((b for b in sorted(protected) if fnmatch.fnmatchcase(b, dest)), None)
        if hit and (force or plus):
            return f"a force-push to {hit}"
        if hit and (delete or (colon and not source)):
            return f"a deletion of {hit}"
    return None


def _push_options(rest: list[str | None]) -> tuple[bool, bool, bool, list[str | None]]:
    """``git push``'s options after ``push``: (force, delete, every branch, operands);
    long options as git takes them, abbreviated too (``--force-with``)."""
    force = delete = everything = False
    operands: list[str | None] = []
    j = 0
    while j < len(rest):
        arg = rest[j]
        j += 1
        if arg is None or not arg.startswith("-") or arg == "-":
            operands.append(arg)
        elif arg.startswith("--"):
            force |= arg == "--force" or _long(arg, "force-with-lease", 7)
            force |= _long(arg, "mirror", 2)
            delete |= _long(arg, "delete", 3)
            everything |= any(_long(arg, n, 2) for n in ("mirror", "all", "branches"))
            j += 1 if arg[2:] in _PUSH_VALUES else 0
        else:
            letters = arg[1:].partition("o")[0]
            force |= "f" in letters
            delete |= "d" in letters
            j += 1 if "o" in arg[1:] and arg.endswith("o") else 0
    return force, delete, everything, operands


def _git_dir(cwd: str | None) -> str | None:
    """The repository holding ``cwd`` (a worktree's ``.git`` file followed)."""
    if cwd is None:
        return None
    here = os.path.normpath(cwd)
    while True:
        dot = os.path.join(here, ".git")
        if os.path.isdir(dot):
            return dot
        if os.path.isfile(dot):
            text = _small(dot)
            if text and text.startswith("gitdir:"):
                return os.path.join(here, text[7:].strip())
            return None
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent


def _small(path: str) -> str | None:
    try:
        return fs.read_small(path, limit=4096).decode("utf-8", "replace")
    except (OSError, ValueError):
        return None


def _current_branch(cwd: str | None) -> str | None:
    git = _git_dir(cwd)
    head = _small(os.path.join(git, "HEAD")) if git else None
    if head and head.startswith("ref: refs/heads/"):
        return head[16:].strip()
    return None


def _default_branch(cwd: str | None, remote: str) -> str | None:
    git = _git_dir(cwd)
    if git is None or "/" in remote:
        return None
    common = _small(os.path.join(git, "commondir"))
    base = os.path.join(git, common.strip()) if common else git
    head = _small(os.path.join(base, "refs", "remotes", remote, "HEAD"))
    prefix = f"ref: refs/remotes/{remote}/"
    return head[len(prefix) :].strip() if head and head.startswith(prefix) else None
