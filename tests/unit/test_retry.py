"""retry.decide: the step after a failed attempt, for every combination of policy, fallback,
refresh_timeout, deadline, permanence, retry_permanent, the 429 floor and prefetch. Pure:
the time passed and the random source are inputs, so nothing here sleeps or reads a clock."""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pullunit import retry
from pullunit.backoff import Backoff
from pullunit.classify import PERMANENT, FailureClass
from pullunit.config import Jitter, Policy, load_app
from pullunit.retry import FallBack, GiveUp, RetryAfter, Rules, Situation, decide

NONE = Backoff(2.0, 300.0, 2.0, Jitter.NONE)  # 2, 4, 8, ... 300: delays readable in tests
REFRESH = 30.0
FLOOR = 60.0


class FakeRng(random.Random):
    """uniform(a, b) -> a + (b - a) * fraction; counts the draws."""

    def __init__(self, fraction: float = 0.5):
        super().__init__(0)
        self.fraction = fraction
        self.draws = 0

    def uniform(self, a: float, b: float) -> float:
        self.draws += 1
        return a + (b - a) * self.fraction


def rules(policy: Policy = Policy.MISSING, *, backoff: Backoff = NONE,
          deadline: float = math.inf, refresh: float = REFRESH, floor: float = FLOOR,
          retry_permanent: bool = False, prefetch: bool = False) -> Rules:
    return Rules(policy, backoff, deadline, refresh, floor, retry_permanent, prefetch)


def situation(cls: FailureClass = FailureClass.UNREACHABLE, elapsed: float = 1.0,
              **kw: object) -> Situation:
    return Situation(cls, elapsed, **kw)  # type: ignore[arg-type]


# --- the whole matrix ------------------------------------------------------------------------

CLASSES = {
    "transient": FailureClass.UNREACHABLE,
    "permanent": FailureClass.NOT_FOUND,
    "rate_limited": FailureClass.RATE_LIMITED,
    "daemon": FailureClass.DAEMON_UNAVAILABLE,
}
MATRIX = list(itertools.product(
    list(Policy), [False, True], [False, True], [False, True], list(CLASSES), [False, True],
    [False, True]))


def _id(case: tuple[object, ...]) -> str:
    policy, fb, refreshed, past_deadline, kind, retry_permanent, prefetch = case
    return "-".join([str(policy), "fallback" if fb else "nofallback",
                     "refreshed" if refreshed else "fresh",
                     "deadline" if past_deadline else "time", str(kind),
                     "retryperm" if retry_permanent else "stopperm",
                     "prefetch" if prefetch else "start"])


@pytest.mark.parametrize("case", MATRIX, ids=[_id(c) for c in MATRIX])
def test_every_combination(case: tuple[Policy, bool, bool, bool, str, bool, bool]) -> None:
    policy, fallback_possible, refreshed, past_deadline, kind, retry_permanent, prefetch = case
    cls = CLASSES[kind]
    elapsed = 40.0 if refreshed else 10.0  # refresh_timeout is 30 s
    # the first backoff delay is 2 s: a deadline 0.5 s away is always too close
    deadline = elapsed + 0.5 if past_deadline else math.inf
    r = rules(policy, deadline=deadline, retry_permanent=retry_permanent, prefetch=prefetch)
    rng = FakeRng()
    d = decide(r, situation(cls, elapsed, fallback_possible=fallback_possible), rng)

    # The README's rules, stated separately from the code's order of checks:
    # a fallback needs a candidate, a start (not a prefetch), and a daemon.
    may_fall_back = fallback_possible and not prefetch and kind != "daemon"
    permanent = kind == "permanent"
    if may_fall_back and permanent and policy is Policy.ALWAYS:
        assert isinstance(d, FallBack) and '"always"' in d.reason
        assert rng.draws == 0
        return
    if may_fall_back and not permanent and refreshed:
        assert isinstance(d, FallBack) and "refresh_timeout" in d.reason
        assert rng.draws == 0
        return
    if permanent and not retry_permanent:
        assert d == GiveUp("not_found is permanent (pull.retry_permanent is off)",
                           permanent=True)
        assert rng.draws == 0
        return
    if past_deadline:
        assert isinstance(d, GiveUp) and not d.permanent
        assert "after the deadline" in d.reason
        return
    assert isinstance(d, RetryAfter)
    want = FLOOR if kind == "rate_limited" else 2.0
    assert d.drawn == want
    if fallback_possible and not prefetch and not refreshed:
        want = min(want, REFRESH - elapsed)  # wakes when refresh_timeout ends
    assert d.delay == want
    assert d.delay >= 0


