"""What doctor is asked (Target, Options) and what it answers (Check, Status)."""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..dockerconf import DEFAULT_DAEMON_JSON
from ..regclient import TIMEOUT

DEFAULT_CERTS_D = Path("/etc/docker/certs.d")
CONFIG_CHECK = "config"  # used by the command for an app whose config does not load


class Status(enum.StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class Check:
    check: str
    status: Status
    detail: str
    hint: str = ""

    def to_json(self) -> dict[str, str]:
        return {"check": self.check, "status": str(self.status), "detail": self.detail,
                "hint": self.hint}


@dataclass(frozen=True)
class Target:
    """What to diagnose: the reference (as written), and what the app's config adds."""

    reference: str
    app: str | None = None
    platform: str | None = None  # image.platform; None: the daemon's
    auth_file: Path | None = None
    policy: str | None = None
    pinned_by: str | None = None  # the lock file whose digest replaced the config's tag


@dataclass(frozen=True)
class Options:
    certs_d: Path = DEFAULT_CERTS_D
    daemon_json: Path = DEFAULT_DAEMON_JSON
    timeout: float = TIMEOUT  # the limit of each check, all its network operations included

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Options:
        env = os.environ if env is None else env
        return cls(certs_d=Path(env.get("PULLUNIT_DOCKER_CERTS_D") or DEFAULT_CERTS_D),
                   daemon_json=Path(env.get("PULLUNIT_DOCKER_DAEMON_JSON")
                                    or DEFAULT_DAEMON_JSON))


def failed(checks: Iterable[Check]) -> bool:
    return any(c.status is Status.FAIL for c in checks)


def short(text: str, limit: int = 200) -> str:
    """One line of at most `limit` characters, for a daemon's or library's message."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
