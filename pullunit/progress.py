"""Pull progress: a STATUS= line under systemd, a bar on a terminal, nothing otherwise."""

from __future__ import annotations

import sys
import time

from .log import use_color
from .notify import Notifier


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


class Reporter:
    def __init__(self, notifier: Notifier, label: str, interval: float = 1.0):
        self.notifier = notifier
        self.label = label
        self.interval = interval
        self._last = 0.0
        self.tty = sys.stderr.isatty()
        self.color = use_color()
        self._drawn = False

    def update(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        self._last = now
        pct = f" ({100 * done // total}%)" if total else ""
        text = f"pulling {self.label}: {_mb(done)} / {_mb(total)}{pct}"
        self.notifier.status(text)
        if self.tty:
            width = 30
            filled = width * done // total if total else 0
            bar = "#" * filled + "-" * (width - filled)
            sys.stderr.write(f"\r[{bar}] {_mb(done)} / {_mb(total)}{pct}  ")
            sys.stderr.flush()
            self._drawn = True

    def finish(self) -> None:
        if self._drawn:
            sys.stderr.write("\r" + " " * 72 + "\r")
            sys.stderr.flush()
            self._drawn = False
