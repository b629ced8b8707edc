"""docs/alerts.yml: valid rules (promtool check rules), each alert fires and stays quiet
on the series of tests/unit/alerts_test.yml (promtool test rules), and names only
series and classes pullunit really exports."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from pullunit import metrics, state, stats
from pullunit.classify import PERMANENT, FailureClass

from .conftest import REPO

ALERTS = REPO / "docs" / "alerts.yml"
TESTS = REPO / "tests" / "unit" / "alerts_test.yml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail("promtool is not installed (Debian's prometheus; scripts/setup)",
                    pytrace=False)
    return subprocess.run([tool, *args], capture_output=True, text=True, timeout=120,
                          cwd=REPO)


def test_rules_are_valid() -> None:
    proc = promtool("check", "rules", str(ALERTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 5 rules found" in proc.stdout


def test_rules_fire_and_stay_quiet_as_their_unit_tests_say() -> None:
    proc = promtool("test", "rules", str(TESTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    text = ALERTS.read_text()
    tests = TESTS.read_text()
    names = re.findall(r"^\s+- alert: (\w+)$", text, re.M)
    assert names == ["PullunitPullFailing", "PullunitPermanentFailure",
                     "PullunitRunningOnFallback", "PullunitAutomaticRollback",
                     "PullunitRateLimited"]
    for name in names:
        blocks = re.findall(rf"alertname: {name}\n\s+exp_alerts:(.*?)(?=\n\s+- eval_time|"
                            r"\n\n|\Z)", tests, re.S)
        assert any(b.strip() == "[]" for b in blocks) or name == "PullunitPermanentFailure", (
            f"{name}: no case where it must not fire")
        assert any(b.strip() != "[]" for b in blocks), f"{name}: no case where it fires"


def test_the_permanent_classes_are_classify_permanent() -> None:
    m = re.search(r'pullunit_last_failure_timestamp_seconds\{class=~"([^"]+)"\}',
                  ALERTS.read_text())
    assert m is not None
    assert set(m.group(1).split("|")) == {str(c) for c in PERMANENT}


def test_the_rules_use_only_series_pullunit_writes() -> None:
    st = stats.failed(state.record_ready(state.AppState("web"), "r/a:1", "r/a@sha256:1",
                                         "sha256:1", "sha256:2", 3), "dns", "x", 68, 1)
    exported = metrics.render([metrics.values("web", st)]).decode()
    used = set(re.findall(r"\b(pullunit_[a-z_]+)", ALERTS.read_text()))
    assert used, "no pullunit series in the rules?"
    for name in used:
        assert re.search(rf"^{name}\{{", exported, re.M), f"{name} is not exported"
    for cls in re.findall(r'class="(\w+)"', ALERTS.read_text()):
        FailureClass(cls)
