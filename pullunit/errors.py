"""The one domain exception and the exit-code table (sysexits.h, plus signals).

Deep code raises PullunitError; only cli.main() turns it into an exit status.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    FAILURE = 1  # doctor: a check failed; status: an app is failed
    USAGE = 64  # EX_USAGE: bad command line
    DATAERR = 65  # EX_DATAERR: wrong platform, digest mismatch, verify command failed
    NOINPUT = 66  # EX_NOINPUT: image or tag not found
    NOHOST = 68  # EX_NOHOST: registry host name does not resolve
    UNAVAILABLE = 69  # EX_UNAVAILABLE: registry/daemon unreachable, 5xx, stalled, rate limited
    SOFTWARE = 70  # EX_SOFTWARE: internal error (a bug)
    OSFILE = 72  # EX_OSFILE: a layer corrupt twice (registry storage, a proxy, local disk)
    CANTCREAT = 73  # EX_CANTCREAT: no space left on device
    IOERR = 74  # EX_IOERR: cannot write units/state
    TEMPFAIL = 75  # EX_TEMPFAIL: lock held / try again
    PROTOCOL = 76  # EX_PROTOCOL: TLS verification failed
    NOPERM = 77  # EX_NOPERM: access denied by the registry; not root
    CONFIG = 78  # EX_CONFIG: invalid configuration; a credential helper missing or failing
    ROLLED_BACK = 80  # update: the new image did not become ready; back on the previous one
    NOT_READY = 81  # the app did not become ready (readiness gate; update without rollback)
    SIGINT = 130
    SIGTERM = 143


class PullunitError(Exception):
    """An error the user can act on: a message and the exit code it maps to."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.FAILURE, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class Interrupted(BaseException):
    """SIGTERM/SIGINT. A BaseException, like KeyboardInterrupt, so that no `except
    Exception` on the way up (logging's own error handler is one) can swallow it."""

    def __init__(self, signame: str, exit_code: ExitCode):
        super().__init__(signame)
        self.signame = signame
        self.exit_code = exit_code


class ConfigError(PullunitError):
    """Invalid configuration; message names the file and dotted key."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message, ExitCode.CONFIG, hint)
