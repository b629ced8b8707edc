"""Quoting of config values for systemd unit files.

Pure logic. Every value from a TOML file reaches a unit through one of these functions,
so none can smuggle in a directive, a %-specifier, a $-expansion or an extra argv word.
See systemd.unit(5) "Specifiers" and systemd.service(5) "Command lines".
"""

from __future__ import annotations

import re
import unicodedata

# C0 controls, DEL and C1 controls: a newline would start a new directive, and the others
# have no business in a unit file or a container's argv.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Words systemd and a reader take as they are: ASCII only (re.ASCII besides the explicit
# class, so that no future \w in it can let Unicode through unquoted).
_PLAIN_WORD = re.compile(r"[A-Za-z0-9_@%+=:,./-]+", re.ASCII)
# Printable ASCII: nothing the per-character Unicode checks below can object to. Nearly
# every value is this, and the generator checks thousands of words at every boot and
# daemon-reload, so those skip the loop.
_PRINTABLE_ASCII = re.compile(r"[ -~]*", re.ASCII)


class UnsafeValueError(ValueError):
    pass


def check_text(value: str) -> None:
    """Reject what no unit line can carry: control characters and line/paragraph separators."""
    if _PRINTABLE_ASCII.fullmatch(value):
        return
    m = _CONTROL.search(value)
    if m:
        raise UnsafeValueError(f"contains control character {m.group()!r}")
    for ch in value:
        # U+2028/U+2029 and friends: not line breaks to systemd, but they are to readers.
        if unicodedata.category(ch) in ("Zl", "Zp", "Cs"):
            raise UnsafeValueError(f"contains line separator or surrogate U+{ord(ch):04X}")
        cp = ord(ch)
        if 0xFDD0 <= cp <= 0xFDEF or (cp & 0xFFFE) == 0xFFFE:
            # systemd refuses such a line as "not UTF-8 clean" and drops the directive
            raise UnsafeValueError(f"contains Unicode noncharacter U+{cp:04X}")


def escape_specifiers(value: str) -> str:
    return value.replace("%", "%%")


def unit_value(value: str) -> str:
    """A free-text directive value such as Description=.

    systemd expands %-specifiers there, strips surrounding white space, and a trailing
    backslash would continue the line; quotes and $ are taken literally.
    """
    check_text(value)
    if value != value.strip():
        raise UnsafeValueError("has leading or trailing white space, which systemd would strip")
    if value.endswith("\\"):
        raise UnsafeValueError("ends with a backslash, which systemd reads as a line continuation")
    return escape_specifiers(value)


def exec_word(word: str) -> str:
    """One argv word of an Exec*= line, so that systemd hands the program exactly `word`.

    Order matters: systemd unquotes (with C escapes) first, then expands specifiers and
    environment variables, so $ and % are doubled inside the quoted word.
    """
    check_text(word)
    if word == ";":
        return "\\;"  # a lone ; separates commands; \; is the documented literal
    escaped = (
        word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    )
    if escaped and _PLAIN_WORD.fullmatch(word):
        # Plain words stay unquoted so that `systemctl cat` reads naturally.
        return escaped
    return f'"{escaped}"'


def environment_assignment(name: str, value: str) -> str:
    """One Environment= assignment that sets exactly NAME=value.

    systemd splits the value into words and unquotes them (with C escapes) first, then
    expands specifiers; $ stays literal in Environment=.
    """
    check_text(value)
    word = f"{name}={value}"
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%") + '"'


def path_value(path: str) -> str:
    """An absolute path as the whole value of a directive such as EnvironmentFile=: taken
    as it is (no unquoting) apart from %-specifiers."""
    check_text(path)
    if not path.startswith("/") or path != path.strip() or path.endswith("\\"):
        raise UnsafeValueError("must be an absolute path without surrounding white space")
    return escape_specifiers(path)


def exec_line(argv: list[str], *, raw_at: frozenset[int] = frozenset()) -> str:
    """Quote a whole argv. Words at the positions in `raw_at` are pullunit's own trusted
    templates (${PULLUNIT_IMAGE}); by position, so a config value that happens to read
    "${PULLUNIT_IMAGE}" is still quoted."""
    if not argv:
        raise UnsafeValueError("empty command")
    return " ".join(w if i in raw_at else exec_word(w) for i, w in enumerate(argv))
