"""The files shipped in ``packaging/`` made into this profile's units and plists.

``packaging/`` is the single source of truth for units and plists: nothing
else writes one. This module fills in a template's ``@NAME@`` placeholders
with the command that runs this looop (``paths.looop_command``: its script,
else ``<python> -P -m looop``) and the profile's data dir,
escaped for the format (systemd's specifiers and quoting, XML for a plist),
and decides what install may write. It reads files but starts nothing and
talks to no manager; the drivers (``systemd``, ``launchd``) never import it,
so ``looop status`` never loads the installer.

Three rules shape it:

- *A value stays one value, or install refuses it.* Every value a file is
  rendered with (the data dir, each word of the looop command, a plist's log
  file) goes through ``holdable``, which refuses a control character or a
  byte that is not UTF-8, naming the value and the character. Refusing, not
  escaping, is one rule for both formats: a unit line ends at a newline, a
  CR or a NUL, a unit must be UTF-8, and XML has no form at all for most
  control characters (and reads a CR back as a newline); escaping would need
  a different, partial scheme per format and per systemd setting. A plist's
  ``PATH`` is built from the looop command's directory and fixed ones, so it
  needs no check of its own.

- *Never clobber an edit.* Each rendered file carries a
  ``looop-rendered sha256=...`` line: the hash of the rest of the file as it
  was written. A file whose content no longer matches its hash (or that has
  none, or a link in its place) was changed by the user: install does not
  overwrite it and uninstall does not remove it, unless ``--force`` is given
  (``plan``, ``ours``). Changes belong in a drop-in, which neither ever
  touches.
- *One profile, one set of names* (``units``). Every rendered file sets
  ``LOOOP_DATA_DIR``, the default profile's too: the service manager need not
  see the ``XDG_STATE_HOME`` of the shell that ran install (launchd never
  does), and the pulse must serve the data dir install was asked about.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import NamedTuple

from looop.fs import read_small
from looop.paths import Paths, looop_command
from looop.service import ServiceError
from looop.service.units import (
    LAUNCHD,
    PULSE,
    REAP,
    SYSTEMD,
    TIMER,
    installed,
    labels,
    launchd_log,
    manager_named,
    plist_file,
    unit_file,
    unit_names,
)


def xml_escape(text: str) -> str:
    """Escape text for a plist <string> (xml.sax would pull in urllib and http)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


MARK = "looop-rendered sha256="
MARK_RE = re.compile(r"^.*looop-rendered sha256=([0-9a-f]{64}).*\n?", re.MULTILINE)

# launchd gives agents a bare PATH; sensors want the user's usual tools.
LAUNCHD_PATH = ("/opt/homebrew/bin", "/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin")


class Rendered(NamedTuple):
    role: str
    path: Path  # where it is installed
    text: str


def template_text(relative: str) -> str:
    """A file shipped in ``packaging/``: inside the wheel as data (``looop/packaging/``).

    Imported from a source checkout (``python -m pytest`` puts it first on
    ``sys.path``) the package has no such data; the files are then the
    checkout's own ``packaging/``, beside the package.
    """
    from importlib import resources  # only install needs it; status stays light

    shipped = resources.files("looop").joinpath("packaging", relative)
    if not shipped.is_file():
        checkout = Path(__file__).resolve().parents[2] / "packaging" / relative
        if checkout.is_file():
            return checkout.read_text(encoding="utf-8")
    return shipped.read_text(encoding="utf-8")


_CHARACTER_NAMES = {"\n": "a newline (\\n)", "\r": "a carriage return (\\r)", "\t": "a tab (\\t)"}


def _unholdable(char: str) -> bool:
    """A character no service file can carry as part of one value.

    C0 controls, DEL and C1 controls (a unit is read line by line and a CR
    or NUL ends a line too; XML 1.0 has no form for most of them and turns a
    CR into a newline), and a lone surrogate: a byte of a name that is not
    UTF-8, which neither a unit nor a plist may hold.
    """
    code = ord(char)
    return code < 0x20 or 0x7F <= code <= 0x9F or 0xD800 <= code <= 0xDFFF


def _shown(value: str) -> str:
    """``value`` on one line: each character ``_unholdable`` finds written as an escape."""
    return "".join(_escape(c) if _unholdable(c) else c for c in value)


def _escape(char: str) -> str:
    """``\\n``, ``\\x1b``; a byte that is not UTF-8 (surrogateescape) as the byte."""
    code = ord(char)
    if char in "\n\r\t":
        return repr(char)[1:-1]
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def holdable(what: str, value: str) -> str:
    """``value``, unless a service file cannot hold it as one value: then ServiceError.

    Every value a unit or plist is rendered with goes through here. Refused,
    not escaped: systemd and XML would each need their own escape, and
    neither has one for everything (a plist cannot carry a byte that is not
    UTF-8, nor most control characters), so one rule for both is to refuse.
    Such a path is an accident or an attack, and the message names it.
    """
    for char in value:
        if not _unholdable(char):
            continue
        if 0xDC80 <= ord(char) <= 0xDCFF:
            named = f"a byte that is not UTF-8 ({_escape(char)})"
        else:
            named = _CHARACTER_NAMES.get(char) or f"a control character ({_escape(char)})"
        raise ServiceError(
            f"{what} {_shown(value)} contains {named}, which a service file cannot hold "
            "as part of one value; use a path without it"
        )
    return value


