"""A misbehaving server in front of a real registry: faults nginx cannot easily show.

``FaultFront(upstream, mode)`` runs a small ``ThreadingHTTPServer`` (this file, run as
its own process so it has a pid for the cleanup records and can be SIGSTOPped) on
127.0.0.1:PORT. It answers ``/v2/`` and everything else by relaying to the registry,
and misbehaves on ``/manifests/`` and ``/blobs/sha256:`` (``on`` narrows that) by mode:

* ``pass``: relay like everything else.
* ``blackhole``: accept the request and never answer (the connection stays open until
  the client goes away or the front stops).
* ``trickle``: send the status line, then one header byte every ``every`` seconds,
  forever: the response headers never end.
* ``html404``: 404 with an HTML body (not the registry's JSON error format).
* ``empty404``: 404 with an empty body.
* ``status503``: 503 with a registry-style JSON error body.
* ``corrupt``: relay, but flip one byte in the middle of every GET body (same length,
  so the blob no longer matches its digest); ``corrupt_once``: only the first matching
  GET, then relay (a corruption that clears on the next try).

``match`` (a regex on the path) narrows the misbehaviour further, e.g. to one blob's
digest.

Change the mode while it runs with :meth:`FaultFront.set_mode`. Every request is logged
as a JSON line (``requests()``), written when it starts, so a request that is never
answered shows up too. Push straight to the registry; pull through the front.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import re
import secrets
import signal
import socket
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MODES = ("pass", "blackhole", "trickle", "html404", "empty404", "status503", "corrupt",
         "corrupt_once")
PATHS = {"manifests": re.compile(r"^/v2/.+/manifests/"),
         "blobs": re.compile(r"^/v2/.+/blobs/sha256:")}
CONTROL = "/__testbed/mode"
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
              "trailer", "upgrade"}
HTML404 = b"<html><head><title>404</title></head><body><h1>nothing here</h1></body></html>\n"
UNAVAILABLE = json.dumps({"errors": [{"code": "UNAVAILABLE", "message": "fault front says 503",
                                      "detail": None}]}).encode()


# ------------------------------------------------------------------- the server process


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int, upstream: str, mode: str, on: set[str], every: float,
                 log: Path, match: str | None = None) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.upstream = upstream
        self.mode = mode
        self.on = on
        self.every = every
        self.match = re.compile(match) if match else None
        self.corrupted = 0  # GET bodies corrupted so far (corrupt_once: at most one)
        self.stopping = threading.Event()
        self._log = open(log, "a", buffering=1)  # noqa: SIM115 (lives as long as the server)
        self._log_lock = threading.Lock()

    def record(self, method: str, path: str, mode: str) -> None:
        with self._log_lock:
            self._log.write(json.dumps({"time": time.time(), "method": method, "path": path,
                                        "mode": mode}) + "\n")


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"  # one request per connection: no chunking to relay

    def log_message(self, format: str, *args: Any) -> None:
        pass  # requests go to the JSON log instead

    def _mode(self) -> str:
        path = urllib.parse.urlsplit(self.path).path
        if any(PATHS[k].search(path) for k in self.server.on) and (
                self.server.match is None or self.server.match.search(path)):
            return self.server.mode
        return "pass"

    def _handle(self) -> None:
        if self.path.startswith(CONTROL):
            return self._control()
        mode = self._mode()
        self.server.record(self.command, self.path, mode)
        if mode == "blackhole":
            # Hold the connection: wake when the client goes away or the front stops.
            self.connection.settimeout(0.2)
            while not self.server.stopping.is_set():
                try:
                    if self.connection.recv(1, socket.MSG_PEEK) == b"":
                        return
                except TimeoutError:
                    continue
                except OSError:
                    return
                self.server.stopping.wait(0.2)
            return
        if mode == "trickle":
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            self.wfile.flush()
            header = b"X-Trickle: " + b"a" * 1_000_000
            for byte in header:
                if self.server.stopping.wait(self.server.every):
                    return
                try:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                except OSError:
                    return
            return
        if mode in ("html404", "empty404", "status503"):
            body = {"html404": HTML404, "empty404": b"", "status503": UNAVAILABLE}[mode]
            self.send_response(503 if mode == "status503" else 404)
            self.send_header("Content-Type",
                             "application/json" if mode == "status503" else "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
            return
        corrupt = self.command == "GET" and (
            mode == "corrupt" or (mode == "corrupt_once" and self.server.corrupted == 0))
        if corrupt:
            self.server.corrupted += 1
        self._relay(corrupt)

    def _control(self) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        if "set" in query:
            mode = query["set"][0]
            if mode not in MODES:
                self.send_error(400, f"unknown mode {mode}")
                return
            self.server.mode = mode
        body = self.server.mode.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _relay(self, corrupt: bool = False) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        host, port = self.server.upstream.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        try:
            # Header by header: dockerd sends several Accept headers (one per manifest
            # type), and the registry picks the manifest format from all of them.
            conn.putrequest(self.command, self.path, skip_host=True,
                            skip_accept_encoding=True)
            for k, v in self.headers.items():
                if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                    conn.putheader(k, v)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            resp = conn.getresponse()
            self.send_response(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in HOP_BY_HOP:
                    self.send_header(k, v)
            self.end_headers()
            if corrupt and resp.status == 200:
                data = bytearray(resp.read())
                if data:
                    data[len(data) // 2] ^= 0xFF
                self.wfile.write(bytes(data))
                return
            while chunk := resp.read(65536):
                self.wfile.write(chunk)
        except OSError:
            return
        finally:
            conn.close()

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


def serve(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="faultfront")
    p.add_argument("--dir", required=True)  # our work dir: the cleanup marker
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--upstream", required=True)
    p.add_argument("--mode", choices=MODES, default="pass")
    p.add_argument("--on", default="manifests,blobs")
    p.add_argument("--every", type=float, default=2.0)
    p.add_argument("--match", default=None)
    a = p.parse_args(argv)
    server = _Server(a.port, a.upstream, a.mode, set(a.on.split(",")), a.every,
                     Path(a.dir) / "requests.jsonl", a.match)

    def stop(signum: int, frame: Any) -> None:
        server.stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever(poll_interval=0.1)
    return 0


# ------------------------------------------------------------------- the test side


@dataclass(frozen=True)
class FrontRequest:
    time: float
    method: str
    path: str
    mode: str


class FaultFront:
    """The front as a test bed component: start(), stop(), close(), set_mode()."""

    def __init__(self, upstream: Any, mode: str = "pass", *, name: str = "front",
                 on: tuple[str, ...] = ("manifests", "blobs"), every: float = 2.0,
                 match: str | None = None, owner: int | str | None = None) -> None:
        from . import _util as u

        self.upstream = upstream if isinstance(upstream, str) else str(upstream.address)
        u.assert_allowed_address(self.upstream.rsplit(":", 1)[0])
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        self.mode, self.on, self.every, self.name = mode, on, every, name
        self.match = match
        self.port = u.free_port()
        u.WORK_BASE.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=f"front-{name}-", dir=u.WORK_BASE))
        self.log = self.dir / "requests.jsonl"
        self.proc: Any = None
        self.rec = u.Record(id=f"front-{name}-{secrets.token_hex(3)}", kind="faultfront",
                            owner=owner if owner is not None else os.getpid(),
                            paths=[str(self.dir)], markers=[str(self.dir)])
        u.save_record(self.rec)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def ref(self, repo: str, tag: str = "latest") -> str:
        return f"{self.address}/{repo}:{tag}"

    def via(self, ref: str) -> str:
        """The same repository and tag/digest as *ref* (host:port/...), through the front."""
        return f"{self.address}/{ref.split('/', 1)[1]}"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 15) -> FaultFront:
        from . import _util as u

        if self.running():
            return self
        argv = [sys.executable, "-m", "tests.testbed.faultfront", "--dir", str(self.dir),
                "--port", str(self.port), "--upstream", self.upstream, "--mode", self.mode,
                "--on", ",".join(self.on), "--every", str(self.every)]
        if self.match:
            argv += ["--match", self.match]
        root = str(Path(__file__).resolve().parents[2])
        self.proc = u.spawn(argv, self.dir / "stderr.log", cwd=root,
                            env=u.clean_env({"PYTHONPATH": root}))
        self.rec.pids = [(self.proc.pid, str(self.dir))]
        u.save_record(self.rec)

        def up() -> bool:
            if self.proc.poll() is not None:
                raise u.TestbedError(f"fault front {self.name} exited {self.proc.returncode}:"
                                     f"\n{u.log_tail(self.dir / 'stderr.log')}")
            return self._control() == self.mode

        u.wait_for(up, timeout, 0.05, f"fault front {self.name} on {self.address}")
        return self

    def _control(self, mode: str | None = None) -> str | None:
        from . import _util as u

        query = f"?set={mode}" if mode else ""
        try:
            r = u.http("GET", f"{self.url}{CONTROL}{query}", timeout=2)
        except OSError:
            return None
        return r.body.decode() if r.status == 200 else None

    def set_mode(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        self.mode = mode
        if self.running() and self._control(mode) != mode:
            from . import _util as u

            raise u.TestbedError(f"fault front {self.name} did not switch to {mode}")

    def stop(self) -> None:
        from . import _util as u

        if self.proc is not None:
            u.stop_pid(self.proc.pid, str(self.dir), 10)
            with contextlib.suppress(Exception):
                self.proc.wait(5)
            self.proc = None
        self.rec.pids = []
        u.save_record(self.rec)

    def close(self) -> None:
        from . import _util as u

        self.stop()
        u.undo_record(self.rec)

    def __enter__(self) -> FaultFront:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def requests(self) -> list[FrontRequest]:
        """Requests so far, oldest first, logged when they arrived."""
        out = []
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []
        for line in lines:
            with contextlib.suppress(ValueError, KeyError):
                d = json.loads(line)
                out.append(FrontRequest(float(d["time"]), d["method"], d["path"], d["mode"]))
        return out

    def count(self, pattern: str, mode: str | None = None) -> int:
        rx = re.compile(pattern)
        return sum(1 for r in self.requests()
                   if rx.search(r.path) and (mode is None or r.mode == mode))

    def __repr__(self) -> str:
        return f"FaultFront({self.name!r}, {self.url} -> {self.upstream}, {self.mode})"


if __name__ == "__main__":
    sys.exit(serve(sys.argv[1:]))
