"""HTTP/1.0 to the Docker engine over its unix socket (or plain tcp://), with the
standard library: the transport under `engine.LiteEngine`.

Why a transport of our own: docker-py posts /images/create with no timeout at all, so a
registry that accepts the manifest request and never answered held `pullunit pull`
before any of its clocks could run. Here every wait is a socket read with a timeout
the caller chose, on a socket the caller owns from connect() on; closing it makes
dockerd cancel the pull. It speaks HTTP/1.0, so dockerd streams progress unchunked and
closes at the end: the body is the socket's bytes up to EOF.
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
from typing import TYPE_CHECKING

from .classify import Failure, FailureClass, PullFailed, classify

# A warm start only inspects: the stream's decoder and the fix texts come with a pull
# or a failure.
if TYPE_CHECKING:
    from .pullstream import Message, MessageSplitter

DEFAULT_HOST = "unix:///run/docker.sock"
API_VERSION = "v1.41"  # dockerd 20.10 (Debian 12); newer engines still serve it
CALL_TIMEOUT = 5.0  # a look-up (inspect, version, info) the daemon answers from memory
MAX_HEAD = 64 * 1024


def docker_host() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_HOST


def speaks(host: str) -> bool:
    """Whether this transport reaches the engine at host (else docker-py does)."""
    return host.startswith(("unix://", "tcp://", "http://"))


class EngineUnavailable(PullFailed):
    """The daemon cannot be reached or does not answer: `daemon_unavailable`, exit 69,
    with its fix. Retried by the puller; any other command reports it and exits."""

    def __init__(self, detail: str, host: str | None = None):
        from .hints import DAEMON_FIX

        super().__init__(Failure(FailureClass.DAEMON_UNAVAILABLE,
                                 f"cannot talk to the Docker daemon at {host or docker_host()}"
                                 f": {detail}"), DAEMON_FIX)


class Quiet(TimeoutError):
    """The daemon sent nothing for as long as the caller allowed."""


class BadHead(ValueError):
    """What came back is not an HTTP/1.0 reply pullunit can read."""


@dataclass(frozen=True)
class Reply:
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


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split()
    try:
        status = int(parts[1])
    except (IndexError, ValueError):
        raise BadHead(f"bad status line from the engine: {lines[0][:80]!r}") from None
    headers = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise BadHead("the engine answered HTTP/1.0 with a chunked body")
    return status, headers


def request_bytes(method: str, url: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} /{API_VERSION}{url} HTTP/1.0", "Host: docker",
             "User-Agent: pullunit", *(f"{k}: {v}" for k, v in headers.items())]
    if method == "POST":
        lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def open_socket(host: str, timeout: float) -> socket.socket:
    """A connection to the engine at host (unix:// or tcp://), within timeout."""
    try:
        if host.startswith("unix://"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.settimeout(timeout)
                s.connect(host[len("unix://"):])
            except BaseException:
                s.close()
                raise
            return s
        url = urllib.parse.urlsplit(host)
        return socket.create_connection((url.hostname or "", url.port or 2375),
                                        timeout=timeout)
    except TimeoutError:
        raise EngineUnavailable(f"no connection within {timeout:.3g}s", host) from None
    except (OSError, ValueError) as e:
        raise EngineUnavailable(str(e), host) from e


def call(host: str, method: str, url: str, timeout: float,
         headers: dict[str, str] | None = None) -> Reply:
    """One request, the whole reply within `timeout` (else Quiet)."""
    end = time.monotonic() + timeout
    with open_socket(host, timeout) as s:
        try:
            s.sendall(request_bytes(method, url, headers or {}))
            chunks = []
            while True:
                left = end - time.monotonic()
                if left <= 0:
                    raise Quiet(f"no complete answer within {timeout:.3g}s")
                s.settimeout(left)
                data = s.recv(65536)
                if not data:
                    break
                chunks.append(data)
        except Quiet:
            raise
        except TimeoutError:
            raise Quiet(f"no complete answer within {timeout:.3g}s") from None
        except OSError as e:
            raise EngineUnavailable(str(e), host) from e
    head, sep, body = b"".join(chunks).partition(b"\r\n\r\n")
    if not sep:
        raise EngineUnavailable("truncated reply", host)
    try:
        status, hdrs = parse_head(head)
    except BadHead as e:
        raise EngineUnavailable(str(e), host) from e
    return Reply(status, hdrs, body)


class PullReader:
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
        from .pullstream import MessageSplitter

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
            status, _headers = parse_head(head)
        except BadHead as e:
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
        from .pullstream import StreamError, failure_of

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
        reply = Reply(status, {}, b"".join(chunks))
        text = reply.message()
        raise PullFailed.of(classify(text, status), text)

    def abort(self) -> None:
        self._aborted = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            self._sock.close()