def test_the_matrix_covers_each_dimension() -> None:
    assert len(MATRIX) == 3 * 2 * 2 * 2 * 4 * 2 * 2
    assert CLASSES["permanent"] in PERMANENT and CLASSES["transient"] not in PERMANENT


# --- backoff, floors and clamps, with numbers ------------------------------------------------

def test_delays_follow_the_backoff_and_feed_back_previous() -> None:
    r = rules()
    delays = []
    previous = None
    for n in range(10):
        d = decide(r, situation(retries=n, previous=previous), FakeRng())
        assert isinstance(d, RetryAfter) and d.reason == "backoff"
        delays.append(d.delay)
        previous = d.drawn
    assert delays == [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]


def test_full_jitter_draws_from_the_injected_rng() -> None:
    r = rules(backoff=Backoff(2.0, 300.0, 2.0, Jitter.FULL))
    rng = FakeRng(0.25)
    d = decide(r, situation(retries=3), rng)
    assert d == RetryAfter(4.0, 4.0, "backoff")  # U(0, 16) at a quarter
    assert rng.draws == 1


def test_decorrelated_jitter_builds_on_the_previous_delay() -> None:
    r = rules(backoff=Backoff(1.0, 100.0, 2.0, Jitter.DECORRELATED))
    first = decide(r, situation(retries=0, previous=None), FakeRng(1.0))
    assert isinstance(first, RetryAfter) and first.delay == 3.0  # U(1, 3 * 1)
    second = decide(r, situation(retries=1, previous=first.drawn), FakeRng(1.0))
    assert isinstance(second, RetryAfter) and second.delay == 9.0  # U(1, 3 * 3)


def test_seeded_rng_gives_the_same_decisions() -> None:
    r = rules(backoff=Backoff(2.0, 300.0, 2.0, Jitter.FULL))
    runs = [[decide(r, situation(retries=n), random.Random(7)) for n in range(6)]
            for _ in range(2)]
    assert runs[0] == runs[1]


def test_rate_limit_floor_raises_a_short_delay_only() -> None:
    r = rules()
    low = decide(r, situation(FailureClass.RATE_LIMITED, retries=0), FakeRng())
    assert low == RetryAfter(FLOOR, FLOOR, "rate limited: at least pull.rate_limit_delay")
    high = decide(r, situation(FailureClass.RATE_LIMITED, retries=20), FakeRng())
    assert high == RetryAfter(300.0, 300.0, "backoff")  # above the floor already


def test_the_floor_is_for_429_only() -> None:
    for cls in (FailureClass.SERVER_ERROR, FailureClass.UNREACHABLE, FailureClass.STALLED):
        d = decide(rules(), situation(cls), FakeRng())
        assert isinstance(d, RetryAfter) and d.delay == 2.0


def test_retry_after_is_a_floor_when_known() -> None:
    r = rules()
    d = decide(r, situation(FailureClass.SERVER_ERROR, retry_after=42.0), FakeRng())
    assert d == RetryAfter(42.0, 42.0, "the registry's Retry-After")
    d = decide(r, situation(FailureClass.SERVER_ERROR, retries=20, retry_after=42.0),
               FakeRng())
    assert d == RetryAfter(300.0, 300.0, "backoff")
    # above the 429 floor, the registry's word wins
    d = decide(r, situation(FailureClass.RATE_LIMITED, retry_after=120.0), FakeRng())
    assert isinstance(d, RetryAfter) and d.delay == 120.0


