"""Shared fixtures for the unit tier: a clean environment, app-config writers and a CLI
runner that executes the real console entry points in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
BIN = Path(sys.executable).parent
MINIMAL = '[image]\nref = "nginx:1.25"\n'
# Environment variables that change what pullunit renders or how it logs.
_PULLUNIT_ENV = ("PULLUNIT_CONFIG_DIR", "PULLUNIT_RUNTIME_DIR", "PULLUNIT_STATE_DIR",
                 "PULLUNIT_EXECUTABLE", "SYSTEMD_LOG_LEVEL", "JOURNAL_STREAM")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _PULLUNIT_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_COLOR", "1")


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for a pullunit subprocess: deterministic, pull ExecStart=/usr/bin/true."""
    env = {k: v for k, v in os.environ.items() if k not in _PULLUNIT_ENV}
    env.update({"NO_COLOR": "1", "PULLUNIT_EXECUTABLE": "/usr/bin/true", "LC_ALL": "C.UTF-8"})
    env.update(extra)
    return env


def run_cli(*args: str | Path, cwd: str | Path | None = None, env: dict[str, str] | None = None,
            program: str = "pullunit") -> subprocess.CompletedProcess[str]:
    """Run an installed console script (pullunit, pullunit-generator) of this venv."""
    exe = BIN / program
    assert exe.exists(), f"{exe} is missing: pip install -e . into {BIN.parent}"
    return subprocess.run([str(exe), *map(str, args)], cwd=cwd, env=env or cli_env(),
                          capture_output=True, text=True, timeout=60)


def assert_no_traceback(text: str) -> None:
    assert "Traceback" not in text, text
    assert "internal error" not in text, text


@pytest.fixture
def config_dir(tmp_path: Path) -> Path:
    d = tmp_path / "etc-pullunit"
    d.mkdir()
    return d


@pytest.fixture
def output_dir(tmp_path: Path) -> Path:
    d = tmp_path / "units"
    d.mkdir()
    return d


@pytest.fixture
def write_app(config_dir: Path) -> Callable[..., Path]:
    def write(name: str, text: str = MINIMAL) -> Path:
        path = config_dir / f"{name}.toml"
        path.write_text(text, encoding="utf-8")
        return path
    return write
