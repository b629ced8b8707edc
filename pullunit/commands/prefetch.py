"""pullunit prefetch [APP...]: pull newer digests of policy=always apps without restarting
them, so a later restart is quick and needs no network. Run daily by
pullunit-prefetch.timer with a randomized delay, so a fleet does not hit the registry at once.

--json prints a list of {"app", "status": "updated"|"current"|"skipped"|"failed",
"running", "prefetched", "class", "message"}.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
from typing import Any

from .. import lockfile, metrics, state, stats
from ..cli import config_dir
from ..config import Policy, app_files, load_app, resolve_app
from ..hostconfig import load_host
from ..lock import app_lock
from ..notify import Notifier
from ..puller import GaveUp, Puller

log = logging.getLogger("pullunit")


def run(args: argparse.Namespace) -> int:
    cfg = config_dir(args)
    paths = [resolve_app(cfg, a) for a in args.apps] if args.apps else app_files(cfg)
    results: list[dict[str, Any]] = []
    worst = 0
    settings = load_host(cfg).metrics
    for path in paths:
        app = load_app(path)
        row: dict[str, Any] = {"app": app.name, "status": "skipped", "running": None,
                               "prefetched": None, "class": None, "message": None}
        results.append(row)
        if app.image.policy is not Policy.ALWAYS:
            row["message"] = f"policy is {app.image.policy}; prefetch is for policy always"
            if args.apps:
                log.info("%s: %s", app.name, row["message"])
            continue
        ref = lockfile.answer(app).ref
        publish = functools.partial(metrics.publish, settings, app.name)
        with app_lock(app.name, lambda m: log.info("%s", m)):
            current = state.load(app.name).current
            row["running"] = current.reference if current else None
            puller = Puller(app, notifier=Notifier(), ref=ref, on_record=publish)
            try:
                outcome = puller.run(prefetch=True)
            except GaveUp as e:
                metrics.settle(settings, app.name, puller.state,
                               stats.gave_up(puller.state, puller.clock() - puller.start,
                                             prefetch=True))
                row.update(status="failed", **{"class": str(e.failure.cls)},
                           message=e.failure.message)
                worst = max(worst, int(e.failure.exit_code))
                continue
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
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for r in results:
            if r["status"] != "skipped" or args.apps:
                print(f"{r['app']}: {r['status']}: {r['message']}")
    return worst