def test_retry_after_is_honoured_up_to_an_hour() -> None:
    d = decide(rules(), situation(FailureClass.RATE_LIMITED, retry_after=1e9), FakeRng())
    assert isinstance(d, RetryAfter) and d.delay == retry.RETRY_AFTER_MAX == 3600.0


def test_wakes_when_refresh_timeout_ends_but_remembers_the_backoff() -> None:
    r = rules(Policy.ALWAYS)
    d = decide(r, situation(FailureClass.RATE_LIMITED, elapsed=25.0, fallback_possible=True),
               FakeRng())
    assert d == RetryAfter(5.0, FLOOR, "until pull.refresh_timeout ends, then fall back")
    # at the end of refresh_timeout the next failure falls back
    d = decide(r, situation(FailureClass.RATE_LIMITED, elapsed=30.0, fallback_possible=True),
               FakeRng())
    assert isinstance(d, FallBack)


def test_no_clamp_without_a_fallback_or_in_a_prefetch() -> None:
    for r, fb in ((rules(Policy.ALWAYS), False), (rules(Policy.ALWAYS, prefetch=True), True)):
        d = decide(r, situation(FailureClass.RATE_LIMITED, elapsed=25.0, fallback_possible=fb),
                   FakeRng())
        assert d == RetryAfter(FLOOR, FLOOR, "rate limited: at least pull.rate_limit_delay")


def test_daemon_unavailable_never_falls_back_but_wakes_for_it() -> None:
    r = rules(Policy.ALWAYS)
    late = decide(r, situation(FailureClass.DAEMON_UNAVAILABLE, elapsed=100.0,
                               fallback_possible=True), FakeRng())
    assert isinstance(late, RetryAfter) and late.delay == 2.0
    early = decide(r, situation(FailureClass.DAEMON_UNAVAILABLE, elapsed=29.5,
                                fallback_possible=True), FakeRng())
    assert isinstance(early, RetryAfter) and early.delay == 0.5


def test_deadline_is_when_the_next_attempt_would_start() -> None:
    r = rules(deadline=12.0)
    assert decide(r, situation(elapsed=10.0), FakeRng()) == RetryAfter(2.0, 2.0, "backoff")
    d = decide(r, situation(elapsed=10.5), FakeRng())
    assert d == GiveUp("the next attempt would start after the deadline (12s)",
                       permanent=False)


def test_the_refresh_clamp_can_keep_a_run_inside_its_deadline() -> None:
    r = rules(Policy.ALWAYS, deadline=30.5)
    d = decide(r, situation(FailureClass.RATE_LIMITED, elapsed=25.0, fallback_possible=True),
               FakeRng())
    assert isinstance(d, RetryAfter) and d.delay == 5.0  # 60 s would pass the deadline


def test_prefetch_gives_up_within_its_own_deadline() -> None:
    start = rules(prefetch=False)
    prefetch = rules(prefetch=True)
    assert prefetch.effective_deadline == retry.PREFETCH_DEADLINE
    assert rules(deadline=100.0, prefetch=True).effective_deadline == 100.0
    assert start.effective_deadline == math.inf
    near = situation(elapsed=retry.PREFETCH_DEADLINE - 1.0)
    assert isinstance(decide(start, near, FakeRng()), RetryAfter)
    assert isinstance(decide(prefetch, near, FakeRng()), GiveUp)


def test_permanent_failures_with_retry_permanent_back_off() -> None:
    r = rules(retry_permanent=True)
    for cls in sorted(PERMANENT):
        d = decide(r, situation(cls), FakeRng())
        assert d == RetryAfter(2.0, 2.0, "backoff"), cls
        assert decide(rules(), situation(cls), FakeRng()) == GiveUp(
            f"{cls} is permanent (pull.retry_permanent is off)", permanent=True)


