"""Atomic file writes: a reader (systemd, the run unit, an admin) sees the old file or the
new one, never half of either."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from .errors import ExitCode, PullunitError

# A full filesystem is EX_CANTCREAT (73), as for a full Docker data-root; everything else
# that stops a write (read-only, permissions, I/O errors, a name too long) is EX_IOERR (74).
_FULL = (errno.ENOSPC, errno.EDQUOT)


class CannotWrite(PullunitError):
    """A file pullunit keeps (state, env file, lock, unit, archive) could not be written."""

    def __init__(self, path: Path | str, err: OSError, what: str = ""):
        full = err.errno in _FULL
        reason = err.strerror or str(err)
        hint = (f"free some space on the filesystem of {Path(path).parent}" if full else "")
        super().__init__(f"Cannot write {what + ' ' if what else ''}{path}: {reason}",
                         ExitCode.CANTCREAT if full else ExitCode.IOERR, hint)
        self.errno = err.errno


class UnsafeFile(ValueError):
    """A file pullunit reads is not a plain file: a symlink, FIFO, device or directory
    (planted or left behind), or bigger than such a file can legitimately be."""


def read_regular(path: Path, limit: int) -> bytes:
    """The contents of a regular file of at most `limit` bytes. A symlink is not followed
    and a FIFO never blocks the read (both raise UnsafeFile); a missing file raises
    FileNotFoundError, other failures OSError."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnsafeFile(f"{path} is a symbolic link") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFile(f"{path} is not a regular file")
        raw = b""
        while len(raw) <= limit:
            data = os.read(fd, limit + 1 - len(raw))
            if not data:
                break
            raw += data
    finally:
        os.close(fd)
    if len(raw) > limit:
        raise UnsafeFile(f"{path} is larger than {limit} bytes")
    return raw


def atomic_write(path: Path, data: str | bytes, mode: int = 0o644, *, durable: bool = True) -> None:
    """Write a temp file beside path, then rename it over path. Neither name is followed
    if it is a symlink: the temp name is created with O_EXCL (which fails on any existing
    entry, symlinks included) and rename() replaces a symlink, never its target. Raises
    OSError; callers say which file it was with CannotWrite."""
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
        st = path.lstat()
        if (stat.S_ISREG(st.st_mode) and (st.st_mode & 0o7777) == mode
                and read_regular(path, len(text.encode()) + 1) == text.encode()):
            return False
    except (OSError, UnsafeFile):  # missing, or not a plain file: replace it
        pass
    atomic_write(path, text, mode, durable=durable)
    return True
