"""rollback checks what the restart needs before it changes anything (issue 14, defect 16).
The full case, with a real engine and image, is
tests/integration/test_operations.py::test_rollback_that_cannot_restart_changes_nothing."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from pullunit import systemd
from pullunit.errors import ExitCode, PullunitError

from .conftest import assert_no_traceback, cli_env, run_cli


def test_no_systemd_is_69_before_anything_else(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(systemd, "booted", lambda: False)
    with pytest.raises(PullunitError) as e:
        systemd.check_restart("web.service")
    assert e.value.exit_code is ExitCode.UNAVAILABLE
    assert e.value.message == ("cannot restart web.service: systemd is not running as PID 1 "
                               "here")


def test_not_root_is_77(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(systemd, "booted", lambda: True)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(PullunitError) as e:
        systemd.check_restart("web.service")
    assert e.value.exit_code is ExitCode.NOPERM
    assert "must be root" in e.value.message


@pytest.mark.skipif(systemd.booted(), reason="this host runs systemd as PID 1")
def test_rollback_checks_systemd_first(tmp_path: Path, config_dir: Path,
                                       write_app: Callable[..., Path]) -> None:
    """Without systemd, the rollback stops before it asks the engine anything (here there
    is no engine at all) and before it writes anything."""
    write_app("web", '[image]\nref = "registry.test:5000/team/web:1"\n')
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    entry = {"reference": "registry.test:5000/team/web@sha256:" + "1" * 64,
             "digest": "sha256:" + "1" * 64, "image_id": "sha256:" + "2" * 64,
             "first_ready": 1.0, "last_ready": 1.0, "image": "registry.test:5000/team/web:1"}
    newer = {**entry, "reference": entry["reference"].replace("1" * 64, "3" * 64),
             "digest": "sha256:" + "3" * 64, "image_id": "sha256:" + "4" * 64}
    state_file = state_dir / "web.json"
    state_file.write_text(json.dumps({"schema": 1, "app": "web", "current": newer,
                                      "history": [newer, entry]}))
    before = state_file.read_bytes()
    env = cli_env(PULLUNIT_STATE_DIR=str(state_dir), PULLUNIT_RUNTIME_DIR=str(tmp_path / "run"),
                  DOCKER_HOST=f"unix://{tmp_path}/no-engine.sock")
    p = run_cli("rollback", "--config-dir", config_dir, "web", env=env)
    assert_no_traceback(p.stderr)
    assert p.returncode == 69, p.stderr
    assert "cannot restart web.service: systemd is not running as PID 1" in p.stderr
    assert state_file.read_bytes() == before
    assert not (tmp_path / "run" / "web.env").exists()
    assert not (config_dir / "web.lock.toml").exists()