def test_permanent_under_always_falls_back_at_once() -> None:
    r = rules(Policy.ALWAYS, retry_permanent=True)
    d = decide(r, situation(FailureClass.DENIED, elapsed=0.0, fallback_possible=True),
               FakeRng())
    assert d == FallBack('denied is permanent and image.policy is "always"')


# --- the probe schedule: while the registry is unavailable ------------------------------------

def probing(probe_interval: float = 45.0, deadline: float = math.inf,
            backoff: Backoff = NONE) -> Rules:
    return dataclasses.replace(rules(deadline=deadline, backoff=backoff),
                               probe_interval=probe_interval)


def test_registry_down_probes_on_a_ramp_capped_at_probe_interval() -> None:
    delays = []
    for n in range(8):
        d = decide(probing(), situation(probes=n, retries=3), FakeRng())
        assert isinstance(d, RetryAfter) and d.probe and d.probing
        assert d.reason == "registry unavailable: probe schedule"
        delays.append(d.delay)
    assert delays == [2, 4, 8, 16, 32, 45, 45, 45]  # n is the probes', not the retries'


def test_probes_jitter_is_equal_whatever_the_pulls_jitter() -> None:
    for jitter in (Jitter.FULL, Jitter.EQUAL, Jitter.DECORRELATED):
        r = probing(backoff=Backoff(2.0, 300.0, 2.0, jitter))
        low = decide(r, situation(probes=10), FakeRng(0.0))
        high = decide(r, situation(probes=10), FakeRng(1.0))
        assert isinstance(low, RetryAfter) and isinstance(high, RetryAfter)
        assert (low.delay, high.delay) == (22.5, 45.0), jitter


def test_probe_interval_never_exceeds_max_delay() -> None:
    r = probing(backoff=Backoff(2.0, 10.0, 2.0, Jitter.NONE))
    d = decide(r, situation(probes=10), FakeRng())
    assert isinstance(d, RetryAfter) and d.delay == 10.0


@pytest.mark.parametrize("cls", sorted(retry.REGISTRY_DOWN))
def test_every_registry_side_class_probes(cls: FailureClass) -> None:
    d = decide(probing(), situation(cls), FakeRng())
    assert isinstance(d, RetryAfter) and d.probe


@pytest.mark.parametrize("cls", [FailureClass.DAEMON_UNAVAILABLE, FailureClass.UNKNOWN])
def test_other_transient_classes_retry_the_pull_on_the_backoff(cls: FailureClass) -> None:
    d = decide(probing(), situation(cls, retries=4), FakeRng())
    assert d == RetryAfter(32.0, 32.0, "backoff")


def test_a_pull_failing_after_an_answered_probe_backs_off_and_probes_first() -> None:
    """The registry is up (it answered) but the pull failed: layer pulls follow the
    backoff up to max_delay, each after a probe."""
    d = decide(probing(), situation(FailureClass.STALLED, retries=6, answered=True),
               FakeRng())
    assert d == RetryAfter(128.0, 128.0, "backoff", probe=True, probing=False)


def test_probes_keep_the_429_floor_and_retry_after() -> None:
    d = decide(probing(), situation(FailureClass.RATE_LIMITED), FakeRng())
    assert isinstance(d, RetryAfter) and d.delay == FLOOR and d.probing
    d = decide(probing(), situation(FailureClass.SERVER_ERROR, retry_after=90.0), FakeRng())
    assert isinstance(d, RetryAfter) and d.delay == 90.0 and d.probing


def test_probes_keep_the_fallback_and_the_deadline() -> None:
    always = dataclasses.replace(rules(Policy.ALWAYS), probe_interval=45.0)
    d = decide(always, situation(elapsed=29.0, probes=10, fallback_possible=True), FakeRng())
    assert isinstance(d, RetryAfter) and d.delay == 1.0 and d.probe  # wakes to fall back
    d = decide(always, situation(elapsed=31.0, fallback_possible=True), FakeRng())
    assert isinstance(d, FallBack)
    d = decide(probing(deadline=20.0), situation(elapsed=19.0, probes=10), FakeRng())
    assert isinstance(d, GiveUp) and not d.permanent


