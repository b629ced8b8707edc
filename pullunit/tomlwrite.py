"""A merged config back to TOML text, each key preceded by the file that set it when
that file changes: what `pullunit cat` prints. tomli_w cannot write comments, hence this.

Pure. The output decodes (tomllib) to exactly the data given: strings are written as basic
strings with every character TOML does not allow raw escaped, floats keep inf/nan, tables
come after the plain keys of their parent, and a table inside an array is written inline.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+", re.ASCII)
_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r", '"': '\\"',
            "\\": "\\\\"}
# TOML basic strings allow neither C0 controls (but tab) nor DEL raw.
_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f\x7f"\\]')

Source = Callable[[tuple[str, ...]], str]


def key(name: str) -> str:
    return name if _BARE_KEY.fullmatch(name) else string(name)


def string(s: str) -> str:
    return '"' + _NEEDS_ESCAPE.sub(
        lambda m: _ESCAPES.get(m.group(), f"\\u{ord(m.group()):04x}"), s) + '"'


def value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return string(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, datetime.date | datetime.time):  # datetime is a date
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{key(k)} = {value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"not a TOML value: {type(v).__name__}")


def dumps(data: Mapping[str, Any], source: Source | None = None) -> str:
    """TOML text for `data`; with `source`, a `# FILE` line before each run of keys that
    one file set."""
    lines: list[str] = []
    _table(data, (), source, lines)
    return "\n".join(lines) + "\n" if lines else ""


def _table(data: Mapping[str, Any], path: tuple[str, ...], source: Source | None,
           lines: list[str]) -> None:
    plain = [(k, v) for k, v in data.items() if not isinstance(v, dict)]
    tables = [(k, v) for k, v in data.items() if isinstance(v, dict)]
    if path and (plain or not tables):
        if lines:
            lines.append("")
        lines.append("[" + ".".join(key(p) for p in path) + "]")
    last = None
    for k, v in plain:
        if source is not None:
            file = source((*path, k))
            if file != last:
                # A comment ends at a newline: a file name holding one is shown quoted.
                lines.append(f"# {file}" if file.isprintable() else f"# {file!r}")
                last = file
        lines.append(f"{key(k)} = {value(v)}")
    for k, v in tables:
        _table(v, (*path, k), source, lines)
