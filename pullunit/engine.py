"""The Docker engine edge: one `Engine` protocol, one factory (`connect`), and the
light client that serves it with the standard library over the engine's socket.

Why a client of our own: docker-py posts /images/create with no timeout at all, so a
registry that accepts the manifest request and never answers held `pullunit pull`
before any of its clocks could run. Here every wait is a socket read with a timeout
the caller chose, on a socket the caller owns from connect() on; closing it makes
dockerd cancel the pull. It speaks HTTP/1.0, so dockerd streams progress unchunked and
closes at the end, and it costs ~2 ms to import where docker-py costs ~100 ms: a warm
start (image present) and a cold pull never import docker-py. docker-py
(`dockerapi`) remains for what this client does not speak: ssh:// engines, the
verify run and `docker save`/`load`.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from .classify import Failure, FailureClass, PullFailed, classify
from .hints import DAEMON_FIX
from .pullstream import Message, MessageSplitter, StreamError, failure_of
from .reference import ImageRef

if TYPE_CHECKING:
    from .credentials import Auth

DEFAULT_HOST = "unix:///run/docker.sock"
API_VERSION = "v1.41"  # dockerd 20.10 (Debian 12); newer engines still serve it
# `uname -m` style names -> Go's GOARCH, which images and --platform use.
ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
        "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}
CALL_TIMEOUT = 5.0  # a look-up (inspect, version, info) the daemon answers from memory
PING_TIMEOUT = 2.0  # "is the daemon there at all?" after something else went quiet
MAX_HEAD = 64 * 1024

JSON = dict[str, object]


def docker_host() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_HOST


class EngineUnavailable(PullFailed):
    """The daemon cannot be reached or does not answer: `daemon_unavailable`, exit 69,
    with its fix. Retried by the puller; any other command reports it and exits."""

    def __init__(self, detail: str, host: str | None = None):
        super().__init__(Failure(FailureClass.DAEMON_UNAVAILABLE,
                                 f"cannot talk to the Docker daemon at {host or docker_host()}"
                                 f": {detail}"), DAEMON_FIX)


# ------------------------------------------------------------------------ what we learn


def familiar(name: str) -> str:
    """Docker's short form of a repository name: docker.io/library/x -> x."""
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/",
                   "index.docker.io/"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def _strs(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


@dataclass(frozen=True)
class LocalImage:
    id: str
    repo_digests: tuple[str, ...]
    repo_tags: tuple[str, ...]
    os: str
    architecture: str
    variant: str | None
    size: int

    @classmethod
    def from_inspect(cls, data: JSON) -> LocalImage:
        size = data.get("Size")
        return cls(
            id=str(data["Id"]),
            repo_digests=_strs(data.get("RepoDigests")),
            repo_tags=_strs(data.get("RepoTags")),
            os=str(data.get("Os", "")),
            architecture=str(data.get("Architecture", "")),
            variant=str(data.get("Variant") or "") or None,
            size=size if isinstance(size, int) else 0,
        )

    @property
    def platform(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base

    def digest_for(self, ref: ImageRef) -> str | None:
        """The registry digest this image has under ref's repository, if any."""
        want = familiar(ref.repository)
        for rd in self.repo_digests:
            name, _, digest = rd.partition("@")
            if familiar(name) == want:
                return digest
        return None

    def run_reference(self, ref: ImageRef) -> str:
        """What the run unit starts: repo@sha256 when known, else the image ID."""
        digest = self.digest_for(ref)
        return ref.with_digest(digest) if digest else self.id


def local_name(ref: ImageRef) -> str:
    """The name to inspect: by digest when pinned (a tag can move), else by tag."""
    if ref.digest:
        return ref.with_digest(ref.digest)
    assert ref.tagged is not None
    return ref.tagged


def platform_of(version: JSON) -> str:
    """OS/ARCH (Go names, as images use them) from the engine's GET /version."""
    arch = str(version.get("Arch", ""))
    return f"{version.get('Os', 'linux')}/{ARCH.get(arch, arch)}"


# ------------------------------------------------------------------------ the protocol


class PullStream(Protocol):
    """One POST /images/create in flight."""

    @property
    def answered(self) -> bool:
        """The daemon has begun its reply (it does so once it has the manifest)."""

    def messages(self, poll: float) -> Iterator[Message | None]:
        """Progress messages; None after every `poll` seconds of silence, so that the
        caller can check its clocks. Raises PullFailed for an error the daemon reports."""

    def abort(self) -> None:
        """Drop the request at once; dockerd cancels a pull whose client went away."""


class Engine(Protocol):
    """What pullunit asks of a Docker engine. Daemon trouble raises EngineUnavailable,
    registry trouble PullFailed of its class; every call is bounded in time."""

    host: str

    def inspect(self, name: str) -> LocalImage | None: ...

    def platform(self) -> str: ...

    def ping(self, timeout: float = PING_TIMEOUT) -> bool: ...

    def data_root(self) -> str: ...

    def pull(self, ref: ImageRef, platform: str | None, auth: Auth | None, *,
             silence_limit: float) -> PullStream:
        """Start a pull. `silence_limit` bounds any read the client cannot interrupt."""

    def remote_digest(self, ref: ImageRef, auth: Auth | None, timeout: float) -> str:
        """The digest the registry serves for ref now, asked through the daemon (so its
        mirrors, proxies and insecure-registry list apply)."""

    def run_verify(self, image: str, args: tuple[str, ...], timeout: float) -> tuple[int, str]:
        """Run image once with args, without network; (exit status, last output)."""

    def close(self) -> None: ...


def connect(timeout: float = CALL_TIMEOUT) -> Engine:
    """The engine DOCKER_HOST names: the light client for unix:// and tcp:// (plain
    HTTP), docker-py for anything else (ssh://)."""
    host = docker_host()
    if LiteEngine.speaks(host):
        return LiteEngine(timeout=timeout)
    from . import dockerapi

    return dockerapi.SdkEngine.connect(max(timeout, dockerapi.CALL_TIMEOUT))


def find_local(engine: Engine, ref: ImageRef) -> LocalImage | None:
    """The local image ref names (by digest when pinned, else by tag)."""
    img = engine.inspect(local_name(ref))
    if img is not None and ref.digest and img.digest_for(ref) != ref.digest:
        return None
    return img


# ------------------------------------------------------------------------ HTTP/1.0


@dataclass(frozen=True)
class _Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body) if self.body.strip() else None

    def message(self) -> str:
        """The daemon's error text: {"message": ...}, else the body as text."""
        with contextlib.suppress(ValueError):
            data = self.json()
            if isinstance(data, dict) and data.get("message"):
                return str(data["message"])
        return self.body.decode(errors="replace").strip() or f"HTTP {self.status}"


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split()
    try:
        status = int(parts[1])
    except (IndexError, ValueError):
        raise StreamError(f"bad status line from the engine: {lines[0][:80]!r}") from None
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise StreamError("the engine answered HTTP/1.0 with a chunked body")
    return status, headers


def _request_bytes(method: str, url: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} /{API_VERSION}{url} HTTP/1.0", "Host: docker",
             "User-Agent: pullunit", *(f"{k}: {v}" for k, v in headers.items())]
    if method == "POST":
        lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Quiet(TimeoutError):
    """The daemon sent nothing for as long as the caller allowed."""


