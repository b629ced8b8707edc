"""pullunit pull APP: what APP-pull.service runs."""

from __future__ import annotations

import argparse
import functools
import json
import logging
import signal
import sys
import time
from types import FrameType

from .. import metrics, pinning, stats
from ..applock import app_lock
from ..cli import config_dir
from ..config import load_app, resolve_app
from ..errors import ExitCode, Interrupted
from ..hostconfig import load_host
from ..notify import Notifier
from ..puller import GaveUp, Puller, Source

log = logging.getLogger("pullunit")


def _on_signal(signum: int, frame: FrameType | None) -> None:
    # Raising unwinds whatever is running (a sleep, a lock wait, a stream read) through
    # its finally blocks; state is only ever replaced atomically, so nothing is half-done.
    name = signal.Signals(signum).name
    code = ExitCode.SIGTERM if signum == signal.SIGTERM else ExitCode.SIGINT
    raise Interrupted(name, code)


def run(args: argparse.Namespace) -> int:
    app = load_app(resolve_app(config_dir(args), args.app))
    host = load_host(config_dir(args))
    pin = pinning.answer(app)
    if pin.applies is pinning.Applies.STALE:
        assert pin.lock is not None
        log.warning("ignoring %s: it pins %s, but the config now says %s (run 'pullunit pin')",
                    pinning.lock_path(app), pin.lock.ref, app.image.ref)
    elif pin.applies is pinning.Applies.PINNED:
        assert pin.lock is not None
        log.info("pinned by %s (%s): %s", pinning.lock_path(app).name, pin.lock.source,
                 pin.ref)
    elif pin.applies is pinning.Applies.OVERRIDDEN:
        log.debug("ignoring %s: %s", pinning.lock_path(app), pin.why)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    notifier = Notifier()

    def waiting(message: str) -> None:
        log.info("%s", message)
        notifier.status(message)

    started = time.monotonic()
    publish = functools.partial(metrics.publish, host.metrics, app.name)
    with app_lock(app.name, waiting, timeout=app.pull.deadline):
        puller = Puller(app, notifier=notifier, ref=pin.ref, on_record=publish,
                        started=started, mirrors=host.mirrors,
                        max_parallel_pulls=host.max_parallel_pulls)
        try:
            outcome = puller.run()
        except GaveUp as e:
            metrics.settle(host.metrics, app.name, puller.state,
                           stats.gave_up(puller.state, puller.clock() - puller.start))
            f = e.failure
            notifier.status(f"failed ({f.cls}) after {e.attempts} attempt(s): {f.message}")
            log.error("giving up on %s after %d attempt(s): %s", app.image.ref, e.attempts,
                      f.cls)
            if args.json:
                json.dump({"app": app.name, "ready": False, "class": str(f.cls),
                           "message": f.message, "exit_code": int(f.exit_code),
                           "attempts": e.attempts}, sys.stdout)
                sys.stdout.write("\n")
            return int(f.exit_code)
        metrics.settle(host.metrics, app.name, puller.state,
                       stats.finished(puller.state, str(outcome.source), outcome.elapsed,
                                      ready=True, pulled=outcome.source is Source.PULLED))
    if args.json:
        json.dump({"app": app.name, "ready": True, "image": outcome.reference,
                   "image_id": outcome.image.id, "source": outcome.source,
                   "attempts": outcome.attempts, "elapsed": round(outcome.elapsed, 3)},
                  sys.stdout)
        sys.stdout.write("\n")
    return 0
