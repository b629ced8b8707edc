"""sd_notify(3) for the puller: READY=1 and STATUS= lines. Without NOTIFY_SOCKET every call
is a no-op, so `pullunit pull` works by hand just the same."""

from __future__ import annotations

import os

from .printable import printable


class Notifier:
    def __init__(self) -> None:
        self.enabled = bool(os.environ.get("NOTIFY_SOCKET"))
        self._last = ""
        self._n = None
        if self.enabled:
            import sdnotify

            self._n = sdnotify.SystemdNotifier()

    def _send(self, text: str) -> None:
        if self._n is not None:
            self._n.notify(text)

    def status(self, text: str) -> None:
        text = printable(text.replace("\n", " "))  # daemon text, ESC and all
        if text != self._last:
            self._last = text
            self._send(f"STATUS={text}")

    def ready(self, status: str) -> None:
        status = printable(status.replace("\n", " "))
        self._last = status
        self._send(f"READY=1\nSTATUS={status}")
