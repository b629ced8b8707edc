"""The pure parts of `pullunit doctor`: header and config parsing, matching rules, verdicts.

The network and Docker sides are tested against the real test bed in
tests/integration/test_doctor.py.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import ssl
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from pullunit import doctor
from pullunit.boundedhttp import Deadline, WatchdogTimeout, human_bytes, with_timeout
from pullunit.dockerconf import (
    DaemonJson,
    DaemonJsonError,
    is_insecure,
    parse_daemon_json,
    parse_env_file,
    parse_environment,
    proxy_env,
    proxy_for,
    redact_url,
    registry_config_from_entries,
    registry_config_from_info,
    registry_host,
    registry_port,
)
from pullunit.doctor import checklist
from pullunit.doctor import daemon as doctor_daemon
from pullunit.doctor import host as doctor_host
from pullunit.doctor.context import Context, Daemon
from pullunit.doctor.model import Check, Options, Status, Target
from pullunit.doctor.scrub import scrub, scrub_text
from pullunit.doctor.verdicts import (
    clock_skew,
    config_platform,
    disk_status,
    manifest_platforms,
    skew_status,
)
from pullunit.platform import Platform
from pullunit.platform import matches as platform_matches
from pullunit.reference import parse_reference
from pullunit.regclient import (
    Challenge,
    parse_www_authenticate,
    pick_challenge,
    registry_errors,
    token_url,
)
from pullunit.x509info import cert_info, describe_cert

from .conftest import cli_env, run_cli

# ---------------------------------------------------------------------------------------
# stable ids and JSON shape


def test_check_ids_are_stable() -> None:
    # Renaming or reordering these breaks scripts that read --json: only append.
    assert doctor.CHECKS == (
        "reference", "daemon", "local_image", "disk", "daemon_config", "proxy", "dns", "tcp",
        "tls", "registry_api", "credentials", "manifest", "platform", "clock",
        "ip_versions", "proxy_path", "blob", "daemon_log", "mirrors", "rate_limit",
    )
    assert doctor.CONFIG_CHECK == "config"


def test_check_json_shape() -> None:
    c = Check("tcp", Status.FAIL, "cannot connect", "start it")
    assert c.to_json() == {"check": "tcp", "status": "fail", "detail": "cannot connect",
                           "hint": "start it"}
    assert json.loads(json.dumps(c.to_json()))["status"] == "fail"


def test_failed() -> None:
    assert not doctor.failed([Check("a", Status.PASS, ""), Check("b", Status.WARN, ""),
                              Check("c", Status.SKIP, "")])
    assert doctor.failed([Check("a", Status.PASS, ""), Check("b", Status.FAIL, "")])


def test_options_from_env() -> None:
    o = Options.from_env({})
    assert o.certs_d == Path("/etc/docker/certs.d")
    assert o.daemon_json == Path("/etc/docker/daemon.json")
    assert o.timeout <= 3
    o = Options.from_env({"PULLUNIT_DOCKER_CERTS_D": "/tmp/c",
                                 "PULLUNIT_DOCKER_DAEMON_JSON": "/tmp/d.json"})
    assert o.certs_d == Path("/tmp/c") and o.daemon_json == Path("/tmp/d.json")


# ---------------------------------------------------------------------------------------
# WWW-Authenticate


@pytest.mark.parametrize(("header", "scheme", "params"), [
    ('Bearer realm="https://auth.docker.io/token",service="registry.docker.io"',
     "bearer", {"realm": "https://auth.docker.io/token", "service": "registry.docker.io"}),
    ('Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull"',
     "bearer", {"realm": "https://ghcr.io/token", "service": "ghcr.io",
                "scope": "repository:a/b:pull"}),
    ('Basic realm="test"', "basic", {"realm": "test"}),
    ('basic REALM="Registry Realm"', "basic", {"realm": "Registry Realm"}),
    ('Bearer realm="https://x/t", scope="repository:a:pull,push"',
     "bearer", {"realm": "https://x/t", "scope": "repository:a:pull,push"}),
    (r'Bearer realm="a \"quoted\" realm",service=svc', "bearer",
     {"realm": 'a "quoted" realm', "service": "svc"}),
    ("Bearer realm = \"r\" , service = \"s\"", "bearer", {"realm": "r", "service": "s"}),
    ("Negotiate", "negotiate", {}),
    ('Bearer error="insufficient_scope",realm="r"', "bearer",
     {"error": "insufficient_scope", "realm": "r"}),
], ids=["hub", "scope", "basic", "case", "comma-in-quotes", "escapes", "spaces",
        "no-params", "error"])
def test_parse_www_authenticate(header: str, scheme: str, params: dict[str, str]) -> None:
    c = parse_www_authenticate(header)
    assert c is not None
    assert c.scheme == scheme
    assert c.params == params


@pytest.mark.parametrize("header", ["", "   ", '="x"', "123"])
def test_parse_www_authenticate_garbage(header: str) -> None:
    assert parse_www_authenticate(header) is None


def test_pick_challenge_prefers_bearer() -> None:
    c = pick_challenge(['Basic realm="b"', 'Bearer realm="https://t"'])
    assert c is not None and c.scheme == "bearer"
    c = pick_challenge(['Basic realm="b"'])
    assert c is not None and c.scheme == "basic"
    assert pick_challenge([]) is None


def test_token_url() -> None:
    c = Challenge("bearer", {"realm": "https://auth.docker.io/token",
                             "service": "registry.docker.io"})
    assert token_url(c, "library/nginx") == ("https://auth.docker.io/token?service="
                                             "registry.docker.io&scope=repository%3A"
                                             "library%2Fnginx%3Apull")
    c = Challenge("bearer", {"realm": "http://127.0.0.1:5005/auth?x=1"})
    assert token_url(c, "team/app") == ("http://127.0.0.1:5005/auth?x=1&scope="
                                        "repository%3Ateam%2Fapp%3Apull")
    assert token_url(Challenge("bearer", {}), "a") is None


# ---------------------------------------------------------------------------------------
# daemon.json and the insecure-registry rules


def test_parse_daemon_json() -> None:
    dj = parse_daemon_json(json.dumps({
        "registry-mirrors": ["https://mirror.example.com"],
        "insecure-registries": ["10.0.0.0/8", "reg.lan:5000"],
        "proxies": {"https-proxy": "http://proxy:3128", "no-proxy": "localhost"},
        "dns": ["10.0.0.2"], "log-driver": "journald",
    }))
    assert dj.mirrors == ("https://mirror.example.com",)
    assert dj.insecure == ("10.0.0.0/8", "reg.lan:5000")
    assert dict(dj.proxies) == {"https-proxy": "http://proxy:3128", "no-proxy": "localhost"}
    assert dj.dns == ("10.0.0.2",)
    assert parse_daemon_json("") == DaemonJson()
    assert parse_daemon_json("{}") == DaemonJson()


@pytest.mark.parametrize(("text", "message"), [
    ('{"insecure-registries": ["a",]}', "not valid JSON"),
    ("[]", "expected a JSON object"),
    ('{"insecure-registries": "reg:5000"}', "'insecure-registries' must be a list"),
    ('{"registry-mirrors": [1]}', "'registry-mirrors' must be a list"),
    ('{"proxies": ["x"]}', "'proxies' must be an object"),
], ids=["trailing-comma", "array", "string-not-list", "number", "proxies-list"])
def test_parse_daemon_json_errors(text: str, message: str) -> None:
    with pytest.raises(DaemonJsonError, match=message) as info:
        parse_daemon_json(text, "/etc/docker/daemon.json")
    assert str(info.value).startswith("/etc/docker/daemon.json: ")


@pytest.mark.parametrize(("entries", "registry", "addresses", "insecure"), [
    ([], "127.0.0.1:5000", [], True),  # dockerd's built-in 127.0.0.0/8
    ([], "127.8.9.10:5000", [], True),
    ([], "localhost:5000", ["127.0.0.1", "::1"], True),
    ([], "[::1]:5000", ["::1"], False),  # only 127.0.0.0/8 is built in
    ([], "registry.example.com", ["93.184.216.34"], False),
    ([], "docker.io", ["127.0.0.1"], False),  # the official index is always secure
    (["10.0.0.0/8"], "reg.lan:5000", ["10.1.2.3"], True),
    (["10.0.0.0/8"], "reg.lan:5000", ["192.168.1.1"], False),
    (["10.0.0.0/8"], "10.200.0.1:443", [], True),  # a literal IP needs no lookup
    (["reg.lan:5000"], "reg.lan:5000", [], True),
    (["reg.lan:5000"], "reg.lan:5001", [], False),  # names match with their port
    (["reg.lan"], "reg.lan:5000", [], False),
    (["http://reg.lan:5000/"], "reg.lan:5000", [], True),  # scheme stripped, as dockerd
    (["fd00::/8"], "[fd00::1]:5000", [], True),
    (["fd00::/8"], "reg.lan", ["fd12::5"], True),
    (["10.231.0.0/16"], "reg.lan", ["fd12::5"], False),
], ids=["loopback", "loopback-any", "localhost", "ipv6-loopback", "public", "hub",
        "cidr-by-lookup", "cidr-miss", "cidr-literal", "name", "name-other-port",
        "name-without-port", "with-scheme", "ipv6-cidr", "ipv6-cidr-lookup", "family-mismatch"])
def test_is_insecure(entries: list[str], registry: str, addresses: list[str],
                     insecure: bool) -> None:
    assert is_insecure(registry, addresses, registry_config_from_entries(entries)) is insecure


def test_registry_config_from_info() -> None:
    info = {"RegistryConfig": {
        "InsecureRegistryCIDRs": ["127.0.0.0/8", "10.231.0.0/16", "garbage"],
        "IndexConfigs": {"docker.io": {"Name": "docker.io", "Secure": True, "Official": True},
                         "reg.lan:5000": {"Name": "reg.lan:5000", "Secure": False}},
        "Mirrors": ["https://mirror.example.com/"],
    }}
    rc = registry_config_from_info(info)
    assert rc is not None
    assert ipaddress.ip_network("10.231.0.0/16") in rc.cidrs
    assert len(rc.cidrs) == 2
    assert rc.secure_of("reg.lan:5000") is False and rc.secure_of("docker.io") is True
    assert rc.secure_of("other") is None
    assert rc.mirrors == ("https://mirror.example.com/",)
    assert is_insecure("10.231.0.2", [], rc)
    assert not is_insecure("10.232.0.2", [], rc)
    assert registry_config_from_info({}) is None


@pytest.mark.parametrize(("registry", "host", "port"), [
    ("127.0.0.1:5000", "127.0.0.1", 5000), ("reg.example.com", "reg.example.com", None),
    ("[::1]:5000", "::1", 5000), ("[fd00::1]", "fd00::1", None), ("localhost:80", "localhost", 80),
])
def test_registry_host_port(registry: str, host: str, port: int | None) -> None:
    assert registry_host(registry) == host
    assert registry_port(registry) == port


# ---------------------------------------------------------------------------------------
# proxies (Go's httpproxy rules, as dockerd applies them)

PROXY = "http://proxy.example.com:3128"


@pytest.mark.parametrize(("scheme", "host", "port", "env", "expected"), [
    ("https", "reg.example.com", 443, {"HTTPS_PROXY": PROXY}, PROXY),
    ("https", "reg.example.com", 443, {"https_proxy": PROXY}, PROXY),
    ("https", "reg.example.com", 443, {"HTTP_PROXY": PROXY}, None),  # wrong scheme
    ("http", "reg.example.com", 80, {"HTTP_PROXY": PROXY}, PROXY),
    ("https", "reg.example.com", 443, {}, None),
    ("http", "127.0.0.1", 5000, {"HTTP_PROXY": PROXY}, None),  # loopback: never proxied
    ("http", "localhost", 5000, {"HTTP_PROXY": PROXY}, None),
    ("http", "::1", 5000, {"HTTP_PROXY": PROXY}, None),
    ("https", "reg.example.com", 443, {"HTTPS_PROXY": PROXY, "NO_PROXY": "*"}, None),
    ("https", "reg.example.com", 443, {"HTTPS_PROXY": PROXY, "NO_PROXY": "example.com"}, None),
    ("https", "example.com", 443, {"HTTPS_PROXY": PROXY, "NO_PROXY": "example.com"}, None),
    ("https", "example.com", 443, {"HTTPS_PROXY": PROXY, "NO_PROXY": ".example.com"}, PROXY),
    ("https", "reg.example.com", 443, {"HTTPS_PROXY": PROXY, "NO_PROXY": ".example.com"},
     None),
    ("https", "reg.example.com", 443, {"HTTPS_PROXY": PROXY, "NO_PROXY": "*.example.com"},
     None),
    ("https", "notexample.com", 443, {"HTTPS_PROXY": PROXY, "NO_PROXY": "example.com"},
     PROXY),
    ("https", "reg.example.com", 5000,
     {"HTTPS_PROXY": PROXY, "NO_PROXY": "reg.example.com:5000"}, None),
    ("https", "reg.example.com", 443,
     {"HTTPS_PROXY": PROXY, "NO_PROXY": "reg.example.com:5000"}, PROXY),
    ("https", "10.1.2.3", 443, {"HTTPS_PROXY": PROXY, "NO_PROXY": "10.0.0.0/8"}, None),
    ("https", "10.1.2.3", 443, {"HTTPS_PROXY": PROXY, "NO_PROXY": "10.1.2.3"}, None),
    ("https", "11.1.2.3", 443, {"HTTPS_PROXY": PROXY, "NO_PROXY": "10.0.0.0/8"}, PROXY),
    ("https", "REG.example.com", 443,
     {"HTTPS_PROXY": PROXY, "NO_PROXY": " foo.org , Example.COM "}, None),
    ("https", "reg.example.com", 443, {"HTTPS_PROXY": PROXY, "no_proxy": "example.com"}, None),
    ("https", "fd00::5", 5000, {"HTTPS_PROXY": PROXY, "NO_PROXY": "[fd00::5]:5000"}, None),
    ("https", "fd00::5", 443, {"HTTPS_PROXY": PROXY, "NO_PROXY": "[fd00::5]:5000"}, PROXY),
], ids=["https", "lower", "http-only", "http", "none", "loopback", "localhost", "ipv6-lo",
        "star", "domain-sub", "domain-self", "dot-self", "dot-sub", "star-dot", "not-suffix",
        "port-match", "port-miss", "cidr", "ip", "cidr-miss", "spaces-case", "lower-no",
        "v6-port", "v6-port-miss"])
def test_proxy_for(scheme: str, host: str, port: int, env: dict[str, str],
                   expected: str | None) -> None:
    assert proxy_for(scheme, host, port, env) == expected


def test_parse_environment_and_files() -> None:
    env = parse_environment([b"HTTP_PROXY=http://p:3128", b"NO_PROXY=a,b", "X=1=2", b"junk"])
    assert env == {"HTTP_PROXY": "http://p:3128", "NO_PROXY": "a,b", "X": "1=2"}
    text = '# proxies\nHTTPS_PROXY="http://p:3128"\n\n; other\nno_proxy=localhost\nbad line\n'
    assert parse_env_file(text) == {"HTTPS_PROXY": "http://p:3128", "no_proxy": "localhost"}
    assert proxy_env({"https_proxy": "x", "HTTP_PROXY": "y", "PATH": "/bin"}) == {
        "HTTP_PROXY": "y", "HTTPS_PROXY": "x"}


# ---------------------------------------------------------------------------------------
# platforms

INDEX = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [
        {"digest": "sha256:a", "platform": {"os": "linux", "architecture": "amd64"}},
        {"digest": "sha256:b", "platform": {"os": "linux", "architecture": "arm64",
                                            "variant": "v8"}},
        {"digest": "sha256:c", "platform": {"os": "linux", "architecture": "arm",
                                            "variant": "v6"}},
        {"digest": "sha256:d", "platform": {"os": "unknown", "architecture": "unknown"}},
    ],
}


def test_manifest_platforms() -> None:
    assert [str(p) for p in manifest_platforms(INDEX) or []] == [
        "linux/amd64", "linux/arm64/v8", "linux/arm/v6"]
    assert manifest_platforms({"schemaVersion": 2, "config": {"digest": "sha256:x"}}) is None
    assert manifest_platforms({"manifests": [{"digest": "x"}, "junk"]}) == []


@pytest.mark.parametrize(("want", "have", "ok"), [
    ("linux/amd64", Platform("linux", "amd64"), True),
    ("linux/amd64", Platform("linux", "x86_64"), True),
    ("linux/amd64", Platform("linux", "arm64"), False),
    ("linux/amd64", Platform("windows", "amd64"), False),
    ("linux/arm64", Platform("linux", "arm64", "v8"), True),
    ("linux/arm64/v8", Platform("linux", "arm64"), True),
    ("linux/arm64", Platform("linux", "aarch64"), True),
    ("linux/arm", Platform("linux", "arm", "v6"), True),  # no variant asked: any
    ("linux/arm/v7", Platform("linux", "arm"), True),  # v7 is arm's default
    ("linux/arm/v7", Platform("linux", "arm", "v6"), False),
    ("linux/amd64/v1", Platform("linux", "amd64"), True),
    ("Linux/amd64", Platform("linux", "amd64"), True),
], ids=["same", "uname", "arch", "os", "arm64-v8", "want-v8", "aarch64", "arm-any",
        "arm-v7-default", "arm-v6", "amd64-v1", "os-case"])
def test_platform_matches(want: str, have: Platform, ok: bool) -> None:
    assert platform_matches(want, have) is ok


def test_platform_matches_index_entries() -> None:
    offered = manifest_platforms(INDEX) or []
    assert any(platform_matches("linux/arm64", p) for p in offered)
    assert not any(platform_matches("linux/s390x", p) for p in offered)
    assert not any(platform_matches("linux/arm/v7", p) for p in offered)


def test_config_platform() -> None:
    assert config_platform({"architecture": "arm64", "os": "linux", "variant": "v8"}) == \
        Platform("linux", "arm64", "v8")
    assert config_platform({"architecture": "amd64"}) == Platform("linux", "amd64")


# ---------------------------------------------------------------------------------------
# clock skew


def test_clock_skew() -> None:
    now = time.time()
    server = format_datetime(datetime.fromtimestamp(now + 120, UTC), usegmt=True)
    skew = clock_skew(server, now - 0.2, now + 0.2)
    assert skew is not None and 119 <= skew <= 121
    behind = format_datetime(datetime.fromtimestamp(now - 3600, UTC), usegmt=True)
    skew = clock_skew(behind, now, now)
    assert skew is not None and -3601 <= skew <= -3599
    assert clock_skew("", now, now) is None
    assert clock_skew("not a date", now, now) is None


def test_clock_skew_uses_middle_of_request() -> None:
    t = datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    # Date is truncated to the second: half a second is added back
    assert clock_skew("Tue, 01 Jan 2030 12:00:00 GMT", t - 2, t + 2) == 0.5


@pytest.mark.parametrize(("skew", "status"), [
    (0, Status.PASS), (-1.5, Status.PASS), (29.9, Status.PASS), (30, Status.WARN),
    (-45, Status.WARN), (299, Status.WARN), (300, Status.FAIL), (-86400, Status.FAIL),
])
def test_skew_status(skew: float, status: Status) -> None:
    assert skew_status(skew) is status


# ---------------------------------------------------------------------------------------
# disk

GiB = 2**30


@pytest.mark.parametrize(("free", "total", "ifree", "itotal", "status"), [
    (50 * GiB, 100 * GiB, 900_000, 1_000_000, Status.PASS),
    (9 * GiB, 100 * GiB, 900_000, 1_000_000, Status.WARN),  # under 10 %
    (GiB - 1, 2 * GiB, 900_000, 1_000_000, Status.FAIL),  # under 1 GiB
    (50 * GiB, 100 * GiB, 40_000, 1_000_000, Status.WARN),  # under 5 % inodes
    (50 * GiB, 100 * GiB, 9_999, 1_000_000, Status.FAIL),  # under 1 % inodes
    (50 * GiB, 100 * GiB, 0, 0, Status.PASS),  # no inode limit (btrfs)
    (2 * GiB, 3 * GiB, 10, 10, Status.PASS),
], ids=["fine", "low-space", "full", "low-inodes", "no-inodes", "btrfs", "small-disk"])
def test_disk_status(free: int, total: int, ifree: int, itotal: int, status: Status) -> None:
    assert disk_status(free, total, ifree, itotal) is status


def test_human_bytes() -> None:
    assert human_bytes(512) == "512 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(3 * GiB) == "3.0 GiB"


# ---------------------------------------------------------------------------------------
# registry error bodies


def test_registry_errors() -> None:
    body = json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"},
                                  {"code": "NAME_UNKNOWN"}]}).encode()
    assert registry_errors(body) == ["MANIFEST_UNKNOWN", "NAME_UNKNOWN"]
    assert registry_errors(b"<html>429</html>") == []
    assert registry_errors(b'{"errors": "x"}') == []
    assert registry_errors(b"[]") == []


# ---------------------------------------------------------------------------------------
# certificates (a leaf issued by a test CA, valid 2026-11-26 .. 2126-11-02: the notAfter
# is a GeneralizedTime, the notBefore a UTCTime)

LEAF = """-----BEGIN CERTIFICATE-----
MIIBvDCCAWOgAwIBAgIUX2eO2Wq1imnLahmB8DR+mBwcJJkwCgYIKoZIzj0EAwIw
GzEZMBcGA1UEAwwQcHVsbHVuaXQgdGVzdCBDQTAgFw0yNjExMjYyMTExMDRaGA8y
MTI2MTEwMjIxMTEwNFowKzERMA8GA1UECgwIcHVsbHVuaXQxFjAUBgNVBAMMDXJl
Z2lzdHJ5LnRlc3QwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAARP8ewD02A8lMyV
Vq4Hu7YY8m77TLebhnV5k4yDPkCxofmamkyCtFj7p9Mgi8sb445JRW3DeqkSP6d0
8Iax0/JZo3MwcTAvBgNVHREEKDAmgg1yZWdpc3RyeS50ZXN0gg8qLnJlZ2lzdHJ5
LnRlc3SHBArnAAIwHQYDVR0OBBYEFGl3W/lvFu0D3hO/pALxKcX+MwKrMB8GA1Ud
IwQYMBaAFEBT7ZQdC6YkrOq9Vho3L64glSaEMAoGCCqGSM49BAMCA0cAMEQCIElI
nQkGY7mg7NmKNfpnIBkweSozLIZja/66oIQjbKrmAiBB34p6lIQNM304mQBGg65V
rgHCwYpHE8dALRt8B86slg==
-----END CERTIFICATE-----
"""


def test_cert_info() -> None:
    info = cert_info(ssl.PEM_cert_to_DER_cert(LEAF))
    assert info.subject == "registry.test"
    assert info.issuer == "pullunit test CA"
    assert not info.self_signed
    assert info.not_before == datetime(2026, 11, 26, 21, 11, 4, tzinfo=UTC)
    assert info.not_after == datetime(2126, 11, 2, 21, 11, 4, tzinfo=UTC)
    assert info.names == ("registry.test", "*.registry.test", "10.231.0.2")


def test_describe_cert() -> None:
    info = cert_info(ssl.PEM_cert_to_DER_cert(LEAF))
    now = datetime(2126, 10, 23, 21, 11, 4, tzinfo=UTC)
    text = describe_cert(info, now)
    assert text.startswith("certificate for registry.test, *.registry.test, 10.231.0.2")
    assert "issued by pullunit test CA" in text
    assert "expires 2126-11-02 (10 days)" in text
    assert "expired 2126-11-02" in describe_cert(info, now + timedelta(days=30))


def test_cert_info_rejects_garbage() -> None:
    with pytest.raises((ValueError, IndexError)):
        cert_info(b"\x30\x82\xff\xff")


# ---------------------------------------------------------------------------------------
# watchdog


def test_with_timeout() -> None:
    assert with_timeout(lambda: 42, 1.0, "answer") == 42
    empty: dict[str, int] = {}
    with pytest.raises(KeyError):
        with_timeout(lambda: empty["x"], 1.0, "lookup")
    started = time.monotonic()
    with pytest.raises(WatchdogTimeout, match="sleep did not finish within 0 s"):
        with_timeout(lambda: time.sleep(5), 0.2, "sleep")
    assert time.monotonic() - started < 1.0


# ---------------------------------------------------------------------------------------
# the command's target resolution (no Docker, no network: these stop before any check)


def test_unknown_bare_name_is_a_config_error(config_dir: Path) -> None:
    proc = run_cli("doctor", "nosuchapp", "--config-dir", config_dir)
    assert proc.returncode == 78, proc.stderr
    assert "'nosuchapp' is neither an app" in proc.stderr
    assert str(config_dir / "nosuchapp.toml") in proc.stderr
    assert proc.stdout == ""


def test_broken_named_app_is_a_config_error(config_dir: Path) -> None:
    (config_dir / "web.toml").write_text('[image]\nref = "nginx:1.25"\nbogus = 1\n')
    proc = run_cli("doctor", "web", "--config-dir", config_dir, env=cli_env())
    assert proc.returncode == 78, proc.stderr
    assert "image.bogus" in proc.stderr


def test_basic_auth_header_is_never_shown() -> None:
    # The scrubber gets the encoded form too (it is what a header would carry).
    secret = base64.b64encode(b"user:s3cret").decode()
    c = scrub(Check("manifest", Status.FAIL, f"sent Basic {secret} and s3cret",
                    "password=s3cret"), ["s3cret", secret])
    assert "s3cret" not in c.detail + c.hint and secret not in c.detail


# ---------------------------------------------------------------------------------------
# proxies are shown without their credentials (issue 14, defect 3): parsed, not matched

PROXY_SECRET = "Zq9-s3cr3t"
# (the value as configured, what is shown, the part that must never be shown)
PROXY_FORMS = [
    (f"http://bob:{PROXY_SECRET}@proxy.lan:3128", "http://***@proxy.lan:3128", PROXY_SECRET),
    (f"http://bob:pa/ss{PROXY_SECRET}@proxy.lan:3128", "http://***@proxy.lan:3128",
     f"ss{PROXY_SECRET}"),
    (f"http://bob:pa ss{PROXY_SECRET}@proxy.lan:3128", "http://***@proxy.lan:3128",
     f"ss{PROXY_SECRET}"),
    (f"socks5://bob:{PROXY_SECRET}@proxy.lan:1080", "socks5://***@proxy.lan:1080",
     PROXY_SECRET),
    (f"bob:{PROXY_SECRET}@proxy.lan:3128", "***@proxy.lan:3128", PROXY_SECRET),
    (f"http://{PROXY_SECRET}@proxy.lan:3128", "http://***@proxy.lan:3128", PROXY_SECRET),
    (f"http://bob:p@{PROXY_SECRET}@proxy.lan:3128", "http://***@proxy.lan:3128",
     f"@{PROXY_SECRET}"),
    (f"https://bob:{PROXY_SECRET}@proxy.lan", "https://***@proxy.lan", PROXY_SECRET),
    (f"HTTP://bob:{PROXY_SECRET}@proxy.lan:3128/", "HTTP://***@proxy.lan:3128/", PROXY_SECRET),
    (f"http://bob:{PROXY_SECRET}%40x@proxy.lan", "http://***@proxy.lan", PROXY_SECRET),
    (f"http://bob:{PROXY_SECRET}:x@[fd00::1]:3128", "http://***@[fd00::1]:3128",
     PROXY_SECRET),
    ("http://proxy.lan:3128", "http://proxy.lan:3128", ""),
    ("proxy.lan:3128", "proxy.lan:3128", ""),
    ("localhost,.lan,10.0.0.0/8", "localhost,.lan,10.0.0.0/8", ""),
]
PROXY_IDS = ["user-password", "slash", "space", "socks5", "no-scheme", "token-only",
             "at-in-password", "https", "upper-scheme", "percent-encoded", "ipv6-host",
             "no-credentials", "no-scheme-no-credentials", "no-proxy-list"]


@pytest.mark.parametrize(("value", "shown", "secret"), PROXY_FORMS, ids=PROXY_IDS)
def test_redact_url(value: str, shown: str, secret: str) -> None:
    assert redact_url(value) == shown
    if secret:
        assert secret not in redact_url(value) and "bob" not in redact_url(value)
    assert redact_url(shown) == shown  # idempotent


def _context(tmp_path: Path, ref: str | None = None, **options: Any) -> Context:
    ctx = Context(None if ref is None else Target(ref),
                  Options(daemon_json=tmp_path / "daemon.json", **options))
    if ref is not None:
        ctx.ref = parse_reference(ref)
    ctx.deadline = Deadline.after(3)
    return ctx


def _shown(check: Check) -> str:
    return check.detail + check.hint + json.dumps(check.to_json())


@pytest.mark.parametrize(("value", "shown", "secret"),
                         [f for f in PROXY_FORMS if f[2]], ids=PROXY_IDS[:11])
def test_daemon_config_never_shows_proxy_credentials(tmp_path: Path, value: str, shown: str,
                                                     secret: str) -> None:
    (tmp_path / "daemon.json").write_text(json.dumps(
        {"proxies": {"http-proxy": value, "https-proxy": value, "no-proxy": "localhost"}}))
    ctx = _context(tmp_path, "registry.example.com/team/app:1")
    c = doctor_daemon.daemon_config(ctx)
    assert secret not in _shown(c) and "bob" not in _shown(c)
    assert shown in c.detail
    # the running daemon's proxies (its process environment), shown the same way
    ctx.daemon = Daemon(api=None, version={"Version": "24.0.7"}, platform="linux/amd64",
                        info={"HttpProxy": value, "HttpsProxy": value, "NoProxy": "x"})
    c = doctor_daemon.daemon_config(ctx)
    assert secret not in _shown(c) and "bob" not in _shown(c)
    assert f"the running daemon uses proxies {{'HTTP_PROXY': '{shown}'" in c.detail


@pytest.mark.parametrize(("value", "shown", "secret"),
                         [f for f in PROXY_FORMS if f[2]], ids=PROXY_IDS[:11])
def test_docker_service_proxy_never_shows_credentials(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, shown: str,
        secret: str) -> None:
    """docker.service's Environment=/EnvironmentFile= (read over D-Bus: faked here; the
    e2e tier reads a real one) and the running daemon's proxies."""
    from pullunit import systemd

    monkeypatch.setattr(systemd, "booted", lambda: True)
    env = {"HTTPS_PROXY": value, "http_proxy": value, "NO_PROXY": "localhost"}
    monkeypatch.setattr(doctor_host, "_docker_service_env",
                        lambda: (env, ["/etc/default/docker"]))
    ctx = _context(tmp_path, "registry.example.com/team/app:1")
    ctx.daemon = Daemon(api=None, version={}, platform="linux/amd64",
                        info={"HttpsProxy": "http://xxxxx:xxxxx@elsewhere:3128"})
    c = doctor_host.proxy(ctx)
    assert c.status is Status.WARN
    assert secret not in _shown(c) and "bob" not in _shown(c)
    assert f"HTTPS_PROXY={shown}" in c.detail
    assert f"through {shown}" in c.detail and f"curl -x {shown} " in c.hint
    assert "differ" in c.detail


