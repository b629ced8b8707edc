"""APP.lock.toml: the digest an app is pinned to, beside its hand-written config.

Written by `pullunit pin` (tag resolved at the registry) and `pullunit rollback` (an older
good digest). The config file and its comments are never touched; the puller prefers the
lock's digest when the lock was made for the same image reference.
"""

from __future__ import annotations

import datetime
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .config import LOCK_SUFFIX, AppConfig
from .errors import ConfigError
from .fsutil import CannotWrite, atomic_write
from .reference import DIGEST_RE, ImageRef, parse_reference

HEADER = "# Written by 'pullunit pin' or 'pullunit rollback'; do not edit by hand.\n"
SOURCES = ("pin", "rollback")


@dataclass(frozen=True)
class Lock:
    ref: str  # the config's image.ref this lock was made for
    digest: str
    source: str  # "pin" or "rollback"
    at: str  # ISO 8601, UTC

    def pinned(self, configured: ImageRef) -> ImageRef | None:
        """configured@digest, or None when the lock is for another reference (stale)."""
        if self.ref != str(configured):
            return None
        return ImageRef(configured.domain, configured.path, configured.tag, self.digest)


def lock_path(app: AppConfig) -> Path:
    return app.path.with_name(f"{app.name}{LOCK_SUFFIX}")


def read(app: AppConfig) -> Lock | None:
    path = lock_path(app)
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"Cannot read {path}: {e}") from e
    except OSError as e:
        raise ConfigError(f"Cannot read {path}: {e.strerror}") from e
    table = data.get("lock")
    if not isinstance(table, dict) or set(data) != {"lock"}:
        raise ConfigError(f"{path}: expected exactly one table [lock]")
    allowed = {"ref", "digest", "source", "at"}
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{path}: lock.{key}: unknown key")
    for key in sorted(allowed):
        if not isinstance(table.get(key), str):
            raise ConfigError(f"{path}: lock.{key}: required string")
    if not DIGEST_RE.match(table["digest"]):
        raise ConfigError(f"{path}: lock.digest: {table['digest']!r} is not sha256:<64 hex>")
    if table["source"] not in SOURCES:
        raise ConfigError(f"{path}: lock.source: expected one of {', '.join(SOURCES)}")
    try:
        parse_reference(table["ref"])
    except ValueError as e:
        raise ConfigError(f"{path}: lock.ref: {e}") from None
    return Lock(table["ref"], table["digest"], table["source"], table["at"])


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


def effective_ref(app: AppConfig) -> tuple[ImageRef, Lock | None]:
    """The reference the puller pulls: the config's, or the lock's digest when it applies.
    A config that pins its own digest wins over any lock."""
    lock = read(app)
    if lock is None or app.image.ref.digest:
        return app.image.ref, lock
    pinned = lock.pinned(app.image.ref)
    return (pinned, lock) if pinned is not None else (app.image.ref, lock)
