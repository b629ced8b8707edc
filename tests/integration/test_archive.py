"""A large rollback archive, saved and restored through the real dockerd: the puller's
fallback loads it (streamed, not read into memory) with the image pruned and the registry
down. Peak memory is measured by benchmarks/bench_archive.py, not asserted here."""

from __future__ import annotations

import contextlib
import gzip
from pathlib import Path
from typing import Any

import pytest
from pullbed import FAST, Bed, image_config

from tests.testbed import images
from tests.testbed.registry import Registry

pytestmark = pytest.mark.integration
SIZE_MB = 256  # several of archive.CHUNK and of any socket buffer; quick to make


def test_a_large_archive_is_restored(client: Any, bed: Bed, tmp_path: Path) -> None:
    with Registry("bigarch", storage=tmp_path / "st") as reg:
        pushed = images.make_big_image(reg.ref("bench/bigarch", "1"), total_mb=SIZE_MB,
                                       layers=4)
        app = bed.app("big", image_config(pushed.ref, FAST + 'archive = true\n'
                                          'refresh_timeout = "1s"\n'))
        image_id = ""
        try:
            r = bed.pull(app, timeout=300)
            assert r.code == 0, r.err
            image_id = r.out["image_id"]
            size = client.images.get(image_id).attrs["Size"]
            path = bed.root / "state" / "cache" / "big" / (
                image_id.removeprefix("sha256:") + ".tar.gz")
            assert path.stat().st_size > SIZE_MB * 1024 * 1024  # random data: no gain
            with gzip.open(path) as f:
                f.read(1024)  # a gzip stream, as `docker save | gzip` writes it
            client.images.remove(image_id, force=True)
            reg.stop()
            r = bed.pull(app, timeout=300)
            assert r.code == 0, r.err
            assert r.out["source"] == "fallback" and r.out["image_id"] == image_id
            assert "loaded" in r.err and "rollback archive" in r.err
            restored = client.images.get(image_id)
            assert restored.id == image_id and restored.attrs["Size"] == size
        finally:
            for name in (pushed.ref, image_id):
                with contextlib.suppress(Exception):  # gone already, or never there
                    client.images.remove(name, force=True)