def test_docker_service_proxy_same_as_daemon_when_only_credentials_are_masked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # dockerd reports its proxies with the credentials masked (xxxxx:xxxxx@): not a drift
    from pullunit import systemd

    monkeypatch.setattr(systemd, "booted", lambda: True)
    monkeypatch.setattr(doctor_host, "_docker_service_env", lambda: (
        {"HTTPS_PROXY": f"http://bob:{PROXY_SECRET}@proxy.lan:3128"}, []))
    ctx = _context(tmp_path)
    ctx.daemon = Daemon(api=None, version={}, platform="linux/amd64",
                        info={"HttpsProxy": "http://xxxxx:xxxxx@proxy.lan:3128"})
    c = doctor_host.proxy(ctx)
    assert c.status is Status.PASS, c
    assert PROXY_SECRET not in _shown(c)


# ---------------------------------------------------------------------------------------
# scrubbing removes credentials, never parts of an image reference (defect 15)


@pytest.mark.parametrize("ref", [
    "127.0.0.1:5000/rt/secret:1.0", "registry.example.com/team/token:v2",
    "auth:latest", "password:1", "team/passwd:2", "ghcr.io/o/auth-service:secret",
    "reg.lan/token/secret:password", "reg.lan/a/secret@sha256:" + "a" * 64,
    "reg.lan/secret_token:auth",
])
def test_scrub_keeps_image_references(ref: str) -> None:
    for text in (ref, f"{ref}: repository x, tag y", f"GET http://reg/v2/{ref}/manifests/x",
                 f"pull access denied for {ref}: token: {ref}"):
        assert scrub_text(text, ["s3cret-value"]) == text


