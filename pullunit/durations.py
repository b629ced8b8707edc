"""systemd time spans ("500ms", "2s", "5min", "1h 30min", "infinity") as float seconds.

Pure logic. The grammar follows systemd.time(7) so that a value an admin copies from a
unit file means the same thing here.
"""

from __future__ import annotations

import math
import re

# Longest names first within each unit so the regex alternation prefers them.
_UNITS: dict[str, float] = {
    "usec": 1e-6, "us": 1e-6, "µs": 1e-6, "μs": 1e-6,
    "msec": 1e-3, "ms": 1e-3,
    "seconds": 1.0, "second": 1.0, "sec": 1.0, "s": 1.0, "": 1.0,
    "minutes": 60.0, "minute": 60.0, "min": 60.0, "m": 60.0,
    "hours": 3600.0, "hour": 3600.0, "hr": 3600.0, "h": 3600.0,
    "days": 86400.0, "day": 86400.0, "d": 86400.0,
    "weeks": 604800.0, "week": 604800.0, "w": 604800.0,
    "months": 2629800.0, "month": 2629800.0, "M": 2629800.0,
    "years": 31557600.0, "year": 31557600.0, "y": 31557600.0,
}
_UNIT_ALT = "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True) if u)
# systemd's WHITESPACE and ASCII digits only: Python's \s and \d would also take an
# Arabic-Indic "5" (U+0665) or a no-break space, which systemd refuses ("Failed to parse
# time value": the directive is ignored).
_WHITESPACE = " \t\n\r"
_COMPONENT = re.compile(
    rf"[{_WHITESPACE}]*(?>([0-9]+(?:\.[0-9]+)?|\.[0-9]+))(?![.0-9])[{_WHITESPACE}]*"
    rf"({_UNIT_ALT})?(?![A-Za-zµμ])", re.ASCII)
# The longest finite span every consumer can wait: Python's timeouts (threading.TIMEOUT_MAX)
# and Docker's `stop --time` (a Go time.Duration) hold 2**63 - 1 nanoseconds, about 292
# years. systemd's own limit (2**64 - 1 microseconds) is higher, so a span within this one
# is never "Failed to parse time value" in a unit either.
MAX_SECONDS = (2**63 - 1) // 10**9


class DurationError(ValueError):
    pass


def _too_long(value: object) -> DurationError:
    # repr() of an int has a digit limit (4300); a huge one is only described
    if isinstance(value, int) and value.bit_length() > 128:
        shown = "(a number of more than 38 digits)"
    else:
        shown = repr(value) if len(repr(value)) <= 40 else f"{repr(value)[:37]}..."
    return DurationError(f"duration {shown} is too long: at most {MAX_SECONDS}s (about 292 "
                         "years), or \"infinity\" where that is allowed")


def parse_duration(value: object) -> float:
    """Parse a TOML value (string time span or non-negative number of seconds).

    Finite results are at most MAX_SECONDS; only the string "infinity" (or a TOML inf)
    gives math.inf, and callers decide whether that is allowed."""
    if isinstance(value, bool):
        raise DurationError("expected a duration such as \"2s\" or \"5min\", got a boolean")
    if isinstance(value, int | float):
        if value < 0 or (isinstance(value, float) and math.isnan(value)):
            raise DurationError(f"duration must be a non-negative number of seconds, got {value!r}")
        # Compare before float(): a TOML integer of 400 digits does not fit a float.
        if value > MAX_SECONDS and not (isinstance(value, float) and math.isinf(value)):
            raise _too_long(value)
        return float(value)
    if not isinstance(value, str):
        raise DurationError(f"expected a duration string, got {type(value).__name__}")
    text = value.strip(_WHITESPACE)
    if text == "infinity":
        return math.inf
    if not text:
        raise DurationError("empty duration")
    total = 0.0
    pos = 0
    while pos < len(text):
        m = _COMPONENT.match(text, pos)
        if not m:
            raise DurationError(
                f"invalid duration {value!r}: use systemd time spans such as "
                "\"500ms\", \"2s\", \"5min\", \"1h 30min\" or \"infinity\""
            )
        total += float(m.group(1)) * _UNITS[m.group(2) or ""]
        pos = m.end()
        while pos < len(text) and text[pos] in _WHITESPACE:
            pos += 1
    if total > MAX_SECONDS:  # also a float("1" + 400 zeros), which is inf
        raise _too_long(value)
    return total


def format_timespan(seconds: float) -> str:
    """Render seconds for a unit file: exact, and readable by any systemd."""
    if math.isinf(seconds):
        return "infinity"
    ms = round(seconds * 1000)
    if ms % 1000 == 0:
        return f"{ms // 1000}s"
    return f"{ms}ms"


def human(seconds: float) -> str:
    """Short human form for status lines: 1.5s, 2min 5s, 1h 2min."""
    if math.isinf(seconds):
        return "infinity"
    if seconds < 10:
        return f"{seconds:.1f}s"
    s = round(seconds)
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    parts = [f"{h}h"] if h else []
    if m:
        parts.append(f"{m}min")
    if s and not h:
        parts.append(f"{s}s")
    return " ".join(parts) or "0s"
