"""A registry's pull quota, read from its response headers. Pure: headers in, numbers out.

Docker Hub answers every manifest request (a HEAD too, which it does not count as a
pull) with

    RateLimit-Limit: 100;w=21600        (100 pulls per 21600 s, a rolling window)
    RateLimit-Remaining: 76;w=21600
    Docker-RateLimit-Source: 203.0.113.7  (what is counted: an IP, or the account)

The IETF draft these come from (draft-ietf-httpapi-ratelimit-headers-03) also allows a
list, "10, 10;w=1, 50;w=60": the first item is the quota in force, the rest are
policies; and `RateLimit-Reset: SECONDS`, when the window ends. `Retry-After` (RFC 9110:
delta-seconds or an HTTP-date) comes with a 429 or a 503. Anything else (garbage,
negative numbers, a header sent twice that disagrees with itself) is read as well as it
can be, never raised: a registry's headers are untrusted input.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from .durations import human
from .printable import printable

# Low: at most this fraction of the limit left. For Docker Hub's anonymous 100 pulls per
# 6 h that is 10: a host with a few apps that reboots (or a fleet behind one NAT address,
# which shares one quota) can use that up before the window rolls on. Without a limit in
# the headers, at most LOW_LEFT pulls left is low.
LOW_FRACTION = 0.10
LOW_LEFT = 10

_INT = re.compile(r"\s*(\d{1,12})\s*$", re.ASCII)
_WINDOW = re.compile(r"^\s*w\s*=\s*(\d{1,12})\s*$", re.I | re.ASCII)


@dataclass(frozen=True)
class Quota:
    """One quota item: `number` (pulls allowed, or left) in a window of `window` s."""

    number: int
    window: int | None = None


@dataclass(frozen=True)
class RateLimit:
    """What a registry said about its pull quota (None: it did not say, or not legibly)."""

    limit: int | None = None
    remaining: int | None = None
    window: int | None = None  # seconds
    reset: float | None = None  # seconds until the window resets
    source: str | None = None  # Docker-RateLimit-Source: what the registry counts
    retry_after: float | None = None  # seconds, from Retry-After

    @property
    def known(self) -> bool:
        """The registry sent a legible quota."""
        return self.limit is not None or self.remaining is not None

    @property
    def low(self) -> bool:
        if self.remaining is None:
            return False
        if self.limit:
            return self.remaining <= self.limit * LOW_FRACTION
        return self.remaining <= LOW_LEFT

    def describe(self) -> str:
        """"N of M pulls left in the window (6h), resets in 5min" with what is known."""
        if not self.known:
            text = "the registry sent no pull quota"
        elif self.remaining is not None and self.limit is not None:
            text = f"{self.remaining} of {self.limit} pulls left in the window"
        elif self.remaining is not None:
            text = f"{self.remaining} pulls left in the window"
        else:
            text = f"a limit of {self.limit} pulls in the window"
        if self.known and self.window:
            # without a reset time the window rolls (Docker Hub's): a pull counts for
            # `window` seconds after it was made
            text += f" ({human(self.window)}{'' if self.reset is not None else ', rolling'})"
        if self.reset is not None:
            text += f", resets in {human(self.reset)}"
        if self.retry_after is not None:
            text += f"; Retry-After {human(self.retry_after)}"
        return text

    def as_json(self) -> dict[str, object]:
        return {"limit": self.limit, "remaining": self.remaining,
                "window_seconds": self.window, "reset_seconds": self.reset,
                "source": self.source, "retry_after_seconds": self.retry_after,
                "low": self.low}


def parse_quota(value: str | None) -> Quota | None:
    """A RateLimit-Limit / RateLimit-Remaining value: "100", "100;w=21600", or a list
    "10, 10;w=1, 50;w=60" (the first item is in force; its window is its own `w`, else
    that of a later policy with the same number). None for anything else."""
    if not value:
        return None
    items: list[Quota] = []
    for raw in value.split(","):
        number, *params = raw.split(";")
        m = _INT.match(number)
        if not m:
            return None if not items else _first(items)
        window = None
        for p in params:
            w = _WINDOW.match(p)
            if w:
                window = int(w.group(1)) or None
        items.append(Quota(int(m.group(1)), window))
    return _first(items) if items else None


def _first(items: list[Quota]) -> Quota:
    head = items[0]
    if head.window is None:
        same = next((q.window for q in items[1:] if q.number == head.number and q.window), None)
        return Quota(head.number, same)
    return head


def parse_seconds(value: str | None) -> float | None:
    """A non-negative number of seconds (RateLimit-Reset), else None."""
    m = _INT.match(value or "")
    return float(m.group(1)) if m else None


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Retry-After as seconds from `now` (epoch seconds): delta-seconds, or an HTTP-date
    (a date in the past is 0). None when absent or not legible."""
    if value is None:
        return None
    seconds = parse_seconds(value)
    if seconds is not None:
        return seconds
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        from datetime import UTC

        when = when.replace(tzinfo=UTC)
    delta = when.timestamp() - now
    return max(0.0, delta) if math.isfinite(delta) else None


def from_headers(headers: Iterable[tuple[str, str]], now: float) -> RateLimit:
    """The quota in a response's headers (name, value pairs, repeated names allowed: a
    header sent twice reads as one comma-separated list, as HTTP says)."""
    seen: dict[str, list[str]] = {}
    for name, value in headers:
        seen.setdefault(name.strip().lower(), []).append(value)

    def one(name: str) -> str | None:
        values = seen.get(name)
        return ", ".join(values) if values else None

    limit = parse_quota(one("ratelimit-limit"))
    remaining = parse_quota(one("ratelimit-remaining"))
    window = (limit.window if limit else None) or (remaining.window if remaining else None)
    source = one("docker-ratelimit-source")
    retry = seen.get("retry-after")
    return RateLimit(limit=limit.number if limit else None,
                     remaining=remaining.number if remaining else None,
                     window=window, reset=parse_seconds(one("ratelimit-reset")),
                     source=printable(source.strip()[:100]) if source else None,
                     retry_after=parse_retry_after(retry[0], now) if retry else None)
