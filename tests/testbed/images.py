"""Test images made locally (no internet): a busybox-static rootfs imported into a
Docker engine and pushed, or blobs and manifests pushed straight through the registry
HTTP API (big random layers, other platforms, manifest lists)."""

from __future__ import annotations

import gzip
import io
import json
import os
import secrets
import tarfile
import time
from dataclasses import dataclass
from typing import Any

from . import _util as u
from .regapi import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_LAYER_TAR,
    OCI_MANIFEST,
    RegistryAPI,
    check_local_ref,
    sha256,
)

APPLETS = ("sh", "cat", "echo", "env", "printf", "sleep", "true", "false", "ls", "id",
           "test", "[", "wc", "head", "date", "hostname")

# Entrypoint of the showargs image: each argument on its own line between markers,
# then the environment; parse with parse_showargs().
SHOWARGS = """#!/bin/sh
echo '<<<ARGV'
for a in "$@"; do printf '%s\\n' "$a"; done
echo 'ARGV>>>'
echo '<<<ENV'
env
echo 'ENV>>>'
"""


@dataclass(frozen=True)
class Pushed:
    ref: str  # the tag reference pushed
    digest: str  # manifest digest (sha256:...)
    image_id: str | None = None  # local image id, when made through an engine

    @property
    def pinned(self) -> str:
        """repo@sha256:... (what `docker pull` by digest takes)."""
        r = check_local_ref(self.ref)
        return f"{r.registry}/{r.repo}@{self.digest}"


