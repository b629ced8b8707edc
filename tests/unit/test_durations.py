"""pullunit.durations: systemd time spans as float seconds, and back."""

from __future__ import annotations

import math
import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pullunit.durations import (
    MAX_SECONDS,
    DurationError,
    format_timespan,
    human,
    parse_duration,
)

VALID = [
    ("500ms", 0.5),
    ("2s", 2.0),
    ("5min", 300.0),
    ("1h 30min", 5400.0),
    ("1h30min", 5400.0),
    ("2", 2.0),
    (".5s", 0.5),
    ("1.5h", 5400.0),
    ("5 min", 300.0),
    ("  5s  ", 5.0),
    ("2 weeks", 1209600.0),
    ("1M", 2629800.0),
    ("1m", 60.0),
    ("10us", 10e-6),
    ("1µs", 1e-6),
    ("1μs", 1e-6),
    ("3 days 2h", 266400.0),
    ("1y", 31557600.0),
    ("1 year", 31557600.0),
    ("1hr", 3600.0),
    ("2 seconds", 2.0),
    ("1 minute", 60.0),
    ("1msec", 0.001),
    ("1usec", 1e-6),
    ("1s2", 3.0),
    ("0", 0.0),
    (0, 0.0),
    (3, 3.0),
    (1.5, 1.5),
]

INVALID = [
    ("", "empty duration"),
    ("   ", "empty duration"),
    ("abc", "invalid duration 'abc'"),
    ("5 parsecs", "invalid duration"),
    ("-1", "invalid duration"),
    ("1.s", "invalid duration"),
    ("1e3", "invalid duration"),
    ("1,5s", "invalid duration"),
    ("1mins", "invalid duration"),
    ("1h-30min", "invalid duration"),
    ("1sx", "invalid duration"),
    ("min", "invalid duration"),
    ("infinite", "invalid duration"),
    (-1, "non-negative"),
    (-0.5, "non-negative"),
    (math.nan, "non-negative"),
    # defect 13: systemd's digits and white space are ASCII
    ("\u0665s", "invalid duration"),
    ("\uff15s", "invalid duration"),
    ("5\u00a0s", "invalid duration"),
    ("\u20035s", "invalid duration"),
    ("5\u000bs", "invalid duration"),
    ("1\u0660s", "invalid duration"),
    # defect 6 and 12: longer than pullunit (and Docker, Python) can wait
    ("9223372037s", "too long: at most 9223372036s"),
    ("292y 4month", "too long"),
    ("1" + "0" * 400, "too long"),
    ("18446744073709551615us", "too long"),
    (9223372037, "too long"),
    (10**400, "(a number of more than 38 digits) is too long"),
    (1e300, "duration 1e+300 is too long"),
    (True, "got a boolean"),
    ([1], "expected a duration string, got list"),
    ({"s": 1}, "expected a duration string, got dict"),
]


@pytest.mark.parametrize(("text", "seconds"), VALID, ids=[repr(v[0]) for v in VALID])
def test_parse_valid(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-12, abs=1e-12)


def test_infinity() -> None:
    assert parse_duration("infinity") == math.inf
    assert parse_duration(" infinity ") == math.inf
    assert parse_duration(math.inf) == math.inf  # TOML's inf


def test_the_longest_span() -> None:
    assert MAX_SECONDS == 9223372036
    assert parse_duration(MAX_SECONDS) == parse_duration(f"{MAX_SECONDS}s") == MAX_SECONDS
    assert parse_duration(f"{MAX_SECONDS * 1000}ms") == MAX_SECONDS
    assert format_timespan(MAX_SECONDS) == f"{MAX_SECONDS}s"


@pytest.mark.parametrize(("value", "message"), INVALID, ids=[repr(v[0]) for v in INVALID])
def test_parse_invalid(value: object, message: str) -> None:
    with pytest.raises(DurationError) as e:
        parse_duration(value)
    assert message in str(e.value)


