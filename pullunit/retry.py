"""What to do after a failed attempt: retry after a delay, fall back to a known-good local
image, or give up. Pure logic: no I/O and no clock; the caller passes the time that has
passed and the random source for jitter, so every combination is testable with fakes.

The rules, in order:
1. Fall back (when a known-good local image may exist, never while prefetching, never
   for daemon_unavailable: the fallback needs the daemon too) on a permanent failure under
   image.policy = "always", or on a transient one once refresh_timeout has passed.
2. Give up on a permanent failure unless pull.retry_permanent.
3. Otherwise wait, at least rate_limit_delay after a 429 and at least what the registry
   asked for (Retry-After), but no later than the end of refresh_timeout when a fallback
   is waiting there; give up when the next attempt would start after the deadline (at
   most PREFETCH_DEADLINE for a prefetch). How long:
   - the registry is unavailable (a class in REGISTRY_DOWN, and no probe answered since
     the last pull): the probe schedule, capped at pull.probe_interval, and the next
     attempt starts with a probe (a manifest HEAD) and pulls only once it succeeds;
   - else (the registry answered a probe but the pull failed; the daemon is down; a
     permanent failure retried): the jittered backoff, capped at pull.max_delay; after a
     registry-side failure the next attempt starts with a probe there too.

Why two schedules: layer pulls are what a registry coming back from an outage cannot take
from a whole fleet at once, and a manifest HEAD costs it next to nothing. So while it is
down, hosts ask often and cheaply (found back within one probe_interval) and each starts
its layer pull when its own jittered probe succeeds: the fleet's pulls arrive spread over
one probe_interval instead of in the same second (benchmarks/herd.py).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from .backoff import Backoff
from .classify import PERMANENT, FailureClass
from .config import AppConfig, Policy, PullConfig
from .durations import human

PREFETCH_DEADLINE = 600.0  # a background prefetch gives up sooner than a blocked start
# A registry asking for more than this is not taken at its word (a bogus date, a typo):
# the deadline and refresh_timeout still apply below it.
RETRY_AFTER_MAX = 3600.0

# The registry (or the way to it) is not serving: a probe tells cheaply when it is back.
# Not daemon_unavailable (the probe goes through the daemon too: the attempt is as cheap),
# not unknown (nothing says the registry is the cause), not permanent classes.
REGISTRY_DOWN = frozenset({
    FailureClass.UNREACHABLE, FailureClass.DNS, FailureClass.SERVER_ERROR,
    FailureClass.STALLED, FailureClass.RATE_LIMITED,
})


@dataclass(frozen=True)
class Rules:
    """What the config says; fixed for one run."""

    policy: Policy
    backoff: Backoff
    deadline: float
    refresh_timeout: float
    rate_limit_delay: float
    retry_permanent: bool = False
    prefetch: bool = False
    # the probe schedule's cap; None: no probes, every retry is a pull on the backoff
    # (pullunit before probes; benchmarks/herd.py compares the two)
    probe_interval: float | None = None

    @classmethod
    def of(cls, app: AppConfig, *, prefetch: bool = False) -> Rules:
        return cls.of_pull(app.pull, app.image.policy, prefetch=prefetch)

    @classmethod
    def of_pull(cls, pull: PullConfig, policy: Policy, *, prefetch: bool = False) -> Rules:
        return cls(policy, Backoff.from_config(pull), pull.deadline, pull.refresh_timeout,
                   pull.rate_limit_delay, pull.retry_permanent, prefetch,
                   pull.probe_interval)

    @property
    def effective_deadline(self) -> float:
        return min(self.deadline, PREFETCH_DEADLINE) if self.prefetch else self.deadline


@dataclass(frozen=True)
class Situation:
    """Where the run stands after a failed attempt."""

    failure: FailureClass
    elapsed: float  # seconds since the run started
    retries: int = 0  # delays already waited: the backoff's n
    previous: float | None = None  # the last delay drawn (decorrelated jitter builds on it)
    fallback_possible: bool = False  # a known-good local image may exist and none failed yet
    retry_after: float | None = None  # what the registry asked for, when it is known
    probes: int = 0  # probe-schedule delays waited since a probe last succeeded: its n
    # a probe succeeded just before this failed pull: the registry is up, the pull failed
    answered: bool = False

    @property
    def permanent(self) -> bool:
        return self.failure in PERMANENT


@dataclass(frozen=True)
class RetryAfter:
    delay: float  # how long to wait before the next attempt
    drawn: float  # the schedule's delay with its floors; becomes Situation.previous
    reason: str
    probe: bool = False  # the next attempt starts with a probe and pulls only if it succeeds
    # the delay is the probe schedule's: it counts in Situation.probes, not retries
    probing: bool = False


@dataclass(frozen=True)
class FallBack:
    reason: str


@dataclass(frozen=True)
class GiveUp:
    reason: str
    permanent: bool  # the failure itself says stop (the command reports it); else the deadline


Decision = RetryAfter | FallBack | GiveUp


def decide(rules: Rules, now: Situation, rng: random.Random) -> Decision:
    """The next step after a failed attempt. `rng` is only drawn from for a RetryAfter."""
    cls = now.failure
    can_fall_back = (now.fallback_possible and not rules.prefetch
                     and cls is not FailureClass.DAEMON_UNAVAILABLE)
    if can_fall_back and now.permanent and rules.policy is Policy.ALWAYS:
        return FallBack(f"{cls} is permanent and image.policy is \"always\"")
    if can_fall_back and not now.permanent and now.elapsed >= rules.refresh_timeout:
        return FallBack(f"no fresh image within pull.refresh_timeout "
                        f"({human(rules.refresh_timeout)})")
    if now.permanent and not rules.retry_permanent:
        return GiveUp(f"{cls} is permanent (pull.retry_permanent is off)", permanent=True)

    probe = rules.probe_interval is not None and cls in REGISTRY_DOWN
    probing = probe and not now.answered
    if probing:
        assert rules.probe_interval is not None
        delay = rules.backoff.probe_delay(now.probes, rules.probe_interval, rng)
        reason = "registry unavailable: probe schedule"
    else:
        delay = rules.backoff.delay(now.retries, now.previous, rng)
        reason = "backoff"
    if cls is FailureClass.RATE_LIMITED and delay < rules.rate_limit_delay:
        delay, reason = rules.rate_limit_delay, "rate limited: at least pull.rate_limit_delay"
    asked = None if now.retry_after is None else min(now.retry_after, RETRY_AFTER_MAX)
    if asked is not None and delay < asked:
        delay, reason = asked, "the registry's Retry-After"
    drawn = delay
    # Wake up in time to fall back when refresh_timeout ends. A daemon_unavailable run
    # wakes too: the next failure may be one that can fall back.
    if (now.fallback_possible and not rules.prefetch
            and now.elapsed < rules.refresh_timeout
            and rules.refresh_timeout - now.elapsed < delay):
        delay = rules.refresh_timeout - now.elapsed
        reason = "until pull.refresh_timeout ends, then fall back"
    deadline = rules.effective_deadline
    if now.elapsed + delay > deadline:
        return GiveUp(f"the next attempt would start after the deadline ({human(deadline)})",
                      permanent=False)
    return RetryAfter(delay, drawn, reason, probe, probing)