def test_decisions_are_frozen() -> None:
    for d in (RetryAfter(1.0, 1.0, "x"), FallBack("x"), GiveUp("x", permanent=False)):
        with pytest.raises(dataclasses.FrozenInstanceError):
            d.reason = "y"  # type: ignore[misc]


def test_rules_come_from_the_config(tmp_path: Path) -> None:
    path = tmp_path / "web.toml"
    path.write_text('[image]\nref = "nginx:1.25"\npolicy = "always"\n'
                    '[pull]\ninitial_delay = "1s"\nmax_delay = "9s"\nmultiplier = 3\n'
                    'jitter = "equal"\ndeadline = "5min"\nrefresh_timeout = "7s"\n'
                    'rate_limit_delay = "11s"\nretry_permanent = true\n')
    r = Rules.of(load_app(path), prefetch=True)
    assert r == Rules(Policy.ALWAYS, Backoff(1.0, 9.0, 3.0, Jitter.EQUAL), 300.0, 7.0, 11.0,
                      True, True, probe_interval=45.0)


# --- properties over arbitrary situations ----------------------------------------------------

durations = st.floats(min_value=0.0, max_value=1e6, allow_nan=False)


@given(cls=st.sampled_from(list(FailureClass)), policy=st.sampled_from(list(Policy)),
       elapsed=durations, refresh=durations, floor=durations,
       deadline=st.one_of(durations, st.just(math.inf)),
       retries=st.integers(min_value=0, max_value=10_000),
       previous=st.one_of(st.none(), durations), fallback=st.booleans(),
       retry_permanent=st.booleans(), prefetch=st.booleans(),
       retry_after=st.one_of(st.none(), durations),
       jitter=st.sampled_from(list(Jitter)), seed=st.integers(0, 2**32),
       probe_interval=st.one_of(st.none(), st.floats(min_value=0.01, max_value=1e4)),
       probes=st.integers(min_value=0, max_value=10_000), answered=st.booleans())
def test_properties(cls: FailureClass, policy: Policy, elapsed: float, refresh: float,
                    floor: float, deadline: float, retries: int, previous: float | None,
                    fallback: bool, retry_permanent: bool, prefetch: bool,
                    retry_after: float | None, jitter: Jitter, seed: int,
                    probe_interval: float | None, probes: int, answered: bool) -> None:
    r = Rules(policy, Backoff(0.5, 300.0, 2.0, jitter), deadline, refresh, floor,
              retry_permanent, prefetch, probe_interval)
    now = Situation(cls, elapsed, retries, previous, fallback, retry_after, probes, answered)
    d = decide(r, now, random.Random(seed))
    if isinstance(d, RetryAfter):
        # probes only where the registry is the trouble, and probes are configured; the
        # probe schedule only while no probe was answered
        assert d.probe == (probe_interval is not None and cls in retry.REGISTRY_DOWN)
        assert d.probing == (d.probe and not answered)
        if d.probing and d.delay == d.drawn:
            assert probe_interval is not None
            assert d.drawn <= max(probe_interval, floor if cls is FailureClass.RATE_LIMITED
                                  else 0.0, retry_after or 0.0)
        # never past the deadline, never negative, never longer than asked for
        assert 0.0 <= d.delay <= d.drawn
        assert elapsed + d.delay <= r.effective_deadline
        assert d.drawn <= max(300.0, floor if cls is FailureClass.RATE_LIMITED else 0.0,
                              retry_after or 0.0)
        if cls is FailureClass.RATE_LIMITED and d.delay == d.drawn:
            assert d.delay >= floor
        assert not (now.permanent and not retry_permanent)
    elif isinstance(d, FallBack):
        assert fallback and not prefetch and cls is not FailureClass.DAEMON_UNAVAILABLE
    else:
        assert d.permanent == (now.permanent and not retry_permanent)
