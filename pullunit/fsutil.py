"""Atomic file writes: a reader (systemd, the run unit, an admin) sees the old file or the
new one, never half of either."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


def atomic_write(path: Path, data: str | bytes, mode: int = 0o644, *, durable: bool = True) -> None:
    raw = data.encode() if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL on a random name instead of tempfile: this is on every warm start, and
    # tempfile's imports (shutil, bz2, lzma ...) cost more than the write itself.
    tmp = str(path.parent / f".{path.name}.{os.urandom(6).hex()}.new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fchmod(f.fileno(), mode)
            if durable:  # not for files rebuilt from scratch at every boot
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_if_changed(path: Path, text: str, mode: int = 0o644, *, durable: bool = True) -> bool:
    """Write only when content or mode differ, so unchanged units keep their mtime."""
    try:
        st = path.stat()
        if (st.st_mode & 0o7777) == mode and path.read_text() == text:
            return False
    except (FileNotFoundError, UnicodeDecodeError):
        pass
    atomic_write(path, text, mode, durable=durable)
    return True
