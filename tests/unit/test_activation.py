"""activation: the one way an image becomes the app's current one. locate() finds it
(loading its archive when it was pruned) without touching the app's files; activate()
writes the lock (when asked), the env file and the state. Real files in a temporary
directory; a fake docker-py stands in for `docker load` (the real one is exercised by
tests/integration: test_archive_brings_back_a_pruned_image, the rollback tests)."""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pullunit import archive, pinning, state
from pullunit.activation import activate, locate
from pullunit.classify import Failure, FailureClass
from pullunit.config import AppConfig, load_app
from pullunit.engine import LocalImage
from pullunit.errors import PullunitError
from pullunit.reference import parse_reference

REPO = "registry.test:5000/team/web"
REF = parse_reference(f"{REPO}:1")
DIGEST = "sha256:" + "d" * 64


def image(digests: tuple[str, ...] = (f"{REPO}@{DIGEST}",)) -> LocalImage:
    return LocalImage(id="sha256:" + "e" * 64, repo_digests=digests, repo_tags=(),
                      os="linux", architecture="amd64", variant=None, size=1)


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PULLUNIT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("PULLUNIT_RUNTIME_DIR", str(tmp_path / "run"))
    return tmp_path


def app(root: Path, extra: str = "") -> AppConfig:
    path = root / "web.toml"
    path.write_text(f'[image]\nref = "{REF}"\n[pull]\nkeep = 2\n{extra}')
    return load_app(path)


class FakeApi:
    """docker-py's load_image/get_image, remembering what it was given."""

    def __init__(self, loads: Callable[[bytes], None] | None = None):
        self.loaded: list[bytes] = []
        self.loads = loads

    def load_image(self, data: Any, quiet: bool = True) -> Iterator[dict[str, Any]]:
        # bytes, a file object, or (as archive.load streams it) an iterable of chunks
        if hasattr(data, "read"):
            data = data.read()
        elif not isinstance(data, bytes):
            data = b"".join(data)
        if self.loads:
            self.loads(data)
        self.loaded.append(data)
        return iter([{"stream": "Loaded image"}])

    def get_image(self, image_id: str, chunk_size: int | None = None) -> Iterator[bytes]:
        return iter([b"tar of " + image_id.encode()])


def test_activate_writes_env_history_and_state(root: Path) -> None:
    a = app(root)
    done = activate(a, state.load("web"), REF, image())
    assert done.reference == f"{REPO}@{DIGEST}" and done.digest == DIGEST
    assert (root / "run" / "web.env").read_text() == f"PULLUNIT_IMAGE={REPO}@{DIGEST}\n"
    saved = json.loads((root / "state" / "web.json").read_text())
    assert saved["current"]["reference"] == done.reference
    assert saved["current"]["image"] == str(REF)
    assert saved["last_failure"] is None
    assert state.load("web") == done.state
    assert not pinning.lock_path(a).exists()  # only when asked


def test_activate_records_the_failure_of_a_fallback(root: Path) -> None:
    done = activate(app(root), state.load("web"), REF, image(),
                    failure=Failure(FailureClass.UNREACHABLE, "connection refused"))
    assert done.state.last_failure is not None
    assert (done.state.last_failure.cls, done.state.last_failure.exit_code) == (
        "unreachable", 69)
    assert state.load("web").last_failure == done.state.last_failure


def test_activate_pins_when_asked(root: Path) -> None:
    a = app(root)
    activate(a, state.load("web"), REF, image(), lock_source="rollback")
    lock = pinning.read(a)
    assert lock is not None and (lock.digest, lock.source, lock.ref) == (
        DIGEST, "rollback", str(REF))


def test_a_digest_the_caller_knows_wins(root: Path) -> None:
    """An image loaded from its archive has no RepoDigests; the history still knows it."""
    a = app(root)
    other = "sha256:" + "a" * 64
    done = activate(a, state.load("web"), REF, image(()), digest=other,
                    lock_source="rollback")
    assert done.digest == other and done.reference == image().id  # runs by image ID
    lock = pinning.read(a)
    assert lock is not None and lock.digest == other


