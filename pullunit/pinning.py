"""APP.lock.toml: the digest an app is pinned to, beside its hand-written config.

Written by `pullunit pin` (tag resolved at the registry), `pullunit rollback` (an older
good digest) and `pullunit update` (the digest it switched to; "rollback" when it rolled
back by itself). The config file and its comments are never touched; the puller prefers the
lock's digest when the lock was made for the same image reference. `answer` is the one
place that decides whether a lock applies (pinned, stale, overridden, none); pull, prefetch,
status, generate and doctor all ask it.
"""

from __future__ import annotations

import datetime
import enum
from dataclasses import dataclass
from pathlib import Path

from .config import LOCK_SUFFIX, AppConfig, read_toml
from .errors import ConfigError
from .fsutil import CannotWrite, atomic_write
from .reference import DIGEST_RE, ImageRef, parse_reference

HEADER = ("# Written by 'pullunit pin', 'pullunit rollback' or 'pullunit update'; "
          "do not edit by hand.\n")
SOURCES = ("pin", "rollback", "update")


@dataclass(frozen=True)
class Lock:
    ref: str  # the config's image.ref this lock was made for
    digest: str
    source: str  # one of SOURCES
    at: str  # ISO 8601, UTC


def lock_path(app: AppConfig) -> Path:
    return app.path.with_name(f"{app.name}{LOCK_SUFFIX}")


def read(app: AppConfig) -> Lock | None:
    """The app's lock, or None when it has none.

    A lock file that exists but is not a valid lock (corrupt, hand-edited, nested too
    deeply, really an app config) raises ConfigError naming the file, never anything
    else: `validate` and `generate` report it as such, and the puller decides for itself
    whether it may still start a good local image."""
    return read_path(lock_path(app))


def read_path(path: Path) -> Lock | None:
    """read() for a lock file by its path, e.g. one whose app config is gone."""
    try:
        data = read_toml(path)
    except ConfigError as e:
        if isinstance(e.__cause__, FileNotFoundError):
            return None  # no lock: the config's own ref applies
        raise
    table = data.get("lock")
    if "image" in data:
        app = path.name.removesuffix(LOCK_SUFFIX)
        raise ConfigError(f"{path}: this is an app config, not a lock file: {path.name} is "
                          f"where 'pullunit pin' keeps the lock of app {app!r}; rename it")
    if not isinstance(table, dict) or set(data) != {"lock"}:
        raise ConfigError(f"{path}: expected exactly one table [lock]")
    allowed = {"ref", "digest", "source", "at"}
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{path}: lock.{key}: unknown key")
    for key in sorted(allowed):
        if not isinstance(table.get(key), str):
            raise ConfigError(f"{path}: lock.{key}: required string")
    if not DIGEST_RE.fullmatch(table["digest"]):
        raise ConfigError(f"{path}: lock.digest: {table['digest']!r} is not sha256:<64 hex>")
    if table["source"] not in SOURCES:
        raise ConfigError(f"{path}: lock.source: expected one of {', '.join(SOURCES)}")
    try:
        parse_reference(table["ref"])
    except ValueError as e:
        raise ConfigError(f"{path}: lock.ref: {e}") from None
    return Lock(table["ref"], table["digest"], table["source"], table["at"])


def snapshot(app: AppConfig) -> bytes | None:
    """The lock file as it is (None: there is none), for restore()."""
    try:
        return lock_path(app).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ConfigError(f"Cannot read {lock_path(app)}: {e.strerror}") from e


def restore(app: AppConfig, saved: bytes | None) -> None:
    """Put the lock file back as snapshot() found it."""
    path = lock_path(app)
    if saved is None:
        path.unlink(missing_ok=True)
    else:
        atomic_write(path, saved, 0o644)


def write(app: AppConfig, digest: str, source: str) -> Lock:
    import tomli_w  # only pin and rollback write locks; pull only reads them

    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
    lock = Lock(str(app.image.ref), digest, source, now)
    text = HEADER + tomli_w.dumps({"lock": {"ref": lock.ref, "digest": lock.digest,
                                            "source": lock.source, "at": lock.at}})
    try:
        atomic_write(lock_path(app), text, 0o644)
    except OSError as e:  # was exit 70 on a full or read-only config dir
        raise CannotWrite(lock_path(app), e) from e
    return lock


class Applies(enum.StrEnum):
    """Whether an app's lock decides what is pulled."""

    PINNED = "pinned"  # yes: the lock's digest of the configured reference
    STALE = "stale"  # no: the lock was made for another image.ref
    OVERRIDDEN = "overridden"  # no: the config pins its own digest, which wins
    NONE = "none"  # there is no lock


@dataclass(frozen=True)
class LockAnswer:
    applies: Applies
    ref: ImageRef  # what the puller pulls: configured@digest when pinned, else configured
    lock: Lock | None
    why: str = ""  # when a lock exists but does not apply: why not

    @property
    def pinned(self) -> bool:
        return self.applies is Applies.PINNED


def judge(configured: ImageRef, lock: Lock | None) -> LockAnswer:
    """The one rule for whether a lock applies (pure: the caller read the lock)."""
    if lock is None:
        return LockAnswer(Applies.NONE, configured, None)
    if configured.digest:
        return LockAnswer(Applies.OVERRIDDEN, configured, lock,
                          f"the config pins its own digest {configured.digest}")
    if lock.ref != str(configured):
        return LockAnswer(Applies.STALE, configured, lock,
                          f"made for {lock.ref}, but the config says {configured}")
    pinned = ImageRef(configured.domain, configured.path, configured.tag, lock.digest)
    return LockAnswer(Applies.PINNED, pinned, lock)


def answer(app: AppConfig) -> LockAnswer:
    """Read the app's lock and say whether it applies. A broken lock raises ConfigError."""
    return judge(app.image.ref, read(app))
