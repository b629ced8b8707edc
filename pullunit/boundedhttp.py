"""HTTP(S) the way doctor needs it (stdlib only): one request on a fresh connection,
bounded by one deadline from connect to the last byte of body; an HTTP proxy used as
dockerd uses one (CONNECT for https); a stall-aware download that counts bytes; and a
watchdog for calls that have no timeout of their own (getaddrinfo, D-Bus, docker-py).
The registry protocol on top of it (challenges, tokens, redirects) is regclient.py."""

from __future__ import annotations

import base64
import http.client
import io
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .errors import ExitCode, PullunitError

TIMEOUT = 3.0  # seconds: doctor's limit for each check, all its network operations included
MAX_BODY = 4 * 2**20  # manifests and image configs are small; refuse to read more
T = TypeVar("T")


class WatchdogTimeout(PullunitError, TimeoutError):
    """A call without a timeout of its own took too long (see with_timeout)."""

    def __init__(self, message: str):
        super().__init__(message, ExitCode.UNAVAILABLE)


@dataclass(frozen=True)
class Deadline:
    """One overall limit for everything a check does on the network: each connect,
    handshake, send and recv gets only what is left of it, so a server that trickles
    one byte a second cannot stretch a check past its limit."""

    at: float  # time.monotonic()

    @classmethod
    def after(cls, seconds: float) -> Deadline:
        return cls(time.monotonic() + seconds)

    def left(self) -> float:
        return self.at - time.monotonic()

    def remaining(self) -> float:
        """Seconds left; TimeoutError when none are."""
        left = self.left()
        if left <= 0:
            raise TimeoutError("timed out")
        return left


