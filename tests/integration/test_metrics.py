"""Metrics through the real chain: pullunit pull/rollback against the real engine and
registries write their .prom files, Debian's prometheus-node-exporter (its textfile
collector pointed at the test's directory, on a free loopback port) serves them, the
test scrapes /metrics over HTTP, and promtool checks the scrape."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pullbed import FAST, Bed, fresh, image_config

from tests.testbed import _util as u
from tests.testbed import images
from tests.testbed.registry import Registry

pytestmark = pytest.mark.integration
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def tool(path: str) -> str:
    found = shutil.which(path)
    if found is None:
        pytest.fail(f"{path} is not installed (scripts/setup installs Debian's "
                    "prometheus-node-exporter and prometheus)", pytrace=False)
    return found


class NodeExporter:
    def __init__(self, textfile_dir: Path, log: Path):
        self.port = u.free_port()
        self.dir = textfile_dir
        self.proc = u.spawn([tool(NODE_EXPORTER), f"--web.listen-address=127.0.0.1:{self.port}",
                             "--collector.disable-defaults", "--collector.textfile",
                             f"--collector.textfile.directory={textfile_dir}"], log)
        u.wait_for(lambda: u.tcp_answers("127.0.0.1", self.port), 20, 0.1,
                   "node_exporter to listen")

    def scrape(self) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics",
                                    timeout=10) as r:
            body: bytes = r.read()
        return body

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


@pytest.fixture
def exporter(tmp_path: Path) -> Iterator[NodeExporter]:
    d = tmp_path / "textfile"
    d.mkdir()
    n = NodeExporter(d, tmp_path / "node-exporter.log")
    try:
        yield n
    finally:
        n.close()


def parse(text: bytes) -> Samples:
    from prometheus_client.parser import text_string_to_metric_families

    out: Samples = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def promtool_check(text: bytes) -> None:
    proc = subprocess.run([tool("promtool"), "check", "metrics"], input=text,
                          capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def series(s: Samples, name: str, **labels: str) -> float | None:
    return s.get((name, tuple(sorted(labels.items()))))


def test_node_exporter_serves_the_metrics_of_real_pulls(
        client: Any, registry: Registry, bed: Bed, exporter: NodeExporter,
        unused_port: int) -> None:
    (bed.cfg / "pullunit.toml").write_text(f'[metrics]\ndir = "{exporter.dir}"\n')
    good = fresh(client, registry)
    ok = bed.app("ok", image_config(good.ref))
    missing = bed.app("missing", image_config(registry.ref("team/app", "nope")))
    down = bed.app("down", image_config(f"127.0.0.1:{unused_port}/team/app:1",
                                        FAST + 'deadline = "2s"\n'))
    r = bed.pull(ok)
    assert r.code == 0 and r.out["source"] == "pulled", r.err
    assert bed.pull(missing).code == 66
    r = bed.pull(down)
    assert r.code == 69 and r.out["attempts"] >= 3, r.err
    attempts_down = r.out["attempts"]

    body = exporter.scrape()
    promtool_check(body)
    s = parse(body)
    assert series(s, "node_textfile_scrape_error") == 0
    for app in ("ok", "missing", "down"):
        assert series(s, "node_textfile_mtime_seconds",
                      file=str(exporter.dir / f"pullunit-{app}.prom")) is not None
    # success
    assert series(s, "pullunit_pull_attempts_total", app="ok", **{"class": "success"}) == 1
    assert series(s, "pullunit_pull_failures_total", app="ok", **{"class": "unreachable"}) == 0
    assert series(s, "pullunit_ready", app="ok") == 1
    assert series(s, "pullunit_backoff_seconds", app="ok") == 0
    assert series(s, "pullunit_image_info", app="ok", digest=good.digest, source="pulled") == 1
    assert (series(s, "pullunit_last_pull_duration_seconds", app="ok") or 0) > 0
    assert (series(s, "pullunit_last_success_timestamp_seconds", app="ok") or 0) > 1.7e9
    # not found: one permanent failure, not ready
    assert series(s, "pullunit_pull_failures_total", app="missing",
                  **{"class": "not_found"}) == 1
    assert series(s, "pullunit_ready", app="missing") == 0
    assert series(s, "pullunit_last_success_timestamp_seconds", app="missing") is None
    # registry down: every attempt counted, gave up, no wait pending
    assert series(s, "pullunit_pull_failures_total", app="down",
                  **{"class": "unreachable"}) == attempts_down
    assert series(s, "pullunit_ready", app="down") == 0
    assert series(s, "pullunit_backoff_seconds", app="down") == 0
    assert series(s, "pullunit_rollbacks_total", app="down", reason="manual") == 0

    # counters survive the process: the next runs add to them
    assert bed.pull(missing).code == 66
    assert bed.pull(ok).out["source"] == "local"
    s = parse(exporter.scrape())
    assert series(s, "pullunit_pull_failures_total", app="missing",
                  **{"class": "not_found"}) == 2
    assert series(s, "pullunit_image_info", app="ok", digest=good.digest, source="local") == 1
    assert series(s, "pullunit_pull_attempts_total", app="ok", **{"class": "success"}) == 1

    # `pullunit metrics` prints the same series for every app
    p = subprocess.run(bed.cmd("metrics"), capture_output=True, env=bed.env, timeout=60)
    assert p.returncode == 0, p.stderr
    promtool_check(p.stdout)
    printed = parse(p.stdout)
    mine = {k: v for k, v in s.items() if k[0].startswith("pullunit_")}
    assert {k: v for k, v in printed.items() if k in mine} == mine
    assert set(mine) <= set(printed)


def test_a_wait_in_progress_shows_its_backoff(bed: Bed, exporter: NodeExporter,
                                              unused_port: int) -> None:
    (bed.cfg / "pullunit.toml").write_text(f'[metrics]\ndir = "{exporter.dir}"\n')
    app = bed.app("wait", image_config(f"127.0.0.1:{unused_port}/team/app:1",
                                       '[pull]\ninitial_delay = "40s"\njitter = "none"\n'))
    proc = bed.start_pull(app)
    try:
        u.wait_for(lambda: series(parse(exporter.scrape()), "pullunit_backoff_seconds",
                                  app="wait") == 40, 30, 0.2,
                   "the backoff of the waiting pull to be scraped")
        s = parse(exporter.scrape())
        assert series(s, "pullunit_ready", app="wait") == 0
        assert series(s, "pullunit_pull_failures_total", app="wait",
                      **{"class": "unreachable"}) == 1
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_rollback_is_counted(client: Any, bed: Bed, exporter: NodeExporter,
                             tmp_path: Path) -> None:
    (bed.cfg / "pullunit.toml").write_text(f'[metrics]\ndir = "{exporter.dir}"\n')
    with Registry("mrb", storage=tmp_path / "st") as reg:
        v1 = images.push_new_digest(client, reg.ref("team/mrb", "1"))
        app = bed.app("mrb", image_config(v1.ref, 'policy = "always"\n' + FAST))
        assert bed.pull(app).code == 0
        images.push_new_digest(client, v1.ref)
        assert bed.pull(app).code == 0
    p = subprocess.run(bed.cmd("rollback", "mrb", "--no-restart"), capture_output=True,
                       text=True, env=bed.env, timeout=60)
    assert p.returncode == 0, p.stderr
    s = parse(exporter.scrape())
    assert series(s, "pullunit_rollbacks_total", app="mrb", reason="manual") == 1
    assert series(s, "pullunit_image_info", app="mrb", digest=v1.digest,
                  source="rollback") == 1


@contextlib.contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    u.sh(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)])
    try:
        yield path
    finally:
        u.umount_all(path)


@pytest.mark.parametrize("kind", ["read-only", "full"])
def test_a_bad_metrics_dir_costs_one_warning_not_the_pull(
        client: Any, registry: Registry, bed: Bed, tmp_path: Path, kind: str,
        unused_port: int) -> None:
    with tmpfs(tmp_path / "prom", "size=64k,mode=0755") as d:
        if kind == "read-only":
            u.sh(["mount", "-o", "remount,ro", str(d)])
            why = "Read-only file system"
        else:
            with contextlib.suppress(OSError), open(d / "filler", "wb") as f:
                f.write(b"x" * 128 * 1024)
            why = "No space left on device"
        (bed.cfg / "pullunit.toml").write_text(f'[metrics]\ndir = "{d}"\n')
        good = fresh(client, registry)
        r = bed.pull(bed.app("good", image_config(good.ref)))
        assert r.code == 0 and r.out["source"] == "pulled", r.err
        warnings = [line for line in r.err.splitlines() if "metrics" in line]
        assert warnings == [f"pullunit: warning: cannot write metrics to "
                            f"{d}/pullunit-good.prom: {why} (the pull goes on)"]
        # retries that fail to write their metrics: still one warning per run
        r = bed.pull(bed.app("down", image_config(f"127.0.0.1:{unused_port}/team/app:1",
                                                  FAST + 'deadline = "1500ms"\n')))
        assert r.code == 69 and r.out["attempts"] >= 2
        assert len([line for line in r.err.splitlines() if "cannot write metrics" in line]) == 1
        assert "Traceback" not in r.err
        assert sorted(p.name for p in d.iterdir()) == ([] if kind == "read-only"
                                                       else ["filler"])
