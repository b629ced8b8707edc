"""The Docker edge: a thin, typed layer over docker-py's low-level APIClient.

docker-py gives a pull no deadline and no stall detection (it posts with timeout=None
and blocks in read()), so this module owns both: the stream is read on a worker thread
and the caller can abort it by shutting the socket down.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeAlias

import docker
import docker.auth
import docker.errors
import requests

from .classify import FailureClass, PullFailed, classify, fail
from .engine import LocalImage, docker_host, platform_of
from .errors import ExitCode, PullunitError
from .reference import ImageRef

Api: TypeAlias = Any  # docker.APIClient (docker-py ships no type hints)


def from_exception(exc: BaseException) -> PullFailed:
    """Turn whatever docker-py or requests raised into a classified failure."""
    if isinstance(exc, PullFailed):
        return exc
    if isinstance(exc, docker.errors.APIError):
        text = str(exc.explanation or exc)
        status = exc.status_code if isinstance(exc.status_code, int) else None
        return fail(classify(text, status), text)
    if isinstance(exc, requests.exceptions.ConnectionError | FileNotFoundError
                  | ConnectionRefusedError | docker.errors.DockerException):
        return fail(FailureClass.DAEMON_UNAVAILABLE,
                    f"cannot talk to the Docker daemon at {docker_host()}: {exc}")
    if isinstance(exc, requests.exceptions.RequestException | OSError):
        return fail(FailureClass.DAEMON_UNAVAILABLE, f"Docker API request failed: {exc}")
    raise exc


def connect(timeout: float = 30.0) -> Api:
    """Connect and negotiate the API version; a dead daemon is a retryable failure."""
    try:
        return docker.APIClient(base_url=docker_host(), version="auto", timeout=timeout)
    except Exception as e:
        raise from_exception(e) from e


class SdkEngine:
    """The same two questions as engine.LiteEngine, asked through docker-py."""

    def __init__(self, api: Api):
        self.api = api

    def inspect(self, name: str) -> LocalImage | None:
        try:
            return LocalImage.from_inspect(self.api.inspect_image(name))
        except docker.errors.NotFound:
            return None
        except Exception as e:
            raise from_exception(e) from e

    def platform(self) -> str:
        try:
            v = self.api.version()
        except Exception as e:
            raise from_exception(e) from e
        return platform_of(v)


# ---------------------------------------------------------------------------------------
# Credentials


@dataclass(frozen=True)
class Credentials:
    config_path: Path | None  # which docker config.json was consulted
    auth_config: dict[str, Any] | None  # never logged

    @property
    def found(self) -> bool:
        return bool(self.auth_config)


def default_config_path() -> Path:
    from docker.utils.config import find_config_file

    found = find_config_file()
    if found:
        return Path(found)
    home = os.path.expanduser("~")
    return Path(home) / ".docker" / "config.json"


def credentials(ref: ImageRef, auth_file: Path | None) -> Credentials:
    """Credentials for ref's registry from auth_file, else the running user's docker config."""
    path = auth_file or default_config_path()
    if auth_file is not None:
        try:
            json.loads(auth_file.read_text())
        except OSError as e:
            raise PullunitError(f"image.auth_file {auth_file}: cannot read: {e.strerror}",
                                ExitCode.CONFIG) from e
        except ValueError as e:
            raise PullunitError(f"image.auth_file {auth_file}: not valid JSON: {e}",
                                ExitCode.CONFIG) from e
    elif not path.exists():
        return Credentials(path, None)
    try:
        cfg = docker.auth.load_config(config_path=str(path))
        registry, _ = docker.auth.resolve_repository_name(ref.repository)
        auth = docker.auth.resolve_authconfig(cfg, registry)
    except Exception:  # a broken credential helper must not crash the puller
        auth = None
    return Credentials(path, dict(auth) if auth else None)


# ---------------------------------------------------------------------------------------
# The pull stream


@dataclass
class Progress:
    """Bytes done/total summed over layers, from the daemon's progress messages."""

    layers_total: dict[str, int]
    layers_done: dict[str, int]
    complete: set[str]

    @classmethod
    def empty(cls) -> Progress:
        return cls({}, {}, set())

    def update(self, msg: dict[str, Any]) -> bool:
        """Apply one message; True when bytes moved or a layer completed."""
        layer = msg.get("id")
        status = str(msg.get("status", ""))
        detail = msg.get("progressDetail") or {}
        if not layer:
            return False
        if status == "Downloading" and detail.get("total"):
            before = self.layers_done.get(layer, 0)
            self.layers_total[layer] = int(detail["total"])
            self.layers_done[layer] = int(detail.get("current", 0))
            return self.layers_done[layer] != before
        if status in ("Download complete", "Pull complete", "Already exists",
                      "Extracting", "Verifying Checksum"):
            moved = layer not in self.complete or status == "Extracting"
            if status in ("Download complete", "Pull complete", "Already exists"):
                self.complete.add(layer)
                if layer in self.layers_total:
                    self.layers_done[layer] = self.layers_total[layer]
            return moved
        return status in ("Pulling fs layer", "Waiting")

    @property
    def done(self) -> int:
        return sum(self.layers_done.values())

    @property
    def total(self) -> int:
        return sum(self.layers_total.values())


