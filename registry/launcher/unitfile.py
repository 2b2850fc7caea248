"""Writing values into systemd unit files so that systemd hands them over unchanged.

systemd 252 rewrites what a unit file says in three ways: `%` specifiers (everywhere), `$VAR`
and `${VAR}` (in ExecStart= and the other Exec lines, unless the command starts with `:`), and
C-style escapes and quotes (when a word is split off). Each value is therefore written as one
double-quoted word with every byte that could be read otherwise escaped: `%` as `%%`, `\\` and
`"` with a backslash, control characters as `\\xNN` (a newline cannot end a unit-file line
that way). The `:` prefix of an Exec line is the caller's (see `exec_line`).
"""

from __future__ import annotations

from collections.abc import Iterable

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "%": "%%"}


def quote(value: str) -> str:
    """One unit-file word that systemd reads back as exactly `value`."""
    out = []
    for char in value:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)  # UTF-8 in the file, read back as the same bytes
    return '"' + "".join(out) + '"'


def exec_line(argv: Iterable[str]) -> str:
    """An ExecStart= value: `:` (no $ expansion) and every argument quoted."""
    return ":" + " ".join(quote(arg) for arg in argv)


def environment_line(name: str, value: str) -> str:
    """An Environment= value (systemd does not expand `$` there, but does `%` and escapes)."""
    return quote(f"{name}={value}")


def path_value(path: str) -> str | None:
    """A path setting's value (WorkingDirectory=...): such settings take the rest of the line
    unquoted, with `%` specifiers; None when systemd could not read the path back unchanged."""
    if not path.startswith("/") or path != path.strip() or \
            any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        return None
    return path.replace("%", "%%")


def valid_env_name(name: str) -> bool:
    """systemd's rule for variable names (stricter than appc's: no `.` or `-`)."""
    return bool(name) and not name[0].isdigit() and \
        all(c.isascii() and (c.isalnum() or c == "_") for c in name)
