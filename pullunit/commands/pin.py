"""pullunit pin [APP...] [--check]: resolve tags to digests into APP.lock.toml.

Each app is on its own: an invalid config or lock file is reported (exit 78) and the
other apps are still pinned or checked. The exit status is the worst of: 78 for a config
error, the failure's exit code when a tag cannot be resolved, 1 for a stale lock with
--check, else 0. A lock file that is not a valid lock is never overwritten.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterator

from .. import pinning
from ..classify import PullFailed
from ..cli import config_dir
from ..config import AppConfig, app_files, load_app, resolve_app
from ..engine import Engine
from ..errors import ConfigError, ExitCode
from ..resolve import remote_digest

log = logging.getLogger("pullunit")
def _apps(args: argparse.Namespace) -> Iterator[AppConfig | ConfigError]:
    """Each app to pin, or the error that its config cannot be used."""
    cfg = config_dir(args)
    for target in list(args.apps) or [str(p) for p in app_files(cfg)]:
        try:
            yield load_app(resolve_app(cfg, target))
        except ConfigError as e:
            yield e


def run(args: argparse.Namespace) -> int:
    from ..engine import connect

    engine: Engine | None = None
    worst = 0
    for app in _apps(args):
        if isinstance(app, ConfigError):
            log.error("%s", app.message)
            worst = max(worst, int(app.exit_code))
            continue
        ref = app.image.ref
        if ref.digest:
            print(f"{app.name}: pinned in its config ({ref.digest}); no lock needed")
            continue
        try:
            if engine is None:
                engine = connect()
            digest = remote_digest(engine, app)
        except PullFailed as e:
            log.error("%s: cannot resolve %s (%s): %s; fix: %s", app.name, ref, e.failure.cls,
                      e.failure.message, e.hint)
            worst = max(worst, int(e.failure.exit_code))
            continue
        try:
            lock = pinning.read(app)
        except ConfigError as e:
            log.error("%s", e.message)
            worst = max(worst, int(e.exit_code))
            continue
        current = lock is not None and lock.ref == str(ref) and lock.digest == digest
        if args.check:
            if current:
                print(f"{app.name}: {ref} -> {digest} (lock up to date)")
            else:
                was = f"lock has {lock.digest} for {lock.ref}" if lock else "no lock"
                print(f"{app.name}: STALE: {ref} is now {digest}; {was}")
                worst = max(worst, int(ExitCode.FAILURE))
            continue
        if current:
            print(f"{app.name}: {ref} -> {digest} (unchanged)")
            continue
        pinning.write(app, digest, "pin")
        was = f" (was {lock.digest})" if lock else ""
        print(f"{app.name}: pinned {ref} -> {digest}{was} in {pinning.lock_path(app)}")
    return worst