def _add(tar: tarfile.TarFile, name: str, data: bytes = b"", *, mode: int = 0o644,
         kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
    ti = tarfile.TarInfo(name.lstrip("/"))
    ti.type, ti.mode, ti.mtime, ti.linkname = kind, mode, 0, link
    ti.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(ti, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def busybox_rootfs_tar(extra_files: dict[str, bytes | str] | None = None,
                       executable: tuple[str, ...] = ()) -> bytes:
    """An uncompressed tar of a tiny rootfs: /bin/busybox, applet symlinks, /tmp,
    plus *extra_files* ({path: content}); paths in *executable* get mode 0755."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("bin", "tmp", "etc"):
            _add(tar, d, kind=tarfile.DIRTYPE, mode=0o1777 if d == "tmp" else 0o755)
        with open(u.binary("busybox"), "rb") as f:
            _add(tar, "bin/busybox", f.read(), mode=0o755)
        for a in APPLETS:
            _add(tar, f"bin/{a}", kind=tarfile.SYMTYPE, link="busybox")
        _add(tar, "etc/passwd", b"root:x:0:0:root:/:/bin/sh\n")
        for path, content in (extra_files or {}).items():
            data = content.encode() if isinstance(content, str) else content
            _add(tar, path, data, mode=0o755 if path in executable else 0o644)
    return buf.getvalue()


# ------------------------------------------------------------- through an engine


def push(client: Any, ref: str, auth_config: dict[str, str] | None = None) -> str:
    """docker push; returns the manifest digest. Raises on an error in the stream."""
    r = check_local_ref(ref)
    digest = None
    for msg in client.api.push(f"{r.registry}/{r.repo}", tag=r.tag, stream=True,
                               decode=True, auth_config=auth_config):
        if "error" in msg:
            raise u.TestbedError(f"push {ref}: {msg['error']}")
        digest = (msg.get("aux") or {}).get("Digest", digest)
    if not digest:
        raise u.TestbedError(f"push {ref}: no digest in the push stream")
    return str(digest)


def import_rootfs(client: Any, ref: str, tar: bytes, changes: list[str] | None = None) -> str:
    """docker import a rootfs tar as *ref*; returns the image id."""
    r = check_local_ref(ref)
    out = client.api.import_image_from_data(tar, repository=f"{r.registry}/{r.repo}",
                                            tag=r.tag, changes=changes)
    # The SDK returns the last JSON line as text ({"status": "sha256:..."}).
    last = out.strip().splitlines()[-1] if isinstance(out, str) else json.dumps(out)
    status = json.loads(last)
    if "error" in status:
        raise u.TestbedError(f"import {ref}: {status['error']}")
    return str(status["status"])


def make_busybox_image(client: Any, ref: str, *, push_it: bool = True,
                       auth_config: dict[str, str] | None = None,
                       extra_files: dict[str, bytes | str] | None = None,
                       executable: tuple[str, ...] = (),
                       changes: list[str] | None = None) -> Pushed:
    """busybox-static rootfs -> `docker import` as *ref* -> push (unless push_it is
    False). *client* is a docker.DockerClient. CMD defaults to /bin/sh."""
    tar = busybox_rootfs_tar(extra_files, executable)
    image_id = import_rootfs(client, ref, tar, changes or ['CMD ["/bin/sh"]'])
    digest = push(client, ref, auth_config) if push_it else ""
    return Pushed(ref, digest, image_id)


def push_new_digest(client: Any, ref: str, *,
                    auth_config: dict[str, str] | None = None) -> Pushed:
    """Push a different image under the same tag: busybox plus /serial holding a
    random token, so the tag moves to a new manifest digest."""
    token = f"{time.time_ns()}-{secrets.token_hex(8)}\n"
    return make_busybox_image(client, ref, auth_config=auth_config,
                              extra_files={"/serial": token})


def make_showargs_image(client: Any, ref: str, *,
                        auth_config: dict[str, str] | None = None) -> Pushed:
    """Entrypoint /showargs prints its argv (one per line, between <<<ARGV/ARGV>>>)
    then `env` (between <<<ENV/ENV>>>): for command-line round-trip tests."""
    return make_busybox_image(
        client, ref, auth_config=auth_config, extra_files={"/showargs": SHOWARGS},
        executable=("/showargs",), changes=['ENTRYPOINT ["/showargs"]', "CMD []"])


def parse_showargs(output: str) -> tuple[list[str], dict[str, str]]:
    """(argv, env) from the showargs image's output. An argument containing a newline
    comes back split in several items: avoid those or compare joined."""
    lines = output.splitlines()

    def between(start: str, end: str) -> list[str]:
        try:
            i = lines.index(start)
            return lines[i + 1:lines.index(end, i + 1)]
        except ValueError as e:
            raise u.TestbedError(f"no {start}..{end} block in output:\n{output}") from e

    env = dict(line.split("=", 1) for line in between("<<<ENV", "ENV>>>") if "=" in line)
    return between("<<<ARGV", "ARGV>>>"), env


# --------------------------------------------------------- through the HTTP API


def _config(os_: str, arch: str, diff_ids: list[str], variant: str | None = None,
            cmd: list[str] | None = None) -> bytes:
    cfg: dict[str, Any] = {
        "architecture": arch, "os": os_,
        "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": cmd or ["/bin/sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "pullunit testbed"}
                    for _ in diff_ids],
    }
    if variant:
        cfg["variant"] = variant
    return json.dumps(cfg, separators=(",", ":")).encode()


def make_platform_image(ref: str, os_: str = "linux", arch: str = "arm64", *,
                        variant: str | None = None, auth: tuple[str, str] | None = None,
                        cafile: str | None = None) -> Pushed:
    """A single-platform image whose config says *os_*/*arch* (its busybox layer is
    the host's, which does not matter for pull tests). dockerd 20.10 pulls it
    without complaint; only inspecting Os/Architecture shows the mismatch."""
    r = check_local_ref(ref)
    api = RegistryAPI.for_ref(ref, auth, cafile)
    layer_tar = busybox_rootfs_tar({"/platform": f"{os_}/{arch}\n"})
    layer = gzip.compress(layer_tar, compresslevel=1, mtime=0)
    layer_d = api.push_blob(r.repo, layer)
    config = _config(os_, arch, [sha256(layer_tar)], variant)
    config_d = api.push_blob(r.repo, config)
    manifest = {
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "size": len(config), "digest": config_d},
        "layers": [{"mediaType": DOCKER_LAYER_GZIP, "size": len(layer), "digest": layer_d}],
    }
    return Pushed(ref, api.put_manifest(r.repo, r.reference, manifest))


def make_index_image(ref: str, platforms: list[tuple[str, str]], *,
                     auth: tuple[str, str] | None = None,
                     cafile: str | None = None) -> Pushed:
    """A manifest list with one image per (os, arch) in *platforms*. Without the
    host's platform in it, dockerd fails: "no matching manifest for linux/amd64 ..."."""
    r = check_local_ref(ref)
    api = RegistryAPI.for_ref(ref, auth, cafile)
    entries = []
    for os_, arch in platforms:
        sub = make_platform_image(f"{r.registry}/{r.repo}:{os_}-{arch}", os_, arch,
                                  auth=auth, cafile=cafile)
        size = len(api.get_manifest_raw(r.repo, sub.digest))
        entries.append({"mediaType": DOCKER_MANIFEST, "size": size, "digest": sub.digest,
                        "platform": {"os": os_, "architecture": arch}})
    index = {"schemaVersion": 2, "mediaType": DOCKER_LIST, "manifests": entries}
    return Pushed(ref, api.put_manifest(r.repo, r.reference, index))


def random_layer(size: int, name: str = "data.bin") -> bytes:
    """An uncompressed tar with one file of *size* random bytes (incompressible, so
    every byte crosses the wire)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add(tar, name, os.urandom(size))
    return buf.getvalue()


def make_big_image(ref: str, total_mb: int = 120, layers: int = 4, *,
                   auth: tuple[str, str] | None = None,
                   cafile: str | None = None) -> Pushed:
    """An OCI image of *layers* random-data layers totalling ~*total_mb* MiB, pushed
    through the registry HTTP API. Layers are uncompressed tars (the OCI
    "layer.v1.tar" type), so blob size == transfer size and no time goes to gzip."""
    r = check_local_ref(ref)
    api = RegistryAPI.for_ref(ref, auth, cafile)
    per = max(1, total_mb * 1024 * 1024 // layers)
    descs, diff_ids = [], []
    for i in range(layers):
        data = random_layer(per, f"layer{i}.bin")
        d = api.push_blob(r.repo, data)
        descs.append({"mediaType": OCI_LAYER_TAR, "size": len(data), "digest": d})
        diff_ids.append(d)  # uncompressed: the diff id is the blob digest
        del data
    config = _config("linux", _host_arch(), diff_ids)
    config_d = api.push_blob(r.repo, config)
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "size": len(config), "digest": config_d},
                "layers": descs}
    return Pushed(ref, api.put_manifest(r.repo, r.reference, manifest))


def _host_arch() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)
