"""Backoff delays: the formulas of the spec, checked over many seeded draws."""

from __future__ import annotations

import random

import pytest

from pullunit.backoff import Backoff, kubelet_like
from pullunit.config import Jitter, PullConfig


def test_base_doubles_and_caps() -> None:
    b = Backoff(2.0, 300.0, 2.0, Jitter.NONE)
    assert [b.base(n) for n in range(10)] == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]


def test_huge_attempt_numbers_do_not_overflow() -> None:
    b = Backoff(2.0, 300.0, 10.0, Jitter.NONE)
    assert b.base(10_000) == 300.0
    assert b.delay(10_000, None, random.Random(1)) == 300.0


def test_none_is_deterministic() -> None:
    b = Backoff(0.5, 10.0, 3.0, Jitter.NONE)
    assert [b.delay(n, None, random.Random(n)) for n in range(5)] == [0.5, 1.5, 4.5, 10, 10]


@pytest.mark.parametrize("attempt", [0, 1, 3, 8, 20])
def test_full_jitter_is_uniform_below_base(attempt: int) -> None:
    b = Backoff(2.0, 300.0, 2.0, Jitter.FULL)
    rng = random.Random(42)
    draws = [b.delay(attempt, None, rng) for _ in range(4000)]
    base = b.base(attempt)
    assert all(0.0 <= d <= base for d in draws)
    mean = sum(draws) / len(draws)
    assert abs(mean - base / 2) < base * 0.05  # U(0, base) has mean base/2
    assert min(draws) < base * 0.05 and max(draws) > base * 0.95


@pytest.mark.parametrize("attempt", [0, 2, 10])
def test_equal_jitter_keeps_half(attempt: int) -> None:
    b = Backoff(2.0, 300.0, 2.0, Jitter.EQUAL)
    rng = random.Random(7)
    base = b.base(attempt)
    draws = [b.delay(attempt, None, rng) for _ in range(4000)]
    assert all(base / 2 <= d <= base for d in draws)
    assert abs(sum(draws) / len(draws) - 0.75 * base) < base * 0.05


def test_decorrelated_jitter_grows_from_previous_and_caps() -> None:
    b = Backoff(1.0, 60.0, 2.0, Jitter.DECORRELATED)
    rng = random.Random(3)
    previous = None
    for n in range(200):
        d = b.delay(n, previous, rng)
        low = 1.0
        high = min(60.0, 3 * (previous if previous is not None else 1.0))
        assert low <= d <= max(low, high) + 1e-9
        previous = d
    # It reaches the cap region eventually rather than staying small.
    assert any(b.delay(50, 60.0, rng) > 30 for _ in range(50))


def test_from_config_uses_pull_table() -> None:
    b = Backoff.from_config(PullConfig(initial_delay=0.5, max_delay=8, multiplier=3,
                                       jitter=Jitter.EQUAL))
    assert (b.initial, b.maximum, b.multiplier, b.jitter) == (0.5, 8, 3, Jitter.EQUAL)


def test_kubelet_reference_policy() -> None:
    k = kubelet_like()
    assert [k.base(n) for n in range(7)] == [10, 20, 40, 80, 160, 300, 300]
