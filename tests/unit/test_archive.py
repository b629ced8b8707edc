"""Rollback archives are streamed both ways, a chunk at a time, never held in memory
whole (issue 12 item 6). The daemon side is faked here; tests/integration/test_archive.py
restores a large archive through the real dockerd."""

from __future__ import annotations

import errno
import gzip
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pullunit import archive

IMAGE_ID = "sha256:" + "ab" * 32


class FakeApi:
    """The two docker-py calls archive uses, recording what they were given."""

    def __init__(self, saved: bytes = b"", replies: Iterable[dict[str, Any]] = ()):
        self.saved = saved
        self.replies = list(replies)
        self.load_data: Any = None
        self.chunks: list[bytes] = []
        self.get_chunk_size: int | None = None

    def get_image(self, image: str, chunk_size: int | None = None) -> Iterator[bytes]:
        self.get_chunk_size = chunk_size
        step = chunk_size or len(self.saved)
        for i in range(0, len(self.saved), step):
            yield self.saved[i:i + step]

    def load_image(self, data: Any, quiet: bool | None = None) -> Iterator[dict[str, Any]]:
        self.load_data = data
        assert not isinstance(data, bytes | bytearray), "the whole archive in memory"
        for chunk in data:  # as requests would: one chunk at a time, in order
            assert len(chunk) <= archive.CHUNK
            self.chunks.append(chunk)
        return iter(self.replies)


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PULLUNIT_STATE_DIR", str(tmp_path))
    return tmp_path


def _archive_of(data: bytes) -> Path:
    path = archive.path_for("web", IMAGE_ID)
    path.parent.mkdir(parents=True)
    with gzip.open(path, "wb", compresslevel=1) as f:
        f.write(data)
    return path


def test_load_streams_the_file_in_chunks() -> None:
    """Was: api.load_image(f.read()): a 480 MB archive cost 480 MB of memory."""
    data = os.urandom(3 * archive.CHUNK + 123)  # incompressible: the file is > 3 chunks
    path = _archive_of(data)
    api = FakeApi(replies=[{"stream": "Loaded image ID: " + IMAGE_ID + "\n"}])
    assert archive.load(api, "web", IMAGE_ID) is True
    assert len(api.chunks) >= 4
    # the file goes as it is: dockerd decompresses it, Python never holds it whole
    assert b"".join(api.chunks) == path.read_bytes()


def test_load_without_an_archive_is_false() -> None:
    api = FakeApi()
    assert archive.load(api, "web", IMAGE_ID) is False
    assert api.load_data is None


@pytest.mark.parametrize("reply", [
    {"error": "archive/tar: invalid tar header",
     "errorDetail": {"message": "archive/tar: invalid tar header"}},
    {"errorDetail": {"message": "unexpected EOF"}},
])
def test_a_load_error_in_the_stream_is_an_error(reply: dict[str, Any]) -> None:
    _archive_of(b"not an image")
    with pytest.raises(archive.ArchiveError, match=r"docker load .*: (archive/tar|unexpected)"):
        archive.load(FakeApi(replies=[reply]), "web", IMAGE_ID)


def test_load_does_not_follow_a_symlink(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.tar.gz"
    other.write_bytes(b"x")
    path = archive.path_for("web", IMAGE_ID)
    path.parent.mkdir(parents=True)
    path.symlink_to(other)
    api = FakeApi()
    with pytest.raises(OSError) as err:
        archive.load(api, "web", IMAGE_ID)
    assert err.value.errno == errno.ELOOP
    assert api.load_data is None


@pytest.mark.parametrize("image_id", ["../../../etc/passwd", "sha256:../../x", "sha256:ABC",
                                      "sha256:" + "a" * 63, ""])
def test_archive_paths_are_only_ever_image_ids(image_id: str) -> None:
    """The id comes from the state file and names a file: no path tricks."""
    with pytest.raises(ValueError):
        archive.path_for("web", image_id)


def test_save_streams_in_chunks_into_place() -> None:
    data = os.urandom(2 * archive.CHUNK + 5)
    api = FakeApi(saved=data)
    path = archive.save(api, "web", IMAGE_ID)
    assert api.get_chunk_size == archive.CHUNK
    assert gzip.decompress(path.read_bytes()) == data
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left
    assert archive.save(FakeApi(saved=b"other"), "web", IMAGE_ID) == path  # kept as is
