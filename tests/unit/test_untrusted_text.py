"""Defect 10: text from the daemon and the registry (and so from whoever runs the
registry) never reaches a terminal, the journal, STATUS= or the state file with its
control characters intact: they become visible escapes (\\x1b)."""

from __future__ import annotations

import io
import json
import socket
from pathlib import Path

import pytest

from pullunit import log as logsetup
from pullunit.notify import Notifier
from pullunit.printable import printable, printable_lines

from .conftest import assert_no_traceback, cli_env, run_cli

# what a registry put in a 404's JSON "message": retitle the terminal, clear the screen
TITLE_CLEAR = "\x1b]0;pwned\x07\x1b[2J"
REGISTRY_TEXT = f"manifest unknown: {TITLE_CLEAR}gone"


@pytest.mark.parametrize("raw,shown", [
    ("plain text, ünïcödé and 日本", "plain text, ünïcödé and 日本"),
    ("\x1b[2J", "\\x1b[2J"),
    ("\x1b]0;t\x07", "\\x1b]0;t\\x07"),
    ("a\tb\r\nc\x00\x7f", "a\\x09b\\x0d\\x0ac\\x00\\x7f"),
    ("\x9b2J \x85", "\\x9b2J \\x85"),  # C1: CSI and NEL
    ("abc\u202edef\u2066", "abc\\u202edef\\u2066"),  # bidi overrides
    ("x\u2028y", "x\\u2028y"),  # a line separator to str.splitlines()
    ("\ud800", "\\ud800"),  # a lone surrogate (JSON "\\ud800") cannot even be encoded
])
def test_printable(raw: str, shown: str) -> None:
    assert printable(raw) == shown
    assert printable(shown) == shown  # idempotent
    assert printable(raw).isprintable()


def test_printable_lines_keeps_line_structure() -> None:
    assert printable_lines("one\x1b[2J\ntwo\r") == "one\\x1b[2J\ntwo\\x0d"


def _log_lines(monkeypatch: pytest.MonkeyPatch, journal: bool, *args: object,
               fmt: str = "pull failed (not_found): %s; fix: %s") -> str:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    monkeypatch.setattr(logsetup, "stderr_is_journal", lambda: journal)
    logger = logsetup.setup()
    logger.error(fmt, *args)
    return stream.getvalue()


@pytest.mark.parametrize("journal", [False, True], ids=["terminal", "journal"])
def test_log_line_escapes_daemon_text(monkeypatch: pytest.MonkeyPatch, journal: bool) -> None:
    out = _log_lines(monkeypatch, journal, REGISTRY_TEXT + "\n<0>forged emergency",
                     "check the tag")
    assert "\x1b" not in out and "\x07" not in out
    assert "\\x1b]0;pwned\\x07\\x1b[2Jgone" in out
    # the registry's line feed does not make a line of its own (nor a forged priority)
    assert out.count("\n") == 1 and "\\x0a<0>forged" in out


def test_log_line_escapes_exceptions_and_fstrings(monkeypatch: pytest.MonkeyPatch) -> None:
    out = _log_lines(monkeypatch, False, RuntimeError(REGISTRY_TEXT), fmt="boom: %s")
    assert "\x1b" not in out and "\\x1b[2J" in out
    out = _log_lines(monkeypatch, False, fmt=f"inline {REGISTRY_TEXT}")
    assert "\x1b" not in out and "\\x1b[2J" in out


def test_numbers_keep_their_format(monkeypatch: pytest.MonkeyPatch) -> None:
    out = _log_lines(monkeypatch, False, 3, 1.5, fmt="attempt %d, %.2f s")
    assert out == "pullunit: error: attempt 3, 1.50 s\n"


def test_colour_is_still_pullunits_own(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    monkeypatch.setattr(logsetup, "use_color", lambda: True)
    logsetup.setup().warning("%s", TITLE_CLEAR)
    out = stream.getvalue()
    assert out.startswith("\033[1;33m") and out.endswith("\033[0m\n")
    assert "\\x1b]0;pwned" in out and out.count("\033") == 2


def test_status_line_escapes_daemon_text(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    sock_path = tmp_path / "notify.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(sock_path))
    server.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", str(sock_path))
    n = Notifier()
    n.status(f"attempt 1 failed (not_found): {REGISTRY_TEXT}")
    n.ready(f"WARNING: running on the local image: {REGISTRY_TEXT}")
    got = [server.recv(4096).decode(), server.recv(4096).decode()]
    assert all("\x1b" not in g and "\x07" not in g for g in got), got
    assert got[0] == "STATUS=attempt 1 failed (not_found): manifest unknown: " \
        "\\x1b]0;pwned\\x07\\x1b[2Jgone"
    assert got[1].startswith("READY=1\nSTATUS=WARNING")


def test_status_does_not_replay_escapes_from_the_state_file(tmp_path: Path) -> None:
    """A state file written by an older pullunit (or by anyone) with raw escapes."""
    cfg = tmp_path / "etc"
    cfg.mkdir()
    (cfg / "web.toml").write_text('[image]\nref = "127.0.0.1:9/team/app:1"\n')
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    entry = {"reference": f"127.0.0.1:9/team/app@sha256:{'1' * 64}{TITLE_CLEAR}",
             "digest": None, "image_id": "sha256:" + "2" * 64, "first_ready": 1.0,
             "last_ready": 2.0}
    (state_dir / "web.json").write_text(json.dumps({
        "schema": 1, "current": entry, "history": [entry],
        "last_failure": {"at": 1.0, "cls": "not_found", "message": REGISTRY_TEXT,
                         "exit_code": 66}}))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "web.env").write_text(f"PULLUNIT_IMAGE=x{TITLE_CLEAR}\n")
    env = cli_env(PULLUNIT_STATE_DIR=str(state_dir), PULLUNIT_RUNTIME_DIR=str(run_dir))
    text = run_cli("status", "--config-dir", cfg, env=env)
    assert_no_traceback(text.stderr)
    assert text.returncode == 1
    for out in (text.stdout, text.stderr):
        assert "\x1b" not in out and "\x07" not in out, out
    assert "manifest unknown: \\x1b]0;pwned\\x07\\x1b[2Jgone" in text.stdout
    assert "in use:   x\\x1b]0;pwned" in text.stdout
    js = run_cli("status", "--config-dir", cfg, "--json", env=env)
    assert "\x1b" not in js.stdout
    app = json.loads(js.stdout)["apps"][0]
    assert app["last_failure"]["message"] == "manifest unknown: \\x1b]0;pwned\\x07\\x1b[2Jgone"
    assert app["in_use"] == "x\\x1b]0;pwned\\x07\\x1b[2J"

