"""Logging the way systemd's own tools do it: SYSTEMD_LOG_LEVEL, <N> priority prefixes when
stderr is the journal, colour only on a terminal and never with NO_COLOR."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, TextIO

from .printable import printable, printable_lines

_LEVELS = {
    "emerg": logging.CRITICAL, "alert": logging.CRITICAL, "crit": logging.CRITICAL,
    "err": logging.ERROR, "warning": logging.WARNING, "notice": logging.INFO,
    "info": logging.INFO, "debug": logging.DEBUG,
}
_NUMERIC = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"]
# syslog priorities, as sd-daemon(3) prefixes expect
_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6,
             logging.DEBUG: 7}
_COLOR = {logging.CRITICAL: "\033[1;31m", logging.ERROR: "\033[1;31m",
          logging.WARNING: "\033[1;33m", logging.DEBUG: "\033[2m"}


def level_from_env(default: int = logging.INFO) -> int:
    value = os.environ.get("SYSTEMD_LOG_LEVEL", "").strip().lower()
    if value.isdigit() and int(value) < len(_NUMERIC):
        value = _NUMERIC[int(value)]
    return _LEVELS.get(value, default)


def stderr_is_journal(stream: TextIO = sys.stderr) -> bool:
    """True when stderr is connected to journald (JOURNAL_STREAM names its device:inode)."""
    js = os.environ.get("JOURNAL_STREAM", "")
    if not js:
        return False
    try:
        dev, ino = (int(x) for x in js.split(":"))
        st = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return st.st_dev == dev and st.st_ino == ino


def use_color(stream: TextIO = sys.stderr) -> bool:
    if "NO_COLOR" in os.environ or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _safe_arg(arg: Any) -> Any:
    if isinstance(arg, str):
        return printable(arg)
    if isinstance(arg, BaseException):
        return printable(str(arg))
    return arg


def _message(record: logging.LogRecord) -> str:
    """The record's text with every string argument made printable, line feeds included:
    the arguments carry daemon and registry text, the format string is pullunit's own.
    (What is left, say an f-string, is made printable line by line by the caller.)"""
    if isinstance(record.args, tuple) and record.args:
        try:
            return str(record.msg) % tuple(_safe_arg(a) for a in record.args)
        except (TypeError, ValueError):  # a %d given a str: logging's own rendering
            pass
    return record.getMessage()


class _Formatter(logging.Formatter):
    def __init__(self, journal: bool, color: bool, program: str):
        super().__init__()
        self.journal = journal
        self.color = color
        self.program = program

    def format(self, record: logging.LogRecord) -> str:
        msg = printable_lines(_message(record))
        if record.exc_info and record.levelno <= logging.DEBUG:
            msg += "\n" + printable_lines(self.formatException(record.exc_info))
        if self.journal:
            prio = _PRIORITY.get(record.levelno, 6)
            return "\n".join(f"<{prio}>{line}" for line in msg.splitlines() or [""])
        if record.levelno >= logging.WARNING:
            label = "error" if record.levelno >= logging.ERROR else "warning"
            msg = f"{self.program}: {label}: {msg}"
        if self.color and record.levelno in _COLOR:
            msg = f"{_COLOR[record.levelno]}{msg}\033[0m"
        return msg


def setup(debug: bool = False, program: str = "pullunit") -> logging.Logger:
    logger = logging.getLogger("pullunit")
    logger.handlers.clear()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(stderr_is_journal(), use_color(), program))
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else level_from_env())
    logger.propagate = False
    return logger
