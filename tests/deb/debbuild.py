"""Build the Debian package with `make deb`, at most once at a time on this machine.

`make deb` is incremental (the .deb depends on every source file), so calling this from
several test modules or tiers in one session builds once and then costs a make run.
Used by tests/deb and by tests/e2e/test_deb_install.py.
"""

from __future__ import annotations

import fcntl
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Built:
    deb: Path
    version: str  # the Debian version, from pullunit.__version__
    seconds: float  # how long `make deb` took (about 0 when it was up to date)
    log: str


def debian_version() -> str:
    text = (REPO / "pullunit" / "__init__.py").read_text()
    m = re.search(r'^__version__ = "([^"]+)"$', text, re.M)
    assert m, "no __version__ in pullunit/__init__.py"
    return re.sub(r"\.?(a|b|rc|dev)(\d*)", r"~\1\2", m.group(1)).replace(".post", "+post")


def build_deb(timeout: float = 900) -> Built:
    lock = REPO / "build" / ".make-deb.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            t0 = time.monotonic()
            proc = subprocess.run(["make", "--no-print-directory", "deb"], cwd=REPO,
                                  capture_output=True, text=True, timeout=timeout)
            seconds = time.monotonic() - t0
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise AssertionError(f"make deb failed ({proc.returncode}):\n{log[-6000:]}")
    version = debian_version()
    deb = REPO / "out" / f"pullunit_{version}_all.deb"
    assert deb.is_file(), f"make deb succeeded but {deb} is missing"
    return Built(deb, version, seconds, log)
