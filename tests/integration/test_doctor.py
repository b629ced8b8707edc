"""`pullunit doctor` against the real test bed: a real dockerd, distribution registries
(plain, htpasswd, stopped), a TLS registry on a test host in a network namespace, a dockerd
whose resolver is a stub DNS in its own namespace, and wrong-platform images pushed through
the registry API. Nothing is mocked except the Bearer token service (distribution's token
auth needs a JWT signer the test bed does not run), which is a small HTTP server on
127.0.0.1 below.

Every case runs the installed CLI as a subprocess with --json (and some also without) and
asserts on the exit status, the status of each check id, the hints, the time taken, and
that no credential ever appears in stdout or stderr.

Network rule: doctor is only pointed at 127.0.0.0/8, at the TLS test host 10.231.N.2, or,
for host names, from inside the stub-DNS namespace (so no query leaves the machine).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests import testbed as tb
from tests.testbed.tlsreg import make_ca_and_cert

pytestmark = pytest.mark.integration
# Fixtures from conftest.py: registry, auth_registry, tls_registry, make_image,
# make_registry, docker_client (the shared test bed); the rest are made here.

PULLUNIT = str(Path(sys.executable).parent / "pullunit")
IMAGE_CHECKS = ["reference", "daemon", "local_image", "disk", "daemon_config", "proxy", "dns",
                "tcp", "tls", "registry_api", "credentials", "manifest", "platform", "clock",
                "ip_versions", "proxy_path", "blob", "daemon_log", "mirrors",
                "rate_limit"]
NAMED_PORT = 5077
FOREIGN_ARCH = "s390x" if os.uname().machine != "s390x" else "arm64"


@dataclass
class Run:
    code: int
    results: list[dict[str, Any]]
    out: str
    err: str
    seconds: float

    @property
    def checks(self) -> dict[str, dict[str, str]]:
        assert len(self.results) == 1, self.results
        return {c["check"]: c for c in self.results[0]["checks"]}

    def status(self, check: str) -> str:
        return self.checks[check]["status"]

    def statuses(self) -> dict[str, str]:
        return {k: v["status"] for k, v in self.checks.items()}


class Bed:
    """A config dir, an empty HOME (no docker credentials), doctor's certs.d, and the CLI."""

    def __init__(self, root: Path):
        self.root = root
        self.cfg = root / "etc"
        self.cfg.mkdir()
        self.home = root / "home"
        self.home.mkdir()
        self.certs_d = root / "certs.d"
        self.certs_d.mkdir()
        self.env = {k: v for k, v in os.environ.items()
                    if k.lower() not in ("http_proxy", "https_proxy", "no_proxy", "all_proxy")
                    and k not in ("DOCKER_HOST", "DOCKER_CONFIG", "NOTIFY_SOCKET",
                                  "JOURNAL_STREAM")}
        self.env.update({"HOME": str(self.home), "NO_COLOR": "1",
                         "PULLUNIT_DOCKER_CERTS_D": str(self.certs_d),
                         "PULLUNIT_DOCKER_DAEMON_JSON": str(root / "daemon.json")})

    def app(self, name: str, ref: str, extra: str = "") -> str:
        (self.cfg / f"{name}.toml").write_text(f'[image]\nref = "{ref}"\n{extra}')
        return name

    def auth_file(self, name: str, registry: str, user: str, password: str) -> Path:
        path = self.root / f"{name}.json"
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        path.write_text(json.dumps({"auths": {registry: {"auth": token}}}))
        return path

    def doctor(self, *args: str, json_out: bool = True, prefix: tuple[str, ...] = (),
               env: dict[str, str] | None = None, timeout: float = 60) -> Run:
        argv = [*prefix, PULLUNIT, "doctor", "--config-dir", str(self.cfg), *args]
        if json_out:
            argv.append("--json")
        t = time.monotonic()
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                           env={**self.env, **(env or {})})
        seconds = time.monotonic() - t
        assert "Traceback" not in p.stderr and "internal error" not in p.stdout + p.stderr, \
            p.stdout + p.stderr
        results = json.loads(p.stdout) if json_out and p.stdout.strip() else []
        for r in results:
            for c in r["checks"]:
                # "data" only where a check has numbers to give (rate_limit's quota)
                assert set(c) == {"check", "status", "detail", "hint"} | (
                    {"data"} if c["check"] == "rate_limit" and c["status"] != "skip"
                    else set()), c
                assert c["status"] in ("pass", "warn", "fail", "skip")
                assert c["status"] == "pass" or c["status"] == "skip" or c["hint"], c
            assert r["ok"] == all(c["status"] != "fail" for c in r["checks"])
        return Run(p.returncode, results, p.stdout, p.stderr, seconds)


@pytest.fixture
def pushed(make_image: Any) -> tb.Pushed:
    """doctor/app:1.0, pushed to `registry` and present locally (removed afterwards)."""
    p: tb.Pushed = make_image("doctor/app", f"1.0-{os.getpid()}")
    return p


def path_of(p: tb.Pushed) -> str:
    """repo:tag without the registry, to ask another registry of the same storage."""
    return p.ref.split("/", 1)[1]


@pytest.fixture
def bed(tmp_path: Path) -> Bed:
    return Bed(tmp_path)


def assert_skipped_after(run: Run, first_failure: str) -> None:
    """Every network check after first_failure is skipped, with a reason."""
    order = IMAGE_CHECKS
    for check in order[order.index(first_failure) + 1:]:
        # credentials needs no network; proxy_path, daemon_log and mirrors need only the
        # reference, ip_versions only the name lookup
        if check in ("credentials", "ip_versions", "proxy_path", "daemon_log", "mirrors"):
            continue
        assert run.status(check) == "skip", run.checks[check]
        assert run.checks[check]["detail"].startswith("skipped: "), run.checks[check]


# ---------------------------------------------------------------------------------------
# plain registry


def test_plain_registry_passes(bed: Bed, registry: tb.Registry, pushed: tb.Pushed) -> None:
    app = bed.app("web", pushed.ref)
    run = bed.doctor(app)
    assert run.code == 0, run.out
    assert [c["check"] for c in run.results[0]["checks"]] == IMAGE_CHECKS
    assert run.results[0]["app"] == "web" and run.results[0]["target"] == pushed.ref
    st = run.statuses()
    assert {k for k, v in st.items() if v == "fail"} == set()
    for check in ("reference", "daemon", "local_image", "disk", "dns", "tcp", "registry_api",
                  "credentials", "manifest", "platform", "clock"):
        assert st[check] == "pass", run.checks[check]
    assert st["tls"] == "skip"  # plain HTTP on 127.0.0.0/8, as dockerd does it
    assert "plain HTTP" in run.checks["tls"]["detail"]
    assert pushed.digest in run.checks["local_image"]["detail"]
    assert pushed.digest in run.checks["manifest"]["detail"]
    assert "the local image is this digest" in run.checks["manifest"]["detail"]
    assert "Docker " in run.checks["daemon"]["detail"]  # any engine version
    assert run.seconds < 10

    human = bed.doctor(app, json_out=False)
    assert human.code == 0
    lines = human.out.splitlines()
    assert lines[0] == f"web {pushed.ref}"
    assert any(line.split()[:2] == ["pass", "manifest"] for line in lines)
    assert lines[-1].strip().startswith("ok: ")
    assert "\033[" not in human.out  # NO_COLOR and not a TTY


def test_image_ref_target_and_absent_image(bed: Bed, docker_client: Any,
                                           make_image: Any) -> None:
    ref = make_image("doctor/absent", f"1-{os.getpid()}").ref
    docker_client.images.remove(ref, force=True)
    run = bed.doctor(ref)
    assert run.code == 0, run.out
    assert run.results[0]["app"] is None and run.results[0]["target"] == ref
    assert run.status("local_image") == "pass"
    assert "not present locally" in run.checks["local_image"]["detail"]
    bed.app("never", ref, 'policy = "never"\n')
    run = bed.doctor("never")
    assert run.code == 1
    assert run.status("local_image") == "fail"
    assert "policy" in run.checks["local_image"]["hint"]


def test_every_app_and_host_only(bed: Bed, pushed: tb.Pushed) -> None:
    run = bed.doctor()
    assert run.code == 0
    assert len(run.results) == 1 and run.results[0]["target"] is None
    assert [c["check"] for c in run.results[0]["checks"]] == ["daemon", "disk",
                                                              "daemon_config", "proxy"]
    bed.app("a", pushed.ref)
    bed.app("b", pushed.ref.rsplit(":", 1)[0] + ":nope")
    (bed.cfg / "broken.toml").write_text("[image\n")
    run = bed.doctor()
    assert run.code == 1
    by_app = {r["app"]: r for r in run.results}
    assert sorted(by_app) == ["a", "b", "broken"]
    assert by_app["a"]["ok"] and not by_app["b"]["ok"] and not by_app["broken"]["ok"]
    assert [c["check"] for c in by_app["broken"]["checks"]] == ["config"]
    assert "Cannot read" in by_app["broken"]["checks"][0]["detail"]


def test_app_pinned_by_lock_file(bed: Bed, pushed: tb.Pushed) -> None:
    """doctor checks the digest the pull unit would pull: the lock file's."""
    app = bed.app("locked", pushed.ref)
    pin = subprocess.run([PULLUNIT, "pin", app, "--config-dir", str(bed.cfg)],
                         capture_output=True, text=True, env=bed.env, timeout=60)
    assert pin.returncode == 0, pin.stderr
    run = bed.doctor(app)
    assert run.code == 0, run.out
    assert run.results[0]["target"] == f"{pushed.ref}@{pushed.digest}"
    assert f"pinned by {bed.cfg}/locked.lock.toml, from 'pullunit pin'" in \
        run.checks["reference"]["detail"]
    assert pushed.digest in run.checks["manifest"]["detail"]


def test_missing_tag(bed: Bed, registry: tb.Registry, pushed: tb.Pushed) -> None:
    ref = pushed.ref.rsplit(":", 1)[0] + ":no-such-tag"
    run = bed.doctor(ref)
    assert run.code == 1
    m = run.checks["manifest"]
    assert m["status"] == "fail"
    assert "404" in m["detail"] and "MANIFEST_UNKNOWN" in m["detail"]
    assert "tags/list" in m["hint"]
    assert run.status("platform") == "skip"
    assert run.status("registry_api") == "pass" and run.status("clock") == "pass"


def test_invalid_reference(bed: Bed) -> None:
    run = bed.doctor("127.0.0.1:5000/Team/App:1")
    assert run.code == 1
    assert run.status("reference") == "fail"
    assert "lower case" in run.checks["reference"]["detail"]
    assert run.status("daemon") == "pass"  # the host checks still run
    for check in ("local_image", "dns", "tcp", "tls", "registry_api", "credentials",
                  "manifest", "platform", "clock"):
        assert run.status(check) == "skip", check


@pytest.mark.parametrize(("proxy", "status", "hint"), [
    ("nginx_429", "429", "rate limiting"), ("nginx_5xx", "503", "not reachable or failing")])
def test_registry_faults_on_manifest(bed: Bed, request: pytest.FixtureRequest,
                                     pushed: tb.Pushed, proxy: str, status: str,
                                     hint: str) -> None:
    front: tb.NginxProxy = request.getfixturevalue(proxy)
    run = bed.doctor(f"{front.address}/{path_of(pushed)}")
    assert run.code == 1
    assert run.status("registry_api") == "pass"
    m = run.checks["manifest"]
    assert m["status"] == "fail" and status in m["detail"], m
    assert hint in m["hint"]


def _on_terminal(argv: list[str], env: dict[str, str]) -> tuple[int, bytes]:
    """Run argv with stdout on a pseudo-terminal; (exit status, what it printed)."""
    import pty

    master, slave = pty.openpty()
    try:
        p = subprocess.run(argv, stdout=slave, stderr=subprocess.DEVNULL, env=env, timeout=60)
    finally:
        os.close(slave)
    out = b""
    try:
        while chunk := os.read(master, 65536):
            out += chunk
    except OSError:  # EIO: the terminal's other end is closed and drained
        pass
    finally:
        os.close(master)
    return p.returncode, out


def test_colour_only_on_a_terminal(bed: Bed, pushed: tb.Pushed) -> None:
    env = {k: v for k, v in bed.env.items() if k != "NO_COLOR"}
    env["TERM"] = "xterm"
    argv = [PULLUNIT, "doctor", pushed.ref]
    code, out = _on_terminal(argv, env)
    assert code == 0
    assert b"\033[32mpass" in out
    code, out = _on_terminal(argv, {**env, "NO_COLOR": "1"})
    assert code == 0 and b"pass" in out and b"\033[" not in out
    piped = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60)
    assert piped.returncode == 0 and "pass" in piped.stdout
    assert "\033[" not in piped.stdout  # not a terminal


# ---------------------------------------------------------------------------------------
# stopped registry, and one that accepts connections but never answers


def test_stopped_registry(bed: Bed, make_registry: Any) -> None:
    reg = make_registry("doctor-stopped")
    ref = reg.ref("team/app", "1")
    reg.stop()
    run = bed.doctor(ref)
    assert run.code == 1
    assert run.status("tcp") == "fail"
    assert "connection refused" in run.checks["tcp"]["detail"]
    assert run.checks["tcp"]["hint"]
    assert_skipped_after(run, "tcp")
    assert run.seconds < 10


def test_silent_server_never_hangs(bed: Bed) -> None:
    """TCP connects (the kernel completes it from the backlog) but nothing answers: every
    step gives up after its timeout."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(16)
        ref = f"127.0.0.1:{srv.getsockname()[1]}/team/app:1"
        run = bed.doctor(ref)
    assert run.code == 1
    assert run.status("tcp") == "pass"
    assert run.status("registry_api") == "fail"
    assert "timed out" in run.checks["registry_api"]["detail"]
    assert run.seconds < 15


# ---------------------------------------------------------------------------------------
# credentials


def _assert_secret_absent(run: Run, *secrets_: str) -> None:
    for s in secrets_:
        assert s not in run.out and s not in run.err
        assert base64.b64encode(f"alice:{s}".encode()).decode() not in run.out + run.err


def test_auth_registry_without_credentials(bed: Bed, auth_registry: tb.Registry,
                                           pushed: tb.Pushed) -> None:
    ref = f"{auth_registry.address}/{path_of(pushed)}"
    run = bed.doctor(bed.app("priv", ref))
    assert run.code == 1
    assert run.status("registry_api") == "pass"
    assert "Basic" in run.checks["registry_api"]["detail"]
    cred = run.checks["credentials"]
    assert cred["status"] == "warn"
    assert f"no credentials for {auth_registry.address} in {bed.home}/.docker/config.json" \
        in cred["detail"]
    m = run.checks["manifest"]
    assert m["status"] == "fail" and "401" in m["detail"]
    assert "no credentials" in m["detail"]
    assert "image.auth_file" in m["hint"] and f"docker login {auth_registry.address}" in m["hint"]


def test_auth_registry_with_auth_file(bed: Bed, auth_registry: tb.Registry,
                                      pushed: tb.Pushed) -> None:
    user, password = next(iter(auth_registry.users.items()))
    ref = f"{auth_registry.address}/{path_of(pushed)}"
    good = bed.auth_file("good", auth_registry.address, user, password)
    app = bed.app("priv", ref, f'auth_file = "{good}"\n')
    run = bed.doctor(app)
    assert run.code == 0, run.out
    assert run.status("credentials") == "pass"
    assert f"image.auth_file {good} holds a user name and password" in \
        run.checks["credentials"]["detail"]
    assert run.status("manifest") == "pass" and run.status("platform") == "pass"
    _assert_secret_absent(run, password)
    human = bed.doctor(app, json_out=False, env={"SYSTEMD_LOG_LEVEL": "debug"})
    assert human.code == 0
    _assert_secret_absent(human, password)

    wrong = "Wr0ng-" + secrets.token_hex(6)
    bad = bed.auth_file("bad", auth_registry.address, user, wrong)
    app = bed.app("badpw", ref, f'auth_file = "{bad}"\n')
    for json_out in (True, False):
        run = bed.doctor(app, json_out=json_out)
        assert run.code == 1
        _assert_secret_absent(run, password, wrong)
    run = bed.doctor(app)
    assert "were rejected" in run.checks["manifest"]["detail"]
    assert str(bad) in run.checks["manifest"]["hint"]


def test_credentials_from_home_docker_config(bed: Bed, auth_registry: tb.Registry,
                                             pushed: tb.Pushed) -> None:
    user, password = next(iter(auth_registry.users.items()))
    (bed.home / ".docker").mkdir()
    shutil.copyfile(bed.auth_file("home", auth_registry.address, user, password),
                    bed.home / ".docker" / "config.json")
    ref = f"{auth_registry.address}/{path_of(pushed)}"
    run = bed.doctor(ref)
    assert run.code == 0, run.out
    assert f"{bed.home}/.docker/config.json holds" in run.checks["credentials"]["detail"]
    _assert_secret_absent(run, password)


def test_unreadable_auth_file(bed: Bed, registry: tb.Registry, pushed: tb.Pushed) -> None:
    (bed.root / "junk.json").write_text("{not json")
    app = bed.app("junk", pushed.ref, f'auth_file = "{bed.root / "junk.json"}"\n')
    run = bed.doctor(app)
    assert run.code == 1
    assert run.status("credentials") == "fail"
    assert "not valid JSON" in run.checks["credentials"]["detail"]
    assert run.status("manifest") == "skip"


# ---------------------------------------------------------------------------------------
# TLS on a test host (a network namespace): untrusted, then trusted through certs.d


def test_tls_untrusted_then_trusted(bed: Bed, tls_registry: tb.TlsRegistry,
                                    pushed: tb.Pushed) -> None:
    ref = f"{tls_registry.address}/{path_of(pushed)}"
    run = bed.doctor(ref)
    assert run.code == 1
    assert run.status("dns") == "pass" and run.status("tcp") == "pass"
    tls = run.checks["tls"]
    assert tls["status"] == "fail"
    assert "x509" in tls["detail"] and "unable to get local issuer certificate" in tls["detail"]
    assert "issued by pullunit test CA" in tls["detail"]
    assert f"{bed.certs_d}/{tls_registry.address}/ca.crt" in tls["hint"]
    assert_skipped_after(run, "tls")
    assert run.seconds < 10

    ca_dir = bed.certs_d / tls_registry.address
    ca_dir.mkdir()
    shutil.copyfile(tls_registry.ca_crt, ca_dir / "ca.crt")
    run = bed.doctor(ref)
    assert run.code == 0, run.out
    tls = run.checks["tls"]
    # verified; a warning only because the test bed's certificate lives two days
    assert tls["status"] == "warn"
    assert "renew the certificate" in tls["hint"] and "(2 days)" in tls["detail"]
    assert f"verified against {ca_dir}/ca.crt" in tls["detail"]
    assert "registry.pullunit.test" in tls["detail"] and tls_registry.ip in tls["detail"]
    assert run.status("registry_api") == "pass" and run.status("manifest") == "pass"
    assert run.checks["registry_api"]["detail"].startswith(f"GET https://{tls_registry.address}")


def test_tls_wrong_ca_in_certs_d(bed: Bed, tls_registry: tb.TlsRegistry, tmp_path: Path) -> None:
    # a CA that did not sign the registry's certificate
    ca, _, _ = make_ca_and_cert(tmp_path, "other.pullunit.test", "10.231.63.2")
    ca_dir = bed.certs_d / tls_registry.address
    ca_dir.mkdir()
    shutil.copyfile(ca, ca_dir / "ca.crt")
    run = bed.doctor(tls_registry.ref("team/app", "1"))
    assert run.status("tls") == "fail"
    assert f"{ca_dir}/ca.crt does not verify" in run.checks["tls"]["hint"]


# ---------------------------------------------------------------------------------------
# platforms


def test_wrong_platform_single_manifest(bed: Bed, registry: tb.Registry) -> None:
    p = tb.make_platform_image(registry.ref("team/foreign", f"1-{os.getpid()}"),
                                   arch=FOREIGN_ARCH)
    run = bed.doctor(p.ref)
    assert run.code == 1
    plat = run.checks["platform"]
    assert plat["status"] == "fail"
    assert f"single-platform image for linux/{FOREIGN_ARCH}" in plat["detail"]
    assert "the daemon's platform" in plat["detail"]
    assert "multi-arch" in plat["hint"]
    assert run.status("manifest") == "pass"

    # The same image is right for an app that asks for that platform.
    app = bed.app("foreign", p.ref, f'platform = "linux/{FOREIGN_ARCH}"\n')
    run = bed.doctor(app)
    assert run.code == 0, run.out
    assert run.results[0]["platform"] == f"linux/{FOREIGN_ARCH}"
    assert f"linux/{FOREIGN_ARCH} (image.platform) is offered" in run.checks["platform"]["detail"]


def test_wrong_platform_index(bed: Bed, registry: tb.Registry) -> None:
    p = tb.make_index_image(registry.ref("team/multi", f"1-{os.getpid()}"),
                                [("linux", FOREIGN_ARCH), ("linux", "riscv64")])
    run = bed.doctor(p.ref)
    assert run.code == 1
    plat = run.checks["platform"]
    assert plat["status"] == "fail"
    assert f"image index for linux/{FOREIGN_ARCH}, linux/riscv64" in plat["detail"]
    assert "manifest list" in run.checks["manifest"]["detail"]


# ---------------------------------------------------------------------------------------
# names: a dockerd whose resolver is a stub DNS in its own namespace (doctor runs in that
# namespace too, so its lookups go to the stub, never to the host's real resolver)


@pytest.fixture(scope="module")
def dns_dockerd_insecure() -> Iterator[tb.DnsDockerd]:
    """Like conftest's dns_dockerd, but the daemon has --insecure-registry for a name."""
    with tb.DnsDockerd(insecure_registries=(f"registry.pullunit.test:{NAMED_PORT}",)) as dd:
        yield dd


def test_unresolvable_host(bed: Bed, dns_dockerd: tb.DnsDockerd) -> None:
    run = bed.doctor("no-such-host.invalid:5000/team/app:1",
                     prefix=tuple(dns_dockerd.netns.exec_argv([])),
                     env={"DOCKER_HOST": f"unix://{dns_dockerd.socket}"})
    assert run.code == 1
    assert run.status("daemon") == "pass"
    dns = run.checks["dns"]
    assert dns["status"] == "fail"
    assert "lookup no-such-host.invalid" in dns["detail"]
    assert "resolv.conf" in dns["hint"]
    assert_skipped_after(run, "dns")
    assert run.seconds < 10


def test_name_resolves_and_insecure_registry_by_name(bed: Bed, dns_dockerd_insecure: tb.DnsDockerd,
                                                     registry: tb.Registry,
                                                     pushed: tb.Pushed) -> None:
    """registry.pullunit.test -> the host end of the veth, where a plain registry listens;
    the daemon lists it in --insecure-registry, so doctor (like dockerd) falls back to
    HTTP, and warns, since it is not loopback."""
    dd = dns_dockerd_insecure
    with tb.Registry("doctor-named", host=dd.host_ip, port=NAMED_PORT,
                     storage=registry.storage) as named:
        dd.set_hosts({"registry.pullunit.test": dd.host_ip})
        ref = f"registry.pullunit.test:{named.port}/{path_of(pushed)}"
        run = bed.doctor(ref, prefix=tuple(dd.netns.exec_argv([])),
                         env={"DOCKER_HOST": f"unix://{dd.socket}"})
    assert run.code == 0, run.out
    assert run.checks["dns"]["detail"] == \
        f"registry.pullunit.test resolves to {dd.host_ip}"
    tls = run.checks["tls"]
    assert tls["status"] == "warn"
    assert "insecure registries" in tls["detail"] and "plain HTTP" in tls["detail"]
    assert "6.4" in tls["hint"]
    assert "listed as an insecure registry" in run.checks["daemon_config"]["detail"]
    assert run.status("manifest") == "pass"


# ---------------------------------------------------------------------------------------
# daemon.json


def test_daemon_json(bed: Bed, pushed: tb.Pushed) -> None:
    (bed.root / "daemon.json").write_text('{"insecure-registries": ["reg.lan:5000",]}')
    run = bed.doctor(pushed.ref)
    assert run.code == 1
    assert run.status("daemon_config") == "fail"
    assert "not valid JSON" in run.checks["daemon_config"]["detail"]
    (bed.root / "daemon.json").write_text(json.dumps({
        "insecure-registries": ["reg.lan:5000"], "registry-mirrors": ["https://m.lan"]}))
    run = bed.doctor(pushed.ref)
    assert run.code == 0
    dc = run.checks["daemon_config"]
    assert dc["status"] == "warn"  # the running daemon does not have them: restart pending
    assert "reg.lan:5000" in dc["detail"] and "restart docker" in dc["hint"]


def test_daemon_down(bed: Bed, pushed: tb.Pushed, tmp_path: Path) -> None:
    run = bed.doctor(pushed.ref, env={"DOCKER_HOST": f"unix://{tmp_path}/none.sock"})
    assert run.code == 1
    assert run.status("daemon") == "fail"
    assert "systemctl start docker" in run.checks["daemon"]["hint"]
    assert run.status("local_image") == "skip"
    # the registry side is still diagnosed, against the host's platform
    assert run.status("manifest") == "pass" and run.status("platform") == "pass"
    assert "this host's platform" in run.checks["platform"]["detail"]


# ---------------------------------------------------------------------------------------
# A token-auth registry front (distribution's token auth needs a JWT-signing service the
# test bed does not run). It speaks the v2 Bearer flow on 127.0.0.1 only, and can lie
# about its clock.

USER, PASSWORD = "tokenuser", "T0ken-pa55-" + secrets.token_hex(4)
TOKEN = "tok-" + secrets.token_hex(16)


def _index(platforms: list[tuple[str, str]]) -> bytes:
    entries = [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 100,
                "digest": "sha256:" + hashlib.sha256(f"{o}/{a}".encode()).hexdigest(),
                "platform": {"os": o, "architecture": a}} for o, a in platforms]
    entries.append({"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 1,
                    "digest": "sha256:" + "0" * 64,
                    "platform": {"os": "unknown", "architecture": "unknown"}})
    return json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                       "manifests": entries}).encode()


class _TokenRegistry(ThreadingHTTPServer):
    daemon_threads = True
    skew = 0.0
    manifests = {
        "multi": _index([("linux", "amd64"), ("linux", "arm64")]),
        "armonly": _index([("linux", "arm64"), ("linux", "arm")]),
    }

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: _TokenRegistry

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def date_time_string(self, timestamp: float | None = None) -> str:
        return formatdate(time.time() + self.server.skew, usegmt=True)

    def _send(self, status: int, body: bytes = b"{}", headers: dict[str, str] | None = None,
              ) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        auth = self.headers.get("Authorization", "")
        challenge = {"WWW-Authenticate": f'Bearer realm="http://{self.server.address}/token",'
                                         'service="fake-registry"'}
        if self.path == "/v2/":
            self._send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', challenge)
        elif self.path.startswith("/token?"):
            want = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            ok_scope = "scope=repository%3Ateam%2Fapp%3Apull" in self.path
            if auth == want and ok_scope and "service=fake-registry" in self.path:
                self._send(200, json.dumps({"token": TOKEN, "expires_in": 300}).encode())
            else:
                self._send(401, b'{"details":"incorrect username or password"}')
        elif self.path.startswith("/v2/team/app/manifests/"):
            if auth != f"Bearer {TOKEN}":
                self._send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', challenge)
                return
            body = self.server.manifests.get(self.path.rsplit("/", 1)[1])
            if body is None:
                self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
                return
            self._send(200, body, {
                "Content-Type": "application/vnd.oci.image.index.v1+json",
                "Docker-Content-Digest": "sha256:" + hashlib.sha256(body).hexdigest()})
        else:
            self._send(404, b'{"errors":[{"code":"NAME_UNKNOWN"}]}')


@pytest.fixture
def token_registry() -> Iterator[_TokenRegistry]:
    srv = _TokenRegistry(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, name="token-registry", daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        t.join(5)


def test_bearer_token_flow(bed: Bed, token_registry: _TokenRegistry) -> None:
    reg = token_registry.address
    good = bed.auth_file("tok", reg, USER, PASSWORD)
    app = bed.app("tok", f"{reg}/team/app:multi", f'auth_file = "{good}"\n')
    run = bed.doctor(app)
    assert run.code == 0, run.out
    assert "Bearer authentication" in run.checks["registry_api"]["detail"]
    assert run.status("manifest") == "pass"
    assert "OCI image index" in run.checks["manifest"]["detail"]
    assert "linux/amd64, linux/arm64" in run.checks["platform"]["detail"]
    assert "unknown" not in run.checks["platform"]["detail"]  # attestations left out
    _assert_secret_absent(run, PASSWORD, TOKEN)
    human = bed.doctor(app, json_out=False)
    _assert_secret_absent(human, PASSWORD, TOKEN)

    run = bed.doctor(f"{reg}/team/app:multi")  # anonymous: the token service says no
    assert run.code == 1
    assert "refused an anonymous token" in run.checks["manifest"]["detail"]

    wrong = bed.auth_file("wrong", reg, USER, "nope-" + secrets.token_hex(4))
    run = bed.doctor(bed.app("wrong", f"{reg}/team/app:multi", f'auth_file = "{wrong}"\n'))
    assert run.code == 1
    assert "refused the credentials" in run.checks["manifest"]["detail"]

    run = bed.doctor(bed.app("arm", f"{reg}/team/app:armonly", f'auth_file = "{good}"\n'))
    assert run.code == 1 or os.uname().machine in ("aarch64", "armv7l")
    if os.uname().machine == "x86_64":
        assert run.status("platform") == "fail"
        assert "image index for linux/arm64, linux/arm" in run.checks["platform"]["detail"]


@pytest.mark.parametrize(("skew", "status"), [(0, "pass"), (120, "warn"), (-900, "fail")])
def test_clock_skew(bed: Bed, token_registry: _TokenRegistry, skew: float,
                    status: str) -> None:
    token_registry.skew = skew
    run = bed.doctor(f"{token_registry.address}/team/app:multi")
    clock = run.checks["clock"]
    assert clock["status"] == status, clock
    if skew:
        assert f" s {'ahead of' if skew > 0 else 'behind'} this host's" in clock["detail"]
        assert "timedatectl" in clock["hint"]


# ---------------------------------------------------------------------------------------
# Servers that accept and never answer, or trickle: every check has ONE overall limit
# (docs/doctor.md: 3 s), connect, handshake, request, status line, headers and body
# included, so doctor ends within about that limit times the checks that reach the server.

CHECK_LIMIT = 3.0  # regclient.TIMEOUT, as documented


class _Misbehaving(ThreadingHTTPServer):
    """mode "v2": GET /v2/ gets its status line, then one header byte per second;
    "manifest": /v2/ answers, the manifest trickles; "hole": every request is read and
    never answered."""

    daemon_threads = True

    def __init__(self, mode: str):
        super().__init__(("127.0.0.1", 0), _MisbehavingHandler)
        self.mode = mode
        self.stop = threading.Event()
        self.requests: list[str] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class _MisbehavingHandler(BaseHTTPRequestHandler):
    server: _Misbehaving
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        srv = self.server
        srv.requests.append(self.path)
        if srv.mode == "hole":
            srv.stop.wait(60)
            return
        if srv.mode == "v2" or "/manifests/" in self.path:
            self.wfile.write(b"HTTP/1.1 200 OK\r\n")
            for byte in b"Docker-Distribution-Api-Version: registry/2.0" * 100:
                if srv.stop.wait(1.0):
                    return
                try:
                    self.wfile.write(bytes([byte]))
                except OSError:  # doctor gave up and closed the connection
                    return
            return
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def misbehaving(request: pytest.FixtureRequest) -> Iterator[_Misbehaving]:
    srv = _Misbehaving(request.param)
    t = threading.Thread(target=srv.serve_forever, name="misbehaving", daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.stop.set()
        srv.shutdown()
        srv.server_close()
        t.join(5)


@pytest.mark.parametrize(("misbehaving", "failing", "touching"), [
    ("v2", "registry_api", ("tls", "registry_api")),
    ("manifest", "manifest", ("tls", "registry_api", "manifest")),
    ("hole", "registry_api", ("tls", "registry_api")),
], ids=["trickle-v2", "trickle-manifest", "black-hole"], indirect=["misbehaving"])
def test_trickling_or_silent_registry_is_bounded(bed: Bed, misbehaving: _Misbehaving,
                                                 failing: str, touching: tuple[str, ...]
                                                 ) -> None:
    bound = CHECK_LIMIT * len(touching) + 5  # + the CLI's start and the daemon checks
    run = bed.doctor(f"{misbehaving.address}/team/app:1", timeout=bound + 25)
    assert run.seconds < bound, run.seconds
    assert run.code == 1
    assert run.status("tcp") == "pass"
    check = run.checks[failing]
    assert check["status"] == "fail" and "timed out" in check["detail"], check
    assert check["hint"]
    assert run.status("platform") == "skip"
    assert misbehaving.requests  # it really was asked
    human = bed.doctor(f"{misbehaving.address}/team/app:1", json_out=False,
                       timeout=bound + 25)
    assert human.seconds < bound and human.code == 1


# ---------------------------------------------------------------------------------------
# secrets: proxy passwords in daemon.json (defect 3), references with secret-like words
# (defect 15)

PROXY_PASSWORD = "Px-" + secrets.token_hex(6)


def test_daemon_json_proxy_passwords_never_shown(bed: Bed, registry: tb.Registry,
                                                 pushed: tb.Pushed) -> None:
    forms = {
        "http-proxy": f"http://bob:a/b {PROXY_PASSWORD}@proxy.invalid:3128",
        "https-proxy": f"socks5://bob:p@{PROXY_PASSWORD}@proxy.invalid:1080",
        "ftp-proxy": f"bob:{PROXY_PASSWORD}@proxy.invalid:3128",
        "all-proxy": f"http://{PROXY_PASSWORD}@proxy.invalid:3128",
        "no-proxy": "localhost,127.0.0.1",
    }
    (bed.root / "daemon.json").write_text(json.dumps({"proxies": forms}))
    for json_out in (True, False):
        run = bed.doctor(pushed.ref, json_out=json_out)
        assert PROXY_PASSWORD not in run.out + run.err
        assert "bob" not in run.out + run.err
        assert "proxy.invalid:3128" in run.out
    run = bed.doctor(pushed.ref)
    dc = run.checks["daemon_config"]
    assert "'http-proxy': 'http://***@proxy.invalid:3128'" in dc["detail"], dc
    assert "'all-proxy': 'http://***@proxy.invalid:3128'" in dc["detail"], dc


@pytest.mark.parametrize("path", ["rt/secret:1.0", "team/token:v2", "auth/password:3"])
def test_reference_with_secret_words_keeps_its_tag(bed: Bed, registry: tb.Registry,
                                                   path: str) -> None:
    ref = registry.ref(*path.split(":"))
    run = bed.doctor(ref)
    assert run.status("reference") == "pass"
    assert run.checks["reference"]["detail"].startswith(f"{ref}: ")
    assert f"tag {path.split(':')[1]}" in run.checks["reference"]["detail"]
    m = run.checks["manifest"]
    assert m["status"] == "fail" and path.split(":")[0] in m["detail"]
    assert f"no tag {path.split(':')[1]}" in m["detail"] and "***" not in run.out


# ---------------------------------------------------------------------------------------
# platforms: doctor and the puller give the same answer (issue 12)


@pytest.mark.parametrize(("want", "arch", "variant"), [
    ("linux/arm64/v8", "arm64", None),
    ("linux/arm/v7", "arm", None),
    ("linux/aarch64", "arm64", None),
    ("linux/arm64", "arm64", "v8"),
], ids=["arm64-v8", "arm-v7", "aarch64", "arm64-image-v8"])
def test_doctor_and_puller_agree_on_platform(bed: Bed, registry: tb.Registry, want: str,
                                             arch: str, variant: str | None) -> None:
    tag = f"{want.replace('/', '-')}-{arch}-{variant or 'none'}-{os.getpid()}"
    ref = registry.ref("team/plat", tag)
    tb.make_platform_image(ref, "linux", arch, variant=variant)
    app = bed.app("plat", ref, f'platform = "{want}"\n')
    run = bed.doctor(app)
    assert run.status("platform") == "pass", run.checks["platform"]
    env = {**bed.env, "PULLUNIT_RUNTIME_DIR": str(bed.root / "run"),
           "PULLUNIT_STATE_DIR": str(bed.root / "state")}
    pull = subprocess.run([PULLUNIT, "pull", app, "--config-dir", str(bed.cfg), "--json"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert pull.returncode == 0, pull.stdout + pull.stderr
    assert json.loads(pull.stdout)["ready"] is True
    again = bed.doctor(app)  # the image is local now: the same verdict for it
    assert again.status("local_image") == "pass", again.checks["local_image"]
