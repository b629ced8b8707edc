"""The files pullunit keeps in its runtime and state dirs, on real filesystems that are
full (a tiny tmpfs) or read-only (a tmpfs remounted ro): the README's exit codes (73 no
space left, 74 cannot write), the path named, no traceback, no temp file left behind."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pullbed import Bed, image_config

from pullunit import state
from pullunit.errors import ExitCode, PullunitError

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def _tmpfs(path: Path, size: str) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.fail("mounting a tmpfs needs root (the integration tier runs as root)")
    path.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs",
                    str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "--lazy", str(path)], check=False)


def _fill(d: Path) -> None:
    """Fill the filesystem of d up to its last byte."""
    fd = os.open(d / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as e:
        assert e.errno == errno.ENOSPC
    finally:
        os.close(fd)


@pytest.fixture
def full_dir(tmp_path: Path) -> Iterator[Path]:
    with _tmpfs(tmp_path / "full", "8k") as d:
        _fill(d)
        yield d


@pytest.fixture
def read_only_dir(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Path]]:
    """make(files) -> a tmpfs holding those files, then remounted read-only."""
    def make(files: dict[str, str]) -> Path:
        d = tmp_path / "ro"
        stack.enter_context(_tmpfs(d, "1m"))
        for name, text in files.items():
            (d / name).write_text(text)
        subprocess.run(["mount", "-o", "remount,ro", str(d)], check=True)
        return d

    with contextlib.ExitStack() as stack:
        yield make


def _pull(bed: Bed, runtime: Path) -> subprocess.CompletedProcess[str]:
    # nothing listens on port 9, but the lock comes first: docker is never asked
    bed.app("web", image_config("127.0.0.1:9/team/app:1", '[pull]\ndeadline = "1s"\n'))
    p = subprocess.run(bed.cmd("pull", "web"), capture_output=True, text=True, timeout=60,
                       env={**bed.env, "PULLUNIT_RUNTIME_DIR": str(runtime)})
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr, p.stderr
    return p


def test_full_runtime_dir_is_exit_73_naming_the_lock(bed: Bed, full_dir: Path) -> None:
    """Was: exit 70, "internal error: OSError [Errno 28]" from the PID write."""
    p = _pull(bed, full_dir)
    assert p.returncode == ExitCode.CANTCREAT, p.stderr
    assert str(full_dir / "web.lock") in p.stderr and "No space left" in p.stderr


def test_read_only_runtime_dir_is_exit_74(
        bed: Bed, read_only_dir: Callable[[dict[str, str]], Path]) -> None:
    """Was: exit 73, where the README's table says 74."""
    ro = read_only_dir({})
    p = _pull(bed, ro)
    assert p.returncode == ExitCode.IOERR, p.stderr
    assert str(ro / "web.lock") in p.stderr and "Read-only file system" in p.stderr


def test_read_only_runtime_dir_with_a_lock_file_is_exit_74(
        bed: Bed, read_only_dir: Callable[[dict[str, str]], Path]) -> None:
    ro = read_only_dir({"web.lock": "1\n"})
    p = _pull(bed, ro)
    assert p.returncode == ExitCode.IOERR, p.stderr
    assert str(ro / "web.lock") in p.stderr


def _entry() -> state.AppState:
    return state.record_ready(state.AppState("web"), "r/app:1", "r/app@sha256:" + "1" * 64,
                              "sha256:" + "1" * 64, "sha256:" + "2" * 64, 3, now=1.0)


@pytest.mark.parametrize("which", ["state file", "env file"])
def test_full_state_and_runtime_dirs_are_exit_73(which: str, full_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULLUNIT_STATE_DIR", str(full_dir))
    monkeypatch.setenv("PULLUNIT_RUNTIME_DIR", str(full_dir))
    with pytest.raises(PullunitError) as err:
        if which == "state file":
            state.save(_entry())
        else:
            state.write_env_file("web", "r/app@sha256:" + "1" * 64)
    assert err.value.exit_code is ExitCode.CANTCREAT
    name = "web.json" if which == "state file" else "web.env"
    assert str(full_dir / name) in err.value.message
    assert sorted(p.name for p in full_dir.iterdir()) == ["filler"]  # no temp file left


@pytest.mark.parametrize("which", ["state file", "env file"])
def test_read_only_state_and_runtime_dirs_are_exit_74(
        which: str, read_only_dir: Callable[[dict[str, str]], Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    ro = read_only_dir({})
    monkeypatch.setenv("PULLUNIT_STATE_DIR", str(ro))
    monkeypatch.setenv("PULLUNIT_RUNTIME_DIR", str(ro))
    with pytest.raises(PullunitError) as err:
        if which == "state file":
            state.save(_entry())
        else:
            state.write_env_file("web", "r/app@sha256:" + "1" * 64)
    assert err.value.exit_code is ExitCode.IOERR
    assert str(ro) in err.value.message and "Read-only" in err.value.message
