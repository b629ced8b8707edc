"""The Docker engine edge: one `Engine` protocol, one factory (`connect`), and the
light client that serves it with the standard library over the engine's socket
(`LiteEngine`, on the HTTP/1.0 transport in `enginehttp`).

The light client costs a few ms to import where docker-py costs ~100 ms: a warm start
(image present) and a cold pull never import docker-py. docker-py (`dockerapi`) remains
for what this client does not speak: ssh:// engines, the verify run and `docker
save`/`load`.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from . import enginehttp as http
from .classify import FailureClass, PullFailed, classify
from .enginehttp import CALL_TIMEOUT, EngineUnavailable, docker_host
from .reference import ImageRef

if TYPE_CHECKING:
    from .credentials import Auth
    from .pullstream import Message

PING_TIMEOUT = 2.0  # "is the daemon there at all?" after something else went quiet

JSON = dict[str, object]


# ------------------------------------------------------------------------ what we learn


def familiar(name: str) -> str:
    """Docker's short form of a repository name: docker.io/library/x -> x."""
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/library/",
                   "index.docker.io/"):
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def _strs(value: object) -> tuple[str, ...]:
    return tuple(str(v) for v in value) if isinstance(value, list) else ()


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
    def from_inspect(cls, data: JSON) -> LocalImage:
        size = data.get("Size")
        return cls(
            id=str(data["Id"]),
            repo_digests=_strs(data.get("RepoDigests")),
            repo_tags=_strs(data.get("RepoTags")),
            os=str(data.get("Os", "")),
            architecture=str(data.get("Architecture", "")),
            variant=str(data.get("Variant") or "") or None,
            size=size if isinstance(size, int) else 0,
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


def platform_of(version: JSON) -> str:
    """OS/ARCH (Go names, as images use them) from the engine's GET /version: its Arch
    is Go's already, or `uname -m` style from some engines; platform.py maps both."""
    from .platform import architecture_of_machine

    return f"{version.get('Os', 'linux')}/{architecture_of_machine(str(version.get('Arch', '')))}"


# ------------------------------------------------------------------------ the protocol


class PullStream(Protocol):
    """One POST /images/create in flight."""

    @property
    def answered(self) -> bool:
        """The daemon has begun its reply (it does so once it has the manifest)."""

    def messages(self, poll: float) -> Iterator[Message | None]:
        """Progress messages; None after every `poll` seconds of silence, so that the
        caller can check its clocks. Raises PullFailed for an error the daemon reports."""

    def abort(self) -> None:
        """Drop the request at once; dockerd cancels a pull whose client went away."""


class Engine(Protocol):
    """What pullunit asks of a Docker engine. Daemon trouble raises EngineUnavailable,
    registry trouble PullFailed of its class; every call is bounded in time."""

    host: str

    def inspect(self, name: str) -> LocalImage | None: ...

    def platform(self) -> str: ...

    def ping(self, timeout: float = PING_TIMEOUT) -> bool: ...

    def data_root(self) -> str: ...

    def pull(self, ref: ImageRef, platform: str | None, auth: Auth | None, *,
             silence_limit: float) -> PullStream:
        """Start a pull. `silence_limit` bounds any read the client cannot interrupt."""

    def remote_digest(self, ref: ImageRef, auth: Auth | None, timeout: float) -> str:
        """The digest the registry serves for ref now, asked through the daemon (so its
        mirrors, proxies and insecure-registry list apply)."""

    def run_verify(self, image: str, args: tuple[str, ...], timeout: float) -> tuple[int, str]:
        """Run image once with args, without network; (exit status, last output)."""

    def hold(self, image_id: str, repo: str, tag: str) -> None:
        """Tag image_id as repo:tag (keeps an untagged image from `docker image prune`)."""

    def release(self, name: str) -> None:
        """Remove the tag `name`; an image left without references goes, one in use or
        already gone is no error."""

    def close(self) -> None: ...


def connect(timeout: float = CALL_TIMEOUT) -> Engine:
    """The engine DOCKER_HOST names: the light client for unix:// and tcp:// (plain
    HTTP), docker-py for anything else (ssh://)."""
    host = docker_host()
    if LiteEngine.speaks(host):
        return LiteEngine(timeout=timeout)
    from . import dockerapi

    return dockerapi.SdkEngine.connect(max(timeout, dockerapi.CALL_TIMEOUT))


def find_local(engine: Engine, ref: ImageRef) -> LocalImage | None:
    """The local image ref names (by digest when pinned, else by tag)."""
    img = engine.inspect(local_name(ref))
    if img is not None and ref.digest and img.digest_for(ref) != ref.digest:
        return None
    return img


class LiteEngine:
    """The Engine over a unix socket or plain TCP, with the standard library only."""

    speaks = staticmethod(http.speaks)

    def __init__(self, timeout: float = CALL_TIMEOUT):
        self.host = docker_host()
        if not self.speaks(self.host):
            raise EngineUnavailable(f"pullunit's light client speaks unix:// and tcp://, "
                                    f"not {self.host.split('://')[0]}://", self.host)
        self.timeout = timeout
        self._sdk: Engine | None = None

    # -- transport -------------------------------------------------------------------
    def _call(self, method: str, url: str, *, timeout: float | None = None,
              headers: dict[str, str] | None = None) -> http.Reply:
        """One request, the whole reply within `timeout` (else http.Quiet)."""
        return http.call(self.host, method, url,
                         self.timeout if timeout is None else timeout, headers)

    def _look(self, url: str) -> http.Reply:
        """A look-up the daemon answers from memory: silence means it is not well."""
        try:
            return self._call("GET", url)
        except http.Quiet as e:
            raise EngineUnavailable(f"GET {url}: {e}", self.host) from None

    def _json(self, reply: http.Reply, what: str) -> JSON:
        try:
            data = reply.json()
        except ValueError as e:
            raise EngineUnavailable(f"{what}: bad reply: {e}", self.host) from e
        if reply.status != 200 or not isinstance(data, dict):
            raise EngineUnavailable(f"{what}: HTTP {reply.status}: {reply.message()}",
                                    self.host)
        return data

    # -- looking ---------------------------------------------------------------------
    def inspect(self, name: str) -> LocalImage | None:
        reply = self._look(f"/images/{urllib.parse.quote(name, safe='')}/json")
        if reply.status == 404:
            return None
        return LocalImage.from_inspect(self._json(reply, f"inspect {name}"))

    def platform(self) -> str:
        return platform_of(self._json(self._look("/version"), "version"))

    def ping(self, timeout: float = PING_TIMEOUT) -> bool:
        try:
            return self._call("GET", "/_ping", timeout=timeout).status == 200
        except (http.Quiet, EngineUnavailable):
            return False

    def data_root(self) -> str:
        info = self._json(self._look("/info"), "info")
        return str(info.get("DockerRootDir") or "/var/lib/docker")

    # -- the registry, through the daemon ----------------------------------------------
    def pull(self, ref: ImageRef, platform: str | None, auth: Auth | None, *,
             silence_limit: float) -> PullStream:
        params = {"fromImage": ref.repository, "tag": ref.digest or ref.tag or "latest"}
        if platform:
            params["platform"] = platform
        headers = {"X-Registry-Auth": auth.header()} if auth else {}
        url = "/images/create?" + urllib.parse.urlencode(params)
        return http.PullReader(http.open_socket(self.host, self.timeout),
                               http.request_bytes("POST", url, headers), self.host)

    def remote_digest(self, ref: ImageRef, auth: Auth | None, timeout: float) -> str:
        headers = {"X-Registry-Auth": auth.header()} if auth else {}
        url = f"/distribution/{urllib.parse.quote(str(ref), safe='')}/json"
        try:
            reply = self._call("GET", url, timeout=timeout, headers=headers)
        except http.Quiet:
            raise self._quiet_registry(ref, timeout) from None
        if reply.status != 200:
            text = reply.message()
            raise PullFailed.of(classify(text, reply.status), text)
        data = self._json(reply, f"distribution {ref}")
        descriptor = data.get("Descriptor")
        digest = descriptor.get("digest") if isinstance(descriptor, dict) else None
        if not isinstance(digest, str):
            raise PullFailed.of(FailureClass.UNKNOWN, f"the daemon returned no digest for {ref}")
        return digest

    def _quiet_registry(self, ref: ImageRef, waited: float) -> PullFailed:
        """Silence on a registry call: the daemon itself, or the registry behind it?"""
        if not self.ping():
            return EngineUnavailable(f"it did not answer within {waited:.3g}s, nor a ping",
                                     self.host)
        return registry_silent(ref, waited)

    # -- docker-py for the rest ----------------------------------------------------------
    def hold(self, image_id: str, repo: str, tag: str) -> None:
        q = urllib.parse.urlencode({"repo": repo, "tag": tag})
        reply = self._call_bounded("POST", f"/images/{urllib.parse.quote(image_id, safe='')}"
                                           f"/tag?{q}")
        if reply.status != 201:
            raise EngineUnavailable(f"tag {image_id[:19]} {repo}:{tag}: HTTP {reply.status}: "
                                    f"{reply.message()}", self.host)

    def release(self, name: str) -> None:
        reply = self._call_bounded("DELETE", f"/images/{urllib.parse.quote(name, safe='')}"
                                             "?noprune=1")
        if reply.status not in (200, 404, 409):  # 409: a container uses it: keep it
            raise EngineUnavailable(f"untag {name}: HTTP {reply.status}: {reply.message()}",
                                    self.host)

    def _call_bounded(self, method: str, url: str) -> http.Reply:
        try:
            return self._call(method, url)
        except http.Quiet as e:
            raise EngineUnavailable(f"{method} {url}: {e}", self.host) from None

    def _sdk_engine(self) -> Engine:
        if self._sdk is None:
            from . import dockerapi

            self._sdk = dockerapi.SdkEngine.connect()
        return self._sdk

    def run_verify(self, image: str, args: tuple[str, ...], timeout: float) -> tuple[int, str]:
        return self._sdk_engine().run_verify(image, args, timeout)

    def close(self) -> None:
        if self._sdk is not None:
            self._sdk.close()
            self._sdk = None


def registry_silent(ref: ImageRef, waited: float) -> PullFailed:
    """The daemon answers, but the registry it is asking for ref does not."""
    return PullFailed.of(FailureClass.STALLED,
                         f"{ref.registry} did not answer the daemon's request for {ref} within "
                         f"{waited:.3g}s (the daemon itself answers: the registry, or something in "
                         "front of it, accepted the connection and sent nothing)")
