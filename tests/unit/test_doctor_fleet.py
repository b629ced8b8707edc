"""doctor's parts for intermittent failures and drift between hosts: the --repeat tally,
the host fingerprint and its comparison (pure), and the path checks' edges against real
sockets on loopback: a CONNECT proxy, a transfer that stalls, IPv4 and IPv6 listeners,
and dockerd lines in a real journal file read by the real journalctl."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from pullunit import state, stats
from pullunit.boundedhttp import Deadline, Endpoint, ProxyError, proxy_from_url, request
from pullunit.doctor import Check, Options, Status, Target, Verdict
from pullunit.doctor.context import Context
from pullunit.doctor.fingerprint import (
    _daemon_json,
    _resolv_conf,
    compare,
    default_route_mtu,
    fingerprint_of,
)
from pullunit.doctor.journal import daemon_log
from pullunit.doctor.network import ip_versions
from pullunit.doctor.verdicts import tally
from pullunit.reference import parse_reference
from pullunit.regclient import Session
from tests.testbed.connectproxy import ConnectProxy

# -- the --repeat tally -----------------------------------------------------------------


def c(status: Status, detail: str = "x") -> Check:
    return Check("registry_api", status, detail)


@pytest.mark.parametrize(("results", "verdict", "ran", "failed"), [
    ([c(Status.PASS)] * 4, Verdict.OK, 4, 0),
    ([c(Status.PASS), c(Status.FAIL, "429"), c(Status.PASS), c(Status.FAIL, "429")],
     Verdict.FLAPPING, 4, 2),
    ([c(Status.FAIL, "refused")] * 3, Verdict.STEADY, 3, 3),
    # rounds skipped for a failed prerequisite count neither way
    ([c(Status.SKIP, "skipped: no TCP"), c(Status.FAIL), c(Status.SKIP, "skipped: x")],
     Verdict.STEADY, 1, 1),
    ([c(Status.SKIP, "skipped: no TCP")] * 2, Verdict.SKIPPED, 0, 0),
    # a warning is not a failure; a check that skips by itself did run
    ([c(Status.WARN), c(Status.SKIP, "plain HTTP on loopback")], Verdict.OK, 2, 0),
])
def test_tally(results: list[Check], verdict: Verdict, ran: int, failed: int) -> None:
    t = tally("registry_api", results)
    assert (t.verdict, t.ran, t.failed, t.rounds) == (verdict, ran, failed, len(results))


def test_tally_groups_failure_details_most_frequent_first() -> None:
    t = tally("dns", [c(Status.FAIL, "b"), c(Status.FAIL, "a"), c(Status.FAIL, "b"),
                      c(Status.PASS)])
    assert t.failures == (("b", 2), ("a", 1))
    assert t.to_json() == {"check": "dns", "rounds": 4, "ran": 4, "failed": 3,
                           "verdict": "flapping", "failures": [{"detail": "b", "count": 2},
                                                               {"detail": "a", "count": 1}]}


# -- fingerprints -------------------------------------------------------------------------


FP = {"pullunit": "0.1.0", "hostname": "a", "docker": {"version": "20.10.24"},
      "daemon_json": {"registry-mirrors": ["http://m1"]},
      "proxies": {"source": "daemon", "HTTPS_PROXY": "http://***@p:3128"},
      "resolv_conf": {"nameservers": ["10.0.0.2"], "search": [], "options": []},
      "ca_bundle": {"path": "/etc/ssl/certs/ca-certificates.crt", "sha256": "sha256:1"},
      "certs_d": {}, "mtu": {"ipv4": {"interface": "eth0", "mtu": 1500}, "ipv6": None}}


def test_compare_ranks_the_likely_causes_first() -> None:
    b = json.loads(json.dumps(FP))
    b.update(hostname="b", pullunit="0.2.0")
    b["docker"]["version"] = "24.0.5"
    b["mtu"]["ipv4"]["mtu"] = 1400
    b["resolv_conf"]["nameservers"] = ["10.0.0.3"]
    b["daemon_json"] = {}
    b["proxies"] = {"source": "daemon"}
    b["certs_d"] = {"reg:5000/ca.crt": "sha256:9"}
    diffs = compare([FP, b])
    assert [d.key for d in diffs] == [
        "proxies.HTTPS_PROXY", "daemon_json.registry-mirrors", "certs_d.reg:5000/ca.crt",
        "resolv_conf.nameservers", "mtu.ipv4.mtu", "docker.version", "pullunit"]
    assert diffs[0].values == ("http://***@p:3128", None)
    assert "6.2" in diffs[0].why and "5.3" in diffs[4].why
    assert compare([FP, {**FP, "hostname": "other"}]) == []  # host names always differ


def test_compare_three_hosts_names_every_value() -> None:
    b = {**FP, "pullunit": "0.2.0"}
    diffs = compare([FP, FP, b])
    assert [(d.key, d.values) for d in diffs] == [("pullunit", ("0.1.0", "0.1.0", "0.2.0"))]


def test_fingerprint_of_doctor_output_or_a_bare_fingerprint() -> None:
    assert fingerprint_of([{"app": None, "host": FP}]) == FP
    assert fingerprint_of(FP) == FP
    assert fingerprint_of([{"app": "x"}]) is None
    assert fingerprint_of({"x": 1}) is None


def test_default_route_mtu(tmp_path: Path) -> None:
    proc, sysnet = tmp_path / "proc", tmp_path / "sys"
    proc.mkdir()
    (proc / "route").write_text(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth1\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
        "eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n")
    (proc / "ipv6_route").write_text(
        "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
        "00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n"
        "00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
        "fe800000000000000000000000000001 00000400 00000001 00000000 00000003     wg0\n")
    for iface, mtu in (("eth0", "1450\n"), ("wg0", "1420\n")):
        (sysnet / iface).mkdir(parents=True)
        (sysnet / iface / "mtu").write_text(mtu)
    assert default_route_mtu(proc, sysnet) == {"ipv4": {"interface": "eth0", "mtu": 1450},
                                               "ipv6": {"interface": "wg0", "mtu": 1420}}
    assert default_route_mtu(tmp_path / "none", sysnet) == {"ipv4": None, "ipv6": None}


def test_resolv_conf_and_daemon_json(tmp_path: Path) -> None:
    rc = tmp_path / "resolv.conf"
    rc.write_text("# c\nnameserver 10.0.0.2\nnameserver 10.0.0.3 # x\nsearch a.lan b.lan\n"
                  "options edns0 timeout:1\n")
    assert _resolv_conf(rc) == {"nameservers": ["10.0.0.2", "10.0.0.3"],
                                "search": ["a.lan", "b.lan"], "options": ["edns0", "timeout:1"]}
    dj = tmp_path / "daemon.json"
    dj.write_text(json.dumps({"log-driver": "journald", "registry-mirrors": ["http://m"],
                              "proxies": {"https-proxy": "http://u:hunter2@p:3128"}}))
    got = _daemon_json(dj)
    assert got == {"registry-mirrors": ["http://m"],
                   "proxies": {"https-proxy": "http://***@p:3128"}}
    assert "hunter2" not in json.dumps(got)
    dj.write_text("{")
    assert str(_daemon_json(dj)).startswith("invalid JSON (sha256:")
    assert _daemon_json(tmp_path / "none.json") == {}


# -- proxies ------------------------------------------------------------------------------


def test_proxy_from_url() -> None:
    p = proxy_from_url("http://ops:p%40ss@proxy.lan:3128")
    assert (p.host, p.port, p.shown) == ("proxy.lan", 3128, "http://***@proxy.lan:3128")
    assert p.authorization == "Basic b3BzOnBAc3M="  # ops:p@ss
    bare = proxy_from_url("proxy.lan:8080")
    assert (bare.host, bare.port, bare.authorization) == ("proxy.lan", 8080, None)
    assert proxy_from_url("http://proxy.lan").port == 80
    with pytest.raises(ValueError, match="socks5"):
        proxy_from_url("socks5://proxy.lan:1080")


class _V2(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/stall"):
            self.send_response(200)
            self.send_header("Content-Length", str(4 * 2**20))
            self.end_headers()
            self.wfile.write(b"x" * 65536)
            self.wfile.flush()
            time.sleep(3)  # the client gives up first
            return
        body = b"{}"
        self.send_response(401 if self.path == "/v2/" else 404)
        self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
        self.send_header("Host-Seen", self.headers.get("Host", ""))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextlib.contextmanager
def v2_server(tls: ssl.SSLContext | None = None) -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _V2)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _server_tls(tmp_path: Path) -> ssl.SSLContext:
    key, crt = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(key), "-out", str(crt), "-days", "1", "-subj", "/CN=registry.test",
                    "-addext", "subjectAltName=DNS:registry.test,IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(crt, key)
    return ctx


def _unverified() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    return ctx


def test_https_goes_through_a_connect_tunnel(tmp_path: Path) -> None:
    with v2_server(_server_tls(tmp_path)) as port, \
            ConnectProxy(credentials=("ops", "pw")) as proxy:
        p = proxy_from_url(f"http://ops:pw@127.0.0.1:{proxy.port}")
        ep = Endpoint("https", "127.0.0.1", port, (), 0, _unverified(), p)
        r = request(ep, "GET", "/v2/", {}, Deadline.after(5))
        assert r.status == 401 and r.headers["Docker-Distribution-Api-Version"]
        assert proxy.log.requests == [("CONNECT", f"127.0.0.1:{port}")]
        # without credentials: 407, said as such
        bare = Endpoint("https", "127.0.0.1", port, (), 0, _unverified(),
                        proxy_from_url(f"http://127.0.0.1:{proxy.port}"))
        with pytest.raises(ProxyError) as e:
            request(bare, "GET", "/v2/", {}, Deadline.after(5))
        assert e.value.status == 407 and "407" in str(e.value)


def test_http_goes_to_the_proxy_as_an_absolute_url() -> None:
    with v2_server() as port, ConnectProxy() as proxy:
        ep = Endpoint("http", "127.0.0.1", port, (), 0, None,
                      proxy_from_url(f"127.0.0.1:{proxy.port}"))
        r = request(ep, "GET", "/v2/", {}, Deadline.after(5))
        assert r.status == 401
        assert r.headers["Host-Seen"] == f"127.0.0.1:{port}"  # the registry, not the proxy
        assert proxy.log.requests == [("GET", f"http://127.0.0.1:{port}/v2/")]


def test_a_proxy_that_refuses_is_a_proxy_error() -> None:
    with ConnectProxy(deny=True) as proxy:
        ep = Endpoint("https", "127.0.0.1", 9, (), 0, _unverified(),
                      proxy_from_url(f"127.0.0.1:{proxy.port}"))
        with pytest.raises(ProxyError) as e:
            request(ep, "GET", "/v2/", {}, Deadline.after(5))
        assert e.value.status == 403


def test_a_download_that_stops_is_stalled_with_what_it_got() -> None:
    with v2_server() as port:
        session = Session(Endpoint("http", "127.0.0.1", port, ("127.0.0.1", port),
                                   socket.AF_INET))
        t = time.monotonic()
        d = session.download(f"http://127.0.0.1:{port}/stall", {}, Deadline.after(20),
                             2**20, stall=0.5)
        assert time.monotonic() - t < 2.5
        assert (d.status, d.received, d.stalled) == (200, 65536, True)
        d = session.download(f"http://127.0.0.1:{port}/nope", {}, Deadline.after(5), 10, 1)
        assert d.status == 404 and not d.stalled


# -- IPv4 and IPv6 separately ----------------------------------------------------------


def _ctx(addresses: list[tuple[Any, ...]], registry: str) -> Context:
    ctx = Context(Target(registry + "/team/app:1"), Options(timeout=2))
    ctx.ref = parse_reference(registry + "/team/app:1")
    ctx.addresses = addresses
    ctx.deadline = Deadline.after(2)
    return ctx


def test_ip_versions_names_the_broken_family() -> None:
    if not socket.has_ipv6:
        pytest.fail("this test needs IPv6 on loopback (::1)", pytrace=False)
    v4 = socket.socket(socket.AF_INET)
    v4.bind(("127.0.0.1", 0))
    v4.listen()
    port = v4.getsockname()[1]
    addresses = [(socket.AF_INET, ("127.0.0.1", port)), (socket.AF_INET6, ("::1", port, 0, 0))]
    try:
        check = ip_versions(_ctx(addresses, f"registry.test:{port}"))
        assert check.status is Status.WARN, check
        assert f"IPv4 127.0.0.1:{port}: connects" in check.detail
        assert f"IPv6 [::1]:{port}: connection refused" in check.detail
        assert "IPv6 path" in check.hint and "AAAA" in check.hint
        v6 = socket.socket(socket.AF_INET6)
        v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        v6.bind(("::1", port))
        v6.listen()
        try:
            check = ip_versions(_ctx(addresses, f"registry.test:{port}"))
            assert check.status is Status.PASS, check
        finally:
            v6.close()
    finally:
        v4.close()
    only = ip_versions(_ctx(addresses[:1], f"registry.test:{port}"))
    assert only.status is Status.SKIP and "IPv4 addresses only" in only.detail


# -- dockerd's journal for a failed pull -----------------------------------------------


def _journal(directory: Path, entries: list[dict[str, str]]) -> None:
    remote = shutil.which("systemd-journal-remote") or "/lib/systemd/systemd-journal-remote"
    if not Path(remote).exists():
        pytest.fail("systemd-journal-remote is not installed (scripts/setup)", pytrace=False)
    export = ""
    for i, e in enumerate(entries):
        export += (f"__REALTIME_TIMESTAMP={e.pop('at')}\n__MONOTONIC_TIMESTAMP={i + 1}\n"
                   "_BOOT_ID=0123456789abcdef0123456789abcdef\n"
                   + "".join(f"{k}={v}\n" for k, v in e.items()) + "\n")
    directory.mkdir()
    subprocess.run([remote, "-o", str(directory / "remote.journal"), "-"], input=export,
                   text=True, check=True, capture_output=True, timeout=60)


def test_daemon_log_shows_dockerd_lines_about_the_failed_pull(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULLUNIT_STATE_DIR", str(tmp_path / "state"))
    now = time.time()
    us = int(now * 1e6)
    _journal(tmp_path / "journal", [
        {"at": str(us - 300_000_000), "_SYSTEMD_UNIT": "docker.service",
         "MESSAGE": "long before: reg.test:5000/team/app old news"},
        {"at": str(us - 2_000_000), "_SYSTEMD_UNIT": "docker.service", "SYSLOG_IDENTIFIER":
         "dockerd", "MESSAGE": 'level=error msg="pull reg.test:5000/team/app:1: '
         'toomanyrequests: slow down"'},
        {"at": str(us - 1_000_000), "_SYSTEMD_UNIT": "docker.service",
         "MESSAGE": "level=info msg=\"unrelated line\""},
        {"at": str(us - 500_000), "_SYSTEMD_UNIT": "cron.service",
         "MESSAGE": "reg.test:5000/team/app is in another unit's line"},
    ])
    st = stats.failed(state.AppState("web"), "rate_limited", "toomanyrequests", 69, 1,
                      now=now)
    state.save(st)
    ctx = _ctx([], "reg.test:5000")
    ctx.target = Target("reg.test:5000/team/app:1", app="web")
    ctx.options = Options(journal_dir=tmp_path / "journal")
    ctx.deadline = Deadline.after(10)
    check = daemon_log(ctx)
    assert check.status is Status.WARN, check
    assert "toomanyrequests: slow down" in check.detail
    assert "old news" not in check.detail and "unrelated" not in check.detail
    assert "another unit" not in check.detail
    assert "journalctl -u docker --since @" in check.hint
    # an app whose last pull did not fail, and a plain reference: nothing to look up
    state.save(state.record_ready(st, "x:1", "x@sha256:1", "sha256:1", "sha256:2", 3))
    assert daemon_log(ctx).status is Status.SKIP
    ctx.target = Target("reg.test:5000/team/app:1")
    assert "not an app" in daemon_log(ctx).detail
