"""Pull through the docker SDK and record exactly how a failure surfaced.

``APIClient.pull(ref, stream=True, decode=True)`` reports a failure in one of two
ways: an exception (docker.errors.NotFound / APIError, requests' ConnectionError, ...)
or, once the stream has started, a ``{"error": ..., "errorDetail": {...}}`` message
with HTTP 200. :class:`PullOutcome` keeps both apart.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .regapi import Ref, check_local_ref


@dataclass
class PullOutcome:
    ref: str
    ok: bool = False
    via: str = "ok"  # "ok" | "exception" | "stream" | "stalled"
    exc_class: str | None = None  # e.g. "docker.errors.NotFound"
    status_code: int | None = None
    text: str | None = None  # str(exc), or the stream's "error"
    explanation: str | None = None  # exc.explanation, or errorDetail.message
    messages: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def message(self) -> str:
        """The daemon's own words: explanation if there is one, else text."""
        return self.explanation or self.text or ""


def try_pull(api: Any, ref: str, *, auth_config: dict[str, str] | None = None,
             platform: str | None = None, stall_after: float | None = None,
             names_ok: bool = False) -> PullOutcome:
    """Pull *ref* with a docker.APIClient and report how it ended.

    The registry in *ref* must be a loopback or test-net IP: a host name would make
    the daemon query the host's real resolver. names_ok=True lifts that, only for a
    daemon whose resolver is our stub (DnsDockerd.try_pull sets it).

    stall_after: give up when the daemon sends nothing for that many seconds
    (via="stalled"). dockerd sends a progress message only every 512 KiB, so a
    trickling transfer counts as stalled. The SDK streams pulls without any timeout,
    so a watchdog shuts the connection down, which makes dockerd cancel the pull.
    """
    if names_ok:
        Ref.parse(ref)
    else:
        check_local_ref(ref)  # never pull from anywhere but loopback / our test hosts
    out = PullOutcome(ref)
    start = time.monotonic()
    last = [start]
    fired = threading.Event()
    done = threading.Event()
    try:
        stream = api.pull(ref, stream=True, decode=True, auth_config=auth_config,
                          platform=platform)
        if stall_after:
            sock = _stream_socket(stream)
            threading.Thread(target=_watchdog, args=(sock, last, stall_after, fired, done),
                             daemon=True).start()
        for msg in stream:
            last[0] = time.monotonic()
            out.messages.append(msg)
            if "error" in msg:
                out.via, out.text = "stream", str(msg["error"])
                out.explanation = (msg.get("errorDetail") or {}).get("message")
                break
        else:
            out.ok = not fired.is_set()
    except Exception as e:
        if not fired.is_set():
            out.via = "exception"
            out.exc_class = f"{type(e).__module__}.{type(e).__qualname__}"
            out.text = str(e)
            resp = getattr(e, "response", None)
            out.status_code = getattr(e, "status_code", None) or getattr(
                resp, "status_code", None)
            out.explanation = getattr(e, "explanation", None)
    finally:
        done.set()
        out.seconds = time.monotonic() - start
    if fired.is_set():
        out.ok, out.via = False, "stalled"
        out.text = f"no pull progress for {stall_after:g}s"
    return out


def _watchdog(sock: socket.socket, last: list[float], limit: float,
              fired: threading.Event, done: threading.Event) -> None:
    while not done.wait(0.1):
        if time.monotonic() - last[0] > limit:
            fired.set()
            # shutdown, not close: it wakes the reader blocked in recv().
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            return


def _stream_socket(stream: Any) -> socket.socket:
    """The socket under an SDK pull stream. APIClient.pull(stream=True) returns the
    generator _stream_helper(response, ...) (docker 5.x to 7.x); its *response* is a
    requests.Response over urllib3, whose connection holds the socket."""
    response = stream.gi_frame.f_locals["response"]
    raw = response.raw
    conn = getattr(raw, "_connection", None)
    sock = getattr(conn, "sock", None)
    if sock is None:  # fall back to http.client's buffered reader
        sock = raw._fp.fp.raw._sock
    return sock  # type: ignore[no-any-return]
