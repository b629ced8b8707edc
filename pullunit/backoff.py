"""Retry delays: exponential backoff with jitter. Pure logic, seeded for tests.

Jitter is the point: after a registry outage, a fleet whose pullers all wait exactly
2, 4, 8 ... seconds comes back in lock-step and knocks the registry over again.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from .config import Jitter, PullConfig


@dataclass(frozen=True)
class Backoff:
    initial: float
    maximum: float
    multiplier: float
    jitter: Jitter

    @classmethod
    def from_config(cls, pull: PullConfig) -> Backoff:
        return cls(pull.initial_delay, pull.max_delay, pull.multiplier, pull.jitter)

    def base(self, attempt: int) -> float:
        """delay_n = min(max_delay, initial_delay * multiplier^n), n counting from 0."""
        try:
            raw = self.initial * math.pow(self.multiplier, attempt)
        except OverflowError:
            return self.maximum
        return min(self.maximum, raw)

    def delay(self, attempt: int, previous: float | None, rng: random.Random) -> float:
        """The wait before retry number `attempt` (0 = after the first failure)."""
        base = self.base(attempt)
        if self.jitter is Jitter.FULL:
            return rng.uniform(0.0, base)
        if self.jitter is Jitter.EQUAL:
            return base / 2 + rng.uniform(0.0, base / 2)
        if self.jitter is Jitter.DECORRELATED:
            prev = self.initial if previous is None else previous
            return min(self.maximum, rng.uniform(self.initial, max(self.initial, 3 * prev)))
        return base

    def probe_delay(self, attempt: int, cap: float, rng: random.Random) -> float:
        """The wait before probe number `attempt` while the registry is unavailable: the
        same exponential ramp, capped at `cap` (pull.probe_interval), with equal jitter
        whatever pull.jitter says (except "none", kept for tests and lock-step on purpose).

        Why equal jitter: half the base is a floor, so one host never probes more often
        than once per cap/2 once the ramp is over, and a fleet's probe rate is bounded by
        2N/cap. For the same mean interval it also finds a recovered registry sooner than
        full jitter (the wait until the next probe after recovery averages 0.52 of the
        mean interval against 0.67, and is never more than 4/3 of it against 2)."""
        base = min(cap, self.base(attempt))
        if self.jitter is Jitter.NONE:
            return base
        return rng.uniform(base / 2, base)


def kubelet_like() -> Backoff:
    """The policy pullunit is measured against: 10 s doubling to 300 s, no jitter."""
    return Backoff(10.0, 300.0, 2.0, Jitter.NONE)