@pytest.mark.parametrize(("text", "secret"), [
    ("Authorization: Bearer eyJhbGciOi.abc.def", "eyJhbGciOi.abc.def"),
    ("authorization: Basic YWxpY2U6czNjcmV0", "YWxpY2U6czNjcmV0"),
    ("Proxy-Authorization: Basic YWxpY2U6czNjcmV0", "YWxpY2U6czNjcmV0"),
    ('{"username": "alice", "password": "hunter2x"}', "hunter2x"),
    ('{"auth": "YWxpY2U6aHVudGVyMng="}', "YWxpY2U6aHVudGVyMng="),
    ('{"identitytoken": "idt-123456"}', "idt-123456"),
    ("POST grant_type=refresh_token&refresh_token=rt-98765&client_id=x", "rt-98765"),
    ("GET /token?access_token=at-5555 failed", "at-5555"),
    ("password=hunter2x", "hunter2x"),
    ("connect via http://alice:hunter2x@proxy.lan:3128 failed", "hunter2x"),
    ("connect via https://alice:hu/nter@proxy.lan failed", "hu/nter"),
    ("connect via socks5://alice:p@ss@proxy.lan failed", "p@ss"),
    ("tcp://tok3n-only@docker.lan:2376 refused", "tok3n-only"),
])
def test_scrub_removes_credentials(text: str, secret: str) -> None:
    assert secret not in scrub_text(text)
    assert "***" in scrub_text(text)


