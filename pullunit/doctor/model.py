"""What doctor is asked (Target, Options) and what it answers (Check, Status)."""

from __future__ import annotations

import enum
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from ..boundedhttp import TIMEOUT
from ..dockerconf import DEFAULT_DAEMON_JSON

DEFAULT_CERTS_D = Path("/etc/docker/certs.d")
DEFAULT_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
DEFAULT_RESOLV_CONF = Path("/etc/resolv.conf")
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
    # numbers a script may want, in --json as "data" (only checks that have some:
    # rate_limit's quota); never credentials
    data: Mapping[str, object] | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"check": self.check, "status": str(self.status),
                                  "detail": self.detail, "hint": self.hint}
        if self.data is not None:
            out["data"] = dict(self.data)
        return out


class Verdict(enum.StrEnum):
    """How a check went over the rounds of `doctor --repeat`."""

    OK = "ok"  # never failed
    FLAPPING = "flapping"  # failed in some rounds, passed in others: intermittent
    STEADY = "steady"  # failed in every round it ran
    SKIPPED = "skipped"  # never ran (a prerequisite failed every time)


@dataclass(frozen=True)
class Tally:
    """One check over the rounds of `doctor --repeat`."""

    check: str
    rounds: int
    ran: int  # rounds in which it ran (not skipped for a failed prerequisite)
    failed: int
    verdict: Verdict
    failures: tuple[tuple[str, int], ...]  # distinct failure details and how often

    def to_json(self) -> dict[str, object]:
        return {"check": self.check, "rounds": self.rounds, "ran": self.ran,
                "failed": self.failed, "verdict": str(self.verdict),
                "failures": [{"detail": d, "count": n} for d, n in self.failures]}


@dataclass(frozen=True)
class Target:
    """What to diagnose: the reference (as written), and what the app's config adds."""

    reference: str
    app: str | None = None
    platform: str | None = None  # image.platform; None: the daemon's
    auth_file: Path | None = None
    policy: str | None = None
    pinned_by: str | None = None  # the lock file whose digest replaced the config's tag
    mirrors: tuple[str, ...] = ()  # the registry's mirrors, in the puller's order


@dataclass(frozen=True)
class Options:
    certs_d: Path = DEFAULT_CERTS_D
    daemon_json: Path = DEFAULT_DAEMON_JSON
    timeout: float = TIMEOUT  # the limit of each check, all its network operations included
    ca_bundle: Path = DEFAULT_CA_BUNDLE
    resolv_conf: Path = DEFAULT_RESOLV_CONF
    journal_dir: Path | None = None  # journalctl --directory (None: the system journal)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Options:
        env = os.environ if env is None else env
        return cls(certs_d=Path(env.get("PULLUNIT_DOCKER_CERTS_D") or DEFAULT_CERTS_D),
                   daemon_json=Path(env.get("PULLUNIT_DOCKER_DAEMON_JSON")
                                    or DEFAULT_DAEMON_JSON),
                   ca_bundle=Path(env.get("PULLUNIT_CA_BUNDLE") or DEFAULT_CA_BUNDLE),
                   resolv_conf=Path(env.get("PULLUNIT_RESOLV_CONF") or DEFAULT_RESOLV_CONF),
                   journal_dir=Path(env["PULLUNIT_JOURNAL_DIR"])
                   if env.get("PULLUNIT_JOURNAL_DIR") else None)


def failed(checks: Iterable[Check]) -> bool:
    return any(c.status is Status.FAIL for c in checks)


def short(text: str, limit: int = 200) -> str:
    """One line of at most `limit` characters, for a daemon's or library's message."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
