"""The daemon's pull progress stream: bytes in, JSON messages, progress and errors out.

Pure logic, no I/O: the engine clients feed it what they read, in whatever pieces the
socket gave them (a read may end mid-line, or hold several messages).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from .classify import PullFailed, classify

Message = dict[str, object]  # one JSON object from the daemon

MAX_PENDING = 1 << 20  # a "line" this long without a newline is not a progress message


class StreamError(ValueError):
    """The daemon sent something that is not a stream of JSON objects."""


class MessageSplitter:
    """Turns the bytes of /images/create into JSON objects.

    dockerd ends each message with CRLF; a read may stop in the middle of one (even in the
    middle of a UTF-8 sequence), or carry several. Only complete lines are decoded; a
    line holding several objects back to back is split too.
    """

    def __init__(self) -> None:
        self._pending = b""
        self._decoder = json.JSONDecoder()

    def feed(self, data: bytes) -> list[Message]:
        self._pending += data
        head, sep, tail = self._pending.rpartition(b"\n")
        if not sep:
            if len(self._pending) > MAX_PENDING:
                raise StreamError(f"no message boundary in {len(self._pending)} bytes")
            return []
        self._pending = tail
        return self._decode(head)

    def finish(self) -> list[Message]:
        """The end of the stream: whatever is left must be whole messages."""
        rest, self._pending = self._pending, b""
        return self._decode(rest)

    def _decode(self, data: bytes) -> list[Message]:
        text = data.decode("utf-8", errors="replace")
        out: list[Message] = []
        i, n = 0, len(text)
        while True:
            while i < n and text[i] in " \t\r\n":
                i += 1
            if i >= n:
                return out
            try:
                obj, i = self._decoder.raw_decode(text, i)
            except ValueError as e:
                raise StreamError(f"not JSON: {text[i:i + 80]!r}") from e
            if not isinstance(obj, dict):
                raise StreamError(f"not a JSON object: {text[:80]!r}")
            out.append(obj)


def failure_of(msg: Message) -> PullFailed | None:
    """The failure an in-stream error message reports (HTTP 200 already sent)."""
    if not msg.get("error"):
        return None
    detail = msg.get("errorDetail")
    detail = detail if isinstance(detail, dict) else {}
    text = str(detail.get("message") or msg["error"])
    code = detail.get("code")
    return PullFailed.of(classify(text, code if isinstance(code, int) else None), text)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


@dataclass
class Progress:
    """Bytes done/total summed over layers, from the daemon's progress messages."""

    layers_total: dict[str, int] = field(default_factory=dict)
    layers_done: dict[str, int] = field(default_factory=dict)
    complete: set[str] = field(default_factory=set)
    messages: int = 0
    # dockerd retries a failed layer download itself ("Retrying in 5 seconds"): the
    # error is only in its log, but that it happened is worth saying if time runs out.
    retrying: bool = False

    @classmethod
    def empty(cls) -> Progress:
        return cls()

    def update(self, msg: Message) -> bool:
        """Apply one message; True when bytes moved or a layer completed."""
        self.messages += 1
        layer = msg.get("id")
        status = str(msg.get("status", ""))
        detail = msg.get("progressDetail")
        detail = detail if isinstance(detail, dict) else {}
        if not isinstance(layer, str) or not layer:
            return False
        if status.startswith("Retrying in"):
            self.retrying = True
            return False
        if status == "Downloading" and _int(detail.get("total")):
            before = self.layers_done.get(layer, 0)
            self.layers_total[layer] = _int(detail.get("total"))
            self.layers_done[layer] = _int(detail.get("current"))
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
