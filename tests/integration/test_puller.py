"""`pullunit pull` against the real Docker engine and real registries (no mocks).

Every case runs the installed CLI as a subprocess, exactly as APP-pull.service does, and
asserts on its exit status, its --json outcome, the env/state files it leaves, and what the
registry or the nginx in front of it saw. Faults are real: stopped registries, htpasswd,
nginx 429 and stalled transfers, a wrong-platform manifest, a full data root, a stopped
engine, and SIGTERM.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pullbed import FAST, PULLUNIT, Bed, fresh, image_config

from tests.testbed import images, nginx
from tests.testbed.dockerd import DockerdProcess
from tests.testbed.registry import Registry

pytestmark = pytest.mark.integration



# --- success paths ------------------------------------------------------------------------

def test_cold_pull_writes_the_exact_digest(client: Any, registry: Registry, bed: Bed) -> None:
    p = fresh(client, registry)
    app = bed.app("cold", image_config(p.ref))
    r = bed.pull(app)
    assert r.code == 0, r.err
    assert r.out["source"] == "pulled" and r.out["attempts"] == 1
    assert r.out["image"] == p.pinned
    assert bed.env_file(app) == f"PULLUNIT_IMAGE={p.pinned}\n"
    st = bed.state(app)
    assert st["current"]["digest"] == p.digest
    assert st["history"][0]["image_id"] == client.images.get(p.ref).id
    assert not list((bed.root / "run").glob(".*")), "temp files left behind"


def test_warm_start_needs_no_registry(client: Any, registry: Registry, bed: Bed) -> None:
    """policy missing + image present: ready at once, with the registry unreachable."""
    p = fresh(client, registry)
    proxy = nginx.NginxProxy(registry, name="warm").start()
    try:
        ref = f"{proxy.address}/{p.ref.split('/', 1)[1]}"
        client.images.pull(ref)
        before = proxy.count(r"^/v2/")
        proxy.stop()  # the registry is gone for this host
        app = bed.app("warm", image_config(ref))
        r = bed.pull(app)
        assert r.code == 0, r.err
        assert r.out["source"] == "local" and r.out["attempts"] == 0
        assert r.out["image"].endswith(p.digest)
        assert proxy.count(r"^/v2/") == before
        assert r.seconds < 5
    finally:
        proxy.close()


# What a warm start may not import: it runs in every pull unit at every boot, and each of
# these is only for a pull, a failure, another command or another kind of engine.
NOT_ON_THE_WARM_PATH = (
    "docker", "requests", "urllib3", "jinja2", "pystemd", "tomli_w", "subprocess",
    "pullunit.dockerapi", "pullunit.credentials", "pullunit.archive", "pullunit.retry",
    "pullunit.backoff", "pullunit.hints", "pullunit.redact", "pullunit.pullstream",
    "pullunit.progress", "pullunit.render", "pullunit.systemd", "pullunit.doctor",
)
_WARM_PROBE = """
import gc, json, sys
from pullunit.cli import main
rc = main(sys.argv[1:])
json.dump({"rc": rc, "gc": gc.isenabled(), "modules": sorted(sys.modules)}, sys.stdout)
"""


def test_warm_start_imports_only_what_it_needs(client: Any, registry: Registry,
                                               bed: Bed) -> None:
    """The image is present (policy missing): `pullunit pull` imports neither docker-py nor
    anything of a pull or a failure, and leaves the collector running."""
    p = fresh(client, registry)
    app = bed.app("lean", image_config(p.ref))
    assert bed.pull(app).code == 0  # the image is this app's current one now
    proc = subprocess.run([sys.executable, "-c", _WARM_PROBE, "pull", "--config-dir",
                           str(bed.cfg), app], capture_output=True, text=True, env=bed.env,
                          timeout=60)
    out = json.loads(proc.stdout)
    assert out["rc"] == 0 and out["gc"], proc.stderr
    assert "ready:" in proc.stderr and "present locally" in proc.stderr, proc.stderr
    loaded = [m for m in out["modules"]
              if any(m == bad or m.startswith(bad + ".") for bad in NOT_ON_THE_WARM_PATH)]
    assert loaded == []


def test_pinned_digest_in_config(client: Any, registry: Registry, bed: Bed) -> None:
    p = fresh(client, registry)
    app = bed.app("pinned", image_config(p.ref + "@" + p.digest))
    r = bed.pull(app)
    assert r.code == 0, r.err
    assert bed.env_file(app) == f"PULLUNIT_IMAGE={p.pinned}\n"


def test_registry_down_then_started_mid_backoff(client: Any, bed: Bed,
                                                tmp_path: Path) -> None:
    with Registry("late", storage=tmp_path / "st") as reg:
        p = images.push_new_digest(client, reg.ref("team/late", "1"))
        client.images.remove(p.ref, force=True)
        reg.stop()
        app = bed.app("late", image_config(p.ref, FAST))
        proc = bed.start_pull(app)
        time.sleep(2.5)
        assert proc.poll() is None, "gave up while the registry was down"
        reg.start()
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    result = json.loads(out)
    assert result["attempts"] >= 3
    assert "(unreachable)" in err and "fix:" in err
    assert result["image"] == p.pinned


def test_auth_registry(client: Any, registry: Registry, bed: Bed, tmp_path: Path) -> None:
    """No credentials and wrong ones: 77 with a fix naming the config file; the right
    auth_file: pulled. The password never shows up in any output."""
    password = "s3cret-Pa55word-xyz"
    with Registry("auth", users={"alice": password}, storage=registry.storage) as auth:
        p = fresh(client, registry, "team/private")
        ref = f"{auth.address}/{p.ref.split('/', 1)[1]}"
        app = bed.app("priv", image_config(ref))
        r = bed.pull(app)
        assert r.code == 77, r.err
        assert "(denied)" in r.err and r.out["attempts"] == 1
        assert f"no credentials for {auth.address} in {bed.home}/.docker/config.json" in r.err

        def auth_file(user: str, pw: str) -> Path:
            import base64
            f = tmp_path / f"auth-{user}.json"
            token = base64.b64encode(f"{user}:{pw}".encode()).decode()
            f.write_text(json.dumps({"auths": {auth.address: {"auth": token}}}))
            return f

        wrong = auth_file("alice", "not-the-password")
        bed.app("priv", image_config(ref, f'auth_file = "{wrong}"\n'))
        r = bed.pull(app)
        assert r.code == 77, r.err
        assert "were rejected" in r.err and str(wrong) in r.err

        right = auth_file("alice", password)
        bed.app("priv", image_config(ref, f'auth_file = "{right}"\n'))
        r = bed.pull(app)
        assert r.code == 0, r.err
        assert r.out["image"].endswith(p.digest)
        for text in (r.err, json.dumps(r.out), (bed.root / "state" / "priv.json").read_text()):
            assert password not in text


def test_verify_command(client: Any, registry: Registry, bed: Bed) -> None:
    p = fresh(client, registry)
    app = bed.app("verify", image_config(p.ref, 'verify = ["/bin/sh", "-c", "exit 3"]\n'))
    r = bed.pull(app)
    assert r.code == 65, r.err
    assert "(verify_failed)" in r.err and "exited 3" in r.err
    assert bed.env_file(app) is None
    bed.app("verify", image_config(p.ref, 'verify = ["/bin/sh", "-c", "test -f /serial"]\n'))
    r = bed.pull(app)
    assert r.code == 0, r.err
    assert r.out["image_id"] in bed.state(app)["verified"]
    # verify leaves no container behind
    assert not client.containers.list(all=True, filters={"label": "pullunit.verify"})


# --- permanent failures: fail fast, one attempt ---------------------------------------------

def test_manifest_unknown_fails_fast(registry: Registry, bed: Bed) -> None:
    ref = registry.ref("team/app", "no-such-tag")
    before = registry.count(r"/manifests/no-such-tag$")
    app = bed.app("missing", image_config(ref, FAST))
    r = bed.pull(app)
    assert r.code == 66, r.err
    assert r.out == {"app": "missing", "ready": False, "class": "not_found",
                     "message": r.out["message"], "exit_code": 66, "attempts": 1}
    assert "manifest unknown" in r.out["message"]
    assert "fix: check that" in r.err
    assert r.seconds < 10
    time.sleep(1.5)  # nothing retries later either
    assert registry.count(r"/manifests/no-such-tag$") - before <= 2  # HEAD + GET at most
    assert bed.env_file(app) is None


def test_wrong_platform(registry: Registry, bed: Bed) -> None:
    ref = registry.ref("team/arm", f"only-arm64-{os.getpid()}")
    images.make_platform_image(ref, "linux", "arm64")
    app = bed.app("arm", image_config(ref))
    r = bed.pull(app)
    assert r.code == 65, r.err
    assert r.out["class"] == "platform"
    assert "linux/arm64" in r.out["message"] and "is required" in r.out["message"]
    assert bed.env_file(app) is None


# --- transient failures: bounded, polite retries -------------------------------------------

def test_connection_refused_until_deadline(bed: Bed) -> None:
    from tests.testbed._util import free_port

    app = bed.app("refused", image_config(f"127.0.0.1:{free_port()}/team/app:1",
                                          FAST + 'deadline = "3s"\n'))
    r = bed.pull(app)
    assert r.code == 69, r.err
    assert r.out["class"] == "unreachable" and r.out["attempts"] >= 3
    assert "connection refused" in r.out["message"]
    assert 2.0 < r.seconds < 15


def test_unresolvable_host_is_retried_then_68(bed: Bed, dns_dockerd: Any) -> None:
    """The engine resolves through the test bed's stub DNS (NXDOMAIN for everything), so
    no query leaves the machine."""
    app = bed.app("dns", image_config("no-such-host.invalid:5000/team/app:1",
                                      FAST + 'deadline = "2s"\n'))
    r = bed.pull(app, env={"DOCKER_HOST": f"unix://{dns_dockerd.socket}"})
    assert r.code == 68, r.err
    assert r.out["class"] == "dns" and r.out["attempts"] >= 2
    assert "no such host" in r.out["message"]


@pytest.mark.parametrize("html", [False, True], ids=["json-body", "html-body"])
def test_429_waits_at_least_rate_limit_delay(client: Any, registry: Registry, bed: Bed,
                                             html: bool) -> None:
    p = fresh(client, registry)
    proxy = nginx.rate_limited(registry, html=html, name=f"rl{int(html)}").start()
    try:
        ref = f"{proxy.address}/{p.ref.split('/', 1)[1]}"
        app = bed.app("rl", image_config(ref, FAST + 'rate_limit_delay = "2s"\n'
                                         'deadline = "4.5s"\n'))
        r = bed.pull(app)
        assert r.code == 69, r.err
        assert r.out["class"] == "rate_limited"
        hits = [e.time for e in proxy.requests() if "/manifests/" in e.path and e.status == 429]
        assert len(hits) >= 2
        gaps = [b - a for a, b in itertools.pairwise(hits) if b - a > 0.5]
        # jitter=none would retry after 0.3 s; the 429 floor makes it 2 s
        assert gaps and min(gaps) >= 1.9, hits
    finally:
        proxy.close()


def test_stalled_transfer_is_aborted_and_retried(registry: Registry, bed: Bed) -> None:
    ref = registry.ref("team/stall", f"s{os.getpid()}")
    images.make_big_image(ref, total_mb=4, layers=1)
    proxy = nginx.stalled(registry, after_bytes=256 * 1024, name="stall").start()
    try:
        via = f"{proxy.address}/{ref.split('/', 1)[1]}"
        app = bed.app("stall", image_config(via, FAST + 'stall_timeout = "2s"\n'
                                            'deadline = "7s"\n'))
        r = bed.pull(app)
        assert r.code == 69, r.err
        assert r.out["class"] == "stalled" and r.out["attempts"] >= 2
        assert "made no progress for 2.0s" in r.err
        assert proxy.count(r"/blobs/sha256:") >= 2  # the blob was requested again
        assert r.seconds < 30
    finally:
        proxy.close()


def test_daemon_down_then_started(client: Any, registry: Registry, bed: Bed) -> None:
    p = fresh(client, registry)
    with DockerdProcess("pulldown") as d:
        d.stop()
        app = bed.app("daemon", image_config(p.ref, FAST))
        proc = bed.start_pull(app, env={"DOCKER_HOST": f"unix://{d.socket}"})
        time.sleep(2.5)
        assert proc.poll() is None
        d.start()
        out, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    assert "(daemon_unavailable)" in err
    assert json.loads(out)["image"] == p.pinned


def test_disk_full_is_73(registry: Registry, bed: Bed) -> None:
    ref = registry.ref("team/big", f"b{os.getpid()}")
    images.make_big_image(ref, total_mb=48, layers=2)
    with DockerdProcess("small", data_root_size_mb=24) as d:
        app = bed.app("full", image_config(ref, FAST))
        r = bed.pull(app, env={"DOCKER_HOST": f"unix://{d.socket}"})
    assert r.code == 73, r.err
    assert r.out["class"] == "disk_full" and r.out["attempts"] == 1
    assert "no space left on device" in r.out["message"]
    assert "is full" in r.err  # the fix names the data root


# --- keeping the app running ---------------------------------------------------------------

def test_policy_always_falls_back_after_refresh_timeout(client: Any, bed: Bed,
                                                        tmp_path: Path) -> None:
    with Registry("always", storage=tmp_path / "st") as reg:
        p = images.push_new_digest(client, reg.ref("team/always", "1"))
        app = bed.app("always", image_config(p.ref, 'policy = "always"\n' + FAST
                                             + 'refresh_timeout = "2s"\n'))
        assert bed.pull(app).code == 0
        reg.stop()
        r = bed.pull(app)
    assert r.code == 0, r.err
    assert r.out["source"] == "fallback" and r.out["image"] == p.pinned
    assert 2.0 <= r.seconds < 10
    assert "WARNING: running on the local image" in r.err
    assert bed.state(app)["last_failure"]["cls"] == "unreachable"


def test_archive_brings_back_a_pruned_image(client: Any, bed: Bed, tmp_path: Path) -> None:
    """[pull] archive: the image is gone locally and the registry is down: the puller
    loads the newest good archive and the app can start."""
    with Registry("arch", storage=tmp_path / "st") as reg:
        p = images.push_new_digest(client, reg.ref("team/arch", "1"))
        client.images.remove(p.ref, force=True)
        app = bed.app("arch", image_config(p.ref, FAST + 'archive = true\n'
                                           'refresh_timeout = "1s"\n'))
        r = bed.pull(app)
        assert r.code == 0, r.err
        image_id = r.out["image_id"]
        archives = list((bed.root / "state" / "cache" / "arch").glob("*.tar.gz"))
        assert [a.name for a in archives] == [image_id.removeprefix("sha256:") + ".tar.gz"]
        client.images.remove(image_id, force=True)
        reg.stop()
        r = bed.pull(app)
    assert r.code == 0, r.err
    assert r.out["source"] == "fallback" and r.out["image_id"] == image_id
    assert "loaded" in r.err and "rollback archive" in r.err
    assert client.images.get(image_id).id == image_id


def test_sigterm_during_backoff(bed: Bed) -> None:
    from tests.testbed._util import free_port

    app = bed.app("term", image_config(f"127.0.0.1:{free_port()}/team/app:1",
                                       '[pull]\ninitial_delay = "30s"\njitter = "none"\n'))
    proc = bed.start_pull(app)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "retrying in" in line:
            break
    t = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(5)
    assert time.monotonic() - t < 1.0
    assert proc.returncode == 143
    assert bed.env_file(app) is None
    state_dir = bed.root / "state"
    for f in state_dir.iterdir():
        assert not f.name.startswith("."), f"partial file {f}"
        if f.suffix == ".json":
            json.loads(f.read_text())


def test_untrusted_tls_is_76_then_trusted_ca_pulls(client: Any, registry: Registry, bed: Bed,
                                                    tls_registry: Any) -> None:
    """A registry on a network-namespace test host (dockerd checks TLS there, unlike on
    loopback): x509 fails fast with the certs.d fix; with its CA in certs.d it pulls."""
    p = fresh(client, registry, "team/tls")
    ref = f"{tls_registry.address}/{p.ref.split('/', 1)[1]}"
    app = bed.app("tls", image_config(ref, FAST))
    r = bed.pull(app)
    assert r.code == 76, r.err
    assert r.out["class"] == "tls" and r.out["attempts"] == 1
    assert "x509: certificate signed by unknown authority" in r.out["message"]
    assert f"/etc/docker/certs.d/{tls_registry.address}/ca.crt" in r.err
    tls_registry.trust()
    try:
        r = bed.pull(app)
    finally:
        tls_registry.untrust()
    assert r.code == 0, r.err
    repo = p.ref.split("/", 1)[1].split(":")[0]
    assert r.out["image"] == f"{tls_registry.address}/{repo}@{p.digest}"


def test_progress_bar_only_on_a_terminal(client: Any, registry: Registry, bed: Bed) -> None:
    import pty

    ref = registry.ref("team/progress", f"p{os.getpid()}")
    images.make_big_image(ref, total_mb=40, layers=2)
    app = bed.app("progress", image_config(ref))
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(PULLUNIT, [PULLUNIT, *bed.cmd("pull", app)[1:]], bed.env)
    chunks = []
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    _, status = os.waitpid(pid, 0)
    out = b"".join(chunks).decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, out
    assert "\r[#" in out and " MB / " in out and "%)" in out
    client.images.remove(ref, force=True)
    r = bed.pull(app)  # stderr is a pipe: no bar, no carriage returns
    assert r.code == 0 and "\r" not in r.err and "[#" not in r.err
