"""Prometheus metrics per app, for node_exporter's textfile collector.

Each app has its own file, METRICS_DIR/pullunit-APP.prom, written atomically (a scrape
sees the old file or the new one), so pullers of different apps never race. The values
come from the app's state file (stats.py), where the counters survive restarts;
`pullunit metrics` prints the same series for every app.

The text format is written by prometheus_client (Debian's python3-prometheus-client),
not by hand. Importing it costs 20-30 ms (it pulls in http.server, ssl, urllib), more
than a warm start may spend on metrics, so it is imported only when a file has to
change: the first line of each file is a comment holding the values it shows, and a
run whose values are those already published writes nothing and imports nothing. A
warm start (image present, nothing new) is such a run, once the file says "ready".

Metrics never cost a pull: any failure to write them is one warning per run, and the
pull goes on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .classify import FailureClass
from .fsutil import atomic_write
from .stats import ROLLBACK_REASONS, SUCCESS

if TYPE_CHECKING:
    from .hostconfig import MetricsConfig
    from .state import AppState

log = logging.getLogger("pullunit")
FORMAT = 1  # bump when names or help texts change: every file is rewritten once
_HEADER = "# pullunit-metrics"
_warned: set[str] = set()  # one warning per directory and run, however many writes fail


def metrics_file(directory: Path, app: str) -> Path:
    return directory / f"pullunit-{app}.prom"


def values(app: str, st: AppState) -> dict[str, Any]:
    """What the app's series show, as plain data (also the file's first line)."""
    s = st.stats
    classes = [str(c) for c in FailureClass]
    image = failure = None
    if st.failures:
        failure = {"class": st.failures[0].cls, "at": st.failures[0].at}
    if st.current is not None:
        image = {"digest": st.current.digest or st.current.image_id,
                 "source": s.source or "unknown"}
    return {
        "app": app,
        "attempts": {c: s.count(c) for c in [*classes, SUCCESS]},
        "rollbacks": {r: s.rollback_count(r) for r in ROLLBACK_REASONS},
        "duration": s.last_duration,
        "success": s.last_success,
        "ready": s.ready,
        "backoff": s.backoff,
        "image": image,
        "failure": failure,
    }


def _families(rows: Iterable[Mapping[str, Any]]) -> Iterator[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    rows = list(rows)
    attempts = CounterMetricFamily(
        "pullunit_pull_attempts", "Pull attempts by result: a failure class, or success",
        labels=["app", "class"])
    failures = CounterMetricFamily(
        "pullunit_pull_failures", "Failed pull attempts by failure class",
        labels=["app", "class"])
    duration = GaugeMetricFamily(
        "pullunit_last_pull_duration_seconds",
        "Seconds the last pull run that used the registry took, until ready or given up",
        labels=["app"])
    success = GaugeMetricFamily(
        "pullunit_last_success_timestamp_seconds",
        "When the registry last delivered the app's image (Unix time)", labels=["app"])
    ready = GaugeMetricFamily(
        "pullunit_ready", "1 when the last pull run made the app's image ready, 0 while it "
        "fails or after it gave up", labels=["app"])
    info = GaugeMetricFamily(
        "pullunit_image_info", "The image the app runs (1): its digest (or image ID) and "
        "where it came from: local, pulled, fallback, rollback", labels=["app", "digest",
                                                                         "source"])
    backoff = GaugeMetricFamily(
        "pullunit_backoff_seconds", "Seconds of the wait before the next pull attempt "
        "(0 when not waiting)", labels=["app"])
    failed = GaugeMetricFamily(
        "pullunit_last_failure_timestamp_seconds", "When the last pull attempt failed "
        "(Unix time), labelled with its failure class", labels=["app", "class"])
    rollbacks = CounterMetricFamily(
        "pullunit_rollbacks", "Rollbacks to an earlier image: manual (pullunit rollback) "
        "or automatic (an update undone)", labels=["app", "reason"])
    for v in rows:
        app = v["app"]
        for cls, n in v["attempts"].items():
            attempts.add_metric([app, cls], n)
            if cls != SUCCESS:
                failures.add_metric([app, cls], n)
        for reason, n in v["rollbacks"].items():
            rollbacks.add_metric([app, reason], n)
        if v["duration"] is not None:
            duration.add_metric([app], v["duration"])
        if v["success"] is not None:
            success.add_metric([app], v["success"])
        if v["ready"] is not None:
            ready.add_metric([app], 1.0 if v["ready"] else 0.0)
        if v["image"] is not None:
            info.add_metric([app, v["image"]["digest"], v["image"]["source"]], 1.0)
        if v["failure"] is not None:
            failed.add_metric([app, v["failure"]["class"]], v["failure"]["at"])
        backoff.add_metric([app], v["backoff"])
    yield from (attempts, failures, duration, success, ready, info, backoff, failed,
                rollbacks)


class _Collector:
    def __init__(self, rows: Iterable[Mapping[str, Any]]):
        self.rows = list(rows)

    def collect(self) -> Iterator[Any]:
        return _families(self.rows)


def render(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """The Prometheus text format (0.0.4) of these apps' values."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(rows))  # type: ignore[arg-type]
    data: bytes = generate_latest(registry)
    return data


def _header(v: Mapping[str, Any]) -> bytes:
    return (f"{_HEADER} {FORMAT} " + json.dumps(v, sort_keys=True, separators=(",", ":"))
            + "\n").encode()


def publish(settings: MetricsConfig, app: str, st: AppState) -> bool:
    """Write the app's file when its values changed (or it is missing). True when it was
    written. Never raises: a metrics problem is one warning, the pull goes on."""
    if not settings.enabled:
        return False
    directory = settings.directory
    path = metrics_file(directory, app)
    try:
        shown = values(app, st)
        header = _header(shown)
        try:
            with open(path, "rb") as f:
                if f.readline() == header:
                    return False
        except FileNotFoundError:
            if not directory.is_dir():
                if not settings.configured:
                    return False  # no node_exporter here, and nobody asked for metrics
                directory.mkdir(mode=0o755, parents=True, exist_ok=True)
        # not fsynced: the next run rewrites it from the state file, which is durable
        atomic_write(path, header + render([shown]), 0o644, durable=False)
        return True
    except Exception as e:  # never a reason for a pull to fail
        key = str(directory)
        if key not in _warned:
            _warned.add(key)
            why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            log.warning("cannot write metrics to %s: %s (the pull goes on)", path, why)
        return False



def settle(settings: MetricsConfig, app: str, before: AppState, after: AppState) -> AppState:
    """The end of a run: save the state when the outcome changed its stats, then publish.
    A state that cannot be saved here is a warning: the image is ready already."""
    from . import state

    if after != before:
        try:
            state.save(after)
        except Exception as e:
            log.warning("%s", e)
    publish(settings, app, after)
    return after


def record_rollback(settings: MetricsConfig, app: str, st: AppState,
                    reason: str = "manual") -> AppState:
    """After a rollback made an earlier image current (st: the state activate saved):
    count it (`pullunit rollback` is "manual"; `update` undoing itself is "automatic"),
    save, publish."""
    from .stats import rolled_back

    return settle(settings, app, st, rolled_back(st, reason))
