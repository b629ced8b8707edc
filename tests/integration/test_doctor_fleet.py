"""doctor for intermittent failures and for drift between hosts, against the real test
bed: `--repeat` through an nginx front that fails every other /v2/ request (flapping)
and against a stopped registry (steady); `--json`'s host fingerprint and `--compare` of
the fingerprints of two engines that differ in their proxy and daemon.json."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests import testbed as tb

pytestmark = pytest.mark.integration
PULLUNIT = str(Path(sys.executable).parent / "pullunit")
PROXY_PASSWORD = "pr0xy-s3cret"


class Bed:
    def __init__(self, root: Path):
        self.root = root
        self.cfg = root / "etc"
        self.cfg.mkdir()
        (root / "home").mkdir()
        self.env = {k: v for k, v in os.environ.items()
                    if k.lower() not in ("http_proxy", "https_proxy", "no_proxy", "all_proxy")
                    and k not in ("DOCKER_HOST", "DOCKER_CONFIG", "NOTIFY_SOCKET",
                                  "JOURNAL_STREAM")}
        self.env.update({"HOME": str(root / "home"), "NO_COLOR": "1",
                         "PULLUNIT_DOCKER_CERTS_D": str(root / "certs.d"),
                         "PULLUNIT_DOCKER_DAEMON_JSON": str(root / "daemon.json")})

    def doctor(self, *args: str, env: dict[str, str] | None = None,
               timeout: float = 120) -> subprocess.CompletedProcess[str]:
        p = subprocess.run([PULLUNIT, "doctor", "--config-dir", str(self.cfg), *args],
                           capture_output=True, text=True, timeout=timeout,
                           env={**self.env, **(env or {})})
        assert "Traceback" not in p.stderr and "internal error" not in p.stdout + p.stderr, \
            p.stdout + p.stderr
        return p


@pytest.fixture
def bed(tmp_path: Path) -> Bed:
    return Bed(tmp_path)


@pytest.fixture
def pushed(make_image: Any) -> tb.Pushed:
    p: tb.Pushed = make_image("doctor/fleet", f"1.0-{os.getpid()}")
    return p


def test_repeat_reports_every_other_failing_request_as_flapping(
        bed: Bed, registry: tb.Registry, pushed: tb.Pushed, make_nginx: Any) -> None:
    # limit_req at one request per 2 s on the /v2/ ping, rounds 1 s apart: the ping of
    # every other round is answered 429
    front = make_nginx(registry, tb.Fault("ratelimit", on="ping", rate="30r/m"))
    ref = front.ref(*pushed.ref.split("/", 1)[1].split(":"))
    t = time.monotonic()
    p = bed.doctor(ref, "--repeat", "6", "--interval", "1s", "--json")
    assert time.monotonic() - t < 60
    assert p.returncode == 1, p.stdout + p.stderr
    [result] = json.loads(p.stdout)
    assert result["ok"] is False
    rep = result["repeat"]
    assert (rep["rounds"], rep["interval"]) == (6, 1.0)
    tallies = {t["check"]: t for t in rep["checks"]}
    assert list(tallies) == ["dns", "tcp", "tls", "registry_api", "manifest"]
    api = tallies["registry_api"]
    assert (api["rounds"], api["ran"], api["failed"], api["verdict"]) == (6, 6, 3, "flapping")
    assert [f["count"] for f in api["failures"]] == [3]
    assert "429" in api["failures"][0]["detail"]
    assert front.count(r"^/v2/$", status=429) == 3
    for check in ("dns", "tcp"):
        assert (tallies[check]["failed"], tallies[check]["verdict"]) == (0, "ok")
    # the manifest ran only when /v2/ answered, and never failed
    assert (tallies["manifest"]["ran"], tallies["manifest"]["failed"],
            tallies["manifest"]["verdict"]) == (3, 0, "ok")
    # the first round is the whole checklist
    assert [c["check"] for c in result["checks"]][:3] == ["reference", "daemon", "local_image"]

    human = bed.doctor(ref, "--repeat", "4", "--interval", "1s")
    assert human.returncode == 1
    assert "registry_api" in human.stdout and "2 of 4 failed: FLAPPING" in human.stdout
    assert "field guide 12.6" in human.stdout


def test_repeat_against_a_stopped_registry_is_steady(bed: Bed, make_registry: Any,
                                                     pushed: tb.Pushed) -> None:
    reg = make_registry("stopped")
    ref = reg.ref("doctor/fleet", "1")
    reg.stop()
    p = bed.doctor(ref, "--repeat", "3", "--interval", "200ms", "--json")
    assert p.returncode == 1
    tallies = {t["check"]: t for t in json.loads(p.stdout)[0]["repeat"]["checks"]}
    assert (tallies["tcp"]["failed"], tallies["tcp"]["verdict"]) == (3, "steady")
    assert "connection refused" in tallies["tcp"]["failures"][0]["detail"]
    assert tallies["registry_api"]["verdict"] == "skipped"
    human = bed.doctor(ref, "--repeat", "2", "--interval", "0s")
    assert "2 of 2 failed: STEADY" in human.stdout


def test_compare_names_the_proxy_and_daemon_json_that_differ(bed: Bed, tmp_path: Path,
                                                             docker_sock: str) -> None:
    """Two "hosts": the main engine with one daemon.json, and an engine started with an
    HTTPS proxy (with a password) and another daemon.json."""
    a_json, b_json = tmp_path / "a-daemon.json", tmp_path / "b-daemon.json"
    a_json.write_text(json.dumps({"registry-mirrors": ["http://127.0.0.1:5999"],
                                  "log-driver": "journald"}))
    b_json.write_text(json.dumps({"registry-mirrors": ["http://127.0.0.1:5998"],
                                  "insecure-registries": ["10.231.0.0/16"],
                                  "log-driver": "json-file"}))
    proxy = f"http://ops:{PROXY_PASSWORD}@127.0.0.1:3128"
    host_b = tb.DockerdProcess("proxied", env={"HTTPS_PROXY": proxy})
    try:
        host_b.start()
        a = bed.doctor("--json", env={"PULLUNIT_DOCKER_DAEMON_JSON": str(a_json)})
        b = bed.doctor("--json", env={"PULLUNIT_DOCKER_DAEMON_JSON": str(b_json),
                                      "DOCKER_HOST": host_b.base_url})
    finally:
        host_b.close()
    for run in (a, b):
        assert run.returncode == 0, run.stdout + run.stderr
        assert PROXY_PASSWORD not in run.stdout + run.stderr
    fp_a, fp_b = json.loads(a.stdout)[0]["host"], json.loads(b.stdout)[0]["host"]
    assert fp_b["proxies"]["HTTPS_PROXY"].endswith("@127.0.0.1:3128")
    assert "HTTPS_PROXY" not in fp_a["proxies"]
    # log-driver does not change pulls: left out
    assert fp_a["daemon_json"] == {"registry-mirrors": ["http://127.0.0.1:5999"]}
    for key in ("pullunit", "docker", "resolv_conf", "ca_bundle", "certs_d", "mtu"):
        assert key in fp_a
    assert fp_a["docker"]["version"] and fp_a["ca_bundle"]["sha256"]

    (tmp_path / "A.json").write_text(a.stdout)
    (tmp_path / "B.json").write_text(b.stdout)
    same = bed.doctor("--compare", str(tmp_path / "A.json"), str(tmp_path / "A.json"))
    assert same.returncode == 0 and "no differences" in same.stdout
    cmp = bed.doctor("--compare", str(tmp_path / "A.json"), str(tmp_path / "B.json"))
    assert cmp.returncode == 1, cmp.stdout + cmp.stderr
    assert PROXY_PASSWORD not in cmp.stdout
    keys = [line for line in cmp.stdout.splitlines() if line and not line.startswith(" ")]
    names = [line.split()[0] for line in keys[1:]]
    assert "proxies.HTTPS_PROXY" in names
    assert "daemon_json.registry-mirrors" in names
    assert "daemon_json.insecure-registries" in names
    assert not any(n.startswith("daemon_json.log-driver") for n in names)
    # most suspicious first: the proxy, then daemon.json, the daemon's own facts last
    assert names.index("proxies.HTTPS_PROXY") < names.index("daemon_json.registry-mirrors")
    assert names[0].startswith("proxies.")
    assert "(not set)" in cmp.stdout
    assert "http://127.0.0.1:5998" in cmp.stdout and "http://127.0.0.1:5999" in cmp.stdout


def test_compare_bad_input(bed: Bed, tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("[]")
    (tmp_path / "bad.json").write_text("{")
    p = bed.doctor("--compare", str(tmp_path / "x.json"))
    assert p.returncode == 64 and "at least two files" in p.stderr
    p = bed.doctor("--compare", str(tmp_path / "x.json"), str(tmp_path / "bad.json"))
    assert p.returncode == 65 and "no host fingerprint" in p.stderr
    p = bed.doctor("--compare", str(tmp_path / "bad.json"), str(tmp_path / "x.json"))
    assert p.returncode == 65 and "not JSON" in p.stderr
    p = bed.doctor("--compare", str(tmp_path / "none.json"), str(tmp_path / "x.json"))
    assert p.returncode == 66


# ---------------------------------------------------------------------------------------
# the daemon's own path: a real layer, through the daemon's proxy


def checks_of(p: subprocess.CompletedProcess[str]) -> dict[str, dict[str, str]]:
    [result] = json.loads(p.stdout)
    return {c["check"]: c for c in result["checks"]}


def test_blob_fetches_a_real_layer_and_reports_a_stall(bed: Bed, registry: tb.Registry,
                                                       big_image: tb.Pushed,
                                                       nginx_stall: tb.NginxProxy) -> None:
    path = big_image.ref.split("/", 1)[1]
    p = bed.doctor(big_image.ref, "--json")
    blob = checks_of(p)["blob"]
    assert blob["status"] == "pass", blob
    assert "4.0 MiB in" in blob["detail"] and "no stall" in blob["detail"]
    assert "directly, as dockerd does" in blob["detail"]
    # the stall front passes the small requests, then trickles the blob at 1 byte/s
    t = time.monotonic()
    p = bed.doctor(f"{nginx_stall.address}/{path}", "--json")
    assert time.monotonic() - t < 60
    assert p.returncode == 1
    checks = checks_of(p)
    assert checks["manifest"]["status"] == "pass"
    blob = checks["blob"]
    assert blob["status"] == "fail", blob
    assert "the transfer stalled after 6" in blob["detail"]  # 64 KiB less the headers
    assert "MTU" in blob["hint"] and "5.3" in blob["hint"]


def test_proxy_path_goes_through_the_daemons_proxy(bed: Bed, tls_registry: tb.TlsRegistry,
                                                   pushed: tb.Pushed) -> None:
    from tests.testbed.connectproxy import ConnectProxy

    ca_dir = Path(bed.env["PULLUNIT_DOCKER_CERTS_D"]) / tls_registry.address
    ca_dir.mkdir(parents=True)
    ca_dir.joinpath("ca.crt").write_bytes(tls_registry.ca_crt.read_bytes())
    ref = f"{tls_registry.address}/{pushed.ref.split('/', 1)[1]}"
    with ConnectProxy() as proxy:
        daemon = tb.DockerdProcess("viaproxy", env={"HTTPS_PROXY": proxy.url})
        try:
            daemon.start()
            env = {"DOCKER_HOST": daemon.base_url}
            p = bed.doctor(ref, "--json", env=env)
            checks = checks_of(p)
            path = checks["proxy_path"]
            assert path["status"] == "pass", path
            assert f"through {proxy.url} (CONNECT tunnel; from the running daemon)" in \
                path["detail"]
            assert f"GET https://{tls_registry.address}/v2/: 200" in path["detail"]
            assert ("CONNECT", tls_registry.address) in proxy.log.requests
            # a proxy that refuses the registry: named, with the fix
            proxy.deny = True
            p = bed.doctor(ref, "--json", env=env)
            path = checks_of(p)["proxy_path"]
            assert p.returncode == 1 and path["status"] == "fail"
            assert "403" in path["detail"] and "NO_PROXY" in path["hint"]
        finally:
            daemon.close()
    # the main engine has no proxy: nothing to go through
    p = bed.doctor(ref, "--json")
    path = checks_of(p)["proxy_path"]
    assert path["status"] == "skip" and "directly" in path["detail"]
