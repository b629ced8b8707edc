"""A per-app flock under /run/pullunit, so two pulls of one app never race on its state.

The wait for it is bounded by the caller: a pull by its pull.deadline, the other commands
by the fixed bounds below. While it waits, SIGTERM still ends the process at once.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import math
import os
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from . import paths
from .durations import human
from .errors import ExitCode, PullunitError
from .fsutil import CannotWrite

# rollback: an operator at a terminal waits this long for a running pull of the app
OPERATOR_WAIT = 30.0
# prefetch: the daily timer job; a pull of the app that holds the lock longer than this is
# retrying a registry that is down anyway, and the next run of the timer tries again
BACKGROUND_WAIT = 300.0
_POLL_MIN, _POLL_MAX = 0.05, 0.5  # seconds between tries while the lock is held


class LockUnsafe(PullunitError):
    def __init__(self, path: Path, why: str):
        super().__init__(f"Cannot use lock file {path}: {why}; refusing to write through it",
                         ExitCode.IOERR, f"remove {path} (only pullunit writes there)")


def open_lock_file(path: Path) -> int:
    """The lock file, created if need be, never through a symlink: root truncates and
    writes it, so a link planted there would make root overwrite the link's target."""
    try:
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
                     | os.O_CLOEXEC, 0o644)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise LockUnsafe(path, "it is a symbolic link") from None
        raise CannotWrite(path, e, "lock file") from e
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise LockUnsafe(path, "it is not a regular file")
        if st.st_nlink != 1:  # a hard link to another file would be truncated the same way
            raise LockUnsafe(path, f"it has {st.st_nlink} hard links")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(fd: int) -> str:
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return text if text.isdigit() else "?"


@contextlib.contextmanager
def app_lock(app: str, on_wait: Callable[[str], None], *, timeout: float,
             clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep) -> Iterator[None]:
    """Hold APP's lock for the body. Waits at most `timeout` seconds (math.inf: until
    the holder ends) for another holder, then raises PullunitError with EX_TEMPFAIL."""
    path = paths.runtime_dir() / f"{app}.lock"
    fd = open_lock_file(path)
    try:
        if not _try_lock(fd):
            bound = "" if math.isinf(timeout) else f" (at most {human(timeout)})"
            on_wait(f"another pull of {app} is running (pid {_holder(fd)}); "
                    f"waiting for it{bound}")
            until = clock() + timeout
            pause = _POLL_MIN
            # Polling, not a blocking flock(): that one has no timeout of its own. A signal
            # handler that raises (pull's SIGTERM) ends the sleep at once.
            while not _try_lock(fd):
                left = until - clock()
                if left <= 0:
                    raise PullunitError(
                        f"{path} is still held by pid {_holder(fd)} after {human(timeout)}: "
                        f"another pullunit command for {app} is running",
                        ExitCode.TEMPFAIL, "try again when it has finished")
                sleep(min(pause, left))
                pause = min(pause * 2, _POLL_MAX)
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as e:  # a full or read-only runtime dir
            raise CannotWrite(path, e, "lock file") from e
        yield
    finally:
        os.close(fd)
