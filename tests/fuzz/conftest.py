"""The fuzz tier: seeded, bounded, deterministic fuzzing of configs, state and lock files,
and registry responses, always through the real CLI. See harness.py for the invariants
and how to replay one case; docs/SECURITY.md for what they stand for.

Every test here gets the `fuzz` marker; the registry target also `integration` (it needs
the real dockerd, like tests/integration).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
_ROOT = str(_HERE.parents[1])
if _ROOT not in sys.path:  # `tests.testbed` / `tests.fuzz` importable whatever the import mode
    sys.path.insert(0, _ROOT)

from tests.fuzz import harness  # noqa: E402


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(_HERE):
            item.add_marker(pytest.mark.fuzz)


def pytest_report_header(config: pytest.Config) -> str:
    return (f"fuzz: base seed {harness.base_seed()} (set {harness.SEED_ENV} to change it, "
            f"{harness.CASE_ENV} to run one case)")
