"""pullslots: the host-wide pull limit as N flock'd slot files. Real files and real flock
(the kernel is the part that releases a dead holder's slot); the clock and the sleep of
the wait are fakes, so nothing here waits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from pullunit import pullslots
from pullunit.applock import LockUnsafe
from pullunit.pullslots import NoSlot, pull_slot


class Clock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("PULLUNIT_RUNTIME_DIR", str(tmp_path))
    yield tmp_path / "pull-slots"


def take(stack: ExitStack, limit: int, who: str, clock: Clock, until: float = 0.0,
         said: list[str] | None = None) -> int:
    sink = said if said is not None else []
    return stack.enter_context(pull_slot(limit, who, until, sink.append,
                                         clock=clock, sleep=clock.sleep))


def test_slots_are_taken_in_order_and_name_their_holder(run_dir: Path) -> None:
    clock = Clock()
    with ExitStack() as stack:
        assert [take(stack, 3, f"app{i}", clock) for i in range(3)] == [0, 1, 2]
        assert (run_dir / "1").read_text() == f"{os.getpid()} app1\n"
        assert clock.sleeps == []
    assert sorted(p.name for p in run_dir.iterdir()) == ["0", "1", "2"]


def test_all_taken_waits_until_the_bound_and_says_so_once(run_dir: Path) -> None:
    clock = Clock()
    said: list[str] = []
    with ExitStack() as stack:
        take(stack, 2, "web", clock)
        take(stack, 2, "api", clock)
        with pytest.raises(NoSlot) as e:
            take(stack, 2, "db", clock, until=10.0, said=said)
    assert said == [f"waiting for a pull slot: all 2 in use (pid {os.getpid()} web, "
                    f"pid {os.getpid()} api); max_parallel_pulls in pullunit.toml"]
    assert clock.now == pytest.approx(10.0) and max(clock.sleeps) <= 0.5
    assert e.value.limit == 2 and "stayed in use for 10s" in str(e.value)


def test_a_released_slot_is_taken_by_the_waiter(run_dir: Path) -> None:
    clock = Clock()
    first = ExitStack()
    take(first, 1, "web", clock)

    def sleep(seconds: float) -> None:  # the holder finishes while the other waits
        clock.sleep(seconds)
        first.close()

    with pull_slot(1, "api", 100.0, lambda m: None, clock=clock, sleep=sleep) as n:
        assert n == 0 and (run_dir / "0").read_text() == f"{os.getpid()} api\n"
    assert clock.now < 1.0


def test_a_signal_during_the_wait_ends_it_and_leaks_nothing(run_dir: Path) -> None:
    clock = Clock()
    with ExitStack() as stack:
        take(stack, 1, "web", clock)
        before = len(os.listdir("/proc/self/fd"))

        def interrupted(seconds: float) -> None:
            raise KeyboardInterrupt  # what the pull's SIGTERM handler does: raise

        with (pytest.raises(KeyboardInterrupt),
              pull_slot(1, "api", 100.0, lambda m: None, clock=clock, sleep=interrupted)):
            pass
        assert len(os.listdir("/proc/self/fd")) == before


HOLDER = """
import sys, time
from pullunit.pullslots import pull_slot
with pull_slot(1, "crashy", 0.0, print, clock=time.monotonic, sleep=time.sleep):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_killed_holders_slot_is_free_at_once(run_dir: Path) -> None:
    """SIGKILL runs no cleanup: the kernel drops the flock with the process."""
    proc = subprocess.Popen([sys.executable, "-c", HOLDER], stdout=subprocess.PIPE,
                            text=True, env={**os.environ})
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "held\n"
        clock = Clock()
        with (pytest.raises(NoSlot) as e,
              pull_slot(1, "api", 1.0, lambda m: None, clock=clock, sleep=clock.sleep)):
            pass
        assert e.value.holders == [f"pid {proc.pid} crashy"]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        started = time.monotonic()
        with pull_slot(1, "api", 0.0, lambda m: None, clock=time.monotonic,
                       sleep=time.sleep) as n:
            assert n == 0
        assert time.monotonic() - started < 1.0
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_slot_files_are_never_followed_through_a_link(run_dir: Path, tmp_path: Path) -> None:
    run_dir.mkdir()
    target = tmp_path / "victim"
    target.write_text("keep me\n")
    (run_dir / "0").symlink_to(target)
    clock = Clock()
    with (pytest.raises(LockUnsafe, match="symbolic link"),
          pull_slot(1, "web", 0.0, lambda m: None, clock=clock, sleep=clock.sleep)):
        pass
    assert target.read_text() == "keep me\n"


def test_slot_dir_is_under_the_runtime_dir(run_dir: Path) -> None:
    assert pullslots.slot_dir() == run_dir
