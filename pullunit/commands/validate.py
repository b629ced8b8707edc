"""pullunit validate: check configs without writing anything: the apps and the host-wide
pullunit.toml.

Each app is checked as `generate` and the puller would use it: the config, its units as
rendered (every line within systemd's limits, the admin's templates included) and its
lock file. Checking the whole config dir also checks lock files whose app is gone.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from .. import appsecrets, dropins, paths, pinning, runkeys
from ..cli import config_dir
from ..config import HOST_CONFIG_NAME, LOCK_SUFFIX, app_files, resolve_app
from ..errors import ConfigError, ExitCode
from ..hostconfig import host_config_path, load_host
from ..render import make_environment
from ..unitfiles import render_one

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
    env = make_environment(cfg)
    executable = paths.pullunit_executable()
    for target in targets:
        try:
            rendered = render_one(resolve_app(cfg, target), Path(os.path.abspath(cfg)),
                                  executable, env)
            pinning.read(rendered.app)
        except ConfigError as e:
            log.error("%s", e.message)
            failed += 1
            continue
        app = rendered.app
        for secret in app.run.secrets:
            for warning in appsecrets.file_warnings(secret):
                log.warning("%s: run.secrets.%s: %s", app.file_of("run", "secrets", secret.name),
                            secret.name, warning)
        print(f"{app.path}: ok ({app.pull_unit}, {app.run_unit})"
              + "".join(f"\n  with drop-in {p}" for p in app.dropins))
        for warning in runkeys.warnings(app.run):
            # "run.KEY: ...": named in the file (APP.toml or a drop-in) that set the key
            key = warning.split(":", 1)[0].split(".")
            log.warning("%s: %s", app.file_of(*key), warning)
    if not args.files:
        failed += _orphan_locks(cfg)
        for d in dropins.orphan_dirs(cfg):
            log.warning("%s", dropins.orphan_warning(d))
    for path in hosts:
        try:
            load_host(path.parent)
        except ConfigError as e:
            log.error("%s", e.message)
            failed += 1
            continue
        print(f"{path}: ok (host-wide settings)")
    return int(ExitCode.CONFIG) if failed else 0


def _orphan_locks(cfg: Path) -> int:
    """Lock files without their app config: a corrupt one, or an app config named like a
    lock (app_files() never sees it), is an error; a valid one is only left over."""
    try:
        locks = sorted(p for p in cfg.glob(f"*{LOCK_SUFFIX}") if not p.name.startswith("."))
    except OSError:
        return 0
    failed = 0
    for path in locks:
        app = path.name.removesuffix(LOCK_SUFFIX)
        if (cfg / f"{app}.toml").exists():
            continue  # checked with its app
        try:
            pinning.read_path(path)
        except ConfigError as e:
            log.error("%s", e.message)
            failed += 1
            continue
        log.warning("%s: no app %s.toml for this lock file; it is unused", path, app)
    return failed
