"""Logging conventions, checked on the real CLI: journal priority prefixes when stderr is
the journal stream, SYSTEMD_LOG_LEVEL, colour only on a terminal and never with NO_COLOR."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

PULLUNIT = [sys.executable, "-m", "pullunit"]
BAD = '[image]\nref = "nginx:1.25"\n[run]\nportz = 1\n'


@pytest.fixture
def bad_config(tmp_path: Path) -> Path:
    d = tmp_path / "etc"
    d.mkdir()
    (d / "web.toml").write_text(BAD)
    (d / "ok.toml").write_text('[image]\nref = "nginx:1.25"\n')
    return d


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("JOURNAL_STREAM", "NO_COLOR", "SYSTEMD_LOG_LEVEL", "TERM")}
    env.update(extra)
    return env


def test_journal_stream_gets_priority_prefixes(bad_config: Path, tmp_path: Path) -> None:
    log = tmp_path / "journal"
    with open(log, "w") as f:
        st = os.fstat(f.fileno())
        p = subprocess.run([*PULLUNIT, "validate", "--config-dir", str(bad_config)],
                           stderr=f, stdout=subprocess.DEVNULL,
                           env=_env(JOURNAL_STREAM=f"{st.st_dev}:{st.st_ino}"))
    assert p.returncode == 78
    lines = log.read_text().splitlines()
    assert lines and all(line.startswith(("<3>", "<4>", "<6>")) for line in lines), lines
    assert any(line.startswith("<3>") and "run.portz" in line for line in lines)
    assert "pullunit: error:" not in log.read_text()  # the journal adds the identifier


def test_journal_stream_of_another_file_is_ignored(bad_config: Path, tmp_path: Path) -> None:
    other = os.stat(tmp_path)
    p = subprocess.run([*PULLUNIT, "validate", "--config-dir", str(bad_config)],
                       capture_output=True, text=True,
                       env=_env(JOURNAL_STREAM=f"{other.st_dev}:{other.st_ino}"))
    assert p.stderr.startswith("pullunit: error: ")


@pytest.mark.parametrize("level,shown,hidden", [
    ("err", ["run.portz"], ["no app"]),
    ("debug", ["run.portz"], []),
    ("3", ["run.portz"], []),
])
def test_systemd_log_level(bad_config: Path, level: str, shown: list[str],
                           hidden: list[str], tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for cfg in (bad_config, empty):
        p = subprocess.run([*PULLUNIT, "validate", "--config-dir", str(cfg)],
                           capture_output=True, text=True, env=_env(SYSTEMD_LOG_LEVEL=level))
        if cfg == bad_config:
            assert all(s in p.stderr for s in shown)
        else:
            # "no app configs" is a warning: hidden at err, shown at debug
            assert ("no app configs" in p.stderr) == (level != "err" and level != "3")
    assert not any(h in p.stderr for h in hidden)


def _on_a_tty(args: list[str], env: dict[str, str]) -> str:
    """Run the CLI with stdout and stderr on a pseudo-terminal; return what it printed."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(sys.executable, [sys.executable, "-m", "pullunit", *args], env)
    chunks = []
    while True:
        try:
            data = os.read(fd, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    os.waitpid(pid, 0)
    return b"".join(chunks).decode(errors="replace")


def test_colour_only_on_a_terminal_and_never_with_no_color(bad_config: Path) -> None:
    args = ["validate", "--config-dir", str(bad_config)]
    coloured = _on_a_tty(args, _env(TERM="xterm"))
    assert "\033[1;31m" in coloured and "run.portz" in coloured
    plain = _on_a_tty(args, _env(TERM="xterm", NO_COLOR="1"))
    assert "\033[" not in plain and "run.portz" in plain
    piped = subprocess.run([sys.executable, "-m", "pullunit", *args], capture_output=True,
                           text=True, env=_env(TERM="xterm"))
    assert "\033[" not in piped.stderr
