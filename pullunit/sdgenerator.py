"""pullunit-generator: a systemd.generator(7), so a TOML in /etc/pullunit becomes units at
boot and on every `systemctl daemon-reload`, as Quadlet does for podman.

It runs very early and on every reload: it imports neither docker nor pystemd, touches no
network, and logs to /dev/kmsg because the journal may not be up yet.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .config import config_dir_from_env
from .dropins import orphan_dirs, orphan_warning
from .errors import PullunitError
from .unitfiles import generate

PROGRAM = "pullunit-generator"


def _log(priority: int, message: str) -> None:
    line = f"<{priority}>{PROGRAM}[{os.getpid()}]: {message}\n"
    try:
        # kmsg wants one record per write(); it is the only log a generator can rely on.
        fd = os.open("/dev/kmsg", os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
        try:
            os.write(fd, line.encode(errors="replace")[:1000])
            return
        finally:
            os.close(fd)
    except OSError:
        sys.stderr.write(f"{PROGRAM}: {message}\n")


def _enable(normal_dir: Path, unit: str, targets: Sequence[str]) -> None:
    """[Install] sections mean nothing to generated units; link them in by hand."""
    for target in targets:
        wants = normal_dir / f"{target}.wants"
        wants.mkdir(parents=True, exist_ok=True)
        link = wants / unit
        if not link.is_symlink():
            link.symlink_to(f"../{unit}")


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) not in (1, 3):
        sys.stderr.write(f"usage: {PROGRAM} NORMAL_DIR [EARLY_DIR LATE_DIR]\n")
        return 64
    normal_dir = Path(args[0])
    config_dir = config_dir_from_env(None)
    try:
        # systemd hands generators a fresh directory on every boot and reload: fsync
        # would make every daemon-reload wait on the disk for files nobody keeps.
        result = generate(config_dir, normal_dir, durable=False)
        for app in result.apps:
            _enable(normal_dir, app.run_unit, app.unit.wanted_by)
    except PullunitError as e:
        _log(3, e.message)
        return 1
    except Exception as e:  # never take the boot down with a traceback
        _log(3, f"internal error: {type(e).__name__}: {e}")
        return 1
    for err in result.errors:
        _log(3, f"{err.message}; its units were not generated")
    for d in orphan_dirs(config_dir):
        _log(4, orphan_warning(d))
    return 1 if result.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
