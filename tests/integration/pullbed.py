"""Shared by the integration tests: a sandboxed config/state dir and the pullunit CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.testbed import images
from tests.testbed.registry import Registry

PULLUNIT = str(Path(sys.executable).parent / "pullunit")
FAST = '[pull]\ninitial_delay = "300ms"\nmax_delay = "1s"\njitter = "none"\n'


@dataclass
class Result:
    code: int
    out: dict[str, Any]
    err: str
    seconds: float


class Bed:
    """A config dir, state dirs, a HOME without docker credentials, and the CLI."""

    def __init__(self, root: Path):
        self.root = root
        self.cfg = root / "etc"
        self.cfg.mkdir()
        self.home = root / "home"
        self.home.mkdir()
        self.env = {**os.environ, "PULLUNIT_RUNTIME_DIR": str(root / "run"),
                    "PULLUNIT_STATE_DIR": str(root / "state"), "HOME": str(self.home),
                    "NO_COLOR": "1", "SYSTEMD_LOG_LEVEL": "info"}
        for k in ("NOTIFY_SOCKET", "JOURNAL_STREAM", "DOCKER_HOST"):
            self.env.pop(k, None)

    def app(self, name: str, text: str) -> str:
        (self.cfg / f"{name}.toml").write_text(text)
        return name

    def cmd(self, *args: str) -> list[str]:
        return [PULLUNIT, args[0], "--config-dir", str(self.cfg), *args[1:]]

    def pull(self, app: str, *, env: dict[str, str] | None = None,
             timeout: float = 120) -> Result:
        t = time.monotonic()
        p = subprocess.run(self.cmd("pull", app, "--json"), capture_output=True, text=True,
                           env={**self.env, **(env or {})}, timeout=timeout)
        out = json.loads(p.stdout) if p.stdout.strip() else {}
        assert "Traceback" not in p.stderr, p.stderr
        return Result(p.returncode, out, p.stderr, time.monotonic() - t)

    def start_pull(self, app: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(self.cmd("pull", app, "--json"), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                env={**self.env, **(env or {})})

    def env_file(self, app: str) -> str | None:
        p = self.root / "run" / f"{app}.env"
        return p.read_text() if p.exists() else None

    def state(self, app: str) -> dict[str, Any]:
        return json.loads((self.root / "state" / f"{app}.json").read_text())


_counter = iter(range(10**6))


def fresh(client: Any, registry: Registry, repo: str = "team/app") -> images.Pushed:
    """A new image under a new tag, pushed, and absent locally (a cold host)."""
    ref = registry.ref(repo, f"t{os.getpid()}-{next(_counter)}")
    pushed = images.push_new_digest(client, ref)
    client.images.remove(ref, force=True)
    return pushed


def image_config(ref: str, extra: str = "") -> str:
    return f'[image]\nref = "{ref}"\n{extra}'


