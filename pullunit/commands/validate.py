"""pullunit validate: check configs without writing anything."""

from __future__ import annotations

import argparse
import logging

from ..cli import config_dir
from ..config import app_files, load_app, resolve_app
from ..errors import ConfigError, ExitCode

log = logging.getLogger("pullunit")


def run(args: argparse.Namespace) -> int:
    cfg = config_dir(args)
    failed = 0
    checked = 0
    targets: list[str] = list(args.files) or [str(p) for p in app_files(cfg)]
    if not targets:
        log.warning("no app configs (*.toml) in %s", cfg)
    for target in targets:
        try:
            app = load_app(resolve_app(cfg, target))
        except ConfigError as e:
            log.error("%s", e.message)
            failed += 1
            continue
        checked += 1
        print(f"{app.path}: ok ({app.pull_unit}, {app.run_unit})")
    return int(ExitCode.CONFIG) if failed else 0
