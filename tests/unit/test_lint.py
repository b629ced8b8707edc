"""ruff and mypy (strict, configured in pyproject.toml) are part of the unit tier."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import REPO


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=300)


def test_ruff() -> None:
    probe = _run("ruff", "--version")
    if probe.returncode != 0:
        pytest.skip("ruff is not installed in this environment")
    proc = _run("ruff", "check", "pullunit", "tests", "benchmarks")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy() -> None:
    probe = _run("mypy", "--version")
    if probe.returncode != 0:
        pytest.skip("mypy is not installed in this environment")
    proc = _run("mypy")  # packages and strictness come from [tool.mypy]
    assert proc.returncode == 0, proc.stdout + proc.stderr
