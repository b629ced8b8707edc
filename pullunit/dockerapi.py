"""The Docker edge through docker-py, for what the light client (engine.LiteEngine) does
not speak: engines behind ssh://, the verify run, `docker save`/`load`, and doctor.

docker-py's own pull and inspect_distribution wait without any limit (timeout=None, and
it runs credential helpers itself when given no auth), so the Engine here posts those
requests itself with a read timeout, always hands over explicit credentials, and reads
the pull stream on a worker thread that the caller can abandon at any moment.
"""

from __future__ import annotations

import contextlib
import queue
import socket
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeAlias

import docker
import docker.errors
import requests

from .classify import FailureClass, PullFailed, classify
from .credentials import Credentials, credentials
from .engine import PING_TIMEOUT, LocalImage, platform_of, registry_silent
from .enginehttp import EngineUnavailable, docker_host
from .pullstream import Message, failure_of
from .reference import ImageRef

if TYPE_CHECKING:
    from .credentials import Auth

# docker.APIClient: docker-py ships no type hints, so this edge is the one place where
# its objects are untyped; nothing outside this module sees one (except doctor, archive).
Api: TypeAlias = Any

__all__ = ["Api", "Credentials", "SdkEngine", "connect", "credentials", "from_exception",
           "run_verify"]

CONNECT_TIMEOUT = 10.0
CALL_TIMEOUT = 30.0  # creating, starting, removing a container can take a while


def from_exception(exc: BaseException) -> PullFailed:
    """Turn whatever docker-py or requests raised into a classified failure."""
    if isinstance(exc, PullFailed):
        return exc
    if isinstance(exc, docker.errors.APIError):
        text = str(exc.explanation or exc)
        status = exc.status_code if isinstance(exc.status_code, int) else None
        return PullFailed.of(classify(text, status), text)
    if isinstance(exc, requests.exceptions.Timeout):
        return EngineUnavailable(f"no answer in time: {exc}")
    if isinstance(exc, requests.exceptions.RequestException | OSError
                  | docker.errors.DockerException):
        return EngineUnavailable(str(exc))
    raise exc


def connect(timeout: float = 30.0) -> Api:
    """docker-py's client with the API version negotiated; every call it makes (except a
    streamed pull, see SdkEngine.pull) is bounded by `timeout`."""
    try:
        return docker.APIClient(base_url=docker_host(), version="auto", timeout=timeout)
    except Exception as e:
        raise from_exception(e) from e


class SdkEngine:
    """engine.Engine through docker-py."""

    def __init__(self, api: Api):
        self.api = api
        self.host = docker_host()

    @classmethod
    def connect(cls, timeout: float = CALL_TIMEOUT) -> SdkEngine:
        return cls(connect(timeout))

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

    def ping(self, timeout: float = PING_TIMEOUT) -> bool:
        try:
            r = self.api._get(self.api._url("/_ping"), timeout=timeout)
            return bool(r.status_code == 200)
        except Exception:
            return False

    def data_root(self) -> str:
        try:
            return str(self.api.info().get("DockerRootDir") or "/var/lib/docker")
        except Exception as e:
            raise from_exception(e) from e

    def pull(self, ref: ImageRef, platform: str | None, auth: Auth | None, *,
             silence_limit: float) -> _SdkPull:
        params = {"fromImage": ref.repository, "tag": ref.digest or ref.tag or "latest"}
        if platform:
            params["platform"] = platform
        # Explicit, even when empty: given none, docker-py would run credential helpers
        # itself, with no time limit.
        headers = {"X-Registry-Auth": auth.header() if auth else "e30="}  # "{}"
        return _SdkPull(self.api, params, headers, silence_limit)

    def remote_digest(self, ref: ImageRef, auth: Auth | None, timeout: float) -> str:
        headers = {"X-Registry-Auth": auth.header() if auth else "e30="}
        try:
            # docker-py's inspect_distribution has no timeout parameter; this is its body.
            data = self.api._result(self.api._get(
                self.api._url("/distribution/{0}/json", str(ref)), headers=headers,
                timeout=timeout), True)
        except requests.exceptions.Timeout:
            if not self.ping():
                raise EngineUnavailable(f"it did not answer within {timeout:.3g}s, nor a ping",
                                        self.host) from None
            raise registry_silent(ref, timeout) from None
        except Exception as e:
            raise from_exception(e) from e
        digest = (data.get("Descriptor") or {}).get("digest")
        if not isinstance(digest, str):
            raise PullFailed.of(FailureClass.UNKNOWN, f"the daemon returned no digest for {ref}")
        return digest

    def run_verify(self, image: str, args: tuple[str, ...], timeout: float) -> tuple[int, str]:
        return run_verify(self.api, image, args, timeout)

    def hold(self, image_id: str, repo: str, tag: str) -> None:
        try:
            self.api.tag(image_id, repo, tag)
        except Exception as e:
            raise from_exception(e) from e

    def release(self, name: str) -> None:
        try:
            self.api.remove_image(name, noprune=True)
        except docker.errors.NotFound:
            return
        except docker.errors.APIError as e:
            if e.status_code == 409:  # a container uses it
                return
            raise from_exception(e) from e
        except Exception as e:
            raise from_exception(e) from e

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.api.close()


