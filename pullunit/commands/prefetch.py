"""pullunit prefetch [APP...]: pull newer digests of policy=always apps without restarting
them, so a later restart is quick and needs no network. Run daily by
pullunit-prefetch.timer with a randomized delay, so a fleet does not hit the registry at once.

--json prints a list of {"app", "status": "updated"|"current"|"skipped"|"failed",
"running", "prefetched", "class", "message"}. Each app is on its own: an app whose config
or lock file is invalid is "failed" with class "config" (and logged), and the others are
still prefetched. The exit status is the worst of the failures: 78 for a config error,
else the failure's exit code (69 for an unavailable registry, ...), else 0.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
from pathlib import Path
from typing import Any

from .. import metrics, pinning, state, stats
from ..applock import BACKGROUND_WAIT, app_lock
from ..cli import config_dir
from ..config import AppConfig, Policy, app_files, app_name_of, load_app, resolve_app
from ..errors import ConfigError, PullunitError
from ..hostconfig import MetricsConfig, load_host
from ..mirrors import Mirror
from ..notify import Notifier
from ..puller import GaveUp, Puller

log = logging.getLogger("pullunit")


def _row(app: str) -> dict[str, Any]:
    return {"app": app, "status": "skipped", "running": None, "prefetched": None,
            "class": None, "message": None}


def _failed(row: dict[str, Any], e: PullunitError) -> int:
    """An error of this app alone (its config or lock file, its state or lock dir)."""
    log.error("%s", e.message)
    row.update(status="failed", message=e.message,
               **{"class": "config" if isinstance(e, ConfigError) else None})
    return int(e.exit_code)


def run(args: argparse.Namespace) -> int:
    cfg = config_dir(args)
    targets = list(args.apps) or [str(p) for p in app_files(cfg)]
    results: list[dict[str, Any]] = []
    worst = 0
    host = load_host(cfg)
    settings = host.metrics
    for target in targets:
        row = _row(app_name_of(Path(target)) if target.endswith(".toml") else target)
        results.append(row)
        try:
            app = load_app(resolve_app(cfg, target))
            row["app"] = app.name
            code = _prefetch(app, row, settings, verbose=bool(args.apps),
                             mirrors=host.mirrors,
                             max_parallel_pulls=host.max_parallel_pulls)
        except PullunitError as e:
            code = _failed(row, e)
        worst = max(worst, code)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for r in results:
            if r["status"] != "skipped" or args.apps:
                print(f"{r['app']}: {r['status']}: {r['message']}")
    return worst


def _prefetch(app: AppConfig, row: dict[str, Any], settings: MetricsConfig, *,
              verbose: bool, mirrors: tuple[Mirror, ...] = (),
              max_parallel_pulls: int = 0) -> int:
    """Fill in this app's row; its exit code (0 unless the pull failed)."""
    if app.image.policy is not Policy.ALWAYS:
        row["message"] = f"policy is {app.image.policy}; prefetch is for policy always"
        if verbose:
            log.info("%s: %s", app.name, row["message"])
        return 0
    ref = pinning.answer(app).ref
    publish = functools.partial(metrics.publish, settings, app.name)
    with app_lock(app.name, lambda m: log.info("%s", m), timeout=BACKGROUND_WAIT):
        current = state.load(app.name).current
        row["running"] = current.reference if current else None
        puller = Puller(app, notifier=Notifier(), ref=ref, on_record=publish,
                        mirrors=mirrors, max_parallel_pulls=max_parallel_pulls)
        try:
            outcome = puller.run(prefetch=True)
        except GaveUp as e:
            metrics.settle(settings, app.name, puller.state,
                           stats.gave_up(puller.state, puller.clock() - puller.start,
                                         prefetch=True))
            row.update(status="failed", **{"class": str(e.failure.cls)},
                       message=e.failure.message)
            return int(e.failure.exit_code)
        metrics.settle(settings, app.name, puller.state,
                       stats.finished(puller.state, str(outcome.source), outcome.elapsed,
                                      ready=False, pulled=True))
    row["prefetched"] = outcome.reference
    if current is not None and current.image_id == outcome.image.id:
        row["status"] = "current"
        row["message"] = "a restart would change nothing"
    else:
        row["status"] = "updated"
        row["message"] = (f"a restart of {app.pull_unit} would switch "
                          f"{row['running'] or 'nothing'} -> {outcome.reference}")
    return 0
