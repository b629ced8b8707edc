"""Rollback archives: `docker save` of each kept good image under
/var/lib/pullunit/cache/APP/, so an app can come back even after `docker image prune -a`
deleted its image and while the registry is down. Enabled by `[pull] archive = true`."""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from . import paths

log = logging.getLogger("pullunit")


def archive_dir(app: str) -> Path:
    return paths.state_dir() / "cache" / app


def path_for(app: str, image_id: str) -> Path:
    return archive_dir(app) / f"{image_id.removeprefix('sha256:')}.tar.gz"


def save(api: Any, app: str, image_id: str) -> Path:
    """Stream `docker save` through gzip into place; a crash leaves no partial archive."""
    target = path_for(app, image_id)
    if target.exists():
        return target
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb",
                                                        compresslevel=1) as gz:
            for chunk in api.get_image(image_id):
                gz.write(chunk)
        os.chmod(tmp, 0o600)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target


def load(api: Any, app: str, image_id: str) -> bool:
    """`docker load` the archive of image_id; False when there is none."""
    path = path_for(app, image_id)
    if not path.exists():
        return False
    with gzip.open(path, "rb") as f:
        result = api.load_image(f.read())
    for _ in result or ():  # docker-py 7 returns a stream of progress messages
        pass
    return True


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
