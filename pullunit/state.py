"""Per-app state: /var/lib/pullunit/APP.json (versioned history of good digests) and
/run/pullunit/APP.env (the exact image the run unit starts). Both written atomically.

Keys are only ever added to the state file (older files lack them and read as their
defaults, older readers ignore them), so adding one does not change SCHEMA_VERSION:
"failures" (the last 20 failed attempts) and "stats" (counters and gauges for metrics)
came that way (stats.py)."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from . import paths
from .errors import ExitCode, PullunitError
from .fsutil import CannotWrite, atomic_write, read_regular
from .printable import printable
from .stats import FailureRecord, Stats, failures_from_json, stats_from_json

# Version 1 gained the optional "updates" key without a bump: readers of version 1 ignore
# keys they do not know, so an older pullunit still reads this file.
SCHEMA_VERSION = 1
UPDATES_KEPT = 10  # update records kept per app, newest first
log = logging.getLogger("pullunit")


@dataclass(frozen=True)
class Entry:
    """One image that was made ready for the app."""

    reference: str  # repo@sha256:... (or the image ID when the registry digest is unknown)
    digest: str | None
    image_id: str
    first_ready: float
    last_ready: float
    image: str = ""  # the configured reference it was pulled for (tag form)


@dataclass(frozen=True)
class Attempt:
    at: float
    cls: str
    message: str
    exit_code: int


@dataclass(frozen=True)
class Update:
    """One `pullunit update` that changed (or tried to change) the running image."""

    at: float
    from_ref: str | None  # what ran before (None: nothing had run)
    to_ref: str  # what the update switched to
    result: str  # "updated", "rolled_back", "not_ready" (no rollback), "rollback_failed",
    # "interrupted" (stopped while the run unit restarted)
    cause: str | None = None  # why the new image was not ready
    auto: bool = False  # run by pullunit-update.timer (--auto)


@dataclass(frozen=True)
class AppState:
    app: str
    image: str = ""
    current: Entry | None = None
    history: tuple[Entry, ...] = ()
    verified: tuple[str, ...] = ()  # image IDs whose verify command passed
    last_failure: Attempt | None = None
    prefetched: Entry | None = None  # pulled by `prefetch`, not yet running
    updated: float = field(default=0.0)
    failures: tuple[FailureRecord, ...] = ()  # newest first, at most stats.HISTORY
    stats: Stats = field(default_factory=Stats)
    updates: tuple[Update, ...] = ()  # by `pullunit update`, newest first

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["schema"] = SCHEMA_VERSION
        d["stats"] = self.stats.to_json()
        return d


class CorruptState(ValueError):
    """The state file parsed as JSON but is not what pullunit wrote."""


_ID = re.compile(r"sha256:[0-9a-f]{64}")
MAX_BYTES = 1 << 20  # a state file holds a few dozen entries: ~10 KB


def _get(d: dict[str, Any], key: str, where: str, kinds: tuple[type, ...],
         default: Any = ...) -> Any:
    if key not in d:
        if default is ...:
            raise CorruptState(f"{where}{key}: missing")
        return default
    value = d[key]
    # bool is an int to Python, never to pullunit
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise CorruptState(f"{where}{key}: expected {' or '.join(k.__name__ for k in kinds)}, "
                           f"got {type(value).__name__}")
    return value


def _time(d: dict[str, Any], key: str, where: str, default: Any = ...) -> float:
    value = _get(d, key, where, (int, float), default)
    try:
        t = float(value)
    except OverflowError:
        raise CorruptState(f"{where}{key}: out of range") from None
    if not math.isfinite(t):
        raise CorruptState(f"{where}{key}: not a finite number")
    return t


def _image_id(value: str, where: str) -> str:
    # it names an archive file and goes into Docker API paths: nothing else may pass
    if not _ID.fullmatch(value):
        raise CorruptState(f"{where}: not sha256:<64 hex digits>")
    return value


def _entry(d: object, where: str) -> Entry:
    if not isinstance(d, dict):
        raise CorruptState(f"{where}: expected an object, got {type(d).__name__}")
    where += "."
    digest = _get(d, "digest", where, (str, type(None)), None)
    return Entry(reference=_get(d, "reference", where, (str,)),
                 digest=None if digest is None else _image_id(digest, where + "digest"),
                 image_id=_image_id(_get(d, "image_id", where, (str,)), where + "image_id"),
                 first_ready=_time(d, "first_ready", where),
                 last_ready=_time(d, "last_ready", where),
                 image=_get(d, "image", where, (str,), ""))


def _attempt(d: object, where: str) -> Attempt:
    if not isinstance(d, dict):
        raise CorruptState(f"{where}: expected an object, got {type(d).__name__}")
    where += "."
    code = _get(d, "exit_code", where, (int,))
    if not 0 <= code <= 255:
        raise CorruptState(f"{where}exit_code: {code} is not an exit status")
    return Attempt(at=_time(d, "at", where), cls=_get(d, "cls", where, (str,)),
                   message=printable(_get(d, "message", where, (str,))), exit_code=code)


def _optional(data: dict[str, Any], key: str, parse: Any) -> Any:
    value = data.get(key)
    return None if value is None else parse(value, key)


def from_json(app: str, data: object) -> AppState:
    """Field by field: any value of the wrong type or shape is CorruptState, whatever
    the file holds (it sits in a directory an attacker may have written to)."""
    if not isinstance(data, dict):
        raise CorruptState(f"expected a JSON object, got {type(data).__name__}")
    schema = data.get("schema")
    if type(schema) is not int or schema != SCHEMA_VERSION:
        raise CorruptState(f"unsupported state schema {schema!r}")
    history = _get(data, "history", "", (list,), [])
    verified = _get(data, "verified", "", (list,), [])
    if not all(isinstance(v, str) for v in verified):
        raise CorruptState("verified: expected a list of strings")
    return AppState(
        app=app,
        image=_get(data, "image", "", (str,), ""),
        current=_optional(data, "current", _entry),
        history=tuple(_entry(e, f"history[{i}]") for i, e in enumerate(history)),
        verified=tuple(verified),
        last_failure=_optional(data, "last_failure", _attempt),
        prefetched=_optional(data, "prefetched", _entry),
        updated=_time(data, "updated", "", 0.0),
        failures=failures_from_json(data.get("failures")),
        stats=stats_from_json(data.get("stats")),
        updates=tuple(_update(u, f"updates[{i}]")
                      for i, u in enumerate(_get(data, "updates", "", (list,), []))),
    )


def _update(d: object, where: str) -> Update:
    if not isinstance(d, dict):
        raise CorruptState(f"{where}: expected an object, got {type(d).__name__}")
    where += "."
    from_ref = _get(d, "from_ref", where, (str, type(None)), None)
    cause = _get(d, "cause", where, (str, type(None)), None)
    return Update(at=_time(d, "at", where),
                  from_ref=None if from_ref is None else printable(from_ref),
                  to_ref=printable(_get(d, "to_ref", where, (str,))),
                  result=printable(_get(d, "result", where, (str,))),
                  cause=None if cause is None else printable(cause),
                  auto=_get(d, "auto", where, (bool,), False))


def load(app: str) -> AppState:
    """The app's state; a missing file is a fresh start, an unreadable one is set aside,
    so a damaged file costs the app its history, never its start."""
    path = paths.state_file(app)
    try:
        return from_json(app, json.loads(read_regular(path, MAX_BYTES)))
    except FileNotFoundError:
        return AppState(app)
    # ValueError: not JSON, not UTF-8, not a regular file, or CorruptState;
    # RecursionError: JSON nested too deeply for the parser
    except (ValueError, RecursionError) as e:
        aside = path.with_suffix(f".corrupt-{int(time.time())}")
        why = printable(str(e))
        try:
            os.replace(path, aside)
            log.warning("state file %s was unreadable (%s); moved it to %s", path, why, aside)
        except OSError:
            log.warning("state file %s is unreadable (%s); ignoring it", path, why)
        return AppState(app)
    except OSError as e:
        raise PullunitError(f"Cannot read state file {path}: {e.strerror}", ExitCode.IOERR) from e


def save(state: AppState) -> None:
    path = paths.state_file(state.app)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(path, json.dumps(state.to_json(), indent=2, sort_keys=True) + "\n", 0o600)
    except OSError as e:
        raise CannotWrite(path, e, "state file") from e


def record_ready(state: AppState, image: str, reference: str, digest: str | None,
                 image_id: str, keep: int, now: float | None = None) -> AppState:
    """The new current image goes first in the history; at most `keep` entries remain."""
    now = time.time() if now is None else now
    first = now
    for e in state.history:
        if e.image_id == image_id and e.reference == reference:
            first = e.first_ready
    entry = Entry(reference, digest, image_id, first, now, image)
    rest = [e for e in state.history if e.image_id != image_id]
    prefetched = state.prefetched
    if prefetched is not None and prefetched.image_id == image_id:
        prefetched = None  # it is running now
    return replace(state, image=image, current=entry, history=tuple([entry, *rest][:keep]),
                   last_failure=None, prefetched=prefetched, updated=now)


def record_prefetch(state: AppState, image: str, reference: str, digest: str | None,
                    image_id: str, now: float | None = None) -> AppState:
    now = time.time() if now is None else now
    return replace(state, prefetched=Entry(reference, digest, image_id, now, now, image),
                   updated=now)


def record_failure(state: AppState, cls: str, message: str, exit_code: int,
                   now: float | None = None) -> AppState:
    now = time.time() if now is None else now
    # the message is the daemon's (and so the registry's) text: printable from here on
    return replace(state, last_failure=Attempt(now, cls, printable(message), exit_code),
                   updated=now)


def record_update(state: AppState, update: Update) -> AppState:
    return replace(state, updates=(update, *state.updates)[:UPDATES_KEPT], updated=update.at)


def forget(state: AppState, image_id: str, before: tuple[Entry, ...], keep: int) -> AppState:
    """Drop an image that proved bad from the history of good images (a fallback or a
    rollback must never pick it), and bring back the entries that making it current
    pushed out of `before`, the history as it was."""
    history = [e for e in state.history if e.image_id != image_id]
    ids = {e.image_id for e in history}
    history += [e for e in before if e.image_id not in ids and e.image_id != image_id]
    prefetched = state.prefetched
    if prefetched is not None and prefetched.image_id == image_id:
        prefetched = None
    return replace(state, history=tuple(history[:keep]), prefetched=prefetched)


def write_env_file(app: str, reference: str) -> Path:
    """The run unit's EnvironmentFile=. The value is an image reference: no quoting needed,
    and it is validated to be one before it gets here."""
    if any(c.isspace() or c in "\"'\\$`" for c in reference):
        raise PullunitError(f"refusing to write unsafe image reference {reference!r}",
                            ExitCode.SOFTWARE)
    path = paths.env_file(app)
    try:
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        atomic_write(path, f"PULLUNIT_IMAGE={reference}\n", 0o644)
    except OSError as e:
        raise CannotWrite(path, e) from e
    return path


def read_env_file(app: str) -> str | None:
    try:
        text = read_regular(paths.env_file(app), 64 * 1024).decode()
    except (OSError, ValueError):  # missing, unreadable, a FIFO, not UTF-8: not in use
        return None
    for line in text.splitlines():
        if line.startswith("PULLUNIT_IMAGE="):
            return line.split("=", 1)[1]
    return None
