"""The classifier on the daemon's own words. Texts come from TESTBED.md and from what the
integration test bed captured from dockerd 20.10 (tests/testbed/observed_messages.py)."""

from __future__ import annotations

import pytest

from pullunit.classify import (
    PERMANENT,
    Failure,
    FailureClass,
    PullFailed,
    classify,
    exit_code,
)
from pullunit.errors import ExitCode, PullunitError
from pullunit.redact import redact

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
    # Go's resolver names the server it asked, or not, depending on the host's set-up
    ('Get "https://registry.pullunit.test:5000/v2/": dial tcp: lookup '
     "registry.pullunit.test: no such host", C.DNS),
    ('Get "https://registry.pullunit.test:5000/v2/": dial tcp: lookup '
     "registry.pullunit.test on 127.0.0.1:53: no such host", C.DNS),
    ('Get "https://r.example/v2/": dial tcp: lookup r.example on [::1]:53: no such host', C.DNS),
    # the registry's status, quoted by dockerd, decides; the body that follows does not
    ("error parsing HTTP 404 response body: unexpected end of JSON input: \"\"", C.NOT_FOUND),
    ("error parsing HTTP 404 response body: invalid character '<' looking for beginning of "
     "value: \"<html><h1>500 Internal Server Error</h1> denied</html>\"", C.NOT_FOUND),
    ("error parsing HTTP 401 response body: invalid character '<'", C.DENIED),
    ("error parsing HTTP 403 response body: unexpected end of JSON input", C.DENIED),
    ("error parsing HTTP 502 response body: invalid character '<': \"not found\"",
     C.SERVER_ERROR),
    ("error pulling image configuration: download failed after attempts=6: received "
     "unexpected HTTP status: 503 Service Temporarily Unavailable", C.SERVER_ERROR),
    ("received unexpected HTTP status: 404 Not Found", C.NOT_FOUND),
    ("unknown blob", C.NOT_FOUND),
    # a blob that does not match its digest, or matches and does not unpack (dockerd
    # 20.10, observed through tests/testbed/faultfront.py corrupt mode and a broken blob)
    ("filesystem layer verification failed for digest sha256:29e2cf5883a0965696a422cf3b01"
     "7272ea644cbd05c1e50968f5de536e9e976a", C.CORRUPT),
    ("error pulling image configuration: image config verification failed for digest "
     "sha256:bcffb7bdb0419826f4d6044bf07f955ac36dd476b8d316fbade994269adc7dc3", C.CORRUPT),
    ("failed to register layer: Error processing tar file(exit status 1): unexpected EOF",
     C.CORRUPT),
    ("failed to register layer: Error processing tar file(exit status 1): archive/tar: "
     "invalid tar header", C.CORRUPT),
    ("failed to register layer: Error processing tar file(exit status 1): gzip: invalid "
     "header", C.CORRUPT),
    ('failed commit on ref "layer-sha256:aa": unexpected commit digest sha256:bb, '
     "expected sha256:aa: failed precondition", C.CORRUPT),
    # a full disk while unpacking is the disk, not the layer
    ("failed to register layer: Error processing tar file(exit status 1): write /x: no "
     "space left on device", C.DISK_FULL),
    # a registry that serves other bytes for a pinned manifest digest
    ("image manifest verification failed for digest sha256:aa", C.DIGEST_MISMATCH),
]


@pytest.mark.parametrize("text,expected", TEXTS, ids=[t[1].value + f"-{i}"
                                                       for i, t in enumerate(TEXTS)])
def test_daemon_texts(text: str, expected: FailureClass) -> None:
    assert classify(text) is expected


def test_observed_texts_from_the_test_bed() -> None:
    """Every message the test bed captured from the real dockerd lands in its class.
    (daemon_unavailable is decided by the exception type, not by text: see dockerapi.)"""
    from tests.testbed.observed_messages import KEPT_MESSAGES, MESSAGES

    assert MESSAGES, "the test bed recorded no messages"
    checked = 0
    for table in (MESSAGES, KEPT_MESSAGES):
        for cls_name, texts in table.items():
            cls = FailureClass(cls_name)
            if cls is FailureClass.DAEMON_UNAVAILABLE:
                continue
            for text in texts:
                # dockerd answers its own API with 500 for most registry failures
                assert classify(text) is cls, (cls_name, text)
                assert classify(text, 500) is cls, (cls_name, text)
                checked += 1
    assert checked >= 10
    assert len(KEPT_MESSAGES["dns"]) >= 2  # both forms of "no such host"


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
    assert exit_code(C.CORRUPT) == ExitCode.OSFILE == 72
    assert exit_code(C.CREDENTIALS) == ExitCode.CONFIG == 78
    # every class has its code, and corrupt's is its own
    assert [c for c in C if exit_code(c) == 72] == [C.CORRUPT]


