"""pullunit ready APP: wait until APP's container runs and is healthy (the readiness gate,
what APP.service's ExecStartPost= runs); exit 0 when it is, 81 when it will not be.

The unit passes --container, --start-timeout and --stop-timeout, as rendered, so the gate
needs no config file and matches the unit even when the config changed since; by hand,
they come from the config.
"""

from __future__ import annotations

import argparse
import logging
import os
import time

from .. import gate
from ..cli import config_dir
from ..durations import DurationError, human, parse_duration
from ..errors import ExitCode, PullunitError
from ..health import Verdict
from ..notify import Notifier

log = logging.getLogger("pullunit")


def _seconds(value: str, option: str) -> float:
    try:
        seconds = parse_duration(value)
    except DurationError as e:
        raise PullunitError(f"{option}: {e}", ExitCode.USAGE) from None
    if not 0 < seconds < float("inf"):
        raise PullunitError(f"{option}: must be a finite duration above zero", ExitCode.USAGE)
    return seconds


def _main_pid() -> int | None:
    """systemd sets $MAINPID for ExecStartPost= once the main process is known."""
    value = os.environ.get("MAINPID", "")
    return int(value) if value.isdigit() and int(value) > 0 else None


def run(args: argparse.Namespace) -> int:
    if args.container and args.start_timeout and args.stop_timeout:
        name = args.container
        start_timeout = _seconds(args.start_timeout, "--start-timeout")
        grace = _seconds(args.stop_timeout, "--stop-timeout")
    else:  # by hand: from the config (the unit passes everything, so it never loads it)
        from ..config import load_app, resolve_app

        app = load_app(resolve_app(config_dir(args), args.app))
        name = args.container or app.run.name
        start_timeout = (_seconds(args.start_timeout, "--start-timeout")
                         if args.start_timeout else app.health.start_timeout)
        grace = (_seconds(args.stop_timeout, "--stop-timeout")
                 if args.stop_timeout else app.run.stop_timeout)
    try:
        engine = gate.Engine.from_env()
    except gate.EngineError as e:
        raise PullunitError(str(e), ExitCode.UNAVAILABLE) from e
    notifier = Notifier()
    main = gate.MainProcess(_main_pid())
    since = time.time()  # the container's die, if any, comes after this
    t0 = time.monotonic()
    got = gate.wait(name, start_timeout, look=engine.container, main_alive=main.alive,
                    status=notifier.status)
    elapsed = time.monotonic() - t0
    if got.verdict is Verdict.READY:
        text = f"ready: {name} is {got.why} after {human(elapsed)}"
        log.info("%s", text)
        notifier.status(text)
        return 0
    why = got.why
    try:
        if got.gone:
            code = engine.exit_code(name, since)
            if code is not None:
                why = f"the container exited with status {code} after {human(elapsed)}"
        elif engine.container(name) is not None:
            # systemd runs no ExecStop= for a start that failed, and its SIGTERM to
            # docker run does not end every container: stop it as ExecStop= would.
            log.info("stopping %s (grace period %s)", name, human(grace))
            engine.stop(name, grace)
    except gate.EngineError as e:
        log.warning("cannot ask the Docker daemon about %s: %s", name, e)
    text = f"not ready: {why}"
    notifier.status(text)
    log.error("%s: %s", args.app, text)
    return int(ExitCode.NOT_READY)
