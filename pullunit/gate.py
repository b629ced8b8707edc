"""The readiness gate: `pullunit ready`, the run unit's ExecStartPost=.

systemd keeps a Type=simple unit `activating (start-post)` until ExecStartPost= returns,
so this process is what makes `systemctl start APP.service` (and every unit ordered
After= it) wait until the container runs and Docker calls it healthy. It watches the
container through the engine's unix socket with the standard library (no docker-py: it
runs at every start), watches the unit's `docker run` (systemd's $MAINPID) so that a
container that dies at once fails the start at once, and exits: nothing stays resident.

Why this mechanism and not a supervisor: docs/ARCHITECTURE.md, "The readiness gate".
"""

from __future__ import annotations

import json
import logging
import socket
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .durations import human
from .enginehttp import API_VERSION, docker_host
from .health import Judgement, Verdict, judge, timed_out

log = logging.getLogger("pullunit")
POLL = 0.1  # between two looks at the container: bounds how late the unit turns active
REQUEST_TIMEOUT = 5.0  # one request to the engine


class EngineError(Exception):
    """The engine did not answer (socket missing, daemon restarting, odd reply)."""


@dataclass(frozen=True)
class Engine:
    """The few container questions the gate asks, over HTTP/1.0 on the engine's unix
    socket: dockerd then answers with a plain body and closes, so a reply is read to EOF
    under one socket timeout (the same approach as engine.LiteEngine for images)."""

    path: str
    timeout: float = REQUEST_TIMEOUT

    @classmethod
    def from_env(cls) -> Engine:
        host = docker_host()
        if not host.startswith("unix://"):
            raise EngineError(f"the readiness gate needs a unix socket, DOCKER_HOST is {host}")
        return cls(host[len("unix://"):])

    def _request(self, method: str, url: str, timeout: float | None = None) -> tuple[int, bytes]:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(timeout or self.timeout)
                s.connect(self.path)
                s.sendall(f"{method} /{API_VERSION}{url} HTTP/1.0\r\nHost: docker\r\n"
                          "Content-Length: 0\r\n\r\n".encode())
                chunks = []
                while data := s.recv(65536):
                    chunks.append(data)
        except OSError as e:
            raise EngineError(str(e) or type(e).__name__) from e
        head, sep, body = b"".join(chunks).partition(b"\r\n\r\n")
        try:
            status = int(head.split(b"\r\n", 1)[0].split()[1])
        except (IndexError, ValueError):
            raise EngineError(f"bad reply from the engine: {head[:80]!r}") from None
        if not sep:
            raise EngineError("truncated reply from the engine")
        return status, body

    def container(self, name: str) -> dict[str, Any] | None:
        status, body = self._request("GET", f"/containers/{_quote(name)}/json")
        if status == 404:
            return None
        if status != 200:
            raise EngineError(f"inspect {name}: HTTP {status}")
        try:
            data = json.loads(body)
        except ValueError as e:
            raise EngineError(f"inspect {name}: {e}") from e
        if not isinstance(data, dict):
            raise EngineError(f"inspect {name}: unexpected reply")
        return data

    def exit_code(self, name: str, since: float) -> int | None:
        """The exit status of the container's last `die` since `since` (a container run
        with --rm is gone by the time anyone looks; the engine's events still know)."""
        filters = json.dumps({"type": ["container"], "container": [name], "event": ["die"]})
        url = (f"/events?since={int(since)}&until={int(time.time()) + 1}"
               f"&filters={urllib.parse.quote(filters)}")
        status, body = self._request("GET", url)
        if status != 200:
            return None
        code = None
        for line in body.splitlines():
            try:
                event = json.loads(line)
                code = int(event["Actor"]["Attributes"]["exitCode"])
            except (ValueError, KeyError, TypeError):
                continue
        return code

    def stop(self, name: str, grace: float) -> None:
        seconds = max(0, round(grace))
        self._request("POST", f"/containers/{_quote(name)}/stop?t={seconds}",
                      timeout=seconds + 15.0)


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


class MainProcess:
    """The unit's main process (`docker run`), from systemd's $MAINPID. Known by its pid
    and its start time, so a reused pid is not mistaken for it."""

    def __init__(self, pid: int | None):
        self.pid = pid
        self.start = _starttime(pid) if pid else None

    def alive(self) -> bool:
        if not self.pid:
            return True  # run by hand: only the container tells
        return self.start is not None and _starttime(self.pid) == self.start


def _starttime(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat, or None once the process is gone or a zombie."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()
    if len(fields) < 20 or fields[0] in ("Z", "X"):
        return None
    return fields[19]


Look = Callable[[str], dict[str, Any] | None]


def wait(name: str, start_timeout: float, *, look: Look, main_alive: Callable[[], bool],
         status: Callable[[str], None], clock: Callable[[], float] = time.monotonic,
         sleep: Callable[[float], None] = time.sleep) -> Judgement:
    """Look at the container until it is ready, fails, or start_timeout passes."""
    start = clock()
    last = Judgement(Verdict.WAIT, "starting")
    said = ""
    while True:
        alive = main_alive()  # before the look: a container gone with its docker run is
        try:                  # then judged as failed, not as "not created yet"
            now = judge(look(name), main_alive=alive)
        except EngineError as e:
            now = (Judgement(Verdict.WAIT, f"the Docker daemon does not answer ({e})",
                             last.health) if alive else
                   Judgement(Verdict.FAILED, f"docker run exited and the Docker daemon does "
                             f"not answer ({e})"))
        if now.verdict is not Verdict.WAIT:
            return now
        last = now
        if now.why != said:
            said = now.why
            status(f"waiting for {name}: {now.why} (health.start_timeout "
                   f"{human(start_timeout)})")
        if clock() - start >= start_timeout:
            return Judgement(Verdict.FAILED, timed_out(last, start_timeout), last.health)
        sleep(POLL)