def test_invalid_message_shows_the_grammar() -> None:
    with pytest.raises(DurationError, match=r'"500ms", "2s", "5min", "1h 30min" or "infinity"'):
        parse_duration("soon")


def test_two_decimal_points_are_rejected_like_systemd() -> None:
    # systemd: "Failed to parse time span '5.5.5s'". The component regex lets "5.5" be
    # followed by ".5s" and adds them up (bug: reads 6.0 seconds).
    for text in ("5.5.5s", "1.5.5", ".5.5s"):
        with pytest.raises(DurationError):
            parse_duration(text)


@pytest.mark.parametrize(("seconds", "text"), [
    (0.0, "0s"), (2.0, "2s"), (0.5, "500ms"), (0.25, "250ms"), (90.0, "90s"),
    (5400.0, "5400s"), (math.inf, "infinity"), (1.2344, "1234ms"), (0.0004, "0s"),
])
def test_format_timespan(seconds: float, text: str) -> None:
    assert format_timespan(seconds) == text


@given(st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False))
def test_format_timespan_round_trips_to_the_millisecond(seconds: float) -> None:
    text = format_timespan(seconds)
    assert parse_duration(text) == pytest.approx(round(seconds * 1000) / 1000, rel=1e-12,
                                                abs=1e-9)


@pytest.mark.parametrize(("seconds", "text"), [
    (0.0, "0.0s"), (1.5, "1.5s"), (9.94, "9.9s"), (10.0, "10s"), (125.0, "2min 5s"),
    (3720.0, "1h 2min"), (3600.0, "1h"), (7205.0, "2h"), (math.inf, "infinity"),
])
def test_human(seconds: float, text: str) -> None:
    assert human(seconds) == text


# --- agreement with systemd's own parser -------------------------------------------------

def _systemd_seconds(text: str) -> float | None:
    proc = subprocess.run(["systemd-analyze", "timespan", text], capture_output=True,
                          timeout=30)
    for line in proc.stdout.decode(errors="replace").splitlines():
        key, _, value = line.strip().partition(":")
        if key == "μs":
            us = int(value)
            return math.inf if us == 2**64 - 1 else us / 1e6
    return None


def _ours(text: str) -> float | None:
    try:
        return parse_duration(text)
    except DurationError:
        return None


needs_systemd_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                           reason="systemd-analyze not installed")


@needs_systemd_analyze
@pytest.mark.parametrize("text", [v[0] for v in VALID if isinstance(v[0], str)]
                         + [v[0] for v in INVALID if isinstance(v[0], str) and v[0].strip()]
                         + ["infinity", "5.5.5s"])
def test_table_agrees_with_systemd(text: str) -> None:
    theirs, ours = _systemd_seconds(text), _ours(text)
    if ours is None and theirs is not None:  # the one intended difference: our lower limit
        assert theirs > MAX_SECONDS, text
        return
    assert (ours is None) == (theirs is None), (text, ours, theirs)
    if ours is not None and theirs is not None:
        assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-6)


_ATOMS = ["1", "5", "0", "12", ".", "5.5", ".5", " ", "s", "ms", "min", "h", "d", "w", "M",
          "y", "us", "µs", "sec", "hours", "m", "x", "-"]


@needs_systemd_analyze
@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(_ATOMS), min_size=1, max_size=5).map("".join)
       .filter(lambda s: bool(s.strip())))
def test_random_spans_agree_with_systemd(text: str) -> None:
    """What an admin copies from a unit file means the same here as in systemd."""
    theirs, ours = _systemd_seconds(text), _ours(text)
    if theirs is not None and theirs > MAX_SECONDS:
        # systemd's own limit is higher; pullunit stops at what Docker and Python take
        assert ours is None, (text, ours, theirs)
        return
    assert (ours is None) == (theirs is None), (text, ours, theirs)
    if ours is not None and theirs is not None:
        assert ours == pytest.approx(theirs, rel=1e-9, abs=1e-6)
