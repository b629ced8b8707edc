"""A minimal registry HTTP API v2 client (urllib), for pushing images no Docker engine
would build: other platforms, manifest lists, big random layers. Basic auth only."""

from __future__ import annotations

import hashlib
import json
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

from . import _util as u

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
ACCEPT = ", ".join([DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX])


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Ref:
    """host[:port]/repo[:tag][@digest] with an explicit registry host (required: a
    bare name would mean Docker Hub, i.e. traffic off this machine)."""

    registry: str
    repo: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, ref: str) -> Ref:
        m = re.fullmatch(r"(?P<reg>[^/]+)/(?P<repo>[a-z0-9._/-]+?)(?::(?P<tag>[\w.-]+))?"
                         r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?", ref)
        if not m or (not re.search(r"[.:]", m["reg"]) and m["reg"] != "localhost"):
            raise u.TestbedError(f"{ref!r}: need an explicit registry host like 127.0.0.1:5000")
        return cls(m["reg"], m["repo"], m["tag"] or (None if m["digest"] else "latest"),
                   m["digest"])

    @property
    def host(self) -> str:
        return self.registry.rsplit(":", 1)[0] if ":" in self.registry else self.registry

    @property
    def reference(self) -> str:
        """What goes after /manifests/: the digest if pinned, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        s = f"{self.registry}/{self.repo}"
        if self.tag:
            s += f":{self.tag}"
        return s + (f"@{self.digest}" if self.digest else "")


def check_local_ref(ref: str) -> Ref:
    """Parse *ref* and refuse any registry that is not loopback or our test net."""
    r = Ref.parse(ref)
    u.assert_allowed_address(r.host)
    return r


class RegistryAPI:
    """Talks to one registry at *base_url* (http://127.0.0.1:5000, https://10.231...)."""

    def __init__(self, base_url: str, auth: tuple[str, str] | None = None,
                 cafile: str | None = None) -> None:
        self.base, self.auth, self.cafile = base_url.rstrip("/"), auth, cafile

    @classmethod
    def for_ref(cls, ref: str, auth: tuple[str, str] | None = None,
                cafile: str | None = None) -> RegistryAPI:
        r = check_local_ref(ref)
        scheme = "https" if cafile else "http"
        return cls(f"{scheme}://{r.registry}", auth, cafile)

    def _req(self, method: str, path_or_url: str, data: bytes | None = None,
             headers: dict[str, str] | None = None, ok: tuple[int, ...] = (200,),
             timeout: float = 120) -> u.HttpResponse:
        url = path_or_url if "://" in path_or_url else self.base + path_or_url
        r = u.http(method, url, data=data, headers=headers, auth=self.auth,
                   cafile=self.cafile, timeout=timeout)
        if r.status not in ok:
            raise u.TestbedError(f"{method} {url}: HTTP {r.status}: {r.body[:500]!r}")
        return r

    def has_blob(self, repo: str, digest: str) -> bool:
        return self._req("HEAD", f"/v2/{repo}/blobs/{digest}", ok=(200, 404)).status == 200

    def push_blob(self, repo: str, data: bytes) -> str:
        """Monolithic upload (POST then PUT ?digest=); skipped if already there."""
        digest = sha256(data)
        if self.has_blob(repo, digest):
            return digest
        r = self._req("POST", f"/v2/{repo}/blobs/uploads/", ok=(202,))
        loc = urllib.parse.urljoin(self.base + "/", r.headers["Location"])
        sep = "&" if "?" in loc else "?"
        self._req("PUT", f"{loc}{sep}digest={digest}", data=data, ok=(201,),
                  headers={"Content-Type": "application/octet-stream"})
        return digest

    def put_manifest(self, repo: str, reference: str, manifest: dict[str, Any]) -> str:
        body = json.dumps(manifest, separators=(",", ":")).encode()
        self._req("PUT", f"/v2/{repo}/manifests/{reference}", data=body, ok=(201,),
                  headers={"Content-Type": manifest["mediaType"]})
        return sha256(body)

    def get_manifest(self, repo: str, reference: str) -> tuple[str, dict[str, Any]]:
        """(digest, manifest) as the registry serves it."""
        r = self._req("GET", f"/v2/{repo}/manifests/{reference}", headers={"Accept": ACCEPT})
        return r.headers.get("Docker-Content-Digest") or sha256(r.body), r.json()

    def get_manifest_raw(self, repo: str, reference: str) -> bytes:
        return self._req("GET", f"/v2/{repo}/manifests/{reference}",
                         headers={"Accept": ACCEPT}).body

    def tags(self, repo: str) -> list[str]:
        tags: list[str] = self._req("GET", f"/v2/{repo}/tags/list").json().get("tags") or []
        return tags

    def delete_manifest(self, repo: str, digest: str) -> None:
        self._req("DELETE", f"/v2/{repo}/manifests/{digest}", ok=(202,))
