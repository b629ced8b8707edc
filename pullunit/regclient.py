"""The registry side of doctor: a small HTTP(S) client with hard timeouts (stdlib only),
WWW-Authenticate parsing and a watchdog for calls that have no timeout of their own."""

from __future__ import annotations

import http.client
import json
import re
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

TIMEOUT = 3.0  # seconds, for each network operation (connect, handshake, each read)
MAX_BODY = 4 * 2**20  # manifests and image configs are small; refuse to read more
T = TypeVar("T")
_CHALLENGE = re.compile(r"\s*([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)(?:\s+(.*))?$", re.S)
_PARAM = re.compile(r'\s*([A-Za-z0-9!#$%&\'*+.^_`|~-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))'
                    r"\s*(?:,|$)")


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: "bearer", "basic"
    params: dict[str, str]


def parse_www_authenticate(value: str) -> Challenge | None:
    """The first challenge of a WWW-Authenticate header (RFC 7235 auth-params, quoted
    strings with backslash escapes). Registries send one: Basic or Bearer."""
    m = _CHALLENGE.match(value or "")
    if not m:
        return None
    rest = m.group(2) or ""
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        p = _PARAM.match(rest, pos)
        if not p or p.end() == pos:
            break
        raw = p.group(2)
        params[p.group(1).lower()] = (re.sub(r"\\(.)", r"\1", raw) if raw is not None
                                      else p.group(3))
        pos = p.end()
    return Challenge(m.group(1).lower(), params)


def pick_challenge(headers: Sequence[str]) -> Challenge | None:
    """Bearer over Basic when a registry offers both (dockerd prefers the token flow)."""
    parsed = [c for c in map(parse_www_authenticate, headers) if c is not None]
    for c in parsed:
        if c.scheme == "bearer":
            return c
    return parsed[0] if parsed else None


def token_url(challenge: Challenge, remote_path: str) -> str | None:
    """The token request for a pull of remote_path, from a Bearer challenge."""
    realm = challenge.params.get("realm")
    if not realm:
        return None
    query = [("scope", f"repository:{remote_path}:pull")]
    if challenge.params.get("service"):
        query.insert(0, ("service", challenge.params["service"]))
    sep = "&" if urllib.parse.urlsplit(realm).query else "?"
    return realm + sep + urllib.parse.urlencode(query)


def registry_errors(body: bytes) -> list[str]:
    """The error codes of a registry error body ({"errors": [{"code": ...}]})."""
    try:
        data = json.loads(body)
    except ValueError:
        return []
    errs = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errs, list):
        return []
    return [str(e.get("code")) for e in errs if isinstance(e, dict) and e.get("code")]


# --- X.509, just enough DER to describe a certificate we may not trust ---


class WatchdogTimeout(TimeoutError):
    """A call without a timeout of its own took too long (see with_timeout)."""


def with_timeout(fn: Callable[[], T], seconds: float, what: str) -> T:
    """Run fn on a daemon thread and give up after `seconds`: for calls that have no
    timeout of their own (getaddrinfo, D-Bus, credential helpers). A call that never
    returns leaves a thread behind, which dies with the process."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the caller
            box["error"] = e

    t = threading.Thread(target=target, name=f"doctor-{what}", daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        raise WatchdogTimeout(f"{what} did not finish within {seconds:.0f} s")
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value


def resolve(host: str, port: int, timeout: float) -> list[tuple[Any, ...]]:
    """getaddrinfo under a watchdog: (family, sockaddr) pairs, IPv4 first like Go."""
    infos = with_timeout(lambda: socket.getaddrinfo(host, port, type=socket.SOCK_STREAM),
                         timeout, f"lookup of {host}")
    seen: list[tuple[Any, ...]] = []
    for family, _, _, _, sockaddr in sorted(infos, key=lambda i: i[0] != socket.AF_INET):
        if (family, sockaddr) not in seen:
            seen.append((family, sockaddr))
    return seen


@dataclass
class Response:
    status: int
    reason: str
    headers: http.client.HTTPMessage
    body: bytes
    sent: float  # wall clock
    received: float


@dataclass(frozen=True)
class Endpoint:
    """Where requests go: scheme, the resolved address, and the name for Host/SNI."""

    scheme: str
    host: str  # name as written (Host header, SNI, certificate check)
    port: int
    sockaddr: tuple[Any, ...]
    family: int
    context: ssl.SSLContext | None = None

    @property
    def base(self) -> str:
        h = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return f"{self.scheme}://{h}" + ("" if self.port == default else f":{self.port}")


def _connect(ep: Endpoint, timeout: float) -> socket.socket:
    sock = socket.socket(ep.family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(ep.sockaddr)
        if ep.scheme == "https":
            assert ep.context is not None
            return ep.context.wrap_socket(sock, server_hostname=ep.host)
    except BaseException:
        sock.close()
        raise
    return sock


def request(ep: Endpoint, method: str, path: str, headers: Mapping[str, str],
            timeout: float, limit: int = MAX_BODY, body: bytes | None = None) -> Response:
    """One HTTP request on a fresh connection to ep; the body is read within `timeout`
    per read and 3 x `timeout` in all, and at most `limit` bytes of it."""
    conn: http.client.HTTPConnection
    if ep.scheme == "https":
        conn = http.client.HTTPSConnection(ep.host, ep.port, timeout=timeout, context=ep.context)
    else:
        conn = http.client.HTTPConnection(ep.host, ep.port, timeout=timeout)
    sent = time.time()
    deadline = time.monotonic() + 3 * timeout
    try:
        conn.sock = _connect(ep, timeout)
        conn.request(method, path, body=body,
                     headers={"User-Agent": "pullunit-doctor", **headers})
        resp = conn.getresponse()
        received = time.time()
        chunks: list[bytes] = []
        size = 0
        while method != "HEAD":
            if time.monotonic() > deadline:
                raise TimeoutError(f"the response body took more than {3 * timeout:.0f} s")
            chunk = resp.read1(65536)
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise ValueError(f"response larger than {human_bytes(limit)}")
            chunks.append(chunk)
        return Response(resp.status, resp.reason, resp.headers, b"".join(chunks), sent,
                        received)
    finally:
        conn.close()


def describe_oserror(e: BaseException) -> str:
    """Short, dockerd-like text for a socket-level failure."""
    if isinstance(e, WatchdogTimeout):
        return str(e)
    if isinstance(e, TimeoutError | socket.timeout):
        return "timed out"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, ConnectionResetError):
        return "connection reset by peer"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror[:1].lower() + e.strerror[1:]
    return str(e) or type(e).__name__


def load_certs_dir(ctx: ssl.SSLContext, directory: Path) -> list[str]:
    """Load certs.d/HOST the way dockerd does: *.crt are CAs, X.cert + X.key a client
    certificate. Returns the files used."""
    used: list[str] = []
    if not directory.is_dir():
        return used
    for f in sorted(directory.iterdir()):
        if f.suffix == ".crt":
            ctx.load_verify_locations(cafile=str(f))
            used.append(f.name)
        elif f.suffix == ".cert":
            key = f.with_suffix(".key")
            if key.exists():
                ctx.load_cert_chain(str(f), str(key))
                used.append(f.name)
    return used


def is_plain_http_error(e: ssl.SSLError) -> bool:
    text = str(e).lower()
    return any(s in text for s in ("wrong version number", "record layer failure",
                                   "http request", "unknown protocol", "packet length too long"))


# =======================================================================================
# The checks


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover
