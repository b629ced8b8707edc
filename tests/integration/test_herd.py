"""Herd-safe recovery and the host-wide pull limit, with real parts: `pullunit pull`
processes (the CLI, as the pull units run it), the real dockerd, a real docker-registry
behind nginx, whose access log (millisecond times, request durations) says what reached
the registry and when.

- a mini-herd: 20 apps whose registry is stopped, then started again: during the outage
  only cheap requests (the /v2/ ping, manifests) reach it, never a blob; every app is
  ready after it is back, each layer pull after a probe of its own;
- max_parallel_pulls = 2: never more than 2 layer pulls at once;
- a puller killed with SIGKILL while it holds the only slot: the next one says in its
  STATUS= (a real NOTIFY_SOCKET) that it waits, and gets the slot;
- Retry-After on a 429, read by pullunit's own manifest HEAD, is honoured.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pullbed import Bed, image_config

from tests.testbed import _util, images
from tests.testbed.nginx import Fault, NginxProxy
from tests.testbed.registry import Registry

pytestmark = pytest.mark.integration

HERD = 20
OUTAGE = 15.0  # seconds the registry is down while the pullers run


def _repo(ref: str) -> str:
    return ref.split("/", 1)[1].rsplit(":", 1)[0]


def _log(proxy: NginxProxy) -> list[dict[str, Any]]:
    """nginx's access log (JSON lines) with the start of each request: time is its end."""
    out = []
    for line in proxy.access_log.read_text().splitlines():
        d = json.loads(line)
        d["start"] = float(d["time"]) - float(d["request_time"])
        out.append(d)
    return out


def _kind(uri: str) -> str:
    if not uri:  # a connection without a request: dockerd trying TLS first (400)
        return "tls"
    if "/blobs/sha256:" in uri:
        return "blob"
    if "/manifests/" in uri:
        return "manifest"
    return "ping" if uri.rstrip("/") == "/v2" else "other"