def _command(command: list[str] | None) -> list[str]:
    """The argv a unit runs looop by (``paths.looop_command`` unless given); absolute."""
    command = command or looop_command()
    if not os.path.isabs(command[0]):
        raise ServiceError("cannot tell where the looop executable is; run it by its full path")
    return [holdable("the looop command", word) for word in command]


def outside_home(path: Path) -> bool:
    """True when ``path`` is not under the home dir (a sandboxed unit must be let in)."""
    home = Path.home()
    return path != home and home not in path.parents


def systemd_word(value: str) -> str:
    """One program path or assignment value in a unit file: specifiers and quotes escaped.

    ``$`` is left as it is: systemd expands variables only in a command's
    arguments, never in the program path itself nor in ``Environment=`` or
    ``ReadWritePaths=``, which is all looop renders; ``$$`` there would stay
    two dollars.
    """
    value = value.replace("%", "%%")
    if re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def substitute(text: str, values: dict[str, str]) -> str:
    """Replace ``@NAME@`` placeholders; a line holding only an empty one disappears."""
    for name, value in values.items():
        token = f"@{name}@"
        if not value:
            text = re.sub(rf"^[ \t]*{re.escape(token)}[ \t]*\n", "", text, flags=re.MULTILINE)
        text = text.replace(token, value)
    left = re.findall(r"@[A-Z_]+@", text)
    if left:
        raise ServiceError(f"template has placeholders looop does not know: {sorted(set(left))}")
    return text


def _stamp(text: str, xml: bool) -> str:
    """Add the ``looop-rendered`` line holding the hash of everything else."""
    digest = hashlib.sha256(text.encode()).hexdigest()
    if xml:
        head, _, rest = text.partition("\n")
        line = f"<!-- {MARK}{digest} (looop install will not overwrite an edited copy) -->"
        return f"{head}\n{line}\n{rest}"
    line = f"# {MARK}{digest} (put changes in a drop-in: systemctl --user edit)"
    return f"{line}\n{text}"


def pristine(text: str) -> bool:
    """True when a rendered file is exactly as looop wrote it."""
    found = MARK_RE.search(text)
    if found is None:
        return False
    rest = text[: found.start()] + text[found.end() :]
    return hashlib.sha256(rest.encode()).hexdigest() == found.group(1)


def render_systemd(paths: Paths, command: list[str] | None = None) -> list[Rendered]:
    words = _command(command)
    data = holdable("the data dir", str(paths.data_dir))
    env = f"Environment={systemd_word('LOOOP_DATA_DIR=' + data)}"
    rw = f"ReadWritePaths=-{systemd_word(data)}" if outside_home(paths.data_dir) else ""
    values = {
        "LOOOP_COMMAND": " ".join(systemd_word(word) for word in words),
        "PROFILE": data.replace("%", "%%"),
        "UNIT": unit_names(paths)[PULSE],
        "REAP_TIMER": unit_names(paths)[TIMER],
        "ENVIRONMENT": env,
        "READ_WRITE_PATHS": rw,
    }
    templates = {
        PULSE: "systemd/looop.service",
        REAP: "systemd/looop-reap.service",
        TIMER: "systemd/looop-reap.timer",
    }
    return [
        Rendered(
            role, unit_file(paths, role), _stamp(substitute(template_text(tpl), values), False)
        )
        for role, tpl in templates.items()
    ]


def render_launchd(paths: Paths, command: list[str] | None = None) -> list[Rendered]:
    words = _command(command)
    # PATH is the looop command's directory (checked with it) and fixed ones.
    path_dirs = [os.path.dirname(words[0]), *LAUNCHD_PATH]
    search_path = ":".join(dict.fromkeys(path_dirs))
    data = holdable("the data dir", str(paths.data_dir))
    env = f"\t\t<key>LOOOP_DATA_DIR</key>\n\t\t<string>{xml_escape(data)}</string>"
    names = labels(paths)
    rendered = []
    for role, tpl, verb in (
        (PULSE, "launchd/org.looop.pulse.plist", "pulse"),
        (REAP, "launchd/org.looop.reap.plist", "reap"),
    ):
        values = {
            "JOB": _plist_job(names[role], [*words, verb]),
            "PATH": xml_escape(search_path),
            "ENVIRONMENT": env,
            "LOG_FILE": xml_escape(holdable("the log file", str(launchd_log(paths, role)))),
        }
        text = _stamp(substitute(template_text(tpl), values), True)
        rendered.append(Rendered(role, plist_file(paths, role), text))
    return rendered


