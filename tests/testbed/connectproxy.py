"""A small forward proxy on loopback, the kind docker.service's HTTP(S)_PROXY points at:
CONNECT tunnels (for https) and absolute-form GETs (for http), optionally asking for
Basic credentials (407) or refusing everything (403). It records what it was asked, so a
test can see that traffic went through it. Only allowed addresses are forwarded to
(loopback and the test bed's own namespaces); every socket has a timeout and the copy
threads end with their connection.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import threading
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from . import _util as u

TIMEOUT = 30.0


@dataclass
class ProxyLog:
    requests: list[tuple[str, str]] = field(default_factory=list)  # (method, target)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, method: str, target: str) -> None:
        with self.lock:
            self.requests.append((method, target))


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


class ConnectProxy:
    """ConnectProxy(credentials=("user", "pw") | None, deny=False).start(); .url, .port,
    .log.requests, .close()."""

    def __init__(self, credentials: tuple[str, str] | None = None, deny: bool = False):
        self.credentials = credentials
        self.deny = deny
        self.log = ProxyLog()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = TIMEOUT

            def log_message(self, *args: Any) -> None:
                pass

            def _refuse(self) -> bool:
                if outer.deny:
                    self.send_response(403, "Forbidden")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return True
                if outer.credentials is not None:
                    want = "Basic " + base64.b64encode(
                        ":".join(outer.credentials).encode()).decode()
                    if self.headers.get("Proxy-Authorization") != want:
                        self.send_response(407, "Proxy Authentication Required")
                        self.send_header("Proxy-Authenticate", 'Basic realm="test"')
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return True
                return False

            def do_CONNECT(self) -> None:
                outer.log.add("CONNECT", self.path)
                if self._refuse():
                    return
                host, _, port = self.path.rpartition(":")
                host = host.strip("[]")
                u.assert_allowed_address(host)
                upstream = socket.create_connection((host, int(port)), timeout=TIMEOUT)
                self.send_response(200, "Connection established")
                self.end_headers()
                self.wfile.flush()
                t = threading.Thread(target=_pipe, args=(upstream, self.connection),
                                     daemon=True)
                t.start()
                _pipe(self.connection, upstream)
                t.join(TIMEOUT)
                upstream.close()
                self.close_connection = True

            def do_GET(self) -> None:
                outer.log.add("GET", self.path)
                if self._refuse():
                    return
                url = urllib.parse.urlsplit(self.path)
                if url.scheme != "http" or not url.hostname:
                    self.send_response(400, "absolute URL required")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                u.assert_allowed_address(url.hostname)
                path = url.path + (f"?{url.query}" if url.query else "")
                with socket.create_connection((url.hostname, url.port or 80),
                                              timeout=TIMEOUT) as up:
                    head = f"GET {path} HTTP/1.1\r\nConnection: close\r\n"
                    for k, v in self.headers.items():
                        if k.lower() not in ("proxy-authorization", "connection"):
                            head += f"{k}: {v}\r\n"
                    up.sendall((head + "\r\n").encode())
                    while True:
                        data = up.recv(65536)
                        if not data:
                            break
                        self.wfile.write(data)
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ConnectProxy:
        self.thread.start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)

    def __enter__(self) -> ConnectProxy:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()
