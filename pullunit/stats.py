"""What the state file keeps for the fleet's eyes: counters and gauges (metrics.py turns
them into Prometheus series) and the last failures (`status`). Pure: values in, values
out; state.py stores them, the puller and the commands call the record_* functions.

Counters live in the state file so they survive restarts and reboots, as Prometheus
counters must (a reset reads as a restart, and rate() copes, but a counter that
restarts at every boot is useless for "how often did this fail this week").
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .printable import printable

if TYPE_CHECKING:
    from .state import AppState

HISTORY = 20  # failures kept per app
SUCCESS = "success"  # the class of an attempt that pulled the image
ROLLBACK_REASONS = ("manual", "automatic")  # `pullunit rollback`; `update` undoing itself


@dataclass(frozen=True)
class FailureRecord:
    """One failed attempt, kept after the app recovered (last_failure is cleared)."""

    at: float
    cls: str
    message: str
    attempt: int  # the n-th attempt of that `pullunit pull` (or prefetch) run


@dataclass(frozen=True)
class Stats:
    attempts: tuple[tuple[str, int], ...] = ()  # class (or "success") -> attempts, sorted
    rollbacks: tuple[tuple[str, int], ...] = ()  # reason -> rollbacks, sorted
    last_duration: float | None = None  # seconds the last pull run that used the registry took
    last_success: float | None = None  # when the registry last delivered the image
    ready: bool | None = None  # None: no pull has run yet
    backoff: float = 0.0  # seconds of the wait in progress (0: not waiting)
    source: str | None = None  # where the current image came from (puller.Source, "rollback")

    def count(self, key: str) -> int:
        return dict(self.attempts).get(key, 0)

    def rollback_count(self, reason: str) -> int:
        return dict(self.rollbacks).get(reason, 0)

    def to_json(self) -> dict[str, Any]:
        return {"attempts": dict(self.attempts), "rollbacks": dict(self.rollbacks),
                "last_duration": self.last_duration, "last_success": self.last_success,
                "ready": self.ready, "backoff": self.backoff, "source": self.source}


def _bump(counts: tuple[tuple[str, int], ...], key: str) -> tuple[tuple[str, int], ...]:
    d = dict(counts)
    d[key] = d.get(key, 0) + 1
    return tuple(sorted(d.items()))


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{what} must be a number, got {value!r}")
    return float(value)


def _optional_number(value: object, what: str) -> float | None:
    return None if value is None else _number(value, what)


def _counts(value: object, what: str) -> tuple[tuple[str, int], ...]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{what} must be an object, got {value!r}")
    out = []
    for k, v in value.items():
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{what}.{k} must be a count, got {v!r}")
        out.append((str(k), v))
    return tuple(sorted(out))


def stats_from_json(data: object) -> Stats:
    """The "stats" of a state file (absent in files from before it existed: zeros)."""
    if data is None:
        return Stats()
    if not isinstance(data, Mapping):
        raise ValueError(f"stats must be an object, got {data!r}")
    ready = data.get("ready")
    if ready is not None and not isinstance(ready, bool):
        raise ValueError(f"stats.ready must be true, false or null, got {ready!r}")
    source = data.get("source")
    if source is not None and not isinstance(source, str):
        raise ValueError(f"stats.source must be a string, got {source!r}")
    return Stats(attempts=_counts(data.get("attempts", {}), "stats.attempts"),
                 rollbacks=_counts(data.get("rollbacks", {}), "stats.rollbacks"),
                 last_duration=_optional_number(data.get("last_duration"),
                                                "stats.last_duration"),
                 last_success=_optional_number(data.get("last_success"), "stats.last_success"),
                 ready=ready, backoff=_number(data.get("backoff", 0.0), "stats.backoff"),
                 source=source)


def failures_from_json(data: object) -> tuple[FailureRecord, ...]:
    if data is None:
        return ()
    if not isinstance(data, list):
        raise ValueError(f"failures must be a list, got {data!r}")
    out = []
    for i, f in enumerate(data[:HISTORY]):
        if not isinstance(f, Mapping):
            raise ValueError(f"failures[{i}] must be an object")
        attempt = f.get("attempt")
        if isinstance(attempt, bool) or not isinstance(attempt, int):
            raise ValueError(f"failures[{i}].attempt must be an integer")
        cls, message = f.get("cls"), f.get("message")
        if not isinstance(cls, str) or not isinstance(message, str):
            raise ValueError(f"failures[{i}]: cls and message must be strings")
        # untrusted text from an earlier run (or a planted file): printable, as it is shown
        out.append(FailureRecord(_number(f.get("at"), f"failures[{i}].at"), printable(cls),
                                 printable(message), attempt))
    return tuple(out)


# -- what happened: each returns the new AppState (nothing is saved here) ----------------


def failed(st: AppState, cls: str, message: str, exit_code: int, attempt: int, *,
           prefetch: bool = False, now: float | None = None) -> AppState:
    """A failed attempt: the last failure, the history (newest first), its counter; the
    app is not ready while its pull fails (a failed prefetch leaves the app as it was)."""
    from .state import record_failure

    now = time.time() if now is None else now
    st = record_failure(st, cls, message, exit_code, now)
    record = FailureRecord(now, cls, message, attempt)
    s = replace(st.stats, attempts=_bump(st.stats.attempts, cls), backoff=0.0)
    if not prefetch:
        s = replace(s, ready=False)
    return replace(st, failures=(record, *st.failures)[:HISTORY], stats=s)


def waiting(st: AppState, backoff: float) -> AppState:
    """The puller sleeps `backoff` seconds before its next attempt (0: it gave up)."""
    return replace(st, stats=replace(st.stats, backoff=backoff))


def finished(st: AppState, source: str, elapsed: float, *, ready: bool,
             pulled: bool, now: float | None = None) -> AppState:
    """A pull run ended with an image: `pulled` when the registry delivered it (counted as
    a successful attempt; duration and last success recorded), else it was present or a
    fallback. `ready` is False for a prefetch (it changes nothing the app runs)."""
    now = time.time() if now is None else now
    s = st.stats
    if pulled:
        s = replace(s, attempts=_bump(s.attempts, SUCCESS), last_duration=elapsed,
                    last_success=now)
    elif source == "fallback":
        s = replace(s, last_duration=elapsed)
    if ready:
        s = replace(s, ready=True, source=source)
    return replace(st, stats=replace(s, backoff=0.0))


def gave_up(st: AppState, elapsed: float, *, prefetch: bool = False) -> AppState:
    s = replace(st.stats, backoff=0.0, last_duration=elapsed)
    return replace(st, stats=s if prefetch else replace(s, ready=False))


def rolled_back(st: AppState, reason: str = "manual") -> AppState:
    if reason not in ROLLBACK_REASONS:
        raise ValueError(f"unknown rollback reason {reason!r}")
    s = st.stats
    return replace(st, stats=replace(s, rollbacks=_bump(s.rollbacks, reason), ready=True,
                                     source="rollback", backoff=0.0))