def with_timeout(fn: Callable[[], T], seconds: float, what: str) -> T:
    """Run fn on a daemon thread and give up after `seconds`: for calls that have no
    timeout of their own (getaddrinfo, D-Bus, credential helpers, docker-py). A call that
    never returns leaves a thread behind, which dies with the process."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # handed to the caller
            box["error"] = e

    t = threading.Thread(target=target, name=f"doctor-{what}", daemon=True)
    t.start()
    t.join(max(seconds, 0.0))
    if t.is_alive():
        raise WatchdogTimeout(f"{what} did not finish within {seconds:.0f} s")
    if "error" in box:
        raise box["error"]
    value: T = box["value"]
    return value


def resolve(host: str, port: int, deadline: Deadline) -> list[tuple[Any, ...]]:
    """getaddrinfo under a watchdog: (family, sockaddr) pairs, IPv4 first like Go."""
    infos = with_timeout(lambda: socket.getaddrinfo(host, port, type=socket.SOCK_STREAM),
                         deadline.remaining(), f"lookup of {host}")
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
class Proxy:
    """An HTTP proxy the way dockerd uses one: CONNECT for https, absolute-form requests
    for http. `authorization` is the Proxy-Authorization value (never shown); `shown`
    is its URL without credentials."""

    host: str
    port: int
    shown: str
    authorization: str | None = None


class ProxyError(OSError):
    """The proxy refused the tunnel (CONNECT answered other than 200)."""

    def __init__(self, status: int, reason: str):
        super().__init__(f"the proxy answered CONNECT with {status} {reason}".rstrip())
        self.status, self.reason = status, reason


def proxy_from_url(url: str) -> Proxy:
    """A proxy URL of a proxy setting (http://[user:password@]host[:port]); ValueError for
    one Docker's proxy support would not use the same way (https://, socks5://)."""
    if "://" not in url:
        url = "http://" + url  # Go reads a bare host:port as http
    u = urllib.parse.urlsplit(url)
    if u.scheme != "http":
        raise ValueError(f"{u.scheme}:// proxies are not checked (only http://)")
    if not u.hostname:
        raise ValueError("the proxy URL names no host")
    auth = None
    if u.username is not None:
        raw = f"{urllib.parse.unquote(u.username)}:{urllib.parse.unquote(u.password or '')}"
        auth = "Basic " + base64.b64encode(raw.encode()).decode()
    from .dockerconf import redact_url

    return Proxy(u.hostname, u.port or 80, redact_url(url), auth)


@dataclass(frozen=True)
class Endpoint:
    """Where requests go: scheme, the resolved address, and the name for Host/SNI; and,
    when the daemon goes through a proxy, that proxy (sockaddr is then unused)."""

    scheme: str
    host: str  # name as written (Host header, SNI, certificate check)
    port: int
    sockaddr: tuple[Any, ...]
    family: int
    context: ssl.SSLContext | None = None
    proxy: Proxy | None = None

    @property
    def base(self) -> str:
        h = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return f"{self.scheme}://{h}" + ("" if self.port == default else f":{self.port}")


def _tunnel(sock: socket.socket, ep: Endpoint, deadline: Deadline) -> None:
    """CONNECT host:port through the proxy sock is connected to; ProxyError unless 200."""
    assert ep.proxy is not None
    target = f"[{ep.host}]:{ep.port}" if ":" in ep.host else f"{ep.host}:{ep.port}"
    head = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nUser-Agent: pullunit-doctor\r\n"
    if ep.proxy.authorization:
        head += f"Proxy-Authorization: {ep.proxy.authorization}\r\n"
    sock.settimeout(deadline.remaining())
    sock.sendall((head + "\r\n").encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        sock.settimeout(deadline.remaining())
        chunk = sock.recv(1)  # byte by byte: nothing after the head may be consumed
        if not chunk:
            raise ProxyError(0, "(connection closed before an answer)")
        answer += chunk
        if len(answer) > 16384:
            raise ProxyError(0, "(answer too long)")
    status_line = answer.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status_line.split(" ", 2)
    try:
        status = int(parts[1])
    except (IndexError, ValueError):
        raise ProxyError(0, f"(not HTTP: {status_line[:60]!r})") from None
    if status != 200:
        raise ProxyError(status, parts[2] if len(parts) > 2 else "")


def connect(ep: Endpoint, deadline: Deadline) -> socket.socket:
    """A connected socket to ep, TLS done for https (Python bounds the whole handshake
    by the socket timeout, which is what is left of the deadline); through ep.proxy
    when there is one (a CONNECT tunnel for https)."""
    family, sockaddr = ep.family, ep.sockaddr
    if ep.proxy is not None:
        family, sockaddr = resolve(ep.proxy.host, ep.proxy.port, deadline)[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.settimeout(deadline.remaining())
        sock.connect(sockaddr)
        if ep.proxy is not None and ep.scheme == "https":
            _tunnel(sock, ep, deadline)
        if ep.scheme == "https":
            assert ep.context is not None
            sock.settimeout(deadline.remaining())
            return ep.context.wrap_socket(sock, server_hostname=ep.host)
    except BaseException:
        sock.close()
        raise
    return sock


def handshake(ep: Endpoint, deadline: Deadline) -> tuple[str, bytes]:
    """TLS version and the server's certificate (DER), from a handshake with ep."""
    with connect(ep, deadline) as s:
        assert isinstance(s, ssl.SSLSocket)
        return s.version() or "TLS", s.getpeercert(binary_form=True) or b""


class _DeadlineReader(io.RawIOBase):
    def __init__(self, sock: socket.socket, deadline: Deadline):
        self._sock, self._deadline = sock, deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        self._sock.settimeout(self._deadline.remaining())
        return self._sock.recv_into(buffer)


class _DeadlineSocket:
    """The part of a socket http.client uses (sendall, makefile, close), with every send
    and recv limited to what is left of the deadline: http.client's own timeout is per
    recv, so the status line and headers could otherwise take forever a byte at a time."""

    def __init__(self, sock: socket.socket, deadline: Deadline):
        self._sock, self._deadline = sock, deadline

    def sendall(self, data: bytes) -> None:
        self._sock.settimeout(self._deadline.remaining())
        self._sock.sendall(data)

    def makefile(self, mode: str = "rb", *args: Any, **kwargs: Any) -> io.BufferedReader:
        return io.BufferedReader(_DeadlineReader(self._sock, self._deadline))

    def close(self) -> None:
        """http.client closes its connection as soon as the headers say the server will,
        before the body is read; a real socket defers that while a makefile() reader is
        open. request() closes the socket when it is done instead."""


def request(ep: Endpoint, method: str, path: str, headers: Mapping[str, str],
            deadline: Deadline, limit: int = MAX_BODY, body: bytes | None = None) -> Response:
    """One HTTP request on a fresh connection to ep: connect, handshake, request, status
    line, headers and at most `limit` bytes of body, all within `deadline`."""
    conn: http.client.HTTPConnection
    if ep.scheme == "https":
        conn = http.client.HTTPSConnection(ep.host, ep.port, context=ep.context)
    else:
        conn = http.client.HTTPConnection(ep.host, ep.port)
    sent = time.time()
    sock: socket.socket | None = None
    if ep.proxy is not None and ep.scheme == "http":
        # an HTTP proxy takes the absolute URL (the Host header still names the registry)
        path = ep.base + path
        if ep.proxy.authorization:
            headers = {**headers, "Proxy-Authorization": ep.proxy.authorization}
    try:
        sock = connect(ep, deadline)
        conn.sock = _DeadlineSocket(sock, deadline)  # type: ignore[assignment]
        conn.request(method, path, body=body,
                     headers={"User-Agent": "pullunit-doctor", **headers})
        resp = conn.getresponse()
        received = time.time()
        chunks: list[bytes] = []
        size = 0
        while method != "HEAD":
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
        if sock is not None:
            sock.close()


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


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


TRICKLE = 1024  # bytes: less than this in a `stall` window counts as no progress


@dataclass(frozen=True)
class Download:
    url: str
    status: int
    reason: str
    received: int  # bytes of the body read
    seconds: float  # from the request to the last byte read
    stalled: bool  # a read waited `stall` seconds for nothing
    location: str = ""  # of a redirect


@dataclass(frozen=True)
class _StallDeadline(Deadline):
    """Each socket operation may wait `stall` seconds at most, within the deadline."""

    stall: float = 0.0

    def remaining(self) -> float:
        return min(self.stall, super().remaining())


def download_once(ep: Endpoint, path: str, headers: Mapping[str, str], deadline: Deadline,
                  want: int, stall: float) -> Download:
    """GET path from ep (no redirects followed) and count up to `want` bytes of its body;
    a read that waits `stall` seconds, or a window of `stall` seconds with less than
    TRICKLE bytes, ends it as stalled."""
    limited = _StallDeadline(deadline.at, stall)
    conn: http.client.HTTPConnection
    if ep.scheme == "https":
        conn = http.client.HTTPSConnection(ep.host, ep.port, context=ep.context)
    else:
        conn = http.client.HTTPConnection(ep.host, ep.port)
    target = ep.base + path if ep.proxy is not None and ep.scheme == "http" else path
    if ep.proxy is not None and ep.scheme == "http" and ep.proxy.authorization:
        headers = {**headers, "Proxy-Authorization": ep.proxy.authorization}
    url = f"{ep.base}{path}"
    started = time.monotonic()
    received, last = 0, started
    sock: socket.socket | None = None
    try:
        sock = connect(ep, limited)
        conn.sock = _DeadlineSocket(sock, limited)  # type: ignore[assignment]
        conn.request("GET", target, headers={"User-Agent": "pullunit-doctor", **headers})
        resp = conn.getresponse()
        if resp.status != 200:
            return Download(url, resp.status, resp.reason, 0, time.monotonic() - started,
                            False, resp.headers.get("Location") or "")
        window, in_window = started, 0  # a trickle of a few bytes a second is a stall too
        while received < want:
            try:
                chunk = resp.read1(65536)
            except TimeoutError:
                stalled = deadline.left() > 0
                return Download(url, 200, resp.reason, received, last - started, stalled)
            if not chunk:
                break
            received += len(chunk)
            in_window += len(chunk)
            last = time.monotonic()
            if last - window >= stall:
                if in_window < TRICKLE:
                    return Download(url, 200, resp.reason, received, last - started, True)
                window, in_window = last, 0
        return Download(url, 200, resp.reason, received, last - started, False)
    finally:
        conn.close()
        if sock is not None:
            sock.close()
