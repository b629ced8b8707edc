"""pullunit generate: config dir -> unit files.

Every app is on its own: an invalid config, an invalid lock file or a unit that cannot be
written is reported and the other apps still get their units. Exit status: 74 when a unit
could not be written, else 78 when a config or lock file is invalid, else 0.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .. import dropins, paths
from ..cli import config_dir
from ..config import AppConfig, resolve_app
from ..errors import ConfigError, PullunitError
from ..render import UnitFile
from ..unitfiles import exit_status, generate

log = logging.getLogger("pullunit")


def run(args: argparse.Namespace) -> int:
    cfg = config_dir(args)
    output_dir = Path(args.output_dir) if args.output_dir else paths.DEFAULT_UNIT_DIR
    errors: list[PullunitError] = []
    selected: list[Path] | None = None
    if args.apps:
        selected = []
        for a in args.apps:
            try:
                selected.append(resolve_app(cfg, a))
            except ConfigError as e:
                errors.append(e)
    units: list[UnitFile] = []
    result = generate(cfg, output_dir, selected=selected, dry_run=args.dry_run, out=units)
    errors += result.errors
    if selected is None:
        for d in dropins.orphan_dirs(cfg):
            log.warning("%s", dropins.orphan_warning(d))
    for err in errors:
        log.error("%s", err.message)
    if args.dry_run:
        for unit in units:
            sys.stdout.write(f"# --- {output_dir / unit.name}\n{unit.text}\n")
    else:
        for p in result.written:
            log.info("wrote %s", p)
        for p in result.removed:
            log.info("removed %s (its config is gone)", p)
        if not result.written and not result.removed and not errors:
            log.info("%d app(s), units up to date in %s", len(result.apps), output_dir)
        _apply(args, result.apps)
    errors += _show_locks(result.apps)
    return int(exit_status(errors))


def _show_locks(apps: list[AppConfig]) -> list[ConfigError]:
    """Units never contain the digest (the puller resolves it at start), so say here
    which apps a lock file pins, and report a lock file the puller cannot read."""
    from .. import pinning

    errors = []
    for app in apps:
        try:
            pin = pinning.answer(app)
        except ConfigError as e:
            log.error("%s", e.message)
            errors.append(e)
            continue
        lock = pin.lock
        if lock is None:
            continue
        if pin.applies is pinning.Applies.PINNED:
            log.info("%s: pinned to %s by %s (%s)", app.name, lock.digest,
                     pinning.lock_path(app).name, lock.source)
        elif pin.applies is pinning.Applies.STALE:
            log.warning("%s: %s is stale (made for %s); 'pullunit pin %s' renews it",
                        app.name, pinning.lock_path(app).name, lock.ref, app.name)
        else:
            log.info("%s: %s is not used: %s", app.name, pinning.lock_path(app).name, pin.why)
    return errors


def _apply(args: argparse.Namespace, apps: list[AppConfig]) -> None:
    """--reload/--enable/--start, through systemd's D-Bus API. Only valid apps are touched."""
    if not (args.reload or args.enable or args.start):
        return
    from .. import systemd

    systemd.reload()
    log.info("reloaded systemd")
    run_units = [a.run_unit for a in apps]
    if args.enable and run_units:
        systemd.enable(run_units)
        log.info("enabled %s", " ".join(run_units))
    if args.start:
        for app in apps:
            systemd.start(app.run_unit)  # queues the job: the pull unit runs first
            log.info("started %s (it waits for %s)", app.run_unit, app.pull_unit)
