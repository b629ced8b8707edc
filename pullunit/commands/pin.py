"""pullunit pin [APP...] [--check]: resolve tags to digests into APP.lock.toml."""

from __future__ import annotations

import argparse
import logging

from .. import lockfile
from ..classify import PullFailed
from ..cli import config_dir
from ..config import AppConfig, app_files, load_app, resolve_app
from ..errors import ExitCode

log = logging.getLogger("pullunit")


def _apps(args: argparse.Namespace) -> list[AppConfig]:
    cfg = config_dir(args)
    paths = [resolve_app(cfg, a) for a in args.apps] if args.apps else app_files(cfg)
    return [load_app(p) for p in paths]


def run(args: argparse.Namespace) -> int:
    from .. import dockerapi

    apps = _apps(args)
    api = None
    worst = 0
    for app in apps:
        ref = app.image.ref
        if ref.digest:
            print(f"{app.name}: pinned in its config ({ref.digest}); no lock needed")
            continue
        try:
            if api is None:
                api = dockerapi.connect()
            digest = dockerapi.remote_digest(api, ref, dockerapi.credentials(ref,
                                                                              app.image.auth_file))
        except PullFailed as e:
            log.error("%s: cannot resolve %s (%s): %s", app.name, ref, e.failure.cls,
                      e.failure.message)
            worst = max(worst, int(e.failure.exit_code))
            continue
        lock = lockfile.read(app)
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
        lockfile.write(app, digest, "pin")
        was = f" (was {lock.digest})" if lock else ""
        print(f"{app.name}: pinned {ref} -> {digest}{was} in {lockfile.lock_path(app)}")
    return worst
