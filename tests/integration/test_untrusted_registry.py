"""Defect 10 against the real dockerd: a registry whose 404 carries terminal escapes in
its JSON `message` (dockerd passes the text on unchanged). pullunit's stderr, STATUS=,
state file and `status` (text and --json) show the escapes, never the raw bytes."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from pullbed import Bed, image_config

pytestmark = pytest.mark.integration

# retitle the terminal, clear the screen, a CSI in its one-byte C1 form, a forged line
EVIL = "\x1b]0;pwned\x07\x1b[2J\u009b31mred\nforged: line"
RAW = ("\x1b", "\x07", "\x9b")


class _Evil404(BaseHTTPRequestHandler):
    """/v2/ answers as a registry; every manifest is a 404 with EVIL in its message."""

    protocol_version = "HTTP/1.1"

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/v2/":
            self._send(200, b"{}")
            return
        errors = {"errors": [{"code": "MANIFEST_UNKNOWN", "message": EVIL, "detail": None}]}
        self._send(404, json.dumps(errors).encode())

    do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def evil_registry() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Evil404)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _no_raw(text: str, where: str) -> None:
    found = [c for c in RAW if c in text]
    assert not found, f"raw {found!r} in {where}: {text!r}"


def test_registry_escapes_never_reach_the_terminal(docker_sock: str, evil_registry: str,
                                                   bed: Bed, tmp_path: Path) -> None:
    app = bed.app("evil", image_config(f"{evil_registry}/team/app:1"))
    notify = tmp_path / "notify.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(notify))
    try:
        r = bed.pull(app, env={"NOTIFY_SOCKET": str(notify)}, timeout=60)
        server.setblocking(False)
        datagrams = []
        while True:
            try:
                datagrams.append(server.recv(65536).decode(errors="replace"))
            except BlockingIOError:
                break
    finally:
        server.close()
    assert r.code == 66, r.err  # not found, with the registry's words
    _no_raw(r.err, "stderr")
    assert "\\x1b]0;pwned\\x07\\x1b[2J" in r.err  # visible, so the operator sees the trick
    assert not any(line.startswith("forged") for line in r.err.splitlines())
    for d in datagrams:
        _no_raw(d, "STATUS=")
    message = bed.state(app)["last_failure"]["message"]
    _no_raw(message, "the state file")
    assert "\\x1b[2J" in message

    text = subprocess.run(bed.cmd("status", "evil"), capture_output=True, text=True,
                          env=bed.env, timeout=60)
    _no_raw(text.stdout + text.stderr, "status")
    assert "\\x1b]0;pwned" in text.stdout
    js = subprocess.run(bed.cmd("status", "evil", "--json"), capture_output=True, text=True,
                        env=bed.env, timeout=60)
    _no_raw(js.stdout, "status --json")
    shown = json.loads(js.stdout)["apps"][0]["last_failure"]["message"]
    _no_raw(shown, "status --json, decoded")
    assert "\\x1b]0;pwned" in shown
