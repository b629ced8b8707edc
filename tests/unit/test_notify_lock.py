"""sd_notify over a real AF_UNIX datagram socket, and the per-app flock across processes."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pullunit.lock import app_lock
from pullunit.notify import Notifier


def test_notify_sends_ready_and_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sock_path = tmp_path / "notify.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(sock_path))
    server.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(sock_path))
    n = Notifier()
    n.status("attempt 1 failed (unreachable)\nsecond line")
    n.status("attempt 1 failed (unreachable)\nsecond line")  # deduplicated
    n.ready("ready: r/app@sha256:abc")
    got = [server.recv(4096).decode(), server.recv(4096).decode()]
    server.setblocking(False)
    with pytest.raises(BlockingIOError):
        server.recv(4096)
    assert got[0] == "STATUS=attempt 1 failed (unreachable) second line"
    assert got[1] == "READY=1\nSTATUS=ready: r/app@sha256:abc"


def test_notify_without_socket_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = Notifier()
    assert not n.enabled
    n.status("x")
    n.ready("y")


HOLD = """
import sys, time
from pullunit.lock import app_lock
with app_lock("web", lambda m: print("WAIT", m, flush=True)):
    print("HELD", flush=True)
    time.sleep(float(sys.argv[1]))
"""


def test_second_pull_waits_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULLUNIT_RUNTIME_DIR", str(tmp_path))
    first = subprocess.Popen([sys.executable, "-c", HOLD, "1.5"], stdout=subprocess.PIPE,
                             text=True)
    assert first.stdout is not None
    assert first.stdout.readline().strip() == "HELD"
    messages: list[str] = []
    t0 = time.monotonic()
    with app_lock("web", messages.append):
        waited = time.monotonic() - t0
    first.wait(5)
    assert waited > 0.8
    assert len(messages) == 1
    assert f"pid {first.pid}" in messages[0] and "waiting" in messages[0]


def test_locks_are_per_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULLUNIT_RUNTIME_DIR", str(tmp_path))
    messages: list[str] = []
    with app_lock("web", messages.append), app_lock("api", messages.append):
        pass
    assert messages == []
