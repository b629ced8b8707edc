"""Counters, gauges and failure history in the state (stats.py), and their Prometheus
files (metrics.py): the text format checked by the real promtool, files written only
when their values change, and a metrics directory that fails costs one warning.
(The real node_exporter scraping real pulls is tests/integration/test_metrics.py.)"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from pullunit import metrics, state, stats
from pullunit.classify import FailureClass
from pullunit.hostconfig import MetricsConfig
from pullunit.puller import GaveUp

from .conftest import MINIMAL, cli_env, run_cli
from .test_puller_loop import Bed as LoopBed
from .test_puller_loop import image

DIGEST = "sha256:" + "ab" * 32


@pytest.fixture(autouse=True)
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PULLUNIT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("PULLUNIT_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    metrics._warned.clear()
    return tmp_path


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is not installed (Debian's prometheus; scripts/setup)",
                    pytrace=False)
    return path


def check_metrics(text: bytes) -> None:
    proc = subprocess.run([promtool(), "check", "metrics"], input=text, capture_output=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def ready_state(app: str = "web", n: int = 1) -> state.AppState:
    return state.record_ready(state.AppState(app), "r/app:1", f"r/app@{DIGEST}", DIGEST,
                              f"sha256:{n:064x}", 3, now=1000.0)


# -- stats: what each event does to the counters, gauges and history -------------------


def test_failed_attempts_count_and_keep_the_last_20_newest_first() -> None:
    st = state.AppState("web")
    for i in range(25):
        st = stats.failed(st, "unreachable" if i % 2 else "dns", f"msg {i}", 69, i + 1,
                          now=100.0 + i)
    assert [f.message for f in st.failures] == [f"msg {i}" for i in range(24, 4, -1)]
    assert st.failures[0] == stats.FailureRecord(124.0, "dns", "msg 24", 25)
    assert (st.stats.count("dns"), st.stats.count("unreachable")) == (13, 12)
    assert st.stats.ready is False
    assert st.last_failure is not None and st.last_failure.message == "msg 24"


def test_a_success_clears_the_last_failure_but_keeps_the_history() -> None:
    st = stats.failed(state.AppState("web"), "unreachable", "down", 69, 1, now=5.0)
    st = state.record_ready(st, "r/app:1", f"r/app@{DIGEST}", DIGEST, "sha256:1", 3, now=6.0)
    st = stats.finished(st, "pulled", 3.5, ready=True, pulled=True, now=6.0)
    assert st.last_failure is None and len(st.failures) == 1
    s = st.stats
    assert (s.count("success"), s.last_duration, s.last_success, s.ready, s.source,
            s.backoff) == (1, 3.5, 6.0, True, "pulled", 0.0)


def test_local_start_and_fallback_are_not_registry_successes() -> None:
    st = stats.finished(ready_state(), "local", 0.1, ready=True, pulled=False)
    assert (st.stats.count("success"), st.stats.last_duration, st.stats.last_success) == (
        0, None, None)
    assert (st.stats.ready, st.stats.source) == (True, "local")
    st = stats.finished(st, "fallback", 30.0, ready=True, pulled=False)
    assert (st.stats.source, st.stats.last_duration, st.stats.last_success) == (
        "fallback", 30.0, None)


def test_prefetch_never_changes_readiness() -> None:
    st = stats.finished(ready_state(), "local", 0.1, ready=True, pulled=False)
    st = stats.failed(st, "rate_limited", "429", 69, 1, prefetch=True)
    st = stats.gave_up(st, 12.0, prefetch=True)
    assert (st.stats.ready, st.stats.source, st.stats.count("rate_limited")) == (
        True, "local", 1)
    st = stats.finished(st, "prefetched", 2.0, ready=False, pulled=True, now=9.0)
    assert (st.stats.ready, st.stats.source, st.stats.last_success) == (True, "local", 9.0)
    assert stats.gave_up(st, 1.0).stats.ready is False


def test_rollbacks_by_reason() -> None:
    st = stats.rolled_back(stats.rolled_back(ready_state()), "automatic")
    st = stats.rolled_back(st)
    assert st.stats.rollbacks == (("automatic", 1), ("manual", 2))
    assert st.stats.source == "rollback"
    with pytest.raises(ValueError):
        stats.rolled_back(st, "sideways")


def test_stats_and_failures_round_trip_through_the_state_file(dirs: Path) -> None:
    st = stats.failed(ready_state(), "unreachable", "down", 69, 2, now=7.0)
    st = stats.rolled_back(stats.waiting(st, 4.5))
    state.save(st)
    data = json.loads((dirs / "state" / "web.json").read_text())
    assert data["schema"] == 1
    assert data["stats"]["attempts"] == {"unreachable": 1}
    assert data["stats"]["rollbacks"] == {"manual": 1}
    assert data["failures"] == [{"at": 7.0, "cls": "unreachable", "message": "down",
                                 "attempt": 2}]
    assert state.load("web") == st


def test_a_state_file_from_before_stats_reads_as_zeros(dirs: Path) -> None:
    st = ready_state()
    data = st.to_json()
    del data["stats"], data["failures"]
    (dirs / "state").mkdir()
    (dirs / "state" / "web.json").write_text(json.dumps(data))
    loaded = state.load("web")
    assert loaded.current == st.current
    assert (loaded.stats, loaded.failures) == (stats.Stats(), ())


@pytest.mark.parametrize("bad", [{"attempts": {"dns": -1}}, {"attempts": {"dns": "3"}},
                                 {"ready": "yes"}, {"backoff": None}, ["x"]])
def test_malformed_stats_are_a_corrupt_state_file(dirs: Path, bad: object) -> None:
    data = ready_state().to_json()
    data["stats"] = bad
    (dirs / "state").mkdir()
    (dirs / "state" / "web.json").write_text(json.dumps(data))
    assert state.load("web") == state.AppState("web")
    assert [p.name.startswith("web.corrupt-") for p in (dirs / "state").iterdir()] == [True]


# -- the text format ----------------------------------------------------------------------


def test_render_passes_promtool_and_shows_every_series() -> None:
    web = stats.rolled_back(ready_state("web"), "automatic")
    web = stats.failed(web, "rate_limited", "429", 69, 1, now=50.0)
    web = stats.waiting(web, 30.0)
    db = stats.finished(ready_state("db", 2), "pulled", 2.25, ready=True, pulled=True,
                        now=1_800_000_000.5)
    text = metrics.render([metrics.values("web", web), metrics.values("db", db)])
    check_metrics(text)
    s = samples(text)
    assert s[("pullunit_pull_attempts_total", (("app", "web"), ("class", "rate_limited")))] == 1
    assert s[("pullunit_pull_failures_total", (("app", "web"), ("class", "rate_limited")))] == 1
    assert s[("pullunit_pull_failures_total", (("app", "web"), ("class", "dns")))] == 0
    assert ("pullunit_pull_failures_total", (("app", "db"), ("class", "success"))) not in s
    assert s[("pullunit_pull_attempts_total", (("app", "db"), ("class", "success")))] == 1
    assert s[("pullunit_backoff_seconds", (("app", "web"),))] == 30.0
    assert s[("pullunit_rollbacks_total", (("app", "web"), ("reason", "automatic")))] == 1
    assert s[("pullunit_rollbacks_total", (("app", "db"), ("reason", "manual")))] == 0
    assert s[("pullunit_ready", (("app", "db"),))] == 1
    assert s[("pullunit_last_pull_duration_seconds", (("app", "db"),))] == 2.25
    assert s[("pullunit_last_success_timestamp_seconds", (("app", "db"),))] == 1_800_000_000.5
    assert s[("pullunit_image_info", (("app", "web"), ("digest", DIGEST),
                                      ("source", "rollback")))] == 1
    # series whose value is not known yet are left out, not shown as 0
    assert ("pullunit_last_success_timestamp_seconds", (("app", "web"),)) not in s
    assert text.count(b"# HELP pullunit_ready ") == 1  # one family for all apps


def test_an_app_that_never_ran_has_counters_at_zero_and_no_gauges() -> None:
    text = metrics.render([metrics.values("new", state.AppState("new"))])
    check_metrics(text)
    s = samples(text)
    assert s[("pullunit_pull_attempts_total", (("app", "new"), ("class", "success")))] == 0
    assert s[("pullunit_backoff_seconds", (("app", "new"),))] == 0
    assert not [k for k in s if k[0] in ("pullunit_ready", "pullunit_image_info")]


# -- the files --------------------------------------------------------------------------


def test_publish_writes_only_when_values_change(tmp_path: Path) -> None:
    cfg = MetricsConfig(dir=tmp_path / "prom")
    st = stats.finished(ready_state(), "local", 0.1, ready=True, pulled=False)
    assert metrics.publish(cfg, "web", st)  # configured: the directory is made
    path = tmp_path / "prom" / "pullunit-web.prom"
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    check_metrics(path.read_bytes())
    before = path.stat().st_mtime_ns, path.stat().st_ino
    assert not metrics.publish(cfg, "web", st)
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == before
    st2 = stats.failed(st, "dns", "no such host", 68, 1)
    assert metrics.publish(cfg, "web", st2)
    assert samples(path.read_bytes())[("pullunit_ready", (("app", "web"),))] == 0
    path.unlink()
    assert metrics.publish(cfg, "web", st2)  # a removed file comes back
    assert [p.name for p in path.parent.iterdir()] == ["pullunit-web.prom"]  # no temp files


def test_an_unchanged_file_costs_no_import_of_prometheus_client(tmp_path: Path) -> None:
    """The warm start: the values are those published, so nothing is imported."""
    cfg = MetricsConfig(dir=tmp_path / "prom")
    st = stats.finished(ready_state(), "local", 0.1, ready=True, pulled=False)
    state.save(st)
    metrics.publish(cfg, "web", st)
    code = ("import sys; from pathlib import Path; from pullunit import metrics, state;"
            "from pullunit.hostconfig import MetricsConfig;"
            f"w = metrics.publish(MetricsConfig(dir=Path({str(tmp_path / 'prom')!r})), 'web',"
            " state.load('web'));"
            "print(w, 'prometheus_client' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ}, timeout=60)
    assert proc.stdout.split() == ["False", "False"], proc.stderr


def test_default_directory_absent_means_no_metrics(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("pullunit.hostconfig.DEFAULT_METRICS_DIR", tmp_path / "none")
    assert not metrics.publish(MetricsConfig(), "web", ready_state())
    assert not (tmp_path / "none").exists()
    (tmp_path / "none").mkdir()
    assert metrics.publish(MetricsConfig(), "web", ready_state())
    assert not metrics.publish(MetricsConfig(enabled=False, dir=tmp_path / "x"), "web",
                               ready_state())
    assert not (tmp_path / "x").exists()


def test_a_directory_that_cannot_be_written_is_one_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    cfg = MetricsConfig(dir=blocker / "prom")  # ENOTDIR, even for root
    st = ready_state()
    with caplog.at_level(logging.WARNING, "pullunit"):
        for i in range(3):
            assert not metrics.publish(cfg, "web", stats.waiting(st, float(i)))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"cannot write metrics to {blocker}/prom/pullunit-web.prom: "
                        "Not a directory (the pull goes on)"]


# -- the puller records every failed attempt, with its backoff ----------------------------


def test_the_loop_records_each_failed_attempt_with_its_wait(tmp_path: Path) -> None:
    bed = LoopBed(tmp_path)
    U = FailureClass.UNREACHABLE
    seen: list[tuple[float, int, bool | None]] = []
    p = bed.puller([U, U, FailureClass.RATE_LIMITED, image(1)], rate_limit_delay='"9s"')
    p.on_record = lambda st: seen.append((st.stats.backoff, len(st.failures), st.stats.ready))
    out = p.run()
    assert seen == [(1.0, 1, False), (2.0, 2, False), (9.0, 3, False)]
    assert bed.clock.sleeps == [1.0, 2.0, 9.0]
    saved = state.load("web")
    assert [(f.cls, f.attempt) for f in saved.failures] == [
        ("rate_limited", 3), ("unreachable", 2), ("unreachable", 1)]
    assert saved.stats.attempts == (("rate_limited", 1), ("unreachable", 2))
    assert out.attempts == 4  # a pull, two attempts that stopped at their probe, a pull


def test_giving_up_records_no_wait(tmp_path: Path) -> None:
    bed = LoopBed(tmp_path)
    seen: list[float] = []
    p = bed.puller([FailureClass.NOT_FOUND])
    p.on_record = lambda st: seen.append(st.stats.backoff)
    with pytest.raises(GaveUp):
        p.run()
    assert seen == [0.0]
    assert state.load("web").stats.count("not_found") == 1


def test_pullunit_metrics_prints_every_app(config_dir: Path, tmp_path: Path) -> None:
    for name in ("web", "db"):
        (config_dir / f"{name}.toml").write_text(MINIMAL)
    (config_dir / "pullunit.toml").write_text("[metrics]\nenabled = false\n")
    env = cli_env(PULLUNIT_STATE_DIR=str(tmp_path / "state"))
    state.save(replace(stats.failed(ready_state("web"), "dns", "x", 68, 1),
                       updated=1.0))
    proc = run_cli("metrics", "--config-dir", config_dir, env=env)
    assert proc.returncode == 0, proc.stderr
    check_metrics(proc.stdout.encode())
    s = samples(proc.stdout.encode())
    assert s[("pullunit_pull_failures_total", (("app", "web"), ("class", "dns")))] == 1
    assert s[("pullunit_pull_failures_total", (("app", "db"), ("class", "dns")))] == 0
    proc = run_cli("metrics", "--config-dir", config_dir, "db", env=env)
    assert "app=\"web\"" not in proc.stdout and "app=\"db\"" in proc.stdout


def test_status_shows_the_recent_failures_and_json_all(config_dir: Path,
                                                       tmp_path: Path) -> None:
    (config_dir / "web.toml").write_text(MINIMAL)
    st = ready_state()
    for i in range(5):
        st = stats.failed(st, "unreachable", f"refused {i}", 69, i + 1)
    state.save(st)
    env = cli_env(PULLUNIT_STATE_DIR=str(tmp_path / "state"),
                  PULLUNIT_RUNTIME_DIR=str(tmp_path / "run"))
    proc = run_cli("status", "--config-dir", config_dir, env=env)
    lines = proc.stdout.splitlines()
    recent = [i for i, line in enumerate(lines) if line.strip().startswith("recent:")]
    assert len(recent) == 1, proc.stdout
    shown = lines[recent[0]:recent[0] + 4]
    assert "unreachable" in shown[0] and "attempt 5): refused 4" in shown[0]
    assert "attempt 3): refused 2" in shown[2]
    assert shown[3].strip() == "... 2 more in --json"
    proc = run_cli("status", "--config-dir", config_dir, "--json", env=env)
    failures = json.loads(proc.stdout)["apps"][0]["failures"]
    assert [(f["class"], f["message"], f["attempt"]) for f in failures] == [
        ("unreachable", f"refused {i}", i + 1) for i in range(4, -1, -1)]
    assert set(failures[0]) == {"at", "class", "message", "attempt"}