def _per_second(entries: list[dict[str, Any]], since: float) -> str:
    """A table of requests per second: TLS attempts, ping, manifest HEAD/GET, blob GET."""
    rows: dict[int, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for e in entries:
        kind = _kind(e["uri"])
        key = f"{kind} {e['method']}" if kind == "manifest" else kind
        rows[int(e["start"] - since)][key] += 1
    lines = ["second: tls, ping, manifest HEAD, manifest GET, blob"]
    for s in sorted(rows):
        c = rows[s]
        lines.append(f"{s:+4d}: {c['tls']:3d} {c['ping']:3d} {c['manifest HEAD']:3d} "
                     f"{c['manifest GET']:3d} {c['blob']:3d}")
    return "\n".join(lines)


def _wait_all(procs: dict[str, subprocess.Popen[str]], timeout: float) -> dict[str, Any]:
    end = time.monotonic() + timeout
    out: dict[str, Any] = {}
    try:
        for app, p in procs.items():
            stdout, stderr = p.communicate(timeout=max(0.1, end - time.monotonic()))
            assert "Traceback" not in stderr, stderr
            out[app] = (p.returncode, json.loads(stdout) if stdout.strip() else {}, stderr)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.communicate()
    return out


@pytest.fixture
def herd_bed(tmp_path: Path, docker_client: Any) -> Iterator[Bed]:
    """A Bed whose pulled images are removed afterwards (they are ours: pu-herd/...)."""
    bed = Bed(tmp_path)
    yield bed
    for img in docker_client.images.list():
        for tag in img.tags:
            if "/pu-herd/" in tag:
                docker_client.images.remove(tag, force=True)


def test_mini_herd_probes_cheaply_and_pulls_only_once_the_registry_is_back(
        make_registry: Callable[..., Registry], make_nginx: Callable[..., NginxProxy],
        herd_bed: Bed) -> None:
    reg = make_registry("pu-herd")
    front = make_nginx(reg, name="pu-herd")
    apps = {}
    for i in range(HERD):
        ref = reg.ref(f"pu-herd/app{i}", f"t{os.getpid()}")
        images.make_big_image(ref, total_mb=1, layers=1)
        apps[herd_bed.app(f"h{i}", image_config(
            front.ref(_repo(ref), ref.rsplit(":", 1)[1]),
            '[pull]\ninitial_delay = "1s"\nprobe_interval = "3s"\nstall_timeout = "15s"\n'
            'deadline = "2min"\n'))] = ref
    (herd_bed.cfg / "pullunit.toml").write_text("max_parallel_pulls = 0\n")
    reg.stop()  # nginx stays: it answers 502 for the stopped registry, and logs it
    started = time.time()
    procs = {app: herd_bed.start_pull(app) for app in apps}
    time.sleep(OUTAGE)
    assert all(p.poll() is None for p in procs.values()), "a puller ended while down"
    back = time.time()
    reg.start()
    results = _wait_all(procs, 90)
    entries = _log(front)
    table = _per_second(entries, back)
    for app, (code, out, err) in results.items():
        assert code == 0 and out["ready"] and out["source"] == "pulled", (app, err, table)
    during = [e for e in entries if started <= e["start"] < back]
    after = [e for e in entries if e["start"] >= back]
    # while down: cheap requests only, never a blob; each app tried several times
    assert during and {_kind(e["uri"]) for e in during} <= {"tls", "ping", "manifest"}, table
    attempts = [out["attempts"] for _, out, _ in results.values()]
    assert min(attempts) >= 3, (attempts, table)
    # back: the first request of each app to its repository is a manifest HEAD (the
    # probe, or the pull's own), its blobs come after it
    blobs = [e for e in entries if _kind(e["uri"]) == "blob"]
    assert all(e["start"] >= back for e in blobs), table
    for app, ref in apps.items():
        repo = f"/v2/{_repo(ref)}/"
        mine = [e for e in after if e["uri"].startswith(repo)]
        assert mine and _kind(mine[0]["uri"]) == "manifest", (app, table)
        assert any(_kind(e["uri"]) == "blob" for e in mine), (app, table)
    # found back within one probe_interval (3 s), plus the pull itself on a busy host; a
    # backoff grown over the outage (2 s doubling, full jitter: up to 16-32 s by now)
    # would leave some apps waiting longer
    last_blob = max(float(e["time"]) for e in blobs)
    assert last_blob - back <= 12.0, table
    print(table)  # shown with -s: the herd's requests per second around the recovery


def _slot_holder(run_dir: Path, n: int) -> str:
    try:
        return (run_dir / "pull-slots" / str(n)).read_text()
    except FileNotFoundError:
        return ""


def test_max_parallel_pulls_bounds_the_layer_pulls_running_at_once(
        registry: Registry, make_nginx: Callable[..., NginxProxy], herd_bed: Bed) -> None:
    # 2 MiB/s per connection: each 3 MiB layer takes about 1.5 s, so pulls overlap
    front = make_nginx(registry, Fault("stall", on="blobs", after_bytes=0,
                                       bytes_per_s=2 * 1024 * 1024), name="pu-herd-slots")
    apps = []
    for i in range(6):
        ref = registry.ref(f"pu-herd/slot{i}", f"t{os.getpid()}")
        images.make_big_image(ref, total_mb=3, layers=1)
        apps.append(herd_bed.app(f"s{i}", image_config(
            front.ref(_repo(ref), ref.rsplit(":", 1)[1]))))
    (herd_bed.cfg / "pullunit.toml").write_text("max_parallel_pulls = 2\n")
    results = _wait_all({app: herd_bed.start_pull(app) for app in apps}, 120)
    for app, (code, out, err) in results.items():
        assert code == 0 and out["source"] == "pulled", (app, err)
    spans: dict[str, list[float]] = {}
    for e in _log(front):
        if _kind(e["uri"]) == "blob" and e["status"] == 200:
            repo = e["uri"].split("/blobs/")[0]
            lo, hi = spans.get(repo, [e["start"], e["time"]])
            spans[repo] = [min(lo, e["start"]), max(hi, float(e["time"]))]
    assert len(spans) == 6, spans
    edges = sorted([(lo, 1) for lo, _ in spans.values()] + [(hi, -1) for _, hi in spans.values()],
                   key=lambda x: (x[0], x[1]))
    running = most = 0
    for _, step in edges:
        running += step
        most = max(most, running)
    assert most == 2, spans  # the limit holds, and is used
    waited = [app for app, (_, _, err) in results.items() if "waiting for a pull slot" in err]
    assert len(waited) >= 3, results


class NotifySocket:
    """A real sd_notify datagram socket, as systemd gives a Type=notify unit."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[str] = []

    def wait_for(self, text: str, timeout: float) -> str:
        end = time.monotonic() + timeout
        while True:
            for m in self.messages:
                if text in m:
                    return m
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {text!r} in {self.messages}")
            self.sock.settimeout(left)
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue

    def close(self) -> None:
        self.sock.close()


def test_a_killed_pullers_slot_is_taken_by_the_one_waiting_which_says_so(
        registry: Registry, make_nginx: Callable[..., NginxProxy], herd_bed: Bed,
        tmp_path: Path) -> None:
    stuck = make_nginx(registry, Fault("stall", on="blobs"), name="pu-herd-stuck")
    ok = make_nginx(registry, name="pu-herd-ok")
    refs = []
    for name in ("kill", "wait"):
        ref = registry.ref(f"pu-herd/{name}", f"t{os.getpid()}")
        images.make_big_image(ref, total_mb=1, layers=1)
        refs.append(_repo(ref) + ":" + ref.rsplit(":", 1)[1])
    repo, tag = refs[0].split(":")
    herd_bed.app("kill", image_config(stuck.ref(repo, tag),
                                      '[pull]\nstall_timeout = "5min"\n'))
    repo, tag = refs[1].split(":")
    herd_bed.app("wait", image_config(ok.ref(repo, tag)))
    (herd_bed.cfg / "pullunit.toml").write_text("max_parallel_pulls = 1\n")
    run_dir = herd_bed.root / "run"
    holder = herd_bed.start_pull("kill")
    notify = NotifySocket(tmp_path / "notify.sock")
    waiter: subprocess.Popen[str] | None = None
    try:
        _util.wait_for(lambda: _slot_holder(run_dir, 0) == f"{holder.pid} kill\n", 30, 0.05,
                       "the first puller to hold the slot")
        waiter = herd_bed.start_pull("wait", env={"NOTIFY_SOCKET": str(notify.path)})
        status = notify.wait_for("waiting for a pull slot", 30)
        assert status == (f"STATUS=waiting for a pull slot: all 1 in use (pid {holder.pid} "
                          "kill); max_parallel_pulls in pullunit.toml")
        time.sleep(1)
        assert waiter.poll() is None, "the second pull did not wait for the slot"
        holder.send_signal(signal.SIGKILL)  # no cleanup runs: the kernel drops the flock
        holder.wait(10)
        killed = time.monotonic()
        out, err = waiter.communicate(timeout=60)
        assert waiter.returncode == 0, err
        assert json.loads(out)["source"] == "pulled"
        assert notify.wait_for("READY=1", 5)
        assert time.monotonic() - killed < 30
        assert "waiting for a pull slot" in err
        assert _slot_holder(run_dir, 0) == f"{waiter.pid} wait\n"
    finally:
        for p in (holder, waiter):
            if p is not None and p.poll() is None:
                p.kill()
                p.communicate()
        notify.close()


def test_retry_after_of_a_429_is_honoured(registry: Registry, nginx_429: NginxProxy,
                                          herd_bed: Bed) -> None:
    """nginx_429 answers every manifest request 429 with Retry-After: 7. The daemon's
    error text does not carry it; pullunit's own HEAD reads it and waits 7 s (not the
    1 s of rate_limit_delay): within a 12 s deadline, two attempts, not six."""
    app = herd_bed.app("ra", image_config(
        nginx_429.ref("pu-herd/ra", "1"),
        '[pull]\ninitial_delay = "1s"\nmax_delay = "1s"\njitter = "none"\n'
        'rate_limit_delay = "1s"\ndeadline = "12s"\n'))
    r = herd_bed.pull(app, timeout=60)
    assert r.code == 69 and r.out["class"] == "rate_limited", r.err
    assert r.out["attempts"] == 2, r.err
    assert "asks to wait 7.0s (Retry-After)" in r.err
