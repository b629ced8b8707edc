"""The registry quota headers (pullunit/ratelimit.py): Docker Hub's forms, the IETF
draft's lists, Retry-After, and what a registry may send instead (garbage, repeats)."""

from __future__ import annotations

import pytest

from pullunit.ratelimit import (
    Quota,
    RateLimit,
    from_headers,
    parse_quota,
    parse_retry_after,
    parse_seconds,
)

NOW = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT


@pytest.mark.parametrize("value,expected", [
    ("100;w=21600", Quota(100, 21600)),  # Docker Hub
    ("76;w=21600", Quota(76, 21600)),
    ("100", Quota(100)),  # without a window
    (" 100 ; w = 21600 ", Quota(100, 21600)),  # spaces
    ("100;W=60", Quota(100, 60)),
    ("100;w=21600;comment=\"anon\"", Quota(100, 21600)),  # other parameters
    ("0;w=21600", Quota(0, 21600)),
    ("100;w=0", Quota(100)),  # a zero window says nothing
    ("100;w=abc", Quota(100)),  # a bad window, a good number
    # the draft's lists: the first item is in force, later ones are policies
    ("10, 10;w=1, 50;w=60", Quota(10, 1)),
    ("50, 10;w=1, 50;w=60", Quota(50, 60)),
    ("100;w=21600, 200;w=3600", Quota(100, 21600)),
    # a header sent twice reads as a list: the first value wins
    ("100;w=21600, 100;w=21600", Quota(100, 21600)),
    ("100;w=21600, garbage", Quota(100, 21600)),
    # garbage
    ("", None), (None, None), ("abc", None), ("-5;w=60", None), ("1.5", None),
    (";w=60", None), ("garbage, 100", None), ("1" * 13, None),
    ("\u0661\u0660\u0660", None),  # non-ASCII digits
])
def test_parse_quota(value: str | None, expected: Quota | None) -> None:
    assert parse_quota(value) == expected


@pytest.mark.parametrize("value,expected", [
    ("120", 120.0), ("0", 0.0), (" 5 ", 5.0),
    ("Tue, 14 Nov 2023 22:15:20 GMT", 120.0),  # an HTTP-date, 2 min ahead
    ("Tue, 14 Nov 2023 22:00:00 GMT", 0.0),  # in the past: now
    ("-1", None), ("soon", None), ("", None), (None, None), ("1e3", None),
    ("Tue, 99 Nov 2023 22:15:20 GMT", None),
])
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_parse_seconds() -> None:
    assert parse_seconds("30") == 30.0
    assert parse_seconds("x") is None and parse_seconds(None) is None


def test_docker_hub_headers() -> None:
    rl = from_headers([("ratelimit-limit", "100;w=21600"), ("RateLimit-Remaining", "76;w=21600"),
                       ("Docker-RateLimit-Source", "203.0.113.7")], NOW)
    assert rl == RateLimit(limit=100, remaining=76, window=21600, source="203.0.113.7")
    assert rl.known and not rl.low
    assert rl.describe() == "76 of 100 pulls left in the window (6h, rolling)"
    assert rl.as_json() == {"limit": 100, "remaining": 76, "window_seconds": 21600,
                            "reset_seconds": None, "source": "203.0.113.7",
                            "retry_after_seconds": None, "low": False}


def test_reset_and_retry_after() -> None:
    rl = from_headers([("RateLimit-Limit", "100"), ("RateLimit-Remaining", "0"),
                       ("RateLimit-Reset", "300"), ("Retry-After", "120")], NOW)
    assert (rl.limit, rl.remaining, rl.window, rl.reset, rl.retry_after) == (100, 0, None,
                                                                           300.0, 120.0)
    assert rl.low
    assert rl.describe() == ("0 of 100 pulls left in the window, resets in 5min; "
                             "Retry-After 2min")


def test_repeated_headers_read_as_one_list() -> None:
    rl = from_headers([("RateLimit-Limit", "100;w=21600"), ("RateLimit-Limit", "200;w=60"),
                       ("RateLimit-Remaining", "9"), ("RateLimit-Remaining", "150"),
                       ("Retry-After", "10"), ("Retry-After", "99")], NOW)
    assert (rl.limit, rl.remaining, rl.window, rl.retry_after) == (100, 9, 21600, 10.0)


