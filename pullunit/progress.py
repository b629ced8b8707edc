"""Pull progress: a STATUS= line under systemd, a bar on a terminal, nothing otherwise."""

from __future__ import annotations

import sys
import time

from .notify import Notifier

STATUS_INTERVAL = 1.0  # systemd does not need more than one STATUS= a second
TTY_INTERVAL = 0.1


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


class Reporter:
    def __init__(self, notifier: Notifier, label: str):
        self.notifier = notifier
        self.label = label
        self._last_status = 0.0
        self._last_draw = 0.0
        self.tty = sys.stderr.isatty()
        self._drawn = False

    def update(self, done: int, total: int) -> None:
        if not total:
            return  # sizes not known yet: nothing meaningful to show
        now = time.monotonic()
        pct = f" ({100 * done // total}%)"
        if now - self._last_status >= STATUS_INTERVAL:
            self._last_status = now
            self.notifier.status(f"pulling {self.label}: {_mb(done)} / {_mb(total)}{pct}")
        if self.tty and now - self._last_draw >= TTY_INTERVAL:
            self._last_draw = now
            width = 30
            filled = width * done // total
            bar = "#" * filled + "-" * (width - filled)
            sys.stderr.write(f"\r[{bar}] {_mb(done)} / {_mb(total)}{pct}  ")
            sys.stderr.flush()
            self._drawn = True

    def finish(self) -> None:
        if self._drawn:
            sys.stderr.write("\r" + " " * 72 + "\r")
            sys.stderr.flush()
            self._drawn = False
