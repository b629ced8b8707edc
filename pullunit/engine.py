"""Docker engine facts that need no Docker SDK: local images and the daemon's platform.

The warm start (image already present) is the common case at every boot, and importing
docker-py costs ~100 ms; two GET requests over the engine's unix socket with the standard
library cost ~2 ms. Anything more than looking (pulling, running) goes through dockerapi.
"""

from __future__ import annotations

import json
import os
import socket
import urllib.parse
from dataclasses import dataclass
from typing import Any

from .reference import ImageRef

DEFAULT_HOST = "unix:///run/docker.sock"
API_VERSION = "v1.41"  # dockerd 20.10 (Debian 12); newer engines still serve it
# `uname -m` style names -> Go's GOARCH, which images and --platform use.
ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
        "i386": "386", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def docker_host() -> str:
    return os.environ.get("DOCKER_HOST") or DEFAULT_HOST


class EngineUnavailable(Exception):
    """The lite client cannot answer (no unix socket, daemon down, odd reply)."""


def familiar(name: str) -> str:
    """Docker's short form of a repository name: docker.io/library/x -> x."""
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/",
                   "index.docker.io/"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


@dataclass(frozen=True)
class LocalImage:
    id: str
    repo_digests: tuple[str, ...]
    repo_tags: tuple[str, ...]
    os: str
    architecture: str
    variant: str | None
    size: int

    @classmethod
    def from_inspect(cls, data: dict[str, Any]) -> LocalImage:
        return cls(
            id=str(data["Id"]),
            repo_digests=tuple(data.get("RepoDigests") or ()),
            repo_tags=tuple(data.get("RepoTags") or ()),
            os=str(data.get("Os", "")),
            architecture=str(data.get("Architecture", "")),
            variant=data.get("Variant") or None,
            size=int(data.get("Size") or 0),
        )

    @property
    def platform(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base

    def digest_for(self, ref: ImageRef) -> str | None:
        """The registry digest this image has under ref's repository, if any."""
        want = familiar(ref.repository)
        for rd in self.repo_digests:
            name, _, digest = rd.partition("@")
            if familiar(name) == want:
                return digest
        return None

    def run_reference(self, ref: ImageRef) -> str:
        """What the run unit starts: repo@sha256 when known, else the image ID."""
        digest = self.digest_for(ref)
        return ref.with_digest(digest) if digest else self.id


def local_name(ref: ImageRef) -> str:
    """The name to inspect: by digest when pinned (a tag can move), else by tag."""
    if ref.digest:
        return ref.with_digest(ref.digest)
    assert ref.tagged is not None
    return ref.tagged


def _get(path: str, url: str, timeout: float) -> tuple[int, bytes]:
    """One HTTP/1.0 GET over a unix socket: dockerd then answers with a plain body and
    closes, so no chunked decoding is needed (and no http.client import)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(f"GET {url} HTTP/1.0\r\nHost: docker\r\n\r\n".encode())
        chunks = []
        while True:
            data = s.recv(65536)
            if not data:
                break
            chunks.append(data)
    raw = b"".join(chunks)
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise EngineUnavailable("truncated reply from the engine")
    status_line = head.split(b"\r\n", 1)[0].split()
    try:
        status = int(status_line[1])
    except (IndexError, ValueError):
        raise EngineUnavailable(f"bad status line from the engine: {head[:80]!r}") from None
    if b"transfer-encoding: chunked" in head.lower():
        raise EngineUnavailable("the engine answered HTTP/1.0 with a chunked body")
    return status, body


class LiteEngine:
    def __init__(self, timeout: float = 5.0):
        host = docker_host()
        if not host.startswith("unix://"):
            raise EngineUnavailable(f"not a unix socket: {host}")
        self.path = host[len("unix://"):]
        self.timeout = timeout

    def _get(self, url: str) -> tuple[int, Any]:
        try:
            status, body = _get(self.path, f"/{API_VERSION}{url}", self.timeout)
        except OSError as e:
            raise EngineUnavailable(str(e)) from e
        try:
            return status, json.loads(body) if body else None
        except ValueError as e:
            raise EngineUnavailable(f"bad reply from the engine: {e}") from e

    def inspect(self, name: str) -> LocalImage | None:
        status, data = self._get(f"/images/{urllib.parse.quote(name, safe='')}/json")
        if status == 404:
            return None
        if status != 200 or not isinstance(data, dict):
            raise EngineUnavailable(f"inspect {name}: HTTP {status}")
        return LocalImage.from_inspect(data)

    def platform(self) -> str:
        status, v = self._get("/version")
        if status != 200 or not isinstance(v, dict):
            raise EngineUnavailable(f"version: HTTP {status}")
        return platform_of(v)


def platform_of(version: dict[str, Any]) -> str:
    """OS/ARCH (Go names, as images use them) from the engine's GET /version."""
    arch = str(version.get("Arch", ""))
    return f"{version.get('Os', 'linux')}/{ARCH.get(arch, arch)}"


def find_local(engine: Any, ref: ImageRef) -> LocalImage | None:
    """The local image ref names (by digest when pinned, else by tag), via any engine
    with .inspect(name)."""
    img: LocalImage | None = engine.inspect(local_name(ref))
    if img is not None and ref.digest and img.digest_for(ref) != ref.digest:
        return None
    return img