class _SdkPull:
    """One /images/create through docker-py, entirely on a worker thread (the request
    too: docker-py would block in it until the daemon has the manifest), so the caller
    never waits on it. Each read has a timeout (`silence_limit`), so an abandoned
    request also ends by itself."""

    _END = object()

    def __init__(self, api: Api, params: dict[str, str], headers: dict[str, str],
                 silence_limit: float):
        self._api = api
        self._queue: queue.Queue[object] = queue.Queue()
        self._sock: socket.socket | None = None
        self._response: Any = None
        self._aborted = False
        self.answered = False
        # A little past the caller's own stall clock, so that the caller, which knows
        # what the silence means, speaks first.
        read = min(max(silence_limit, 1.0), 3600.0) + PING_TIMEOUT + 3.0
        self._thread = threading.Thread(target=self._run, name="pull-stream", daemon=True,
                                        args=(params, headers, read))
        self._thread.start()

    def _run(self, params: dict[str, str], headers: dict[str, str], read: float) -> None:
        try:
            api = self._api
            response = api._post(api._url("/images/create"), params=params, headers=headers,
                                 stream=True, timeout=(CONNECT_TIMEOUT, read))
            self._response = response
            self._sock = _socket_of(response)
            if self._aborted:
                response.close()
                return
            api._raise_for_status(response)
            self.answered = True
            for msg in api._stream_helper(response, decode=True):
                self._queue.put(msg)
            self._queue.put(self._END)
        except BaseException as e:  # handed to the main thread, which classifies it
            self._queue.put(e)

    def messages(self, poll: float) -> Iterator[Message | None]:
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
            if isinstance(item, dict):
                failed = failure_of(item)
                if failed is not None:
                    raise failed
                yield item

    def abort(self) -> None:
        """Drop the connection if there is one yet; dockerd cancels a pull whose client
        went away. Before the daemon answered there is no socket to reach: the worker's
        read timeout ends it."""
        self._aborted = True
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
        if self._response is not None:
            with contextlib.suppress(Exception):
                self._response.close()
        self._thread.join(timeout=0.5)


def _socket_of(response: Any) -> socket.socket | None:
    """The socket under a streamed requests.Response (docker-py 5.x to 7.x), which
    shutdown() can unblock from another thread."""
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
# Verify


def run_verify(api: Api, image: str, args: tuple[str, ...], timeout: float) -> tuple[int, str]:
    """Run the image once with `args` (docker run --rm --pull=never --network none IMAGE
    ARGS). Every call is bounded: the client's timeout, and `timeout` for the run."""
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
    except Exception as e:
        raise from_exception(e) from e
    finally:
        if container is not None:
            with contextlib.suppress(Exception):
                api.remove_container(container, force=True)
