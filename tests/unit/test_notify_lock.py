"""sd_notify over a real AF_UNIX datagram socket, and the per-app flock across processes."""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pullunit.applock import app_lock
from pullunit.errors import ExitCode, PullunitError
from pullunit.notify import Notifier

from .conftest import assert_no_traceback, cli_env, run_cli


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
import math, sys, time
from pullunit.applock import app_lock
with app_lock("web", lambda m: print("WAIT", m, flush=True), timeout=math.inf):
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
    with app_lock("web", messages.append, timeout=30):
        waited = time.monotonic() - t0
    first.wait(5)
    assert waited > 0.8
    assert len(messages) == 1
    assert f"pid {first.pid}" in messages[0] and "waiting" in messages[0]
    assert "at most 30s" in messages[0]


def test_locks_are_per_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULLUNIT_RUNTIME_DIR", str(tmp_path))
    messages: list[str] = []
    with app_lock("web", messages.append, timeout=0), app_lock("api", messages.append,
                                                              timeout=0):
        pass
    assert messages == []


# -- a bounded wait: the lock is held by a real second process -------------------------

# Holds the lock the way any process can: flock(2) on RUNTIME_DIR/web.lock, its pid inside.
FLOCK_HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
os.ftruncate(fd, 0)
os.write(fd, f"{os.getpid()}\\n".encode())
print("HELD", flush=True)
time.sleep(float(sys.argv[2]) if len(sys.argv) > 2 else 60)
"""


@pytest.fixture
def holder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[subprocess.Popen[str]]:
    """Another process that holds web's lock for up to a minute."""
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.setenv("PULLUNIT_RUNTIME_DIR", str(run))
    proc = subprocess.Popen([sys.executable, "-c", FLOCK_HOLD, str(run / "web.lock")],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "HELD"
    yield proc
    proc.kill()
    proc.wait(5)


def test_lock_wait_ends_at_its_timeout(holder: subprocess.Popen[str]) -> None:
    t0 = time.monotonic()
    with pytest.raises(PullunitError) as err, app_lock("web", lambda m: None, timeout=1.0):
        pytest.fail("the lock is held by another process")
    assert 0.9 <= time.monotonic() - t0 < 5
    assert err.value.exit_code is ExitCode.TEMPFAIL
    assert f"held by pid {holder.pid}" in err.value.message


def _pull_app(tmp_path: Path, extra: str = "") -> Path:
    cfg = tmp_path / "etc"
    cfg.mkdir(exist_ok=True)
    (cfg / "web.toml").write_text('[image]\nref = "127.0.0.1:9/team/app:1"\n' + extra)
    return cfg


def test_pull_waits_no_longer_than_its_deadline(tmp_path: Path,
                                                holder: subprocess.Popen[str]) -> None:
    """Was: the second pull of an app waited on the lock forever."""
    cfg = _pull_app(tmp_path, '[pull]\ndeadline = "2s"\n')
    env = cli_env(PULLUNIT_RUNTIME_DIR=str(tmp_path / "run"),
                  PULLUNIT_STATE_DIR=str(tmp_path / "state"))
    t0 = time.monotonic()
    p = run_cli("pull", "--config-dir", cfg, "web", env=env)
    assert time.monotonic() - t0 < 15
    assert_no_traceback(p.stderr)
    assert p.returncode == ExitCode.TEMPFAIL, p.stderr
    assert f"pid {holder.pid}" in p.stderr and "still held" in p.stderr


def test_the_lock_wait_counts_against_the_pull_deadline(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """`deadline` bounds the whole pull: time spent waiting for another pull's lock is
    not given again to the attempts (was: lock wait + a full deadline of retries)."""
    run = tmp_path / "run"
    run.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", FLOCK_HOLD, str(run / "web.lock"), "4"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "HELD"
        cfg = _pull_app(tmp_path, "[pull]\ndeadline = \"6s\"\ninitial_delay = \"0.5s\"\n"
                        "multiplier = 1.0\njitter = \"none\"\n")
        env = cli_env(PULLUNIT_RUNTIME_DIR=str(run), PULLUNIT_STATE_DIR=str(tmp_path / "state"),
                      DOCKER_HOST=f"unix://{tmp_path}/no-docker.sock")
        t0 = time.monotonic()
        p = run_cli("pull", "--config-dir", cfg, "web", env=env)
        took = time.monotonic() - t0
    finally:
        holder.kill()
        holder.wait(5)
    assert_no_traceback(p.stderr)
    assert p.returncode == ExitCode.UNAVAILABLE, p.stderr  # the daemon never answered
    assert "waiting for it" in p.stderr
    # 4 s on the lock, then retries every 0.5 s until 6 s after the start: not 4 + 6 s
    assert took < 8.5, p.stderr


def test_sigterm_ends_a_pull_waiting_for_the_lock(tmp_path: Path,
                                                  holder: subprocess.Popen[str]) -> None:
    cfg = _pull_app(tmp_path)  # deadline infinity: only SIGTERM ends this wait
    env = cli_env(PULLUNIT_RUNTIME_DIR=str(tmp_path / "run"),
                  PULLUNIT_STATE_DIR=str(tmp_path / "state"))
    proc = subprocess.Popen([str(Path(sys.executable).parent / "pullunit"), "pull",
                             "--config-dir", str(cfg), "web"], env=env, text=True,
                            stderr=subprocess.PIPE)
    assert proc.stderr is not None
    line = proc.stderr.readline()
    assert "waiting for it" in line and f"pid {holder.pid}" in line
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == ExitCode.SIGTERM, err
    assert_no_traceback(err)


# -- defect 5: the lock file is never written through a link ---------------------------

def test_symlink_at_the_lock_path_is_refused(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Was: root truncated the link's target and wrote its pid into it."""
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.setenv("PULLUNIT_RUNTIME_DIR", str(run))
    target = tmp_path / "passwd"
    target.write_text("root:x:0:0::/root:/bin/sh\n")
    (run / "web.lock").symlink_to(target)
    with pytest.raises(PullunitError) as err, app_lock("web", lambda m: None, timeout=0):
        pytest.fail("locked through a symlink")
    assert err.value.exit_code is ExitCode.IOERR
    assert "symbolic link" in err.value.message and str(run / "web.lock") in err.value.message
    assert target.read_text() == "root:x:0:0::/root:/bin/sh\n"
    # the same through the CLI: a clear error, the target untouched
    cfg = _pull_app(tmp_path)
    p = run_cli("pull", "--config-dir", cfg, "web",
                env=cli_env(PULLUNIT_RUNTIME_DIR=str(run),
                            PULLUNIT_STATE_DIR=str(tmp_path / "state")))
    assert_no_traceback(p.stderr)
    assert p.returncode == ExitCode.IOERR and "symbolic link" in p.stderr
    assert target.read_text() == "root:x:0:0::/root:/bin/sh\n"


@pytest.mark.parametrize("kind", ["fifo", "directory", "hard link"])
def test_lock_path_that_is_not_a_plain_file_is_refused(
        kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.setenv("PULLUNIT_RUNTIME_DIR", str(run))
    path = run / "web.lock"
    other = tmp_path / "other"
    other.write_text("keep me\n")
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        os.link(other, path)
    with pytest.raises(PullunitError) as err, app_lock("web", lambda m: None, timeout=0):
        pytest.fail("locked a file that is not pullunit's")
    assert err.value.exit_code is ExitCode.IOERR and str(path) in err.value.message
    assert other.read_text() == "keep me\n"


def test_lock_records_the_holder_pid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULLUNIT_RUNTIME_DIR", str(tmp_path))
    (tmp_path / "web.lock").write_text("a much longer leftover line\n")
    with app_lock("web", lambda m: None, timeout=math.inf):
        assert (tmp_path / "web.lock").read_text() == f"{os.getpid()}\n"