def test_no_digest_no_lock(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    a = app(root)
    done = activate(a, state.load("web"), REF, image(()), lock_source="rollback")
    assert done.digest is None and not pinning.lock_path(a).exists()
    assert "has no registry digest" in caplog.text


def test_the_lock_is_written_first(root: Path) -> None:
    """If the env file cannot be written, the lasting decision (the lock) is already
    there, and nothing says the app runs what it does not."""
    a = app(root)
    (root / "run").write_text("not a directory")
    with pytest.raises(PullunitError):
        activate(a, state.load("web"), REF, image(), lock_source="rollback")
    assert pinning.read(a) is not None
    assert not (root / "state" / "web.json").exists()


def test_history_is_bounded_by_keep(root: Path) -> None:
    a = app(root)
    st = state.load("web")
    for n in range(4):
        img = LocalImage(f"sha256:{n:064x}", (f"{REPO}@sha256:{n + 9:064x}",), (), "linux",
                         "amd64", None, 1)
        st = activate(a, st, REF, img).state
    assert [e.image_id for e in state.load("web").history] == [
        f"sha256:{3:064x}", f"sha256:{2:064x}"]


def test_archive_is_kept_when_on(root: Path) -> None:
    a = app(root, "archive = true\n")
    api = FakeApi()
    activate(a, state.load("web"), REF, image(), api=lambda: api)
    assert archive.path_for("web", image().id).exists()


# --- locate ---------------------------------------------------------------------------------

def test_locate_a_present_image_needs_no_archive(root: Path) -> None:
    def no_api() -> Any:
        raise AssertionError("no archive needed")

    img = image()
    assert locate(app(root, "archive = true\n"), img.id, "web v1",
                  inspect={img.id: img}.get, api=no_api) == img


def test_locate_an_absent_image_without_archive(root: Path) -> None:
    assert locate(app(root), image().id, "web v1", inspect={}.get, api=FakeApi) is None


def test_locate_loads_a_pruned_image_from_its_archive(root: Path,
                                                      caplog: pytest.LogCaptureFixture
                                                      ) -> None:
    img = image()
    path = archive.path_for("web", img.id)
    path.parent.mkdir(parents=True)
    with gzip.open(path, "wb") as f:
        f.write(b"saved image")
    engine: dict[str, LocalImage] = {}
    api = FakeApi(loads=lambda data: engine.update({img.id: img}))
    found = locate(app(root, "archive = true\n"), img.id, "web v1", inspect=engine.get,
                   api=lambda: api)
    # the archive goes to dockerd as it was written (dockerd decompresses it)
    assert found == img and [gzip.decompress(d) for d in api.loaded] == [b"saved image"]
    assert "loaded web v1 from its rollback archive" in caplog.text


def test_locate_survives_a_broken_archive(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pullunit")
    img = image()
    path = archive.path_for("web", img.id)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not gzip")

    class Refusing(FakeApi):  # what dockerd answers to a body that is no image archive
        def load_image(self, data: Any, quiet: bool = True) -> Iterator[dict[str, Any]]:
            super().load_image(data, quiet)
            return iter([{"errorDetail": {"message": "unexpected EOF"},
                          "error": "unexpected EOF"}])

    found = locate(app(root, "archive = true\n"), img.id, "web v1", inspect={}.get,
                   api=Refusing)
    assert found is None and "cannot load the archive of web v1" in caplog.text


def test_locate_changes_none_of_the_apps_files(root: Path) -> None:
    a = app(root, "archive = true\n")
    locate(a, image().id, "web v1", inspect={}.get, api=FakeApi)
    assert not (root / "run").exists() and not (root / "state" / "web.json").exists()
    assert not pinning.lock_path(a).exists()
