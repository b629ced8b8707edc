"""Rollback archives: `docker save` of each kept good image under
/var/lib/pullunit/cache/APP/, so an app can come back even after `docker image prune -a`
deleted its image and while the registry is down. Enabled by `[pull] archive = true`."""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from . import paths

log = logging.getLogger("pullunit")


def archive_dir(app: str) -> Path:
    return paths.state_dir() / "cache" / app


class ArchiveError(Exception):
    """dockerd refused an archive (truncated, corrupt, not an image)."""


CHUNK = 1 << 20  # bytes per read and write: memory stays flat whatever the image size


def path_for(app: str, image_id: str) -> Path:
    digest = image_id.removeprefix("sha256:")
    # the id comes from the state file, and names a file here: hex only, no path tricks
    if len(digest) != 64 or digest.strip("0123456789abcdef"):
        raise ValueError(f"not an image ID: {image_id!r}")
    return archive_dir(app) / f"{digest}.tar.gz"


def save(api: Any, app: str, image_id: str) -> Path:
    """Stream `docker save` through gzip into place, a chunk at a time; a crash leaves no
    partial archive."""
    target = path_for(app, image_id)
    if target.exists():
        return target
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb",
                                                        compresslevel=1) as gz:
            for chunk in api.get_image(image_id, chunk_size=CHUNK):
                gz.write(chunk)
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target


def load(api: Any, app: str, image_id: str) -> bool:
    """`docker load` the archive of image_id; False when there is none.

    The file goes to dockerd as it is, compressed and a chunk at a time (dockerd
    decompresses what `docker save | gzip` wrote): reading it into memory first would cost
    the archive's size in RAM, and unpacking it in Python a core that dockerd needs."""
    path = path_for(app, image_id)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ArchiveError(f"{path} is not a regular file")
        # quiet=False: dockerd reports each layer as it loads, so the client's socket
        # timeout bounds a stuck load, not a big one
        messages = api.load_image(_chunks(f), quiet=False)
        for msg in messages or ():  # docker-py >= 3: a stream of progress messages
            error = isinstance(msg, dict) and (msg.get("error") or (
                msg.get("errorDetail") or {}).get("message"))
            if error:
                raise ArchiveError(f"docker load {path}: {error}")
    return True


def _chunks(f: BinaryIO) -> Iterator[bytes]:
    """The request body in 1 MiB chunks (sent with chunked encoding); given the file
    object itself, http.client would write it 8 KiB at a time."""
    while chunk := f.read(CHUNK):
        yield chunk


def prune(app: str, keep_ids: set[str]) -> list[Path]:
    """Remove archives of images no longer in the kept history."""
    removed = []
    keep = {i.removeprefix("sha256:") for i in keep_ids}
    with contextlib.suppress(FileNotFoundError):
        for p in archive_dir(app).glob("*.tar.gz"):
            if p.name.removesuffix(".tar.gz") not in keep:
                p.unlink()
                removed.append(p)
    return removed
