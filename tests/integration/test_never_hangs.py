"""Every wait of a pull is bounded by the puller's own clocks (issue 14, defects 1, 2, 14).

Real dockerd, real registries, and tests/testbed/faultfront.py in front of them: a server
that accepts the manifest (or blob) request and never answers, one that trickles its
response headers a byte at a time, a SIGSTOPped registry process, and credential helpers
that hang, fail or work. Each case runs the pullunit CLI as APP-pull.service does, under a
subprocess timeout a little past the documented bound, so a hang fails the test instead
of hanging the suite.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pullbed import Bed, fresh, image_config

from tests.testbed import _util
from tests.testbed.faultfront import FaultFront
from tests.testbed.registry import Registry

pytestmark = pytest.mark.integration

# Retries fast, gives up fast: the bound under test is deadline + SLACK.
QUICK = ('[pull]\ninitial_delay = "300ms"\nmax_delay = "1s"\njitter = "none"\n'
         'stall_timeout = "2s"\ndeadline = "6s"\n')
DEADLINE = 6.0
# After a stall: the ping that tells a silent registry from a silent daemon (<= 2 s),
# process start-up, and a loaded 2-core machine.
SLACK = 5.0


@pytest.fixture
def make_front() -> Iterator[Callable[..., FaultFront]]:
    """make_front(upstream, mode, on=..., every=...) -> a started FaultFront, closed
    (process stopped, work dir removed, record dropped) after the test."""
    made: list[FaultFront] = []

    def make(upstream: Registry | str, mode: str = "pass", **kw: Any) -> FaultFront:
        front = FaultFront(upstream, mode, name=f"t{len(made)}", **kw)
        made.append(front)
        return front.start()

    yield make
    for front in made:
        front.close()
    ids = {f.rec.id for f in made}
    assert not [r for r in _util.load_records() if r.id in ids], "fault front left behind"


def _bounded(bed: Bed, app: str, bound: float, **kw: Any) -> Any:
    """pullunit pull, failing the test (not hanging it) when it outlives `bound`."""
    try:
        return bed.pull(app, timeout=bound + 10, **kw)
    except subprocess.TimeoutExpired:
        pytest.fail(f"pullunit pull {app} still running {bound + 10:.0f}s later "
                    f"(bound {bound:.0f}s): it hangs")


# --- defect 1: a registry that accepts and never answers --------------------------------

@pytest.mark.parametrize("mode", ["blackhole", "trickle"])
def test_silent_manifest_is_bounded_by_stall_timeout_and_deadline(
        client: Any, registry: Registry, bed: Bed, make_front: Any, mode: str) -> None:
    p = fresh(client, registry)
    front = make_front(registry, mode, on=("manifests",), every=1.0)
    app = bed.app("silent", image_config(front.via(p.ref), QUICK))
    r = _bounded(bed, app, DEADLINE + SLACK)
    assert r.code == 69, r.err
    assert r.out["class"] == "stalled" and r.out["attempts"] >= 2, r.out
    assert r.seconds < DEADLINE + SLACK
    assert f"{front.address} did not answer" in r.err
    assert "fix:" in r.err and f"curl -v http://{front.address}/v2/" in r.err
    assert front.count(r"/manifests/", mode=mode) >= 2  # it really retried
    # The pulls were dropped, not left running in the daemon, and nothing holds the app:
    front.set_mode("pass")
    r = _bounded(bed, app, 20)
    assert r.code == 0, r.err
    assert r.out["image"] == front.via(p.pinned) and r.seconds < 20


def test_silent_blob_is_a_stall(client: Any, registry: Registry, bed: Bed,
                                make_front: Any) -> None:
    """The manifest comes, the layer never does: a stall after stall_timeout."""
    p = fresh(client, registry)
    front = make_front(registry, "blackhole", on=("blobs",))
    app = bed.app("blob", image_config(front.via(p.ref), QUICK))
    r = _bounded(bed, app, DEADLINE + SLACK)
    assert r.code == 69, r.err
    assert r.out["class"] == "stalled", r.out
    assert "made no progress for 2.0s" in r.err
    assert r.seconds < DEADLINE + SLACK


def test_policy_always_falls_back_at_refresh_timeout_while_the_registry_hangs(
        client: Any, registry: Registry, bed: Bed, make_front: Any) -> None:
    """stall_timeout is a minute here: refresh_timeout alone must end the attempt."""
    p = fresh(client, registry)
    front = make_front(registry, "pass")
    app = bed.app("always", image_config(front.via(p.ref), 'policy = "always"\n'
                                         '[pull]\nrefresh_timeout = "2s"\n'
                                         'stall_timeout = "60s"\n'))
    assert _bounded(bed, app, 30).code == 0
    front.set_mode("blackhole")
    r = _bounded(bed, app, 2 + SLACK)
    assert r.code == 0, r.err
    assert r.out["source"] == "fallback" and r.out["image"] == front.via(p.pinned)
    assert 2.0 <= r.seconds < 2 + SLACK
    assert "WARNING: running on the local image" in r.err
    assert "pull.refresh_timeout (2.0s) passed during attempt 1" in r.err


def test_sigstopped_registry(client: Any, registry: Registry, bed: Bed,
                             make_registry: Any) -> None:
    """The registry process itself is stopped: the kernel still accepts connections."""
    reg = make_registry("stopped", storage=registry.storage)
    p = fresh(client, reg)
    assert reg.proc is not None
    os.kill(reg.proc.pid, signal.SIGSTOP)
    try:
        app = bed.app("stopped", image_config(p.ref, QUICK))
        r = _bounded(bed, app, DEADLINE + SLACK)
    finally:
        os.kill(reg.proc.pid, signal.SIGCONT)
    assert r.code == 69, r.err
    assert r.out["class"] == "stalled" and r.out["attempts"] >= 2, r.out
    assert r.seconds < DEADLINE + SLACK
    r = _bounded(bed, app, 20)
    assert r.code == 0, r.err


def test_sigstopped_daemon_is_daemon_unavailable(client: Any, registry: Registry, bed: Bed,
                                                 spare_dockerd: Any) -> None:
    """The engine itself stops answering: every call to it has a bound of its own (at
    most engine.CALL_TIMEOUT past the deadline), and the class says it is the daemon."""
    from pullunit.enginehttp import CALL_TIMEOUT

    p = fresh(client, registry)
    assert spare_dockerd.pid is not None
    os.kill(spare_dockerd.pid, signal.SIGSTOP)
    try:
        app = bed.app("stopped", image_config(p.ref, QUICK))
        r = _bounded(bed, app, DEADLINE + CALL_TIMEOUT + SLACK,
                     env={"DOCKER_HOST": f"unix://{spare_dockerd.socket}"})
    finally:
        os.kill(spare_dockerd.pid, signal.SIGCONT)
    assert r.code == 69, r.err
    assert r.out["class"] == "daemon_unavailable", r.out
    assert "no complete answer within 5s" in r.out["message"]
    assert r.seconds < DEADLINE + CALL_TIMEOUT + SLACK


# --- both engine clients, in-process: silence comes back to the caller -----------------

@pytest.fixture(params=["lite", "sdk"])
def engine(request: pytest.FixtureRequest, docker_sock: str) -> Iterator[Any]:
    """The stdlib client, and the docker-py one (what ssh:// engines get)."""
    from pullunit import dockerapi
    from pullunit.engine import LiteEngine

    e = LiteEngine() if request.param == "lite" else dockerapi.SdkEngine.connect()
    yield e
    e.close()


def test_engine_pull_of_a_silent_registry_hands_back_silence_and_drops_at_once(
        engine: Any, client: Any, registry: Registry, make_front: Any) -> None:
    from pullunit.reference import parse_reference

    p = fresh(client, registry)
    front = make_front(registry, "blackhole", on=("manifests",))
    ref = parse_reference(front.via(p.ref))
    t = time.monotonic()
    stream = engine.pull(ref, None, None, silence_limit=10)
    messages = stream.messages(0.2)
    assert next(messages) is None and next(messages) is None
    assert time.monotonic() - t < 3, "the caller did not get control back"
    assert not stream.answered
    t = time.monotonic()
    stream.abort()
    assert time.monotonic() - t < 1.5
    front.set_mode("pass")
    stream = engine.pull(ref, None, None, silence_limit=10)
    end = time.monotonic() + 30
    try:
        for _ in stream.messages(0.2):
            assert time.monotonic() < end, "the pull did not finish"
    finally:
        stream.abort()
    assert stream.answered
    image = engine.inspect(front.via(p.pinned))
    assert image is not None and image.digest_for(ref) == p.digest


def test_engine_remote_digest_of_a_silent_registry_is_bounded(
        engine: Any, client: Any, registry: Registry, make_front: Any) -> None:
    from pullunit.classify import FailureClass, PullFailed
    from pullunit.reference import parse_reference

    p = fresh(client, registry)
    front = make_front(registry, "pass", on=("manifests",))
    ref = parse_reference(front.via(p.ref))
    assert engine.remote_digest(ref, None, 10) == p.digest
    front.set_mode("blackhole")
    t = time.monotonic()
    with pytest.raises(PullFailed) as e:
        engine.remote_digest(ref, None, 2)
    assert time.monotonic() - t < 2 + SLACK
    assert e.value.failure.cls is FailureClass.STALLED
    assert f"{front.address} did not answer" in e.value.failure.message


# --- defect 14: what a cut attempt and an odd 404 are -----------------------------------

def test_deadline_cutting_an_attempt_after_a_503_reports_the_503(
        client: Any, registry: Registry, bed: Bed, make_front: Any) -> None:
    """Attempt 1: 503. Attempt 2: the registry hangs until the deadline. The outcome is
    the 503 (server_error) and that the deadline passed, not a "stall" with an MTU fix."""
    p = fresh(client, registry)
    front = make_front(registry, "status503", on=("manifests",))
    app = bed.app("cut", image_config(front.via(p.ref), '[pull]\ninitial_delay = "2s"\n'
                                      'jitter = "none"\ndeadline = "5s"\n'))
    proc = bed.start_pull(app)
    try:
        _util.wait_for(lambda: front.count(r"/manifests/", mode="status503"), 10, 0.05,
                       "the first 503")
        front.set_mode("blackhole")
        out, err = proc.communicate(timeout=5 + SLACK + 10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("the deadline did not end an attempt that hangs")
    assert proc.returncode == 69, err
    result = json.loads(out)
    assert result["class"] == "server_error" and result["attempts"] == 2, result
    assert "503" in result["message"]
    assert "pull.deadline (5.0s) passed during attempt 2" in result["message"]
    assert "MTU" not in err


@pytest.mark.parametrize("mode", ["html404", "empty404"])
def test_404_without_a_json_body_is_not_found(client: Any, registry: Registry, bed: Bed,
                                              make_front: Any, mode: str) -> None:
    p = fresh(client, registry)
    front = make_front(registry, mode, on=("manifests",))
    app = bed.app("html404", image_config(front.via(p.ref), QUICK))
    r = _bounded(bed, app, DEADLINE + SLACK)
    assert r.code == 66, r.err
    assert r.out["class"] == "not_found" and r.out["attempts"] == 1, r.out
    assert "error parsing HTTP 404 response body" in r.out["message"]


def test_pin_against_a_silent_registry_is_bounded_and_says_so(
        client: Any, registry: Registry, bed: Bed, make_front: Any) -> None:
    p = fresh(client, registry)
    front = make_front(registry, "blackhole", on=("manifests",))
    bed.app("pinned", image_config(front.via(p.ref), '[pull]\nstall_timeout = "2s"\n'))
    t = time.monotonic()
    try:
        proc = subprocess.run(bed.cmd("pin", "pinned"), capture_output=True, text=True,
                              env=bed.env, timeout=2 + SLACK + 10)
    except subprocess.TimeoutExpired:
        pytest.fail("pin waits on a registry that never answers")
    seconds = time.monotonic() - t
    assert proc.returncode == 69, proc.stderr
    assert "(stalled)" in proc.stderr and f"{front.address} did not answer" in proc.stderr
    assert "daemon_unavailable" not in proc.stderr
    assert f"fix: {front.address} (or a proxy in front of it)" in proc.stderr
    assert seconds < 2 + SLACK
    assert not (bed.cfg / "pinned.lock.toml").exists()


# --- defect 2: credential helpers -------------------------------------------------------

@pytest.fixture
def helpers(tmp_path: Path) -> Iterator[Path]:
    """A directory for docker-credential-* scripts, put first on PATH; any pid a script
    writes to *.pid there must be gone when the test ends."""
    d = tmp_path / "helpers"
    d.mkdir()
    yield d
    for f in d.glob("*.pid"):
        pid = int(f.read_text().split()[0])
        if _util.pid_alive(pid) and str(d) in " ".join(_util.cmdline(pid)):
            os.kill(pid, signal.SIGKILL)  # ours: the test fails below, but cleans up


def _helper(d: Path, name: str, body: str) -> None:
    path = d / f"docker-credential-{name}"
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


def _helper_env(bed: Bed, d: Path, config: dict[str, Any]) -> dict[str, str]:
    (bed.home / ".docker").mkdir(exist_ok=True)
    (bed.home / ".docker" / "config.json").write_text(json.dumps(config))
    return {"PATH": f"{d}:{os.environ.get('PATH', '/usr/bin:/bin')}"}


def test_credential_helper_that_never_answers(client: Any, registry: Registry, bed: Bed,
                                              helpers: Path) -> None:
    """Bounded by the deadline, `credentials` (78) naming the helper and the config key
    that names it, and the helper and what it started are gone afterwards."""
    p = fresh(client, registry)
    # The script and a child of its own write their pids; both would run forever. (The
    # child's loop, not one long sleep: that would outlive a failed test as an orphan.)
    _helper(helpers, "hangs", f'echo $$ > {helpers}/helper.pid\n'
                              f"sh -c 'while :; do sleep 1; done' {helpers} &\n"
                              f'echo $! > {helpers}/child.pid\nwait\n')
    env = _helper_env(bed, helpers, {"credHelpers": {registry.address: "hangs"}})
    app = bed.app("hangs", image_config(p.ref, '[pull]\ndeadline = "3s"\n'))
    asked = registry.count(rf"/manifests/{p.ref.rsplit(':', 1)[1]}$")
    r = _bounded(bed, app, 3 + SLACK, env=env)
    assert r.code == 78, r.err
    assert r.out["class"] == "credentials" and r.out["attempts"] == 1, r.out
    assert "docker-credential-hangs" in r.out["message"] and "did not answer" in r.out["message"]
    config = bed.home / ".docker" / "config.json"
    assert (f"fix: this host's credential helper docker-credential-hangs (credHelpers"
            f"['{registry.address}'] in {config}) must answer without a prompt") in r.err
    assert "access denied" not in r.err and "docker login" not in r.err
    # the registry was never asked (no anonymous pull that would end in "denied")
    assert registry.count(rf"/manifests/{p.ref.rsplit(':', 1)[1]}$") == asked
    assert r.seconds < 3 + SLACK
    pids = [int((helpers / f).read_text()) for f in ("helper.pid", "child.pid")]
    _util.wait_for(lambda: not any(_util.pid_alive(pid) for pid in pids), 5, 0.1,
                   "the credential helper and its child to be gone")


@pytest.mark.parametrize("kind", ["fails", "exits1", "missing", "garbage"])
def test_credential_helper_that_fails_is_a_credentials_error_naming_it(
        client: Any, registry: Registry, bed: Bed, helpers: Path, kind: str) -> None:
    """Issue 10: a failing helper is this host's configuration (78, `credentials`, the
    helper and the config key that names it), not the registry's "access denied" (77)."""
    p = fresh(client, registry)
    _helper(helpers, "fails", "echo 'the keyring is locked' >&2\nexit 3\n")
    _helper(helpers, "exits1", "echo 'error getting credentials - err: exit status 1' >&2\n"
                               "exit 1\n")
    _helper(helpers, "garbage", "echo 'not json'\n")
    name = {"missing": "nosuchhelper"}.get(kind, kind)
    env = _helper_env(bed, helpers, {"credsStore": name})
    app = bed.app("fails", image_config(p.ref, QUICK))
    r = _bounded(bed, app, DEADLINE + SLACK, env=env)
    assert r.code == 78, r.err
    assert r.out["class"] == "credentials" and r.out["attempts"] == 1, r.out
    assert f"docker-credential-{name}" in r.out["message"]
    assert {"fails": "exit status 3", "exits1": "exit status 1", "missing": "not installed",
            "garbage": "not {\"Username\""}[kind] in r.out["message"]
    config = bed.home / ".docker" / "config.json"
    assert (f"fix: this host's credential helper docker-credential-{name} (credsStore in "
            f"{config})") in r.err
    assert "access denied" not in r.err
    st = bed.state(app)
    assert st["last_failure"]["cls"] == "credentials", st["last_failure"]


def test_credential_helper_that_works(client: Any, registry: Registry, auth_registry: Registry,
                                      bed: Bed, helpers: Path) -> None:
    """The helper gets the registry on stdin and its answer reaches the daemon as
    X-Registry-Auth; no anonymous pull, and the secret is shown nowhere."""
    from conftest import AUTH_PASSWORD, AUTH_USER

    p = fresh(client, registry, "team/private")
    ref = f"{auth_registry.address}/{p.ref.split('/', 1)[1]}"
    secret = json.dumps({"ServerURL": auth_registry.address, "Username": AUTH_USER,
                         "Secret": AUTH_PASSWORD})
    _helper(helpers, "works", f'read server\necho "$server" > {helpers}/asked\n'
                              f"echo '{secret}'\n")
    env = _helper_env(bed, helpers, {"auths": {auth_registry.address: {}},
                                     "credHelpers": {auth_registry.address: "works"}})
    app = bed.app("works", image_config(ref, QUICK))
    r = _bounded(bed, app, DEADLINE + SLACK, env=env)
    assert r.code == 0, r.err
    assert r.out["image"].endswith(p.digest)
    assert (helpers / "asked").read_text().strip() == auth_registry.address
    assert auth_registry.count(r"/manifests/", method="GET") >= 1
    for text in (r.err, json.dumps(r.out), (bed.root / "state" / "works.json").read_text()):
        assert AUTH_PASSWORD not in text


def test_credential_helper_without_an_entry_pulls_with_the_config_auths(
        client: Any, registry: Registry, auth_registry: Registry, bed: Bed,
        helpers: Path) -> None:
    """'credentials not found' from the store is not an error: the auths entry is used."""
    from conftest import AUTH_PASSWORD, AUTH_USER

    p = fresh(client, registry, "team/private")
    ref = f"{auth_registry.address}/{p.ref.split('/', 1)[1]}"
    _helper(helpers, "empty", "echo 'credentials not found in native keychain'\nexit 1\n")
    token = base64.b64encode(f"{AUTH_USER}:{AUTH_PASSWORD}".encode()).decode()
    env = _helper_env(bed, helpers, {"credsStore": "empty",
                                     "auths": {auth_registry.address: {"auth": token}}})
    app = bed.app("empty", image_config(ref, QUICK))
    r = _bounded(bed, app, DEADLINE + SLACK, env=env)
    assert r.code == 0, r.err


# --- issue 12: one error root -----------------------------------------------------------

@pytest.mark.parametrize("host", ["missing-socket", "closed-tcp-port"])
def test_rollback_without_a_daemon_is_daemon_unavailable(bed: Bed, host: str) -> None:
    docker_host = ("unix:///nonexistent/docker.sock" if host == "missing-socket"
                   else f"tcp://127.0.0.1:{_util.free_port()}")
    app = bed.app("rb", image_config("127.0.0.1:5999/team/app:1"))
    entries = [{"reference": f"127.0.0.1:5999/team/app@sha256:{c * 64}",
                "digest": f"sha256:{c * 64}", "image_id": f"sha256:{c * 64}",
                "first_ready": 1.0, "last_ready": 2.0, "image": "127.0.0.1:5999/team/app:1"}
               for c in "ab"]
    (bed.root / "state").mkdir()
    (bed.root / "state" / "rb.json").write_text(json.dumps({
        "schema": 1, "app": "rb", "image": "127.0.0.1:5999/team/app:1",
        "current": entries[0], "history": entries}))
    proc = subprocess.run(bed.cmd("rollback", app, "--no-restart"), capture_output=True,
                          text=True, env={**bed.env, "DOCKER_HOST": docker_host}, timeout=30)
    assert proc.returncode == 69, proc.stderr
    assert "daemon unavailable: cannot talk to the Docker daemon at " + docker_host \
        in proc.stderr
    assert "start the Docker engine" in proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr
