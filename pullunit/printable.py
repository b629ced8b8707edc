"""Untrusted text (daemon and registry messages, state files) made safe to print.

A registry's error message reaches pullunit through dockerd unchanged, and so can terminal
escapes in it (`ESC]0;title BEL`, `ESC[2J`): printed raw, they retitle or clear the
operator's terminal, forge log lines or hide text. Every control character therefore
becomes a visible escape (`\\x1b`) before the text is logged, sent as STATUS=, recorded in
the state file or shown by `status`.
"""

from __future__ import annotations

import re

# C0 (including TAB, LF, CR), DEL and C1; the Unicode line and paragraph separators that
# str.splitlines() and some terminals treat as line breaks; the bidirectional controls
# that can reorder what a reader sees ("Trojan Source"); and lone surrogates, which
# cannot even be encoded for stderr.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069"
                     "\ud800-\udfff]")


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group())
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def printable(text: str) -> str:
    """text with every control character as a visible escape. Idempotent: the escapes
    it writes are themselves printable."""
    if text.isascii() and text.isprintable():  # the common case, without a regex pass
        return text
    return _UNSAFE.sub(_escape, text)


def printable_lines(text: str) -> str:
    """Like printable(), but keeps line feeds: for text whose line structure is
    pullunit's own (a log record with a traceback)."""
    return "\n".join(printable(line) for line in text.split("\n"))
