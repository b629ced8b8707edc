"""What one doctor run knows: the target, and what earlier checks learned for later ones.

Each check reads what it needs and records what it found; the order in which they run
(and so what is known when) is the checklist's (checklist.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import platform as pyplatform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..boundedhttp import Deadline, Response
from ..classify import FailureClass
from ..dockerconf import RegistryConfig
from ..hints import HintContext, fix_for
from ..platform import architecture_of_machine
from ..reference import DEFAULT_REGISTRY, ImageRef
from ..regclient import HUB_API_HOST, Challenge, Session, pick_challenge
from .model import Options, Target

NO_REF = ImageRef(None, "x", "x", None)  # for hints that do not depend on the image


@dataclass(frozen=True)
class Daemon:
    """What the daemon check learned."""

    api: Any  # docker.APIClient
    version: dict[str, Any]
    info: dict[str, Any]
    platform: str  # OS/ARCH, as the daemon pulls by default

    def proxies(self) -> dict[str, str]:
        """The proxies the running daemon uses (its process environment)."""
        return {k: str(v) for k, v in (("HTTP_PROXY", self.info.get("HttpProxy")),
                                       ("HTTPS_PROXY", self.info.get("HttpsProxy")),
                                       ("NO_PROXY", self.info.get("NoProxy"))) if v}


@dataclass(frozen=True)
class Manifest:
    """What the manifest check fetched, and the Authorization that fetched it."""

    data: dict[str, Any]
    media_type: str
    digest: str
    authorization: dict[str, str]


@dataclass
class Context:
    target: Target | None
    options: Options
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    deadline: Deadline = field(default_factory=lambda: Deadline.after(0))  # the running check's
    secrets: list[str] = field(default_factory=list)  # values never to print
    ref: ImageRef | None = None
    daemon: Daemon | None = None
    data_root: str | None = None
    free_bytes: int | None = None
    local_digest: str | None = None
    registry_config: RegistryConfig | None = None
    addresses: list[tuple[Any, ...]] = field(default_factory=list)  # (family, sockaddr)
    connected: tuple[int, tuple[Any, ...], int] | None = None  # family, sockaddr, port
    insecure: bool = False  # dockerd counts the registry as insecure
    session: Session | None = None  # the registry endpoint, once TLS (or not) is settled
    v2: Response | None = None  # the answer to GET /v2/
    creds: Any = None  # dockerapi.Credentials
    manifest: Manifest | None = None
    service_proxies: dict[str, str] | None = None  # docker.service's, read by `proxy`

    @property
    def registry(self) -> str:
        assert self.ref is not None
        return self.ref.registry

    @property
    def api_host(self) -> str:
        """The host dockerd actually connects to for this registry."""
        assert self.ref is not None
        return HUB_API_HOST if self.ref.registry == DEFAULT_REGISTRY else self.ref.host

    @property
    def challenge(self) -> Challenge | None:
        """What /v2/ asks for, when it answered 401."""
        if self.v2 is None or self.v2.status != 401:
            return None
        return pick_challenge(self.v2.headers.get_all("WWW-Authenticate") or [])

    @property
    def auth(self) -> dict[str, Any]:
        """The docker auth config for the registry, keys in lower case (never printed)."""
        config = (self.creds.auth_config or {}) if self.creds is not None else {}
        return {str(k).lower(): v for k, v in config.items()}

    def names(self) -> dict[str, str]:
        """What a skip reason may name (checklist.Step.blocks)."""
        if self.ref is None:
            return {}
        return {"registry": self.registry, "host": self.api_host}

    def want_platform(self) -> tuple[str, str]:
        """The platform the pull unit asks for, and where that comes from."""
        if self.target is not None and self.target.platform:
            return self.target.platform, "image.platform"
        if self.daemon is not None:
            return self.daemon.platform, "the daemon's platform"
        return f"linux/{architecture_of_machine(pyplatform.machine())}", "this host's platform"

    def hint(self, cls: FailureClass, **kw: Any) -> str:
        creds = self.creds
        ctx = HintContext(ref=self.ref or NO_REF,
                          config_path=creds.config_path if creds is not None else None,
                          credentials_found=bool(creds is not None and creds.found),
                          auth_file_configured=bool(self.target and self.target.auth_file),
                          running_as_root=os.geteuid() == 0, data_root=self.data_root,
                          free_bytes=self.free_bytes, platform=self.want_platform()[0])
        return fix_for(cls, dataclasses.replace(ctx, **kw))

    def again(self) -> Context:
        """A fresh context for another round of the network checks (doctor --repeat):
        the host facts the first round learned are kept, the registry's are not."""
        return Context(self.target, self.options, secrets=self.secrets, daemon=self.daemon,
                       data_root=self.data_root, free_bytes=self.free_bytes,
                       local_digest=self.local_digest, registry_config=self.registry_config,
                       service_proxies=self.service_proxies)

    def close(self) -> None:
        if self.daemon is not None:
            with contextlib.suppress(Exception):
                self.daemon.api.close()