def test_window_from_remaining_when_the_limit_has_none() -> None:
    rl = from_headers([("RateLimit-Limit", "100"), ("RateLimit-Remaining", "5;w=3600")], NOW)
    assert rl.window == 3600


@pytest.mark.parametrize("headers", [
    [], [("RateLimit-Limit", "lots"), ("RateLimit-Remaining", "some")],
    [("Content-Type", "application/json")],
])
def test_no_quota(headers: list[tuple[str, str]]) -> None:
    rl = from_headers(headers, NOW)
    assert not rl.known and not rl.low
    assert rl.describe() == "the registry sent no pull quota"


def test_untrusted_source_is_printable_and_short() -> None:
    rl = from_headers([("Docker-RateLimit-Source", "\x1b]0;pwned\x07" + "a" * 300)], NOW)
    assert rl.source is not None and "\x1b" not in rl.source and len(rl.source) < 130


@pytest.mark.parametrize("limit,remaining,low", [
    (100, 10, True), (100, 11, False), (100, 0, True), (5000, 499, True), (5000, 501, False),
    (None, 10, True), (None, 11, False), (100, None, False), (0, 0, True),
])
def test_low_threshold(limit: int | None, remaining: int | None, low: bool) -> None:
    """Low: at most 10 % of the limit left (10 of Docker Hub's anonymous 100), or at most
    10 when no limit is sent."""
    assert RateLimit(limit=limit, remaining=remaining).low is low


def test_partial_quotas_describe_what_is_known() -> None:
    assert RateLimit(remaining=3).describe() == "3 pulls left in the window"
    assert RateLimit(limit=100, window=60).describe() == \
        "a limit of 100 pulls in the window (1min, rolling)"


# --- doctor's verdict on a quota (pullunit/doctor/verdicts.py) -------------------------

def _verdict(status: int, quota: RateLimit, hub: bool = False,
             anonymous: bool = False) -> tuple[str, str, str]:
    from pullunit.doctor.verdicts import rate_limit_verdict

    s, detail, hint = rate_limit_verdict(status, quota, hub, anonymous)
    return str(s), detail, hint


HUB_76 = RateLimit(limit=100, remaining=76, window=21600, source="203.0.113.7")


def test_verdict_plenty_left_passes() -> None:
    assert _verdict(200, HUB_76) == (
        "pass", "76 of 100 pulls left in the window (6h, rolling), counted for 203.0.113.7", "")


def test_verdict_anonymous_docker_hub_warns_even_with_plenty_left() -> None:
    status, detail, hint = _verdict(200, HUB_76, hub=True, anonymous=True)
    assert (status, hint) == ("warn", "anonymous_hub")
    assert detail.startswith("pulls from Docker Hub are anonymous") and "76 of 100" in detail
    # authenticated against Docker Hub, or anonymous elsewhere: no such warning
    assert _verdict(200, HUB_76, hub=True, anonymous=False)[0] == "pass"
    assert _verdict(200, HUB_76, hub=False, anonymous=True)[0] == "pass"


def test_verdict_anonymous_docker_hub_warns_without_quota_headers_too() -> None:
    assert _verdict(200, RateLimit(), hub=True, anonymous=True)[0] == "warn"


@pytest.mark.parametrize("quota,status,says", [
    (RateLimit(limit=100, remaining=10, window=21600), 200, "low: at most 10% of the limit"),
    (RateLimit(limit=100, remaining=0, window=21600), 200, "no pulls left: 0 of 100"),
    (RateLimit(retry_after=7.0), 429, "rate limited now: the registry sent no pull quota; "
                                      "Retry-After 7.0s"),
])
def test_verdict_low_or_used_up_warns(quota: RateLimit, status: int, says: str) -> None:
    s, detail, hint = _verdict(status, quota)
    assert (s, hint) == ("warn", "rate_limited") and says in detail


def test_verdict_no_headers_passes() -> None:
    assert _verdict(200, RateLimit()) == (
        "pass", "the registry sends no RateLimit headers (no published pull quota)", "")