def test_scrub_known_secrets_longest_first() -> None:
    assert scrub_text("a s3cret and s3cret-longer", ["s3cret", "s3cret-longer", ""]) == \
        "a *** and ***"


# ---------------------------------------------------------------------------------------
# the checklist table and its loop


def test_checklist_is_the_one_order() -> None:
    ids = [s.id for s in checklist.CHECKLIST]
    assert tuple(ids) == doctor.CHECKS
    for i, step in enumerate(checklist.CHECKLIST):
        assert all(n in ids[:i] for n in step.needs), step  # only earlier checks
    host_only = [s.id for s in checklist.CHECKLIST if not s.image]
    assert host_only == ["daemon", "disk", "daemon_config", "proxy"]


def test_checklist_loop_skips_with_the_first_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    def step(check_id: str, status: Status, **kw: Any) -> checklist.Step:
        return checklist.Step(check_id, lambda ctx: Check(check_id, status, "ran", "fix"), **kw)

    def broken(ctx: Context) -> Check:
        raise KeyError("bug")

    def set_ref(ctx: Context) -> Check:
        ctx.ref = parse_reference("reg.lan:5000/team/app:1")
        ctx.secrets.append("s3cret")
        return Check("ref", Status.PASS, "has s3cret")

    monkeypatch.setattr(checklist, "CHECKLIST", (
        checklist.Step("ref", set_ref),
        step("a", Status.FAIL, blocks="no TCP connection to {registry}"),
        step("b", Status.PASS, needs=("a",)),
        step("c", Status.PASS, needs=("b",)),
        step("d", Status.SKIP, image=False),  # skipped by itself: blocks nothing
        step("e", Status.PASS, needs=("d",)),
        checklist.Step("f", broken, needs=("d",)),
        step("g", Status.PASS, needs=("f",)),
        step("h", Status.PASS, needs=("e", "c")),
    ))
    got = [(c.check, c.status, c.detail) for c in checklist.diagnose(
        Target("reg.lan:5000/team/app:1"), Options(timeout=1))]
    assert got == [
        ("ref", Status.PASS, "has ***"),
        ("a", Status.FAIL, "ran"),
        ("b", Status.SKIP, "skipped: no TCP connection to reg.lan:5000"),
        ("c", Status.SKIP, "skipped: no TCP connection to reg.lan:5000"),
        ("d", Status.SKIP, "ran"),
        ("e", Status.PASS, "ran"),
        ("f", Status.FAIL, "internal error: KeyError: 'bug'"),
        ("g", Status.SKIP, "skipped: f failed"),
        ("h", Status.SKIP, "skipped: no TCP connection to reg.lan:5000"),
    ]
    host_only = [c.check for c in checklist.diagnose(None, Options(timeout=1))]
    assert host_only == ["d"]  # only the step that needs no image


def test_doctor_errors_are_pullunit_errors() -> None:
    """One error root: cli.main turns these into their exit code like any other."""
    from pullunit.errors import ExitCode, PullunitError

    e = WatchdogTimeout("lookup of x did not finish within 3 s")
    assert isinstance(e, PullunitError) and isinstance(e, TimeoutError)
    assert e.exit_code is ExitCode.UNAVAILABLE and str(e) == e.message
    with pytest.raises(PullunitError, match="not valid JSON"):
        parse_daemon_json("{", "daemon.json")
    assert issubclass(DaemonJsonError, PullunitError)
