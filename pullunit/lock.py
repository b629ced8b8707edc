"""A per-app flock under /run/pullunit, so two pulls of one app never race on its state."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator

from . import paths
from .errors import ExitCode, PullunitError


@contextlib.contextmanager
def app_lock(app: str, on_wait: Callable[[str], None]) -> Iterator[None]:
    path = paths.runtime_dir() / f"{app}.lock"
    try:
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise PullunitError(f"Cannot open lock {path}: {e.strerror}", ExitCode.CANTCREAT) from e
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            on_wait(f"another pull of {app} is running (pid {holder}); waiting for it")
            fcntl.flock(fd, fcntl.LOCK_EX)  # a signal handler that raises interrupts this
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)
