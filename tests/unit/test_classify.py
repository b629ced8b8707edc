"""The classifier on the daemon's own words. Texts come from TESTBED.md and from what the
integration test bed captured from dockerd 20.10 (tests/testbed/observed_messages.py)."""

from __future__ import annotations

import pytest

from pullunit.classify import PERMANENT, Failure, FailureClass, classify, exit_code, redact
from pullunit.errors import ExitCode

C = FailureClass

TEXTS = [
    ("manifest for 127.0.0.1:5000/team/app:nope not found: manifest unknown: manifest unknown",
     C.NOT_FOUND),
    ('Get "http://127.0.0.1:5999/v2/": dial tcp 127.0.0.1:5999: connect: connection refused',
     C.UNREACHABLE),
    ('Get "https://no-such-host.invalid:5000/v2/": dial tcp: lookup no-such-host.invalid: '
     "no such host", C.DNS),
    ('Head "http://127.0.0.1:5001/v2/team/app/manifests/1.2.3": no basic auth credentials',
     C.DENIED),
    ("error parsing HTTP 429 response body: invalid character '<' looking for beginning of "
     "value: \"<html>\"", C.RATE_LIMITED),
    ("toomanyrequests: You have reached your pull rate limit.", C.RATE_LIMITED),
    ('Get "https://10.231.0.2:5443/v2/": x509: certificate signed by unknown authority', C.TLS),
    ('Get "https://r.example/v2/": net/http: TLS handshake timeout', C.UNREACHABLE),
    ("pull access denied for team/app, repository does not exist or may require "
     "'docker login': denied: requested access to the resource is denied", C.DENIED),
    ("unauthorized: authentication required", C.DENIED),
    ("no matching manifest for linux/arm64/v8 in the manifest list entries", C.PLATFORM),
    ("failed to register layer: Error processing tar file(exit status 1): write "
     "/big/blob: no space left on device", C.DISK_FULL),
    ("unexpected EOF", C.UNREACHABLE),
    ("read tcp 127.0.0.1:40000->127.0.0.1:5000: read: connection reset by peer", C.UNREACHABLE),
    ('Get "https://r.example/v2/": dial tcp: lookup r.example on 127.0.0.53:53: '
     "server misbehaving", C.DNS),
    ("Temporary failure in name resolution", C.DNS),
    ("received unexpected HTTP status: 503 Service Unavailable", C.SERVER_ERROR),
    ("something nobody has seen before", C.UNKNOWN),
]


@pytest.mark.parametrize("text,expected", TEXTS, ids=[t[1].value + f"-{i}"
                                                       for i, t in enumerate(TEXTS)])
def test_daemon_texts(text: str, expected: FailureClass) -> None:
    assert classify(text) is expected


def test_observed_texts_from_the_test_bed() -> None:
    """Every message the test bed captured from the real dockerd lands in its class.
    (daemon_unavailable is decided by the exception type, not by text: see dockerapi.)"""
    from tests.testbed.observed_messages import MESSAGES

    assert MESSAGES, "the test bed recorded no messages"
    checked = 0
    for cls_name, texts in MESSAGES.items():
        cls = FailureClass(cls_name)
        if cls is FailureClass.DAEMON_UNAVAILABLE:
            continue
        for text in texts:
            assert classify(text) is cls, (cls_name, text)
            checked += 1
    assert checked >= 5


@pytest.mark.parametrize("status,expected", [(404, C.NOT_FOUND), (401, C.DENIED),
                                             (403, C.DENIED), (429, C.RATE_LIMITED),
                                             (500, C.SERVER_ERROR), (502, C.SERVER_ERROR),
                                             (None, C.UNKNOWN)])
def test_status_code_fallback(status: int | None, expected: FailureClass) -> None:
    assert classify("opaque", status) is expected


def test_exit_codes_follow_the_contract() -> None:
    assert exit_code(C.NOT_FOUND) == ExitCode.NOINPUT == 66
    assert exit_code(C.DENIED) == 77
    assert {exit_code(c) for c in (C.PLATFORM, C.DIGEST_MISMATCH, C.VERIFY_FAILED)} == {65}
    assert exit_code(C.TLS) == 76
    assert exit_code(C.DNS) == 68
    assert {exit_code(c) for c in (C.UNREACHABLE, C.SERVER_ERROR, C.STALLED, C.RATE_LIMITED,
                                   C.DAEMON_UNAVAILABLE)} == {69}
    assert exit_code(C.DISK_FULL) == 73


def test_permanent_classes() -> None:
    assert {C.NOT_FOUND, C.DENIED, C.PLATFORM, C.DIGEST_MISMATCH,
                         C.VERIFY_FAILED, C.TLS, C.DISK_FULL} == PERMANENT
    assert Failure(C.DNS, "x").permanent is False
    assert Failure(C.DENIED, "x").exit_code == 77


@pytest.mark.parametrize("text,secret", [
    ("Authorization: Basic dXNlcjpzM2NyZXQ=", "dXNlcjpzM2NyZXQ="),
    ("Authorization: Bearer eyJhbGciOi.abc.def", "eyJhbGciOi.abc.def"),
    ('{"password": "s3cret-pw"}', "s3cret-pw"),
    ("https://bob:s3cret-pw@registry.example/v2/", "s3cret-pw"),
    ("token=abcdef123456&scope=x", "abcdef123456"),
])
def test_redact_removes_credentials(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out
    assert "***" in out


def test_redact_leaves_ordinary_messages_alone() -> None:
    msg = "manifest for 127.0.0.1:5000/team/app:nope not found: manifest unknown"
    assert redact(msg) == msg