class LiteEngine:
    """The Engine over a unix socket or plain TCP, with the standard library only."""

    @staticmethod
    def speaks(host: str) -> bool:
        return host.startswith(("unix://", "tcp://", "http://"))

    def __init__(self, timeout: float = CALL_TIMEOUT):
        self.host = docker_host()
        if not self.speaks(self.host):
            raise EngineUnavailable(f"pullunit's light client speaks unix:// and tcp://, "
                                    f"not {self.host.split('://')[0]}://", self.host)
        self.timeout = timeout
        self._sdk: Engine | None = None

    # -- transport -------------------------------------------------------------------
    def _socket(self, timeout: float) -> socket.socket:
        try:
            if self.host.startswith("unix://"):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    s.settimeout(timeout)
                    s.connect(self.host[len("unix://"):])
                except BaseException:
                    s.close()
                    raise
                return s
            url = urllib.parse.urlsplit(self.host)
            return socket.create_connection((url.hostname or "", url.port or 2375),
                                            timeout=timeout)
        except TimeoutError:
            raise EngineUnavailable(f"no connection within {timeout:.3g}s", self.host) from None
        except (OSError, ValueError) as e:
            raise EngineUnavailable(str(e), self.host) from e

    def _call(self, method: str, url: str, *, timeout: float | None = None,
              headers: dict[str, str] | None = None) -> _Reply:
        """One request, the whole reply within `timeout` (else _Quiet)."""
        limit = self.timeout if timeout is None else timeout
        end = time.monotonic() + limit
        with self._socket(limit) as s:
            try:
                s.sendall(_request_bytes(method, url, headers or {}))
                chunks = []
                while True:
                    left = end - time.monotonic()
                    if left <= 0:
                        raise _Quiet(f"no complete answer within {limit:.3g}s")
                    s.settimeout(left)
                    data = s.recv(65536)
                    if not data:
                        break
                    chunks.append(data)
            except _Quiet:
                raise
            except TimeoutError:
                raise _Quiet(f"no complete answer within {limit:.3g}s") from None
            except OSError as e:
                raise EngineUnavailable(str(e), self.host) from e
        head, sep, body = b"".join(chunks).partition(b"\r\n\r\n")
        if not sep:
            raise EngineUnavailable("truncated reply", self.host)
        try:
            status, hdrs = _parse_head(head)
        except StreamError as e:
            raise EngineUnavailable(str(e), self.host) from e
        return _Reply(status, hdrs, body)

    def _look(self, url: str) -> _Reply:
        """A look-up the daemon answers from memory: silence means it is not well."""
        try:
            return self._call("GET", url)
        except _Quiet as e:
            raise EngineUnavailable(f"GET {url}: {e}", self.host) from None

    def _json(self, reply: _Reply, what: str) -> JSON:
        try:
            data = reply.json()
        except ValueError as e:
            raise EngineUnavailable(f"{what}: bad reply: {e}", self.host) from e
        if reply.status != 200 or not isinstance(data, dict):
            raise EngineUnavailable(f"{what}: HTTP {reply.status}: {reply.message()}",
                                    self.host)
        return data

    # -- looking ---------------------------------------------------------------------
    def inspect(self, name: str) -> LocalImage | None:
        reply = self._look(f"/images/{urllib.parse.quote(name, safe='')}/json")
        if reply.status == 404:
            return None
        return LocalImage.from_inspect(self._json(reply, f"inspect {name}"))

    def platform(self) -> str:
        return platform_of(self._json(self._look("/version"), "version"))

    def ping(self, timeout: float = PING_TIMEOUT) -> bool:
        try:
            return self._call("GET", "/_ping", timeout=timeout).status == 200
        except (_Quiet, EngineUnavailable):
            return False

    def data_root(self) -> str:
        info = self._json(self._look("/info"), "info")
        return str(info.get("DockerRootDir") or "/var/lib/docker")

    # -- the registry, through the daemon ----------------------------------------------
    def pull(self, ref: ImageRef, platform: str | None, auth: Auth | None, *,
             silence_limit: float) -> PullStream:
        params = {"fromImage": ref.repository, "tag": ref.digest or ref.tag or "latest"}
        if platform:
            params["platform"] = platform
        headers = {"X-Registry-Auth": auth.header()} if auth else {}
        url = "/images/create?" + urllib.parse.urlencode(params)
        return _LitePull(self._socket(self.timeout), _request_bytes("POST", url, headers),
                         self.host)

    def remote_digest(self, ref: ImageRef, auth: Auth | None, timeout: float) -> str:
        headers = {"X-Registry-Auth": auth.header()} if auth else {}
        url = f"/distribution/{urllib.parse.quote(str(ref), safe='')}/json"
        try:
            reply = self._call("GET", url, timeout=timeout, headers=headers)
        except _Quiet:
            raise self._quiet_registry(ref, timeout) from None
        if reply.status != 200:
            text = reply.message()
            raise PullFailed.of(classify(text, reply.status), text)
        data = self._json(reply, f"distribution {ref}")
        descriptor = data.get("Descriptor")
        digest = descriptor.get("digest") if isinstance(descriptor, dict) else None
        if not isinstance(digest, str):
            raise PullFailed.of(FailureClass.UNKNOWN, f"the daemon returned no digest for {ref}")
        return digest

    def _quiet_registry(self, ref: ImageRef, waited: float) -> PullFailed:
        """Silence on a registry call: the daemon itself, or the registry behind it?"""
        if not self.ping():
            return EngineUnavailable(f"it did not answer within {waited:.3g}s, nor a ping",
                                     self.host)
        return registry_silent(ref, waited)

    # -- docker-py for the rest ----------------------------------------------------------
    def _sdk_engine(self) -> Engine:
        if self._sdk is None:
            from . import dockerapi

            self._sdk = dockerapi.SdkEngine.connect()
        return self._sdk

    def run_verify(self, image: str, args: tuple[str, ...], timeout: float) -> tuple[int, str]:
        return self._sdk_engine().run_verify(image, args, timeout)

    def close(self) -> None:
        if self._sdk is not None:
            self._sdk.close()
            self._sdk = None


