"""doctor says what the pull unit says about a failing credential helper (issue 10): the
`credentials` check fails with the helper named, and its fix names the config entry
(credsStore/credHelpers) and file that name it, not "access denied". Real helper scripts
on PATH, the real CLI, a real registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pullbed import Bed, fresh, image_config

from tests.testbed.registry import Registry

pytestmark = pytest.mark.integration
PULLUNIT = str(Path(sys.executable).parent / "pullunit")


@pytest.mark.parametrize("kind,said", [
    ("missing", "is not installed or not on PATH"),
    ("exits1", "failed with exit status 1"),
    ("garbage", "not {\"Username\", \"Secret\"} JSON"),
    ("hangs", "did not answer"),
])
def test_doctor_names_the_failing_helper_and_its_config(
        tmp_path: Path, bed: Bed, client: Any, registry: Registry, kind: str,
        said: str) -> None:
    helpers = tmp_path / "helpers"
    helpers.mkdir()
    body = {"exits1": "echo 'keyring locked' >&2\nexit 1\n", "garbage": "echo nope\n",
            "hangs": "exec sleep 30\n"}.get(kind)
    name = f"pu{kind}"
    if body is not None:
        script = helpers / f"docker-credential-{name}"
        script.write_text("#!/bin/sh\n" + body)
        script.chmod(0o755)
    config = bed.home / ".docker" / "config.json"
    config.parent.mkdir()
    config.write_text(json.dumps({"credHelpers": {registry.address: name}}))
    p = fresh(client, registry, "pu-regclasses/creds")
    app = bed.app("creds", image_config(p.ref))
    env = {**bed.env, "PATH": f"{helpers}:{os.environ.get('PATH', '/usr/bin:/bin')}"}
    proc = subprocess.run([PULLUNIT, "doctor", "--config-dir", str(bed.cfg), app, "--json"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    checks = {c["check"]: c for c in json.loads(proc.stdout)[0]["checks"]}
    cred = checks["credentials"]
    assert cred["status"] == "fail", cred
    assert f"docker-credential-{name}" in cred["detail"] and said in cred["detail"], cred
    where = f"credHelpers['{registry.address}'] in {config}"
    assert cred["hint"].startswith(f"this host's credential helper docker-credential-{name} "
                                   f"({where}) must answer without a prompt"), cred
    assert "docker login" not in cred["hint"]
    assert checks["manifest"]["status"] == "skip"
