"""Provoke every pull failure for real and record how the docker SDK reports it.

``python3 -m tests.testbed observe [--write]`` runs all scenarios (about 20 s) and
prints them; --write regenerates observed_messages.py from the result.
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from . import _util as u
from . import images as im
from . import nginx as ng
from .dns import DnsDockerd
from .dockerd import DockerdProcess, ensure_dockerd
from .pulls import PullOutcome, try_pull
from .registry import Registry
from .tlsreg import TlsRegistry

USER, PASSWORD = "alice", "s3cret"


@dataclass
class Observation:
    failure_class: str  # pullunit.classify.FailureClass value it should map to
    scenario: str
    via: str  # "exception" | "stream" | "stalled" | "ok"
    exc_class: str | None
    status_code: int | None
    text: str | None  # str(exc) or the stream's "error"
    explanation: str | None  # exc.explanation or errorDetail.message
    sdk: str  # docker SDK version that produced exc_class/text


def pick_port(preferred: int) -> int:
    """*preferred* if free (readable, stable texts), else any free port."""
    return preferred if u.port_is_free(preferred) else u.free_port()


def _sdk() -> str:
    import docker
    return str(docker.__version__)


def _obs(cls: str, scenario: str, o: PullOutcome) -> Observation:
    return Observation(cls, scenario, o.via, o.exc_class, o.status_code, o.text,
                       o.explanation, _sdk())


@contextlib.contextmanager
def _closing(*objs: Any) -> Iterator[None]:
    try:
        yield
    finally:
        for o in reversed(objs):
            with contextlib.suppress(Exception):
                o.close()


def observe_all(log: Any = print) -> list[Observation]:
    import docker

    ensure_dockerd()
    client = docker.DockerClient(base_url="unix:///run/docker.sock", version="auto")
    api = client.api
    out: list[Observation] = []

    def note(cls: str, scenario: str, o: PullOutcome) -> None:
        ob = _obs(cls, scenario, o)
        log(f"[{cls}] {scenario}: via={ob.via} {ob.exc_class} {ob.status_code}\n"
            f"    text: {ob.text}\n    explanation: {ob.explanation}")
        out.append(ob)

    plain = Registry("plain", port=pick_port(5000))
    auth = Registry("auth", port=pick_port(5001), users={USER: PASSWORD},
                    storage=plain.storage)
    with _closing(plain, auth):
        plain.start()
        auth.start()
        app = im.make_busybox_image(client, plain.ref("team/app", "1.2.3"))
        big = im.make_big_image(plain.ref("bench/big", "1"), 96, 4)
        idx = im.make_index_image(plain.ref("team/multi", "1"), [("linux", "arm64")])
        arm = im.make_platform_image(plain.ref("team/arm", "1"), "linux", "arm64")

        note("not_found", "unknown tag", try_pull(api, plain.ref("team/app", "nope")))
        note("not_found", "unknown repository", try_pull(api, plain.ref("team/nothere", "1")))
        note("not_found", "unknown digest",
             try_pull(api, f"{plain.address}/team/app@sha256:{'0' * 64}"))
        refused = pick_port(5999)
        note("unreachable", "connection refused",
             try_pull(api, f"127.0.0.1:{refused}/team/app:1.2.3"))
        note("denied", "auth registry, no credentials",
             try_pull(api, auth.ref("team/app", "1.2.3")))
        note("denied", "auth registry, wrong password",
             try_pull(api, auth.ref("team/app", "1.2.3"),
                      auth_config={"username": USER, "password": "wrong"}))
        note("denied", "auth registry, unknown user",
             try_pull(api, auth.ref("team/app", "1.2.3"),
                      auth_config={"username": "mallory", "password": "x"}))
        note("platform", "manifest list without linux/amd64", try_pull(api, idx.ref))
        o = try_pull(api, arm.ref)
        img = client.images.get(arm.ref).attrs
        o.text = f"no error; pulled image has Os={img['Os']} Architecture={img['Architecture']}"
        note("platform", "single-platform linux/arm64 image (no daemon error)", o)
        note("platform", "platform=linux/s390x for a linux/amd64 image",
             try_pull(api, app.ref, platform="linux/s390x"))

        p429 = ng.rate_limited(plain, port=pick_port(5002), retry_after=7)
        html = ng.rate_limited(plain, html=True, port=pick_port(5003))
        e503 = ng.server_error(plain, 503, port=pick_port(5004))
        stall = ng.stalled(plain, port=pick_port(5005))
        bad_gw = ng.NginxProxy(f"127.0.0.1:{refused}", port=pick_port(5006), name="502")
        with _closing(p429, html, e503, stall, bad_gw):
            for n in (p429, html, e503, stall, bad_gw):
                n.start()
            note("rate_limited", "429 with registry JSON body",
                 try_pull(api, p429.ref("team/app", "1.2.3")))
            note("rate_limited", "429 with nginx HTML body",
                 try_pull(api, html.ref("team/app", "1.2.3")))
            note("server_error", "503 on manifests", try_pull(api, e503.ref("team/app", "1.2.3")))
            e503.set_fault(status=500)
            note("server_error", "500 on manifests", try_pull(api, e503.ref("team/app", "1.2.3")))
            note("server_error", "502 from nginx (upstream down), also on /v2/",
                 try_pull(api, bad_gw.ref("team/app", "1.2.3")))
            note("stalled", "blob download at 1 byte/s after 64 KiB",
                 try_pull(api, stall.ref("bench/big", "1"), stall_after=3))

        tls = TlsRegistry(storage=plain.storage)
        with _closing(tls):
            tls.start()
            note("tls", "self-signed CA, not trusted", try_pull(api, tls.ref("team/app", "1.2.3")))
            tls.trust()
            o = try_pull(api, tls.ref("team/app", "1.2.3"))
            note("tls", "CA in /etc/docker/certs.d/HOST:PORT/ca.crt (success)", o)
            tls.untrust()
            with contextlib.suppress(Exception):
                client.images.remove(tls.ref("team/app", "1.2.3"))

        small = DockerdProcess("small", data_root_size_mb=48)
        with _closing(small):
            small.start()
            with small.api() as sapi:
                note("disk_full", "96 MiB image into a 48 MiB data-root",
                     try_pull(sapi, big.ref))

        dnsd = DnsDockerd()
        with _closing(dnsd):
            dnsd.start()
            note("dns", "NXDOMAIN (.invalid) from the resolver",
                 dnsd.try_pull("no-such-host.invalid:5000/team/app:1.2.3"))

        spare = DockerdProcess("spare")
        with _closing(spare):
            spare.start()
            with spare.api() as sapi:
                spare.stop()
                note("daemon_unavailable", "daemon stopped (socket gone), client made before",
                     try_pull(sapi, app.ref))
            out.append(_client_failure("daemon_unavailable",
                                       "daemon stopped, new client (version=auto)",
                                       spare.base_url, "auto"))
            out.append(_client_failure("daemon_unavailable", "socket exists, nobody listens",
                                       *_dead_socket(spare)))
        for ob in out[-2:]:
            log(f"[{ob.failure_class}] {ob.scenario}: {ob.exc_class}\n    text: {ob.text}")
        for ref in (app.ref, arm.ref):
            with contextlib.suppress(Exception):
                client.images.remove(ref, force=True)
    client.close()
    return out


def _dead_socket(d: DockerdProcess) -> tuple[str, str]:
    """A unix socket file nobody accepts on (a daemon that died uncleanly)."""
    assert d.run_dir is not None
    path = d.run_dir / "dead.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()
    return f"unix://{path}", "1.41"


def _client_failure(cls: str, scenario: str, base_url: str, version: str) -> Observation:
    import docker
    try:
        api = docker.APIClient(base_url=base_url, version=version, timeout=5)
        api.pull("127.0.0.1:5000/team/app", tag="1.2.3")
    except Exception as e:
        return Observation(cls, scenario, "exception",
                           f"{type(e).__module__}.{type(e).__qualname__}",
                           getattr(e, "status_code", None), str(e),
                           getattr(e, "explanation", None), _sdk())
    raise u.TestbedError(f"{scenario}: expected a failure")


def render_module(obs: list[Observation]) -> str:
    """observed_messages.py's text for *obs*: one literal per line, for diffs."""
    messages: dict[str, list[str]] = {}
    for ob in obs:
        if ob.failure_class == "daemon_unavailable":
            text = ob.text or ""
        elif ob.via in ("exception", "stream"):
            text = ob.explanation or ob.text or ""
        else:
            continue  # no daemon text: stalled, or a platform mismatch pulled fine
        lst = messages.setdefault(ob.failure_class, [])
        if text not in lst:
            lst.append(text)
    head = Path(__file__).with_name("observed_messages.py").read_text().split(
        "# --- generated below", 1)[0]
    lines = [head.rstrip() + "\n", "# --- generated below by `python3 -m tests.testbed "
             "observe --write`; do not edit by hand", "", "MESSAGES: dict[str, list[str]] = {"]
    for cls, texts in sorted(messages.items()):
        lines.append(f"    {cls!r}: [")
        lines += [f"        {t!r}," for t in texts]
        lines.append("    ],")
    lines += ["}", "", "OBSERVATIONS: list[dict[str, object]] = ["]
    for ob in obs:
        lines.append("    {")
        lines += [f"        {k!r}: {v!r}," for k, v in asdict(ob).items()]
        lines.append("    },")
    lines.append("]")
    return "\n".join(lines) + "\n"


def main(write: bool = False) -> int:
    obs = observe_all()
    if write:
        path = Path(__file__).with_name("observed_messages.py")
        path.write_text(render_module(obs))
        print(f"wrote {path}")
    else:
        print(json.dumps([asdict(o) for o in obs], indent=1))
    return 0
