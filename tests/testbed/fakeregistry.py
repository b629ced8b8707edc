"""A registry that misbehaves on purpose, for the fuzz tier (tests/fuzz).

A stdlib ThreadingHTTPServer on 127.0.0.1 (a free port) that serves one tiny, valid
image (schema 2 manifest, config, one gzip layer), and lets a *scenario* replace what
any endpoint answers: status code and reason, headers, body, a delay before answering,
or a misbehaviour:

* ``hang``     accept the request and never answer (until the server is closed)
* ``trickle``  send the status line, then the rest one byte every ``interval`` seconds
* ``slowbody`` send the headers at once, then the body one byte every ``interval``
* ``truncate`` announce a longer Content-Length than is sent, then close
* ``close``    close the connection without a byte

Endpoints are told apart by kind: ``v2`` (GET /v2/), ``token`` (/token, for the Bearer
realm the scenario may announce), ``manifest``, ``config`` and ``layer`` (blobs by
digest) and ``other``. A scenario lists replies per kind; the n-th request of a kind gets
reply n (the last one repeats), so a run is deterministic whatever order requests of
different kinds come in.

Rules of the test bed, kept here too: it listens on loopback only; every header it can
send that names a URL (WWW-Authenticate realm, Location) is built by the caller from
``self.url`` or other loopback addresses; every wait is bounded (``MAX_WAIT``) and ends at
once when the server is closed. It starts no process, so there is nothing to record:
closing it (or the end of the test process) undoes everything.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import io
import json
import socket
import tarfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ._util import assert_allowed_address

MAX_WAIT = 120.0  # the longest any reply is held back (hang, delay, trickle) in seconds
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_V1 = "application/vnd.docker.container.image.v1+json"
LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
KINDS = ("v2", "token", "manifest", "config", "layer", "other")
MODES = ("answer", "hang", "trickle", "slowbody", "truncate", "close")
SELF = "@@SELF@@"  # in a header value: this registry's base URL (http://127.0.0.1:PORT)
ECHO = b"@@ECHO@@"  # in a body: where echo_auth puts the credentials (JSON-escaped)


@dataclass(frozen=True)
class Reply:
    """What one request gets. ``body=None`` and ``status=200``: the real content for the
    endpoint (with its real headers unless ``plain_headers``); ``headers`` are added (so
    duplicates and contradictions are possible)."""

    status: int = 200
    reason: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes | None = None
    delay: float = 0.0
    mode: str = "answer"
    interval: float = 1.0  # trickle/slowbody: seconds per byte
    echo_auth: bool = False  # the request's Authorization (decoded too) at ECHO in the body
    plain_headers: bool = False  # no Content-Type/Docker-Content-Digest of our own

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}")


@dataclass(frozen=True)
class Scenario:
    replies: dict[str, tuple[Reply, ...]] = field(default_factory=dict)

    def reply(self, kind: str, n: int) -> Reply:
        seq = self.replies.get(kind, ())
        if not seq:
            return Reply()
        return seq[min(n, len(seq) - 1)]


@dataclass(frozen=True)
class Seen:
    kind: str
    method: str
    path: str
    authorization: str | None


@dataclass(frozen=True)
class TinyImage:
    """A one-layer linux/amd64 image, its blobs and manifest, made from `seed` so each
    case can have its own digests (dockerd then really fetches the blobs)."""

    manifest: bytes
    config: bytes
    layer: bytes

    @staticmethod
    def make(seed: str) -> TinyImage:
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
            data = f"pullunit fuzz image {seed}\n".encode()
            info = tarfile.TarInfo("fuzz.txt")
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
        tar_bytes = raw.getvalue()
        layer = gzip.compress(tar_bytes, compresslevel=1, mtime=0)
        config = json.dumps({
            "architecture": "amd64", "os": "linux",
            "config": {"Cmd": ["/fuzz.txt"]},
            "rootfs": {"type": "layers", "diff_ids": [_digest(tar_bytes)]},
            "history": [{"created_by": "pullunit fuzz"}],
        }, sort_keys=True).encode()
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": MANIFEST_V2,
            "config": {"mediaType": CONFIG_V1, "size": len(config), "digest": _digest(config)},
            "layers": [{"mediaType": LAYER_GZIP, "size": len(layer), "digest": _digest(layer)}],
        }, indent=3).encode()
        return TinyImage(manifest, config, layer)

    @property
    def digest(self) -> str:
        return _digest(self.manifest)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64
    owner: FakeRegistry


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    timeout = 30  # a client that sends half a request is dropped, not waited for forever

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the access log is .seen

    def _any(self) -> None:
        self.server.owner._serve(self)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _any


class FakeRegistry:
    """One misbehaving registry: ``with FakeRegistry(scenario) as reg: reg.ref`` ..."""

    def __init__(self, scenario: Scenario | None = None, *, repo: str = "pullunit-fuzz/app",
                 tag: str = "1.0", seed: str = "0", host: str = "127.0.0.1"):
        assert_allowed_address(host)
        self.scenario = scenario or Scenario()
        self.repo, self.tag, self.host = repo, tag, host
        self.image = TinyImage.make(seed)
        self.seen: list[Seen] = []
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()

    # -- life cycle ---------------------------------------------------------------
    def start(self) -> FakeRegistry:
        server = _Server((self.host, 0), _Handler)
        server.owner = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name=f"fakeregistry-{self.port}", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop accepting, end every held-back reply at once, drop open connections."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            conns = list(self._conns)
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- where it is --------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return int(self._server.server_address[1])

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    @property
    def ref(self) -> str:
        return f"{self.address}/{self.repo}:{self.tag}"

    def kinds_seen(self) -> list[str]:
        with self._lock:
            return [s.kind for s in self.seen]

    # -- serving ------------------------------------------------------------------
    def _kind(self, path: str) -> str:
        p = path.split("?", 1)[0]
        if p in ("/v2", "/v2/"):
            return "v2"
        if p.startswith("/token"):
            return "token"
        if p.startswith(f"/v2/{self.repo}/manifests/"):
            return "manifest"
        if p == f"/v2/{self.repo}/blobs/{_digest(self.image.config)}":
            return "config"
        if p == f"/v2/{self.repo}/blobs/{_digest(self.image.layer)}":
            return "layer"
        return "other"

    def _real(self, kind: str) -> tuple[bytes, list[tuple[str, str]]]:
        img = self.image
        api = [("Docker-Distribution-API-Version", "registry/2.0")]
        if kind == "v2":
            return b"{}", [*api, ("Content-Type", "application/json")]
        if kind == "token":
            return (json.dumps({"token": "fz-token", "access_token": "fz-token",
                                "expires_in": 300}).encode(),
                    [("Content-Type", "application/json")])
        if kind in ("manifest", "config", "layer"):
            body = {"manifest": img.manifest, "config": img.config, "layer": img.layer}[kind]
            ctype = {"manifest": MANIFEST_V2, "config": "application/octet-stream",
                     "layer": "application/octet-stream"}[kind]
            return body, [*api, ("Content-Type", ctype), ("Docker-Content-Digest", _digest(body))]
        body = json.dumps({"errors": [{"code": "NOT_FOUND", "message": "not here"}]}).encode()
        return body, [*api, ("Content-Type", "application/json")]

    def _serve(self, h: _Handler) -> None:
        kind = self._kind(h.path)
        auth = h.headers.get("Authorization")
        with self._lock:
            n = self._counts.get(kind, 0)
            self._counts[kind] = n + 1
            self.seen.append(Seen(kind, h.command, h.path, auth))
            self._conns.add(h.connection)
        try:
            length = int(h.headers.get("Content-Length") or 0)
            if 0 < length <= 1 << 20:
                h.rfile.read(length)
            self._reply(h, kind, self.scenario.reply(kind, n), auth)
        except (OSError, ValueError):
            pass  # the client went away, or we were closed: nothing to answer
        finally:
            h.close_connection = True
            with self._lock:
                self._conns.discard(h.connection)

    def _reply(self, h: _Handler, kind: str, r: Reply, auth: str | None) -> None:
        if r.mode == "hang":
            self._stop.wait(MAX_WAIT)
            return
        if r.mode == "close":
            return
        if r.delay and self._stop.wait(min(r.delay, MAX_WAIT)):
            return
        real_body, real_headers = self._real(kind)
        body = real_body if r.body is None else r.body
        echo = _echo(auth) if r.echo_auth and auth else ""
        if ECHO in body:
            body = body.replace(ECHO, json.dumps(echo)[1:-1].encode())
        else:
            body += echo.encode()
        headers = [] if (r.plain_headers or r.body is not None) else list(real_headers)
        headers += [(k, v.replace(SELF, self.url)) for k, v in r.headers]
        names = {k.lower() for k, _ in headers}
        if "content-length" not in names:
            sent_length = len(body) * 2 + 10 if r.mode == "truncate" else len(body)
            headers.append(("Content-Length", str(sent_length)))
        headers.append(("Connection", "close"))
        reason = r.reason if r.reason is not None else h.responses.get(r.status, ("Odd",))[0]
        head = f"HTTP/1.1 {r.status} {reason}\r\n".encode("latin-1", errors="replace")
        for k, v in headers:
            head += f"{k}: {v}\r\n".encode("latin-1", errors="replace")
        head += b"\r\n"
        if h.command == "HEAD":
            body = b""
        if r.mode == "truncate":
            body = body[: len(body) // 2]
        if r.mode == "trickle":
            self._trickle(h, head + body, r.interval)
        elif r.mode == "slowbody":
            h.wfile.write(head)
            h.wfile.flush()
            self._trickle(h, body, r.interval)
        else:
            h.wfile.write(head + body)
            h.wfile.flush()

    def _trickle(self, h: _Handler, data: bytes, interval: float) -> None:
        end = time.monotonic() + MAX_WAIT
        for i in range(len(data)):
            h.wfile.write(data[i:i + 1])
            h.wfile.flush()
            if self._stop.wait(interval) or time.monotonic() > end:
                return


def _echo(auth: str) -> str:
    """A hostile (or debugging) registry that reflects the credentials it was sent."""
    text = f" [you sent: {auth}"
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "basic":
            text += f" = {base64.b64decode(value, validate=True).decode()}"
    return text + "]"


@contextlib.contextmanager
def fake_registry(scenario: Scenario | None = None, **kw: Any) -> Iterator[FakeRegistry]:
    reg = FakeRegistry(scenario, **kw).start()
    try:
        yield reg
    finally:
        reg.close()
