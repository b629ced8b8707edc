"""The host-wide pull limit: at most `max_parallel_pulls` (pullunit.toml) layer pulls at
once, as slot files RUNTIME_DIR/pull-slots/0 .. N-1, each held with flock(2) by the
puller whose pull it counts.

Why flock on files: the kernel drops a lock when its holder dies, so a puller killed by
SIGKILL or the OOM killer never leaks its slot, and no daemon has to keep the count.
Why a limit at all: dockerd pulls each image's layers 3 at a time and has no limit across
pulls, so 30 pull units started at boot split the link 90 ways and every app waits for
the slowest; a few at a time make most apps ready sooner (README, max_parallel_pulls).
The wait is bounded by the caller (the attempt's cutoff); a SIGTERM ends it at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from . import paths
from .applock import open_lock_file
from .durations import human
from .fsutil import CannotWrite

DIR_NAME = "pull-slots"
_POLL_MIN, _POLL_MAX = 0.05, 0.5  # seconds between tries while every slot is taken


class NoSlot(Exception):
    """Every slot stayed taken until the caller's bound."""

    def __init__(self, limit: int, waited: float, holders: list[str]):
        super().__init__(f"all {limit} pull slots stayed in use for {human(waited)}"
                         + (f" ({', '.join(holders)})" if holders else ""))
        self.limit = limit
        self.waited = waited
        self.holders = holders


def slot_dir() -> Path:
    return paths.runtime_dir() / DIR_NAME


def holders(fds: list[int]) -> list[str]:
    """Who holds the slots, as their holders wrote it ("pid 123 web")."""
    out = []
    for fd in fds:
        try:
            text = os.pread(fd, 200, 0).decode(errors="replace").strip()
        except OSError:
            continue
        pid, _, app = text.partition(" ")
        if pid.isdigit():
            out.append(f"pid {pid} {app}".rstrip())
    return out


def _try_take(fds: list[int]) -> int | None:
    """The index of the first slot this process could lock, or None."""
    for i, fd in enumerate(fds):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue
        return i
    return None


@contextlib.contextmanager
def pull_slot(limit: int, who: str, until: float, on_wait: Callable[[str], None], *,
              clock: Callable[[], float], sleep: Callable[[float], None]) -> Iterator[int]:
    """Hold one of `limit` slots for the body (its index). Waits until the clock reads
    `until` at most, then raises NoSlot; `on_wait` hears once that the caller waits."""
    directory = slot_dir()
    fds: list[int] = []
    taken: int | None = None
    try:
        for i in range(limit):
            fds.append(open_lock_file(directory / str(i)))
        started = clock()
        taken = _try_take(fds)
        if taken is None:
            on_wait(f"waiting for a pull slot: all {limit} in use"
                    + (f" ({', '.join(holders(fds))})" if fds else "")
                    + "; max_parallel_pulls in pullunit.toml")
            pause = _POLL_MIN
            # Polling, not a blocking flock(): that has no timeout of its own, and a
            # signal handler that raises (the pull's SIGTERM) ends a sleep at once.
            while taken is None:
                left = until - clock()
                if left <= 0:
                    raise NoSlot(limit, clock() - started, holders(fds))
                sleep(min(pause, left))
                pause = min(pause * 2, _POLL_MAX)
                taken = _try_take(fds)
        fd = fds[taken]
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {who}\n".encode(), 0)
        except OSError as e:  # a full runtime dir: the lock holds all the same
            raise CannotWrite(directory / str(taken), e, "pull slot") from e
        for i, other in enumerate(fds):  # only the slot taken stays open
            if i != taken:
                os.close(other)
        fds = [fd]
        yield taken
    finally:
        for fd in fds:
            os.close(fd)
