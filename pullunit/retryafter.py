"""The registry's Retry-After, which the daemon's error text does not carry (dockerd
quotes a 429's or 503's body, never its headers): after such a failure the puller asks
the registry itself with one manifest HEAD, bounded by the caller, and honours what it
says (retry.decide takes it as a floor).

Best effort: the HEAD goes from this host straight to the registry (not through the
daemon's proxy or mirrors), so when it cannot be made, or the registry answers it
otherwise, the puller goes on without the value; it never raises for that. It asks for
no particular manifest type: only the status and one header are read.
"""

from __future__ import annotations

import email.utils
import http.client
import math
import ssl
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .boundedhttp import Deadline, Endpoint, WatchdogTimeout, load_certs_dir, resolve
from .reference import DEFAULT_REGISTRY, HUB_API_HOST, ImageRef
from .regclient import Session, TokenError, pick_challenge

if TYPE_CHECKING:
    from .credentials import Auth

CERTS_D = Path("/etc/docker/certs.d")
MAX_HONOURED = 3600.0  # a registry asking for more than an hour is not taken at its word
ASK_LIMIT = 3.0  # the whole exchange (token included): it only refines a wait


def parse(value: str, now: float) -> float | None:
    """Seconds to wait from a Retry-After value (RFC 9110: delay-seconds or an
    HTTP-date, against `now`, the wall clock), at most MAX_HONOURED; None if unreadable."""
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(float(int(value)), MAX_HONOURED)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    seconds = when.timestamp() - now
    return min(max(seconds, 0.0), MAX_HONOURED) if math.isfinite(seconds) else None


def _loopback(host: str) -> bool:
    return host == "localhost" or host.startswith("127.") or host == "::1"


def _endpoint(ref: ImageRef, deadline: Deadline) -> Endpoint:
    """The registry's API endpoint as dockerd reaches it: plain HTTP on loopback (dockerd
    counts those registries insecure), else HTTPS with certs.d/REGISTRY's CAs."""
    host = HUB_API_HOST if ref.registry == DEFAULT_REGISTRY else ref.host
    scheme = "http" if _loopback(host) else "https"
    port_text = ref.registry.rsplit(":", 1)[1] if ref.registry.count(":") == 1 else ""
    port = int(port_text) if port_text.isdigit() else (80 if scheme == "http" else 443)
    ctx = None
    if scheme == "https":
        ctx = ssl.create_default_context()
        load_certs_dir(ctx, CERTS_D / ref.registry)
    family, sockaddr = resolve(host, port, deadline)[0]
    return Endpoint(scheme, host, port, sockaddr, family, ctx)


def ask(ref: ImageRef, auth: Auth | None, timeout: float) -> float | None:
    """What the registry's Retry-After says now for a manifest HEAD of ref, when it
    answers 429 or 503 with one; None otherwise (or when it cannot be asked)."""
    if timeout <= 0:
        return None
    deadline = Deadline.after(timeout)
    path = f"/v2/{ref.remote_path}/manifests/{ref.digest or ref.tag or 'latest'}"
    try:
        endpoint = _endpoint(ref, deadline)
        session = Session(endpoint)
        url = endpoint.base + path  # absolute: fetch() reads the port from the URL
        headers: dict[str, str] = {}
        r = session.fetch("HEAD", url, headers, deadline)
        if r.status == 401:
            challenge = pick_challenge(r.headers.get_all("WWW-Authenticate") or [])
            headers.update(session.authorization(
                challenge, ref.remote_path, auth.as_dict() if auth else {}, deadline))
            r = session.fetch("HEAD", url, headers, deadline)
    except (OSError, ssl.SSLError, http.client.HTTPException, ValueError, TokenError,
            WatchdogTimeout, IndexError):
        return None
    value = r.headers.get("Retry-After")
    if r.status not in (429, 503) or not value:
        return None
    return parse(value, time.time())
