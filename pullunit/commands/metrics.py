"""pullunit metrics [APP...]: every app's Prometheus series on stdout, in the text format
(0.0.4), the same as the files node_exporter's textfile collector reads
(METRICS_DIR/pullunit-APP.prom; see pullunit/metrics.py and docs/metrics.md).

The values come from each app's state file: an app that never pulled shows its
counters at zero and no gauges. Nothing is written.
"""

from __future__ import annotations

import argparse
import sys

from .. import metrics, state
from ..cli import config_dir
from ..config import app_files, app_name_of, resolve_app


def run(args: argparse.Namespace) -> int:
    cfg = config_dir(args)
    paths = [resolve_app(cfg, a) for a in args.apps] if args.apps else app_files(cfg)
    names = [app_name_of(p) for p in paths]
    rows = [metrics.values(name, state.load(name)) for name in names]
    sys.stdout.buffer.write(metrics.render(rows))
    sys.stdout.flush()
    return 0