class PullStream:
    """One /images/create request, read on a worker thread so it can be abandoned."""

    _END = object()

    def __init__(self, api: docker.APIClient, ref: ImageRef, platform: str | None,
                 creds: Credentials):
        self._queue: queue.Queue[Any] = queue.Queue()
        self._sock: socket.socket | None = None
        self._aborted = False
        tag = ref.digest or ref.tag
        try:
            self._gen = api.pull(ref.repository, tag=tag, stream=True, decode=True,
                                 platform=platform, auth_config=creds.auth_config or None)
        except Exception as e:
            raise from_exception(e) from e
        self._sock = _socket_of(self._gen)
        self._thread = threading.Thread(target=self._read, name="pull-stream", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for msg in self._gen:
                self._queue.put(msg)
            self._queue.put(self._END)
        except BaseException as e:  # handed to the main thread, which classifies it
            self._queue.put(e)

    def messages(self, poll: float) -> Iterator[dict[str, Any] | None]:
        """Yield messages; yield None every `poll` seconds of silence so the caller can
        check its clocks and signals. Raises PullFailed for an error in the stream."""
        while True:
            try:
                item = self._queue.get(timeout=poll)
            except queue.Empty:
                yield None
                continue
            if item is self._END:
                return
            if isinstance(item, BaseException):
                if self._aborted:
                    return
                raise from_exception(item) from item
            if isinstance(item, dict) and item.get("error"):
                detail = item.get("errorDetail") or {}
                text = str(detail.get("message") or item["error"])
                raise fail(classify(text, detail.get("code")), text)
            yield item

    def abort(self) -> None:
        """Drop the connection; dockerd cancels a pull whose client went away."""
        self._aborted = True
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            self._gen.close()
        self._thread.join(timeout=1.0)


def _socket_of(gen: Any) -> socket.socket | None:
    """The socket under docker-py's stream generator.

    docker-py exposes neither the response nor a timeout for a streaming pull; the
    generator's frame holds the response (same in docker 5.x and 7.x), and from there the
    connection's socket, which shutdown() can unblock from another thread.
    """
    frame = getattr(gen, "gi_frame", None)
    response = frame.f_locals.get("response") if frame is not None else None
    raw = getattr(response, "raw", None)
    for path in (("_connection", "sock"), ("connection", "sock"), ("_fp", "fp", "raw", "_sock")):
        obj: Any = raw
        for attr in path:
            obj = getattr(obj, attr, None)
            if obj is None:
                break
        if isinstance(obj, socket.socket):
            return obj
    return None


# ---------------------------------------------------------------------------------------
# Verify and disk


def run_verify(api: docker.APIClient, image: str, args: tuple[str, ...],
               timeout: float) -> tuple[int, str]:
    """Run the image once with `args` (docker run --rm --pull=never --network none IMAGE
    ARGS)."""
    container = None
    try:
        # No network: a smoke test must not depend on (or reach) anything outside.
        container = api.create_container(
            image=image, command=list(args), labels={"pullunit.verify": "1"},
            network_disabled=True, host_config=api.create_host_config(network_mode="none"))
        api.start(container)
        deadline = time.monotonic() + timeout
        while True:
            try:
                result = api.wait(container, timeout=max(1, min(5, deadline - time.monotonic())))
                break
            except requests.exceptions.ReadTimeout:
                if time.monotonic() >= deadline:
                    return 124, f"verify command timed out after {timeout:.0f}s"
            except requests.exceptions.ConnectionError as e:
                if "timed out" in str(e).lower() and time.monotonic() < deadline:
                    continue
                if "timed out" in str(e).lower():
                    return 124, f"verify command timed out after {timeout:.0f}s"
                raise
        out = api.logs(container, stdout=True, stderr=True, tail=20)
        return int(result.get("StatusCode", 1)), out.decode(errors="replace").strip()
    except docker.errors.APIError as e:
        return 125, str(e.explanation or e)
    finally:
        if container is not None:
            with contextlib.suppress(Exception):
                api.remove_container(container, force=True)


def data_root(api: docker.APIClient) -> str:
    try:
        return str(api.info().get("DockerRootDir") or "/var/lib/docker")
    except Exception:
        return "/var/lib/docker"


def remote_digest(api: Api, ref: ImageRef, creds: Credentials) -> str:
    """The digest the registry serves for ref now (what `docker pull` would get), asked
    through the daemon so its mirrors, proxies and insecure-registry list apply."""
    try:
        data = api.inspect_distribution(str(ref), auth_config=creds.auth_config or None)
    except Exception as e:
        raise from_exception(e) from e
    digest = (data.get("Descriptor") or {}).get("digest")
    if not isinstance(digest, str):
        raise fail(FailureClass.UNKNOWN, f"the daemon returned no digest for {ref}")
    return digest
