"""pullunit validate: check configs without writing anything: the apps' APP.toml and the
host-wide pullunit.toml."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..cli import config_dir
from ..config import HOST_CONFIG_NAME, app_files, load_app, resolve_app
from ..errors import ConfigError, ExitCode
from ..hostconfig import host_config_path, load_host

log = logging.getLogger("pullunit")


def run(args: argparse.Namespace) -> int:
    cfg = config_dir(args)
    failed = 0
    host_file = host_config_path(cfg)
    targets: list[str] = list(args.files) or [str(p) for p in app_files(cfg)]
    hosts = [Path(t) for t in targets if Path(t).name == HOST_CONFIG_NAME]
    targets = [t for t in targets if Path(t).name != HOST_CONFIG_NAME]
    if not args.files and host_file.exists():
        hosts.append(host_file)
    if not targets and not hosts:
        log.warning("no app configs (*.toml) in %s", cfg)
    for target in targets:
        try:
            app = load_app(resolve_app(cfg, target))
        except ConfigError as e:
            log.error("%s", e.message)
            failed += 1
            continue
        print(f"{app.path}: ok ({app.pull_unit}, {app.run_unit})")
    for path in hosts:
        try:
            load_host(path.parent)
        except ConfigError as e:
            log.error("%s", e.message)
            failed += 1
            continue
        print(f"{path}: ok (host-wide settings)")
    return int(ExitCode.CONFIG) if failed else 0
