"""Failure classification: the field guide's error strings, turned into a decision.

Pure logic. Input is what the Docker engine said; output says whether to retry, which
exit code ends the run, and what an operator should do about it.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import ExitCode, PullunitError
from .printable import printable


class FailureClass(enum.StrEnum):
    NOT_FOUND = "not_found"
    DENIED = "denied"
    PLATFORM = "platform"
    DIGEST_MISMATCH = "digest_mismatch"
    VERIFY_FAILED = "verify_failed"
    TLS = "tls"
    DNS = "dns"
    UNREACHABLE = "unreachable"
    SERVER_ERROR = "server_error"
    STALLED = "stalled"
    RATE_LIMITED = "rate_limited"
    DAEMON_UNAVAILABLE = "daemon_unavailable"
    DISK_FULL = "disk_full"
    CORRUPT = "corrupt"  # a blob that does not match its digest, or does not unpack
    CREDENTIALS = "credentials"  # this host's credential helper is missing or failing
    UNKNOWN = "unknown"


_EXIT = {
    FailureClass.NOT_FOUND: ExitCode.NOINPUT,
    FailureClass.DENIED: ExitCode.NOPERM,
    FailureClass.PLATFORM: ExitCode.DATAERR,
    FailureClass.DIGEST_MISMATCH: ExitCode.DATAERR,
    FailureClass.VERIFY_FAILED: ExitCode.DATAERR,
    FailureClass.TLS: ExitCode.PROTOCOL,
    FailureClass.DNS: ExitCode.NOHOST,
    FailureClass.UNREACHABLE: ExitCode.UNAVAILABLE,
    FailureClass.SERVER_ERROR: ExitCode.UNAVAILABLE,
    FailureClass.STALLED: ExitCode.UNAVAILABLE,
    FailureClass.RATE_LIMITED: ExitCode.UNAVAILABLE,
    FailureClass.DAEMON_UNAVAILABLE: ExitCode.UNAVAILABLE,
    FailureClass.DISK_FULL: ExitCode.CANTCREAT,
    FailureClass.CORRUPT: ExitCode.OSFILE,
    FailureClass.CREDENTIALS: ExitCode.CONFIG,
    FailureClass.UNKNOWN: ExitCode.UNAVAILABLE,
}

# Permanent: retrying cannot help until a human changes something. (`corrupt` is
# permanent once the puller's own fresh second pull failed the same way: Attempt._pull_fresh.)
PERMANENT = frozenset({
    FailureClass.NOT_FOUND, FailureClass.DENIED, FailureClass.PLATFORM,
    FailureClass.DIGEST_MISMATCH, FailureClass.VERIFY_FAILED, FailureClass.TLS,
    FailureClass.DISK_FULL, FailureClass.CORRUPT, FailureClass.CREDENTIALS,
})

# What a registry's HTTP status means, when the daemon quotes one. dockerd answers its own
# API with 500 for nearly every registry failure, so the registry's status is only in the
# text: "error parsing HTTP 404 response body: ..." (a body that is not the registry's JSON
# error format: an HTML page, or nothing) or "received unexpected HTTP status: 503 ...".
_REGISTRY_STATUS = (r"error parsing HTTP (\d{3}) response body"
                    r"|received unexpected HTTP status: (\d{3})")

# Checked in order: the first match wins. Order matters where texts overlap:
# "TLS handshake timeout" is a network problem, not a certificate problem;
# "lookup x: no such host" is DNS, not "not found"; "no matching manifest" is platform;
# a layer that does not unpack ("failed to register layer: ...: unexpected EOF") is
# corrupt, not the network's EOF, unless the disk is full.
_RULE_SOURCES: list[tuple[FailureClass, tuple[str, int]]] = [
    (FailureClass.DISK_FULL, (r"no space left on device|disk quota exceeded", re.I)),
    (FailureClass.CORRUPT, (
        # dockerd 20.10's own words (observed: tests/testbed/observed_messages.py) for a
        # blob whose bytes do not match its digest, and for one that matches but does
        # not unpack; containerd's image store says "unexpected commit digest"
        r"(filesystem layer|image config) verification failed for digest"
        r"|failed to register layer: .*(unexpected EOF|archive/tar|gzip|flate|zlib"
        r"|invalid tar|checksum)|unexpected commit digest", re.I)),
    (FailureClass.RATE_LIMITED, (
        r"toomanyrequests|too many requests|\b429\b|rate limit", re.I)),
    (FailureClass.UNREACHABLE, (r"tls handshake timeout", re.I)),
    (FailureClass.DNS, (
        r"no such host|temporary failure in name resolution|server misbehaving"
        r"|name or service not known|lookup \S+( on \S+)?: .*(timeout|refused)", re.I)),
    (FailureClass.TLS, (
        r"x509:|certificate signed by unknown authority|tls: bad certificate"
        r"|certificate has expired|certificate is not valid|tls: .*certificate"
        r"|server gave HTTP response to HTTPS client", re.I)),
    (FailureClass.DIGEST_MISMATCH, (r"manifest verification failed for digest", re.I)),
    (FailureClass.PLATFORM, (
        r"no matching manifest for|does not match the specified platform"
        r"|image with reference .* was found but does not match", re.I)),
    (FailureClass.DENIED, (
        r"no basic auth credentials|unauthorized|authentication required|access denied"
        r"|pull access denied|\bdenied\b|403 forbidden|insufficient_scope", re.I)),
    (FailureClass.NOT_FOUND, (
        r"manifest unknown|not found|name unknown|no such image|does not exist"
        r"|blob unknown|unknown blob", re.I)),
    (FailureClass.UNREACHABLE, (
        r"connection refused|connection reset|\bEOF\b|i/o timeout|network is unreachable"
        r"|no route to host|context deadline exceeded|request canceled|broken pipe"
        r"|timeout exceeded|connection timed out", re.I)),
    (FailureClass.SERVER_ERROR, (
        r"\b50[0-9]\b|internal server error|bad gateway|service unavailable"
        r"|gateway time-?out|unexpected http status", re.I)),
]


@functools.cache
def _rules() -> list[tuple[FailureClass, re.Pattern[str]]]:
    # Compiled on first use: a warm start never classifies anything.
    return [(cls, re.compile(pattern, flags)) for cls, (pattern, flags) in _RULE_SOURCES]


@functools.cache
def _registry_status() -> re.Pattern[str]:
    return re.compile(_REGISTRY_STATUS, re.I)


@dataclass(frozen=True)
class Failure:
    cls: FailureClass
    message: str

    @property
    def permanent(self) -> bool:
        return self.cls in PERMANENT

    def without(self, secrets: Iterable[str]) -> Failure:
        """This failure with the caller's known credential values removed: a registry may
        echo what it was sent (an Authorization header) into its error text."""
        from .redact import redact

        return Failure(self.cls, redact(self.message, secrets))

    @property
    def exit_code(self) -> ExitCode:
        return _EXIT[self.cls]


class PullFailed(PullunitError):
    """One attempt failed; `failure` says how. Inside the puller it is one attempt's
    failure to retry or give up on; anywhere else (pin, rollback) an ordinary
    PullunitError: "CLASS: message" and the class's exit code."""

    def __init__(self, failure: Failure, hint: str = ""):
        super().__init__(f"{failure.cls.value.replace('_', ' ')}: {failure.message}",
                         failure.exit_code, hint)
        self.failure = failure

    @staticmethod
    def of(cls: FailureClass, message: str) -> PullFailed:
        """The exception for a failure of class `cls` (the caller raises or returns it).
        Daemon texts quote registry answers: no credential, no raw terminal control."""
        from .redact import redact  # its patterns compile on import: not on a warm start

        return PullFailed(Failure(cls, printable(redact(message))))


def classify(message: str, status_code: int | None = None) -> FailureClass:
    """Classify a daemon error text (and the HTTP status of the daemon's answer, if any)."""
    quoted = _registry_status().search(message)
    if quoted:
        # The registry's own status decides; the rest of such a text is its body, which
        # can say anything ("<h1>500 Internal Server Error</h1>" on a 404 page).
        return _by_status(int(quoted.group(1) or quoted.group(2)))
    for cls, pattern in _rules():
        if pattern.search(message):
            return cls
    return _by_status(status_code)


def _by_status(status_code: int | None) -> FailureClass:
    if status_code == 404:
        return FailureClass.NOT_FOUND
    if status_code in (401, 403):
        return FailureClass.DENIED
    if status_code == 429:
        return FailureClass.RATE_LIMITED
    if status_code is not None and status_code >= 500:
        return FailureClass.SERVER_ERROR
    return FailureClass.UNKNOWN


def exit_code(cls: FailureClass) -> ExitCode:
    return _EXIT[cls]


