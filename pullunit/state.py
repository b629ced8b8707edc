"""Per-app state: /var/lib/pullunit/APP.json (versioned history of good digests) and
/run/pullunit/APP.env (the exact image the run unit starts). Both written atomically."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from . import paths
from .errors import ExitCode, PullunitError
from .fsutil import atomic_write

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
    updates: tuple[Update, ...] = ()  # by `pullunit update`, newest first

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["schema"] = SCHEMA_VERSION
        return d


def _entry(d: dict[str, Any]) -> Entry:
    return Entry(str(d["reference"]), d.get("digest"), str(d["image_id"]),
                 float(d["first_ready"]), float(d["last_ready"]), str(d.get("image", "")))


def from_json(app: str, data: dict[str, Any]) -> AppState:
    if data.get("schema") != SCHEMA_VERSION:
        raise ValueError(f"unsupported state schema {data.get('schema')!r}")
    lf = data.get("last_failure")
    return AppState(
        app=app,
        image=str(data.get("image", "")),
        current=_entry(data["current"]) if data.get("current") else None,
        history=tuple(_entry(e) for e in data.get("history", [])),
        verified=tuple(str(v) for v in data.get("verified", [])),
        last_failure=Attempt(float(lf["at"]), str(lf["cls"]), str(lf["message"]),
                             int(lf["exit_code"])) if lf else None,
        prefetched=_entry(data["prefetched"]) if data.get("prefetched") else None,
        updated=float(data.get("updated", 0.0)),
        updates=tuple(_update(u) for u in data.get("updates", [])),
    )


def _update(d: dict[str, Any]) -> Update:
    return Update(float(d["at"]), d.get("from_ref"), str(d["to_ref"]), str(d["result"]),
                  d.get("cause"), bool(d.get("auto", False)))


def load(app: str) -> AppState:
    """The app's state; a missing file is a fresh start, an unreadable one is set aside."""
    path = paths.state_file(app)
    try:
        data = json.loads(path.read_text())
        return from_json(app, data)
    except FileNotFoundError:
        return AppState(app)
    except (ValueError, KeyError, TypeError) as e:
        aside = path.with_suffix(f".corrupt-{int(time.time())}")
        try:
            os.replace(path, aside)
            log.warning("state file %s was unreadable (%s); moved it to %s", path, e, aside)
        except OSError:
            log.warning("state file %s is unreadable (%s); ignoring it", path, e)
        return AppState(app)
    except OSError as e:
        raise PullunitError(f"Cannot read state file {path}: {e.strerror}", ExitCode.IOERR) from e


def save(state: AppState) -> None:
    path = paths.state_file(state.app)
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write(path, json.dumps(state.to_json(), indent=2, sort_keys=True) + "\n", 0o600)
    except OSError as e:
        raise PullunitError(f"Cannot write state file {path}: {e.strerror}",
                            ExitCode.IOERR) from e


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
    return replace(state, last_failure=Attempt(now, cls, message, exit_code), updated=now)


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
        raise PullunitError(f"Cannot write {path}: {e.strerror}", ExitCode.IOERR) from e
    return path


def read_env_file(app: str) -> str | None:
    try:
        for line in paths.env_file(app).read_text().splitlines():
            if line.startswith("PULLUNIT_IMAGE="):
                return line.split("=", 1)[1]
    except OSError:
        return None
    return None
