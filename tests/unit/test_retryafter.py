"""retryafter.parse: Retry-After as delay-seconds or an HTTP-date (RFC 9110), capped;
what cannot be read is None (the puller then waits by its own rules)."""

from __future__ import annotations

import pytest

from pullunit.reference import parse_reference
from pullunit.retryafter import MAX_HONOURED, ask, parse

NOW = 1_700_000_000.0  # Tue, 14 Nov 2023 22:13:20 GMT


@pytest.mark.parametrize(("value", "seconds"), [
    ("120", 120.0), (" 7 ", 7.0), ("0", 0.0),
    ("Tue, 14 Nov 2023 22:14:20 GMT", 60.0),
    ("Tue, 14 Nov 2023 22:00:00 GMT", 0.0),  # in the past: at once
    ("99999999", MAX_HONOURED), ("Wed, 15 Nov 2023 22:13:20 GMT", MAX_HONOURED),
    ("", None), ("soon", None), ("-5", None), ("1.5", None), ("١٢", None),
    ("Tue, 14 Nov 2023 22:14:20", None),  # no zone: not an HTTP-date
])
def test_parse(value: str, seconds: float | None) -> None:
    assert parse(value, NOW) == seconds


def test_ask_without_time_asks_nothing() -> None:
    assert ask(parse_reference("127.0.0.1:9/team/app:1"), None, 0.0) is None


def test_ask_never_raises_for_a_registry_that_is_not_there() -> None:
    from tests.testbed._util import free_port

    assert ask(parse_reference(f"127.0.0.1:{free_port()}/team/app:1"), None, 2.0) is None
