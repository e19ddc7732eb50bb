"""systemd's unit specifiers (``%h``, ``%t``, ``%n``...), expanded as systemd.unit(5) defines them.

A unit or drop-in may name a file with specifiers (``StandardError=
append:%h/pulse.err``), and systemd 252 does not tell over ``systemctl show``
which path it made of them, so looop expands them itself, from one table
(``expand``), for a *user* unit: the directories come from the user
manager's environment (``systemd.manager_environment``), the names from the
unit's. Kept apart from the driver because it is a pure function of its
inputs and the driver's module is about talking to ``systemctl``.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import socket


def expand(value: str, unit: str, env: dict[str, str]) -> str:
    """``value`` with its specifiers replaced as systemd.unit(5) defines them for a user unit.

    ``env`` is the user manager's environment (``HOME``, ``XDG_RUNTIME_DIR``,
    the XDG base dirs: what the manager resolves them from). A specifier
    systemd does not define is left as written.
    """
    user = pwd.getpwuid(os.getuid())
    home = env.get("HOME") or user.pw_dir
    state = env.get("XDG_STATE_HOME") or f"{home}/.local/state"
    name, _, _ = unit.rpartition(".")
    prefix, _, instance = name.partition("@")
    host = socket.gethostname()
    table = {
        "%": "%",
        "h": home,
        "t": env.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}",
        "S": state,
        "L": f"{state}/log",
        "C": env.get("XDG_CACHE_HOME") or f"{home}/.cache",
        "E": env.get("XDG_CONFIG_HOME") or f"{home}/.config",
        "T": env.get("TMPDIR") or "/tmp",
        "V": env.get("TMPDIR") or "/var/tmp",
        "u": user.pw_name,
        "U": str(user.pw_uid),
        "g": _group_name(user.pw_gid),
        "G": str(user.pw_gid),
        "s": user.pw_shell,
        "n": unit,
        "N": name,
        "p": prefix,
        "P": _unescape(prefix),
        "i": instance,
        "I": _unescape(instance),
        "j": prefix.rpartition("-")[2],
        "J": _unescape(prefix.rpartition("-")[2]),
        "H": host,
        "l": host.partition(".")[0],
        "v": os.uname().release,
    }
    out, i = [], 0
    while i < len(value):
        if value[i] == "%" and i + 1 < len(value) and value[i + 1] in table:
            out.append(table[value[i + 1]])
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def _unescape(name: str) -> str:
    """A unit name part unescaped as systemd-escape(1) escapes it: ``-`` is ``/``, ``\\xNN``."""

    def byte(m: re.Match[str]) -> str:
        return chr(int(m.group(1), 16))

    return re.sub(r"\\x([0-9a-fA-F]{2})", byte, name.replace("-", "/"))


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)
