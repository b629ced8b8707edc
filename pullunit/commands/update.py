"""pullunit update [APP...] [--to TAG|DIGEST] [--auto] [--dry-run] [--no-rollback] [--json]:
pull the tag's current digest, switch the app to it, wait for the readiness gate, and roll
back by itself when the new image does not become ready (the sequence: updater.py).

Apps are updated one at a time, in name order; the round stops at the first app that did
not become ready (rolled back or not), so one bad image does not go further. With --auto
(pullunit-update.timer) only apps with [update] auto = true take part.

--json prints a list of {"app", "result", "exit_code", "from", "to", "cause", "class",
"message"}: result is "updated", "current", "would_update", "switched", "rolled_back",
"not_ready", "failed" or "skipped". Exit status: the highest of the apps' codes
(0; 80 rolled back; 81 not ready; a pull's code when it could not resolve or pull).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator
from types import FrameType
from typing import Any

from .. import paths
from ..classify import PullFailed
from ..cli import config_dir
from ..config import AppConfig, app_files, app_name_of, load_app, resolve_app
from ..engine import Engine, LiteEngine, LocalImage
from ..enginehttp import EngineUnavailable
from ..errors import ConfigError, ExitCode, Interrupted, PullunitError
from ..hostconfig import load_host
from ..mirrors import Mirror
from ..reference import ImageRef
from ..updater import Edges, Failed, Outcome, Result, Updater

log = logging.getLogger("pullunit")


@contextlib.contextmanager
def _one_update_at_a_time() -> Iterator[None]:
    """Two updates at once (the timer and an admin) would restart apps under each other:
    the second one says so and exits 75."""
    path = paths.runtime_dir() / "update.lock"
    try:
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        raise PullunitError(f"Cannot open lock {path}: {e.strerror}", ExitCode.CANTCREAT) from e
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise PullunitError("another 'pullunit update' is running", ExitCode.TEMPFAIL,
                                "try again when it is done") from None
        yield
    finally:
        os.close(fd)


class _RealEdges:
    """The registry through the daemon, the puller, the engine, systemd over D-Bus."""

    def __init__(self, mirrors: tuple[Mirror, ...] = (), max_parallel_pulls: int = 0) -> None:
        self._api: Any = None
        self.mirrors = mirrors  # pullunit.toml's [[mirror]]: the pull may use them
        self.max_parallel_pulls = max_parallel_pulls  # pullunit.toml: the host's pull slots

    def api(self) -> Any:
        if self._api is None:
            from .. import dockerapi

            self._api = dockerapi.connect()
        return self._api

    def resolve(self, app: AppConfig, ref: ImageRef) -> str:
        from ..engine import connect
        from ..resolve import remote_digest

        try:
            return remote_digest(connect(), app, ref)
        except PullFailed as e:
            f = e.failure
            raise Failed(str(f.cls), f.message, int(f.exit_code)) from e

    def pull(self, app: AppConfig, ref: ImageRef) -> LocalImage:
        from ..notify import Notifier
        from ..puller import GaveUp, Puller

        try:
            return Puller(app, notifier=Notifier(), ref=ref,
                          mirrors=self.mirrors,
                          max_parallel_pulls=self.max_parallel_pulls).run(prefetch=True).image
        except GaveUp as e:
            f = e.failure
            raise Failed(str(f.cls), f.message, int(f.exit_code)) from e

    def inspect(self, image_id: str) -> LocalImage | None:
        try:
            return LiteEngine().inspect(image_id)
        except EngineUnavailable as e:
            raise PullunitError(f"cannot ask the Docker daemon for {image_id}: {e}",
                                ExitCode.UNAVAILABLE) from e

    def edges(self) -> Edges:
        from .. import systemd

        return Edges(resolve=self.resolve, pull=self.pull, inspect=self.inspect,
                     unit=systemd.unit_state,
                     restart=lambda unit, bound: systemd.restart(unit, timeout=bound),
                     api=self.api, engine=_connect_engine)


def _connect_engine() -> Engine:
    from ..engine import connect

    return connect()


def _apps(args: argparse.Namespace) -> list[AppConfig | Outcome]:
    """The apps to update, in order. In a round over every app, a broken config is an
    outcome of its own, so it costs the other apps nothing."""
    cfg = config_dir(args)
    files = [resolve_app(cfg, a) for a in args.apps] if args.apps else app_files(cfg)
    out: list[AppConfig | Outcome] = []
    for path in files:
        try:
            app = load_app(path)
        except ConfigError as e:
            if args.apps:  # named on the command line: the usual error and exit 78
                raise
            out.append(Outcome(app_name_of(path), Result.FAILED, int(e.exit_code),
                               cls="config", message=e.message))
            continue
        if args.auto and not app.update.auto:
            continue
        out.append(app)
    return out


def _print(o: Outcome) -> None:
    print(f"{o.app}: {o.result}: {o.message}")
    if o.cause:
        print(f"{o.app}: cause: {o.cause}")


def _on_signal(signum: int, frame: FrameType | None) -> None:
    # Unwinds through the updater, which records an update it leaves half done; the
    # files it writes are only ever replaced atomically.
    code = ExitCode.SIGTERM if signum == signal.SIGTERM else ExitCode.SIGINT
    raise Interrupted(signal.Signals(signum).name, code)


def run(args: argparse.Namespace) -> int:
    if args.to is not None and len(args.apps) != 1:
        raise PullunitError("--to needs exactly one APP", ExitCode.USAGE)
    apps = _apps(args)
    if args.auto and not apps:
        log.info("no app has [update] auto = true")
    host = load_host(config_dir(args))
    edges = _RealEdges(host.mirrors, host.max_parallel_pulls).edges()
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    results: list[Outcome] = []
    guard = contextlib.nullcontext() if args.dry_run else _one_update_at_a_time()
    with guard:
        stopped_at: str | None = None
        for item in apps:
            if isinstance(item, Outcome):
                outcome = item
            elif stopped_at is not None:
                outcome = Outcome(item.name, Result.SKIPPED, message="not tried: the round "
                                  f"stopped when {stopped_at} was not ready")
            else:
                outcome = _update(item, args, edges, alone=len(apps) == 1)
                if outcome.result in (Result.ROLLED_BACK, Result.NOT_READY):
                    stopped_at = item.name
            results.append(outcome)
            if not args.json:
                _print(outcome)
    if args.json:
        json.dump([r.to_json() for r in results], sys.stdout, indent=2)
        sys.stdout.write("\n")
    return max((r.exit_code for r in results), default=0)


def _update(app: AppConfig, args: argparse.Namespace, edges: Edges, *, alone: bool
            ) -> Outcome:
    try:
        if not args.dry_run:
            from .. import systemd

            # Everything the switch needs is checked before anything changes.
            systemd.check_restart(app.run_unit)
        return Updater(app, edges, rollback=not args.no_rollback,
                       auto=args.auto).run(args.to, dry_run=args.dry_run)
    except PullunitError as e:
        if alone:
            raise
        log.error("%s: %s", app.name, e.message)
        return Outcome(app.name, Result.FAILED, int(e.exit_code), message=e.message)