def registry_silent(ref: ImageRef, waited: float) -> PullFailed:
    """The daemon answers, but the registry it is asking for ref does not."""
    return PullFailed.of(FailureClass.STALLED,
                         f"{ref.registry} did not answer the daemon's request for {ref} within "
                         f"{waited:.3g}s (the daemon itself answers: the registry, or something in "
                         "front of it, accepted the connection and sent nothing)")


class _LitePull:
    """POST /images/create on a socket of our own, read on the caller's thread."""

    def __init__(self, sock: socket.socket, request: bytes, host: str):
        self._sock = sock
        self._host = host
        self._aborted = False
        self.answered = False
        try:
            sock.settimeout(CALL_TIMEOUT)
            sock.sendall(request)
        except OSError as e:
            self.abort()
            raise EngineUnavailable(f"sending the pull request: {e}", host) from e

    def _recv(self) -> bytes | None:
        """Some bytes, b"" at the end, or None when nothing came within the poll."""
        try:
            return self._sock.recv(65536)
        except TimeoutError:
            return None
        except OSError as e:
            if self._aborted:
                return b""
            raise EngineUnavailable(f"reading the pull: {e}", self._host) from e

    def messages(self, poll: float) -> Iterator[Message | None]:
        self._sock.settimeout(poll)
        head = b""
        while b"\r\n\r\n" not in head:
            data = self._recv()
            if data is None:
                yield None
                continue
            if not data:
                if self._aborted:
                    return
                raise EngineUnavailable("it closed the connection without an answer",
                                        self._host)
            head += data
            if len(head) > MAX_HEAD:
                raise EngineUnavailable("an endless reply header", self._host)
        head, _, rest = head.partition(b"\r\n\r\n")
        try:
            status, _headers = _parse_head(head)
        except StreamError as e:
            raise EngineUnavailable(str(e), self._host) from e
        self.answered = True
        if status != 200:
            yield from self._error_reply(status, rest)
            return
        splitter = MessageSplitter()
        if rest:
            yield from self._decoded(splitter, rest)
        while True:
            data = self._recv()
            if data is None:
                yield None
                continue
            yield from self._decoded(splitter, data)
            if not data:
                return  # the daemon closed: the pull is over

    @staticmethod
    def _decoded(splitter: MessageSplitter, data: bytes) -> Iterator[Message]:
        """Messages in data (b"": the end of the stream); raises for a reported error."""
        try:
            msgs = splitter.feed(data) if data else splitter.finish()
        except StreamError as e:
            raise PullFailed.of(FailureClass.UNKNOWN,
                                f"the daemon's pull progress is not JSON: {e}") from e
        for msg in msgs:
            failed = failure_of(msg)
            if failed is not None:
                raise failed
            yield msg

    def _error_reply(self, status: int, body: bytes) -> Iterator[None]:
        """An HTTP error from the daemon (registry errors before the stream started)."""
        chunks = [body]
        while True:
            data = self._recv()
            if data is None:
                yield None
            elif not data:
                break
            else:
                chunks.append(data)
        reply = _Reply(status, {}, b"".join(chunks))
        text = reply.message()
        raise PullFailed.of(classify(text, status), text)

    def abort(self) -> None:
        self._aborted = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._sock.close()