def test_permanent_classes() -> None:
    assert {C.NOT_FOUND, C.DENIED, C.PLATFORM, C.DIGEST_MISMATCH, C.VERIFY_FAILED, C.TLS,
            C.DISK_FULL, C.CORRUPT, C.CREDENTIALS} == PERMANENT
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


def test_a_failure_is_a_pullunit_error_with_its_exit_code() -> None:
    """Outside the puller's loop (pin, rollback) cli.main maps it like any other error."""
    e = PullFailed.of(C.NOT_FOUND, "manifest unknown")
    assert isinstance(e, PullunitError) and isinstance(e, PullFailed)
    assert e.exit_code == 66 and e.failure.message == "manifest unknown"
    assert e.message == "not found: manifest unknown"
    assert PullFailed.of(C.DAEMON_UNAVAILABLE, "x").message == "daemon unavailable: x"


def test_engine_and_puller_errors_share_the_root() -> None:
    from pullunit.enginehttp import EngineUnavailable
    from pullunit.hints import DAEMON_FIX
    from pullunit.puller import GaveUp

    e = EngineUnavailable("[Errno 2] No such file or directory", "unix:///nonexistent")
    assert isinstance(e, PullunitError) and e.exit_code == 69
    assert e.failure.cls is C.DAEMON_UNAVAILABLE
    assert e.message.startswith("daemon unavailable: cannot talk to the Docker daemon at "
                                "unix:///nonexistent: ")
    assert e.hint == DAEMON_FIX
    g = GaveUp(Failure(C.DNS, "no such host"), 3)
    assert isinstance(g, PullunitError) and g.exit_code == 68 and g.attempts == 3


@pytest.mark.parametrize("ref", ["rt/secret:1.0", "team/token:2", "ops/auth:latest",
                                 "x/password:3"])
def test_a_failure_keeps_references_that_hold_credential_words(ref: str) -> None:
    """One redaction rule for the puller and doctor: it never eats an image's tag."""
    text = f"manifest for 127.0.0.1:5000/{ref} not found: manifest unknown"
    assert PullFailed.of(C.NOT_FOUND, text).failure.message == text


def test_a_failure_message_has_no_raw_terminal_control() -> None:
    """A registry's 404 message reaches us through dockerd unchanged, escapes included."""
    f = PullFailed.of(C.NOT_FOUND, "not found: \x1b]0;owned\x07\x1b[2J gone").failure
    assert f.message == "not found: \\x1b]0;owned\\x07\\x1b[2J gone"
    assert f.message.isprintable()


def test_the_fix_for_a_failing_credential_helper_names_it_and_its_config() -> None:
    """Issue 10: not "access denied, run docker login", but this host's helper."""
    from pathlib import Path

    from pullunit.hints import HintContext, fix_for
    from pullunit.reference import parse_reference

    ctx = HintContext(ref=parse_reference("registry.example.com/team/app:1"),
                      config_path=Path("/root/.docker/config.json"),
                      credential_helper="docker-credential-pass",
                      credential_source="credsStore in /root/.docker/config.json")
    fix = fix_for(C.CREDENTIALS, ctx)
    assert fix.startswith("this host's credential helper docker-credential-pass (credsStore "
                          "in /root/.docker/config.json) must answer without a prompt")
    assert "'echo registry.example.com | docker-credential-pass get'" in fix
    assert "docker login" not in fix and "rejected" not in fix
    hub = HintContext(ref=parse_reference("alpine:3"), credential_helper="docker-credential-x")
    assert "'echo https://index.docker.io/v1/ | docker-credential-x get'" in fix_for(
        C.CREDENTIALS, hub)


def test_the_fix_for_a_corrupt_layer_is_the_field_guides() -> None:
    from pullunit.hints import HintContext, fix_for
    from pullunit.reference import parse_reference

    ref = parse_reference("registry.example.com/team/app:1")
    fix = fix_for(C.CORRUPT, HintContext(ref=ref, data_root="/srv/docker"))
    for part in ("twice", "/srv/docker", "dmesg -T | tail -n 200", "smartctl -a",
                 "docker image rm -f registry.example.com/team/app:1",
                 "https://registry.example.com/v2/"):
        assert part in fix, part
