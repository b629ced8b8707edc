"""benchmarks/herd.py, small and fast: the issue's fleet targets hold for the default
config, driven by the real retry.decide (the benchmark has no decision code of its own),
and the benchmark fails (exit 1) when a target is missed."""

from __future__ import annotations

import importlib.util
import io
import sys
from pathlib import Path
from types import ModuleType

import pytest

from pullunit.config import PullConfig

HERD = Path(__file__).resolve().parents[2] / "benchmarks" / "herd.py"


@pytest.fixture(scope="module")
def herd() -> ModuleType:
    spec = importlib.util.spec_from_file_location("herd", HERD)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["herd"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_default_config_meets_the_fleet_targets(herd: ModuleType) -> None:
    """1,000 hosts; a 5-minute outage keeps it fast (the probe schedule is steady after
    its first minute, so the targets are the same as after 15 minutes)."""
    rules = herd.policies(PullConfig().probe_interval)[0][1]
    for seed in (1, 2):
        result = herd.simulate(rules, 1000, 300.0, seed)
        assert herd.misses(result, 1000) == [], (seed, result)
        assert result.peak_pulls <= 50 and result.median_ready <= 20.0
        assert result.all_ready <= 60.0 and result.peak_probes <= 60


def test_without_probes_the_targets_are_missed(herd: ModuleType) -> None:
    """The rows it compares against: today's backoff is slow, kubelet's a stampede."""
    rows = dict(herd.policies(45.0))
    slow = herd.simulate(rows["no probes (2s->300s, jitter=full): pullunit before"],
                         1000, 300.0, 1)
    assert slow.all_ready > 60.0 and slow.peak_pulls < 50
    stampede = herd.simulate(rows["kubelet (10s->300s, no jitter)"], 1000, 300.0, 1)
    assert stampede.peak_pulls == 1000


def test_exit_status_says_whether_the_targets_hold(herd: ModuleType,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert herd.main(["--hosts", "1000", "--outage", "300", "--seeds", "1"]) == 0
    assert "all met." in capsys.readouterr().out
    # a probe_interval of 2 minutes finds the registry back too late
    assert herd.main(["--hosts", "1000", "--outage", "300", "--seeds", "1",
                      "--probe-interval", "120"]) == 1
    assert "MISSED: seed 1: median ready" in capsys.readouterr().out


def test_the_table_names_every_policy(herd: ModuleType) -> None:
    out = io.StringIO()
    herd.run(200, 120.0, [1], 45.0, out)
    text = out.getvalue()
    assert text.count("\n| ") == 1 + 6  # the header, one row per policy
    assert "kubelet" in text and "jitter=full" in text