def _plist_job(label: str, argv: list[str]) -> str:
    """A plist's Label and ProgramArguments: only a rendered plist has them, never a template.

    So ``launchctl load`` of a template as shipped refuses it (launchd needs
    a Label) instead of registering a job named ``@LABEL@`` that runs ``pulse``.
    """
    strings = "".join(f"\t\t<string>{xml_escape(word)}</string>\n" for word in argv)
    return (
        f"\t<key>Label</key>\n\t<string>{xml_escape(label)}</string>\n"
        f"\t<key>ProgramArguments</key>\n\t<array>\n{strings}\t</array>"
    )


def render(paths: Paths, manager: str, command: list[str] | None = None) -> list[Rendered]:
    """This profile's files for ``manager``, running ``command`` (this looop unless given)."""
    return _RENDERERS[manager_named(manager)](paths, command)


# One renderer per manager, and one reader of what its file runs: the format
# is the renderer's, so the choice between the two is made here by name.
_RENDERERS = {SYSTEMD: render_systemd, LAUNCHD: render_launchd}


# --- what install may write -------------------------------------------------------
NEW, UNCHANGED, UPDATE, EDITED = "new", "unchanged", "update", "edited"


def installed_command(path: Path, manager: str) -> list[str]:
    """The looop command an installed pulse unit or plist runs (without ``pulse``).

    Read back from the file by the inverse of how it is rendered
    (``systemd_word``, the plist's ``ProgramArguments``), so ``looop doctor``
    can tell a unit left pointing at a removed venv. OSError (a FIFO, a
    directory, not there: ``read_small``'s) or ServiceError (unreadable).
    """
    words = _COMMAND_READERS[manager_named(manager)](read_small(path))
    return words[:-1] if words and words[-1] == "pulse" else words


def _plist_command(data: bytes) -> list[str]:
    import plistlib

    try:
        given = plistlib.loads(data).get("ProgramArguments")
    except (plistlib.InvalidFileException, ValueError, AttributeError) as exc:
        raise ServiceError(f"not a property list: {exc}") from None
    return [str(w) for w in given] if isinstance(given, list) else []


def _unit_command(data: bytes) -> list[str]:
    lines = data.decode("utf-8", "replace").splitlines()
    starts = [line[len("ExecStart=") :] for line in lines if line.startswith("ExecStart=")]
    return _systemd_words(starts[-1]) if starts else []


_COMMAND_READERS = {SYSTEMD: _unit_command, LAUNCHD: _plist_command}


def _systemd_words(line: str) -> list[str]:
    """The words of a command line as ``systemd_word`` wrote them: quotes, \\ and %%."""
    out = []
    for m in re.finditer(r'"((?:[^"\\]|\\.)*)"|(\S+)', line):
        quoted, bare = m.groups()
        word = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        out.append(word.replace("%%", "%"))
    return out


def _installed_text(path: Path) -> tuple[bool, str | None]:
    """(whether anything is installed at ``path``, its text if looop may have written it).

    The text is None for what looop never writes: a link (the user placed it),
    something that is not a small readable text file (a FIFO there must not
    hang install: ``read_small`` never blocks and never follows the link).
    """
    if not installed(path):
        return False, None
    try:
        return True, read_small(path).decode("utf-8")
    except FileNotFoundError:
        return False, None
    except (OSError, UnicodeDecodeError):
        return True, None


def ours(path: Path) -> bool:
    """True when ``path`` is a file exactly as looop rendered it."""
    text = _installed_text(path)[1]
    return text is not None and pristine(text)


def _compare(item: Rendered) -> str:
    present, current = _installed_text(item.path)
    if not present:
        return NEW
    if current == item.text:
        return UNCHANGED
    return UPDATE if current is not None and pristine(current) else EDITED


def plan(items: list[Rendered], force: bool) -> tuple[dict[Path, str], list[str]]:
    """What install would do with each file (NEW, UNCHANGED, UPDATE, EDITED), and lines saying so.

    Raises ServiceError, before anything is written, when a file was edited
    and ``force`` is not given.
    """
    states = {item.path: _compare(item) for item in items}
    edited = [str(p) for p, s in states.items() if s == EDITED]
    if edited and not force:
        raise ServiceError(
            "not overwriting a file changed since looop installed it: "
            + ", ".join(edited)
            + ". Keep your changes in a drop-in (systemctl --user edit) or a copy, "
            "or run `looop install --force` to replace them"
        )
    lines = []
    for item in items:
        state = states[item.path]
        label = {NEW: "write", UNCHANGED: "unchanged", UPDATE: "update", EDITED: "overwrite"}
        lines.append(f"{label[state]} {item.path}")
    return states, lines
