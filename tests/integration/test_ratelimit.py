"""Rate limits read from the registry (issue 10, item 5): a real registry behind nginx
that adds Docker Hub's quota headers (RateLimit-Limit / RateLimit-Remaining, `N;w=S`)
and, for the puller, answers manifest requests with 429. `pullunit doctor` reads the
quota with a manifest HEAD and shows it (--json: the check's "data"); a pull that meets
a 429 reads it with one HEAD of its own, with the pull's credentials, and says
"N of M pulls left in the window ..." in its log line, its message and the state."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pullbed import Bed, fresh, image_config

from tests import testbed as tb

pytestmark = pytest.mark.integration

PULLUNIT = str(Path(sys.executable).parent / "pullunit")
HUB = (("RateLimit-Limit", "100;w=21600"), ("Docker-RateLimit-Source", "127.0.0.1"))


def hub_headers(remaining: int) -> tuple[tuple[str, str], ...]:
    return (*HUB, ("RateLimit-Remaining", f"{remaining};w=21600"))


def doctor(bed: Bed, app: str) -> tuple[int, dict[str, Any], str]:
    p = subprocess.run([PULLUNIT, "doctor", "--config-dir", str(bed.cfg), app, "--json"],
                       capture_output=True, text=True, env=bed.env, timeout=90)
    assert "Traceback" not in p.stderr, p.stderr
    (result,) = json.loads(p.stdout)
    checks = {c["check"]: c for c in result["checks"]}
    return p.returncode, checks, p.stdout + p.stderr


@pytest.mark.parametrize("remaining,status", [(76, "pass"), (5, "warn"), (0, "warn")])
def test_doctor_reads_the_quota_with_a_head(bed: Bed, client: Any, registry: tb.Registry,
                                            make_nginx: Any, remaining: int,
                                            status: str) -> None:
    p = fresh(client, registry, "pu-regclasses/quota")
    nginx = make_nginx(registry, tb.Fault("pass", headers=hub_headers(remaining)),
                       name="pu-regclasses-quota")
    app = bed.app("quota", image_config(nginx.ref(p.ref.split("/", 1)[1].split(":")[0],
                                                  p.ref.rsplit(":", 1)[1])))
    code, checks, out = doctor(bed, app)
    assert code == 0, out  # a quota is a warning, never a failed check
    rl = checks["rate_limit"]
    assert rl["status"] == status, rl
    assert f"{remaining} of 100 pulls left in the window (6h, rolling)" in rl["detail"]
    assert "counted for 127.0.0.1" in rl["detail"]
    assert rl["data"] == {"limit": 100, "remaining": remaining, "window_seconds": 21600,
                          "reset_seconds": None, "source": "127.0.0.1",
                          "retry_after_seconds": None, "low": remaining <= 10,
                          "status": 200, "anonymous": True}
    if status == "warn":
        assert ("no pulls left" if remaining == 0 else "low: at most 10% of the limit") \
            in rl["detail"]
        assert "rate limiting this host" in rl["hint"]
    # the quota came from a HEAD (Docker Hub does not count it); the manifest check's
    # GET is the only GET
    assert nginx.count(r"/manifests/", method="HEAD") == 1
    assert nginx.count(r"/manifests/", method="GET") == 1


def test_doctor_without_quota_headers(bed: Bed, client: Any, registry: tb.Registry) -> None:
    p = fresh(client, registry, "pu-regclasses/quota")
    code, checks, out = doctor(bed, bed.app("plain", image_config(p.ref)))
    assert code == 0, out
    rl = checks["rate_limit"]
    assert rl["status"] == "pass" and "no RateLimit headers" in rl["detail"], rl
    assert rl["data"]["limit"] is None and rl["data"]["remaining"] is None


def test_doctor_asks_with_the_pulls_credentials(bed: Bed, client: Any, registry: tb.Registry,
                                                auth_registry: tb.Registry,
                                                make_nginx: Any) -> None:
    from conftest import AUTH_PASSWORD, AUTH_USER

    p = fresh(client, registry, "pu-regclasses/quota")  # one storage with auth_registry
    nginx = make_nginx(auth_registry, tb.Fault("pass", headers=hub_headers(42)),
                       name="pu-regclasses-quota-auth")
    auth = bed.root / "auth.json"
    token = base64.b64encode(f"{AUTH_USER}:{AUTH_PASSWORD}".encode()).decode()
    auth.write_text(json.dumps({"auths": {nginx.address: {"auth": token}}}))
    ref = f"{nginx.address}/{p.ref.split('/', 1)[1]}"
    app = bed.app("auth", image_config(ref, f'auth_file = "{auth}"\n'))
    code, checks, out = doctor(bed, app)
    assert code == 0, out
    assert "42 of 100 pulls left" in checks["rate_limit"]["detail"]
    assert checks["rate_limit"]["data"]["anonymous"] is False
    heads = [e for e in nginx.requests() if e.method == "HEAD" and "/manifests/" in e.path]
    assert [(e.status, e.user) for e in heads] == [(200, AUTH_USER)]
    assert AUTH_PASSWORD not in out and token not in out


def test_a_429_logs_the_quota_the_registry_sends(bed: Bed, client: Any, registry: tb.Registry,
                                                 auth_registry: tb.Registry,
                                                 make_nginx: Any) -> None:
    """The pull meets 429 on the manifest; one HEAD with the pull's credentials reads the
    quota headers (on the 429 too) and the failure says them; Retry-After is read."""
    from conftest import AUTH_PASSWORD, AUTH_USER

    p = fresh(client, registry, "pu-regclasses/quota")
    nginx = make_nginx(auth_registry, tb.Fault("429", retry_after=120,
                                               headers=hub_headers(0)),
                       name="pu-regclasses-429")
    auth = bed.root / "auth.json"
    token = base64.b64encode(f"{AUTH_USER}:{AUTH_PASSWORD}".encode()).decode()
    auth.write_text(json.dumps({"auths": {nginx.address: {"auth": token}}}))
    ref = f"{nginx.address}/{p.ref.split('/', 1)[1]}"
    app = bed.app("limited", image_config(ref, f'auth_file = "{auth}"\n'
                                               '[pull]\ndeadline = "5s"\n'))
    r = bed.pull(app, timeout=60)
    assert r.code == 69, r.err
    said = (f"{nginx.address}: 0 of 100 pulls left in the window (6h, rolling); "
            "Retry-After 2min; toomanyrequests: You have reached your pull rate limit.")
    assert r.out["class"] == "rate_limited" and r.out["message"].startswith(said), r.out
    assert f"pull failed (rate_limited): {said}" in r.err
    st = bed.state(app)
    assert st["last_failure"]["message"].startswith(said)
    heads = [e for e in nginx.requests() if e.method == "HEAD" and "/manifests/" in e.path]
    # per attempt, the daemon's HEAD and ours; both with the pull's credentials
    assert r.out["attempts"] == 1
    assert [(e.status, e.user) for e in heads] == [(429, AUTH_USER)] * 2
    for text in (r.err, json.dumps(r.out), json.dumps(st)):
        assert AUTH_PASSWORD not in text and token not in text


def test_a_429_without_quota_headers_keeps_the_daemons_words(
        bed: Bed, client: Any, registry: tb.Registry, nginx_429: tb.NginxProxy) -> None:
    p = fresh(client, registry, "pu-regclasses/quota")
    ref = f"{nginx_429.address}/{p.ref.split('/', 1)[1]}"
    app = bed.app("bare", image_config(ref, '[pull]\ndeadline = "5s"\n'))
    r = bed.pull(app, timeout=60)
    assert r.code == 69, r.err
    # nginx_429 sends Retry-After 7 but no quota: the Retry-After is still read
    assert r.out["message"].startswith(f"{nginx_429.address}: Retry-After 7.0s; "
                                       "toomanyrequests:"), r.out
