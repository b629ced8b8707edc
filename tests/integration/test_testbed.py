"""The test bed itself works: each component produces the real behaviour (and the
exact daemon texts) that pullunit's integration tests rely on."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests import testbed as tb
from tests.testbed import observed_messages
from tests.testbed.regapi import RegistryAPI

pytestmark = pytest.mark.integration


def test_registry_serves_pushed_image(docker_api: Any, docker_client: Any,
                                      registry: tb.Registry, make_image: Any) -> None:
    p = make_image("testbed/serve", "1.0")
    docker_client.images.remove(p.ref, force=True)
    before = registry.count(r"^/v2/testbed/serve/manifests/", method="GET")
    out = tb.try_pull(docker_api, p.ref)
    assert out.ok, out
    assert p.digest in docker_client.images.get(p.ref).attrs["RepoDigests"][0]
    assert registry.count(r"^/v2/testbed/serve/manifests/", method="GET") == before + 1


def test_new_digest_moves_the_tag(make_image: Any, registry: tb.Registry) -> None:
    first = make_image("testbed/moving", "1.0")
    second = make_image("testbed/moving", "1.0", kind="new-digest")
    assert first.digest != second.digest
    digest, _ = RegistryAPI(registry.url).get_manifest("testbed/moving", "1.0")
    assert digest == second.digest


def test_registry_stop_start_same_port(docker_api: Any, make_registry: Any,
                                       make_image: Any) -> None:
    reg = make_registry("restart")
    p = make_image("testbed/restart", "1.0", registry=reg)
    reg.stop()
    down = tb.try_pull(docker_api, p.ref)
    assert down.via == "exception" and down.status_code == 500
    assert down.explanation == (f'Get "http://{reg.address}/v2/": dial tcp {reg.address}: '
                                "connect: connection refused")
    reg.start()
    assert tb.try_pull(docker_api, p.ref).ok


def test_manifest_unknown(docker_api: Any, registry: tb.Registry) -> None:
    out = tb.try_pull(docker_api, registry.ref("team/app", "nope"))
    assert out.exc_class == "docker.errors.NotFound" and out.status_code == 404
    assert out.explanation == (f"manifest for {registry.address}/team/app:nope not found: "
                               "manifest unknown: manifest unknown")


def test_auth_registry(docker_api: Any, auth_registry: tb.Registry,
                       busybox_image: tb.Pushed) -> None:
    ref = auth_registry.ref("team/app", "1.2.3")
    none = tb.try_pull(docker_api, ref)
    assert none.exc_class == "docker.errors.APIError" and none.status_code == 500
    assert none.explanation == (f'Head "http://{auth_registry.address}/v2/team/app/'
                                'manifests/1.2.3": no basic auth credentials')
    wrong = tb.try_pull(docker_api, ref, auth_config={"username": "alice", "password": "no"})
    assert wrong.explanation == "unauthorized: authentication required"
    assert tb.try_pull(docker_api, ref, auth_config=auth_registry.auth_config).ok


def test_nginx_429_json_and_html(docker_api: Any, nginx_429: tb.NginxProxy,
                                 nginx_429_html: tb.NginxProxy,
                                 busybox_image: tb.Pushed) -> None:
    from tests.testbed import _util
    r = _util.http("GET", f"{nginx_429.url}/v2/team/app/manifests/1.2.3")
    assert r.status == 429 and r.headers["Retry-After"] == "7"
    assert r.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    out = tb.try_pull(docker_api, nginx_429.ref("team/app", "1.2.3"))
    assert out.explanation == ("toomanyrequests: You have reached your pull rate limit. "
                               "(pullunit test bed)")
    assert nginx_429.count(r"/manifests/", status=429) >= 2
    html = tb.try_pull(docker_api, nginx_429_html.ref("team/app", "1.2.3"))
    assert html.status_code == 500
    assert html.message.startswith("error parsing HTTP 429 response body: invalid character "
                                   "'<' looking for beginning of value: \"<html>")


def test_nginx_fault_switch_and_5xx(docker_api: Any, nginx_5xx: tb.NginxProxy,
                                    make_nginx: Any, registry: tb.Registry,
                                    busybox_image: tb.Pushed) -> None:
    out = tb.try_pull(docker_api, nginx_5xx.ref("team/app", "1.2.3"))
    assert out.explanation == "received unexpected HTTP status: 503 Service Temporarily Unavailable"
    n = make_nginx(registry, tb.Fault("429"))
    assert not tb.try_pull(docker_api, n.ref("team/app", "1.2.3")).ok
    n.set_fault(tb.Fault("pass"))  # e.g. "rate limit lifted"
    assert tb.try_pull(docker_api, n.ref("team/app", "1.2.3")).ok
    assert n.count(r"/manifests/", status=429) >= 1
    assert n.count(r"/manifests/", status=200) >= 1


def test_nginx_stall(docker_api: Any, nginx_stall: tb.NginxProxy,
                     big_image: tb.Pushed) -> None:
    r = tb.Pushed(nginx_stall.ref("bench/big", "1"), big_image.digest)
    out = tb.try_pull(docker_api, r.pinned, stall_after=2)
    assert out.via == "stalled", out
    assert 2 <= out.seconds < 20
    # Giving up closed the connection, so dockerd cancelled and nginx logged the
    # layer downloads it cut short (nginx logs a request when it ends).
    from tests.testbed._util import wait_for
    cut = wait_for(lambda: [e for e in nginx_stall.requests() if "/blobs/" in e.path
                            and 64 * 1024 <= e.size < 1024 * 1024], 10, 0.1,
                   "nginx to log the cut-off blob downloads")
    assert all(e.status == 200 for e in cut)


def test_tls_registry_x509_then_trusted(docker_api: Any, docker_client: Any,
                                        tls_registry: tb.TlsRegistry,
                                        busybox_image: tb.Pushed) -> None:
    ref = tls_registry.ref("team/app", "1.2.3")
    out = tb.try_pull(docker_api, ref)
    assert out.exc_class == "docker.errors.APIError" and out.status_code == 500
    assert out.explanation == (f'Get "https://{tls_registry.address}/v2/": '
                               "x509: certificate signed by unknown authority")
    tls_registry.trust()
    try:
        assert tb.try_pull(docker_api, ref).ok
    finally:
        tls_registry.untrust()
        docker_client.images.remove(ref)
    assert not tls_registry.certs_d.exists()


def test_small_disk_dockerd_no_space(small_dockerd: tb.DockerdProcess,
                                     big_image: tb.Pushed) -> None:
    with small_dockerd.api() as api:
        out = tb.try_pull(api, big_image.ref)
    assert out.via == "stream", out
    assert out.text is not None and out.text.startswith("write ")
    assert out.text.endswith(": no space left on device")


def test_dns_dockerd_no_such_host_then_resolves(dns_dockerd: tb.DnsDockerd,
                                                make_registry: Any, registry: tb.Registry,
                                                busybox_image: tb.Pushed) -> None:
    out = dns_dockerd.try_pull("registry.pullunit.test:5000/team/app:1.2.3")
    # Go's resolver names the server it asked ("lookup NAME on 127.0.0.1:53: ...") or not,
    # depending on the resolver set-up: both are what dockerd really says.
    assert re.fullmatch(r'Get "https://registry\.pullunit\.test:5000/v2/": dial tcp: '
                        r"lookup registry\.pullunit\.test( on \S+)?: no such host",
                        out.explanation or ""), out
    # A registry the namespaced engine can reach (host end of its veth), same images.
    reg = make_registry("dnsreg", host=dns_dockerd.host_ip, storage=registry.storage)
    dns_dockerd.set_hosts({"registry.pullunit.test": dns_dockerd.host_ip})
    try:
        ok = dns_dockerd.try_pull(f"registry.pullunit.test:{reg.port}/team/app:1.2.3")
        assert ok.ok, ok
    finally:
        dns_dockerd.set_hosts({})


def test_spare_dockerd_down_then_up(spare_dockerd: tb.DockerdProcess,
                                    busybox_image: tb.Pushed) -> None:
    with spare_dockerd.api() as api:
        assert tb.try_pull(api, busybox_image.ref).ok
        spare_dockerd.stop()
        down = tb.try_pull(api, busybox_image.ref)
        assert down.exc_class == "requests.exceptions.ConnectionError"
        spare_dockerd.start()
        assert tb.try_pull(api, busybox_image.ref).ok  # same images dir: already there
        assert api.inspect_image(busybox_image.ref)["Id"]


def test_platform_images(docker_api: Any, docker_client: Any,
                         registry: tb.Registry) -> None:
    arm = tb.make_platform_image(registry.ref("testbed/arm", "1"), "linux", "arm64")
    try:
        assert tb.try_pull(docker_api, arm.ref).ok  # 20.10 does not object...
        attrs = docker_client.images.get(arm.ref).attrs
        assert (attrs["Os"], attrs["Architecture"]) == ("linux", "arm64")  # ...inspect does
    finally:
        docker_client.images.remove(arm.ref, force=True)
    idx = tb.make_index_image(registry.ref("testbed/multi", "1"), [("linux", "s390x")])
    out = tb.try_pull(docker_api, idx.ref)
    assert out.via == "stream"
    assert out.text == "no matching manifest for linux/amd64 in the manifest list entries"


def test_showargs_round_trip(docker_client: Any, make_image: Any) -> None:
    p = make_image("testbed/showargs", "1", kind="showargs")
    args = ["a b", "$HOME", "x'y", "100%", ""]
    raw = docker_client.containers.run(p.ref, args, environment={"G": "100% sure $USER"},
                                       network_mode="none", remove=True)
    argv, env = tb.parse_showargs(raw.decode())
    assert argv == args and env["G"] == "100% sure $USER"


def test_observed_messages_cover_every_class() -> None:
    from pullunit.classify import FailureClass
    msgs = observed_messages.MESSAGES
    assert set(msgs) <= {c.value for c in FailureClass}
    for cls in ("not_found", "denied", "tls", "dns", "unreachable", "server_error",
                "rate_limited", "disk_full", "daemon_unavailable", "platform"):
        assert msgs.get(cls), f"no observed text for {cls}"
    json.dumps(observed_messages.OBSERVATIONS)  # plain data only
