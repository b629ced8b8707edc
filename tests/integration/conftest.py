"""Fixtures for integration tests against real Docker engines, registries and faults
(all from tests/testbed; see tests/testbed/README.md).

Session scope (shared, read-only use please):
  docker_sock, docker_client, docker_api      the main engine on /run/docker.sock
  registry, auth_registry (AUTH_USER/AUTH_PASSWORD), sharing one storage
  busybox_image      registry/team/app:1.2.3 pushed (a tests.testbed.Pushed)
  big_image          ~64 MiB random-layer image in registry (bench/big:1)
  nginx_429, nginx_429_html, nginx_5xx, nginx_stall   fault proxies before registry
  tls_registry       TLS registry in a netns (10.231.N.2:5443), storage of registry
  small_dockerd      extra engine with a 32 MiB data-root
  dns_dockerd        extra engine in a netns whose DNS is our stub (NXDOMAIN default)
Function scope (fresh, mutate freely):
  make_image(repo, tag, kind="busybox"|"showargs"|"new-digest", registry=None)
  make_registry(**Registry kwargs), make_nginx(upstream, Fault), spare_dockerd,
  trusted_tls_registry, unused_port

Every test here gets the `integration` marker. Missing prerequisites FAIL the tests
with what to install: a silently skipped suite would look green while testing nothing.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

_HERE = Path(__file__).resolve().parent
_ROOT = str(_HERE.parents[1])
if _ROOT not in sys.path:  # `tests.testbed` importable whatever the import mode
    sys.path.insert(0, _ROOT)

from tests import testbed as tb  # noqa: E402
from tests.testbed import _util  # noqa: E402

AUTH_USER, AUTH_PASSWORD = "alice", "s3cret"
T = TypeVar("T")

# Record ids of everything these fixtures made: checked for leftovers at the end.
_CREATED: list[str] = []
# host:port of every registry/proxy made here: their images are removed at the end.
_ADDRESSES: set[str] = set()


def _track(obj: T) -> T:
    with contextlib.suppress(Exception):  # TlsRegistry has no address before start()
        _ADDRESSES.add(str(getattr(obj, "address")))  # noqa: B009 (may raise)
    rec = getattr(obj, "rec", None)
    if rec is not None:
        _CREATED.append(rec.id)
    for attr in ("netns", "registry", "dockerd"):  # composite components
        sub = getattr(obj, attr, None)
        if sub is not None and hasattr(sub, "rec"):
            _CREATED.append(sub.rec.id)
    return obj


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(_HERE):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session", autouse=True)
def _testbed_session() -> Iterator[None]:
    """Fail (never skip) without prerequisites; clean up after crashed runs first;
    after the last test, nothing these fixtures made may be left."""
    problems = tb.missing_prerequisites()
    if problems:
        pytest.fail("integration test bed prerequisites missing:\n  "
                    + "\n  ".join(problems), pytrace=False)
    tb.sweep_stale()
    yield
    left = [f"{r.kind} {r.id}: pids={r.pids} paths={r.paths} netns={r.netns}"
            for r in _util.load_records() if r.id in _CREATED]
    assert not left, "test bed left things behind:\n  " + "\n  ".join(left)


def _close(obj: Any) -> None:
    with contextlib.suppress(Exception):
        obj.close()


# ------------------------------------------------------------------ engines


@pytest.fixture(scope="session")
def docker_sock() -> Iterator[str]:
    """/run/docker.sock with an engine answering; stopped at the end only if this
    session started it."""
    sock = tb.ensure_dockerd()
    started = tb.main_dockerd_started_here()
    if started is not None:
        _track(started)
    yield sock
    tb.stop_main_dockerd_if_started()


@pytest.fixture(scope="session")
def docker_client(docker_sock: str) -> Iterator[Any]:
    import docker
    client = docker.DockerClient(base_url=f"unix://{docker_sock}", version="auto",
                                 timeout=120)
    yield client
    _remove_images_of(client, _ADDRESSES)
    client.close()


def _remove_images_of(client: Any, addresses: set[str]) -> None:
    """Remove local images pulled from or pushed to our registries and proxies (by tag
    or, for tags that moved on, by repo digest); other images are left alone."""
    prefixes = tuple(f"{a}/" for a in addresses)
    if not prefixes:
        return
    for img in client.images.list(all=True):
        names = (img.attrs.get("RepoTags") or []) + (img.attrs.get("RepoDigests") or [])
        if any(n.startswith(prefixes) for n in names):
            with contextlib.suppress(Exception):
                client.images.remove(img.id, force=True)


@pytest.fixture(scope="session")
def docker_api(docker_client: Any) -> Any:
    """The low-level docker.APIClient of docker_client."""
    return docker_client.api


@pytest.fixture(scope="session")
def small_dockerd() -> Iterator[tb.DockerdProcess]:
    """An extra engine whose data-root is a 32 MiB tmpfs: pulling big_image fails
    with "no space left on device"."""
    d = _track(tb.DockerdProcess("small", data_root_size_mb=32))
    try:
        yield d.start()
    finally:
        _close(d)


@pytest.fixture
def spare_dockerd() -> Iterator[tb.DockerdProcess]:
    """A fresh private engine per test: stop()/start() it for "daemon down" cases."""
    d = _track(tb.DockerdProcess("spare"))
    try:
        yield d.start()
    finally:
        _close(d)


@pytest.fixture(scope="session")
def dns_dockerd() -> Iterator[tb.DnsDockerd]:
    """An engine in its own netns whose resolver is our stub: every name is NXDOMAIN
    until dns_dockerd.set_hosts({...}); it reaches the host at dns_dockerd.host_ip.
    Pull with dns_dockerd.try_pull(ref) (names allowed there)."""
    d = tb.DnsDockerd()
    try:
        d.start()
        _track(d)
        yield d
    finally:
        _track(d)
        _close(d)


# --------------------------------------------------------------- registries


@pytest.fixture(scope="session")
def registry() -> Iterator[tb.Registry]:
    r = _track(tb.Registry("plain"))
    try:
        yield r.start()
    finally:
        _close(r)


@pytest.fixture(scope="session")
def auth_registry(registry: tb.Registry) -> Iterator[tb.Registry]:
    """Basic auth (AUTH_USER / AUTH_PASSWORD; .auth_config for the SDK), same storage
    as `registry`, so everything pushed there can be pulled here."""
    r = _track(tb.Registry("auth", users={AUTH_USER: AUTH_PASSWORD},
                           storage=registry.storage))
    try:
        yield r.start()
    finally:
        _close(r)


@pytest.fixture
def make_registry() -> Iterator[Callable[..., tb.Registry]]:
    """Factory for private registries (started), closed after the test."""
    made: list[tb.Registry] = []

    def make(name: str = "private", **kw: Any) -> tb.Registry:
        r = _track(tb.Registry(name, **kw))
        made.append(r)
        return r.start()

    yield make
    for r in made:
        _close(r)


@pytest.fixture(scope="session")
def tls_registry(registry: tb.Registry) -> Iterator[tb.TlsRegistry]:
    """TLS registry at 10.231.N.2:5443 in a netns, serving `registry`'s storage; not
    trusted by dockerd (x509 error). Use trusted_tls_registry for the success case."""
    t = tb.TlsRegistry(storage=registry.storage)
    try:
        t.start()
        _track(t)
        yield t
    finally:
        _track(t)
        _close(t)


@pytest.fixture
def trusted_tls_registry(tls_registry: tb.TlsRegistry) -> Iterator[tb.TlsRegistry]:
    """tls_registry with its CA in /etc/docker/certs.d/HOST:PORT/ for this test."""
    tls_registry.trust()
    try:
        yield tls_registry
    finally:
        tls_registry.untrust()


@pytest.fixture
def unused_port() -> int:
    """A loopback port nothing listens on (pulls from it: connection refused)."""
    return tb.free_port()


# ------------------------------------------------------------------- images


@pytest.fixture(scope="session")
def busybox_image(docker_client: Any, registry: tb.Registry) -> Iterator[tb.Pushed]:
    p = tb.make_busybox_image(docker_client, registry.ref("team/app", "1.2.3"))
    yield p
    with contextlib.suppress(Exception):
        docker_client.images.remove(p.ref, force=True)


@pytest.fixture(scope="session")
def big_image(registry: tb.Registry) -> tb.Pushed:
    """~64 MiB in 4 random layers (bigger than small_dockerd's data-root)."""
    return tb.make_big_image(registry.ref("bench/big", "1"), total_mb=64, layers=4)


@pytest.fixture
def make_image(docker_client: Any,
               registry: tb.Registry) -> Iterator[Callable[..., tb.Pushed]]:
    """make_image(repo, tag="1.0", kind="busybox", registry=None, auth_config=None):
    kind "busybox" (CMD /bin/sh), "showargs" (ENTRYPOINT /showargs), or
    "new-digest" (push a different image under the same tag). Local copies are
    removed after the test."""
    refs: list[str] = []
    default_registry = registry

    def make(repo: str, tag: str = "1.0", kind: str = "busybox",
             registry: tb.Registry | None = None, **kw: Any) -> tb.Pushed:
        reg = registry or default_registry
        ref = reg.ref(repo, tag)
        if kind == "busybox":
            p = tb.make_busybox_image(docker_client, ref, **kw)
        elif kind == "showargs":
            p = tb.make_showargs_image(docker_client, ref, **kw)
        elif kind == "new-digest":
            p = tb.push_new_digest(docker_client, ref, **kw)
        else:
            raise ValueError(f"unknown image kind {kind!r}")
        refs.append(ref)
        return p

    yield make
    for ref in refs:
        with contextlib.suppress(Exception):
            docker_client.images.remove(ref, force=True)


# -------------------------------------------------------------------- nginx


def _proxy(upstream: tb.Registry, fault: tb.Fault, name: str) -> Iterator[tb.NginxProxy]:
    n = _track(tb.NginxProxy(upstream, fault, name=name))
    try:
        yield n.start()
    finally:
        _close(n)


@pytest.fixture(scope="session")
def nginx_429(registry: tb.Registry) -> Iterator[tb.NginxProxy]:
    """Every manifest request: 429 + registry JSON body (TOOMANYREQUESTS), Retry-After 7."""
    yield from _proxy(registry, tb.Fault("429", retry_after=7), "429")


@pytest.fixture(scope="session")
def nginx_429_html(registry: tb.Registry) -> Iterator[tb.NginxProxy]:
    """Every manifest request: 429 with nginx's HTML page (not JSON)."""
    yield from _proxy(registry, tb.Fault("429", html=True), "429html")


@pytest.fixture(scope="session")
def nginx_5xx(registry: tb.Registry) -> Iterator[tb.NginxProxy]:
    """Every manifest request: 503 with a registry-style JSON body."""
    yield from _proxy(registry, tb.Fault("status", status=503), "5xx")


@pytest.fixture(scope="session")
def nginx_stall(registry: tb.Registry) -> Iterator[tb.NginxProxy]:
    """Blob downloads trickle at 1 byte/s after 64 KiB: a pull makes no progress."""
    yield from _proxy(registry, tb.Fault("stall", on="blobs"), "stall")


@pytest.fixture
def make_nginx() -> Iterator[Callable[..., tb.NginxProxy]]:
    """make_nginx(upstream, fault=Fault(...)) -> a started proxy of this test's own
    (change its fault with .set_fault(...)); stopped after the test."""
    made: list[tb.NginxProxy] = []

    def make(upstream: tb.Registry | str, fault: tb.Fault | None = None,
             name: str = "test") -> tb.NginxProxy:
        n = _track(tb.NginxProxy(upstream, fault, name=name))
        made.append(n)
        return n.start()

    yield make
    for n in made:
        _close(n)


# ------------------------------------------------------- the pullunit CLI in a sandbox


@pytest.fixture
def client(docker_client: Any) -> Any:
    """The main engine's docker.DockerClient (short name for the pullunit tests)."""
    return docker_client


@pytest.fixture
def bed(tmp_path: Path) -> Any:
    """pullbed.Bed: a config dir, state dirs and a HOME without credentials, and the CLI."""
    from pullbed import Bed

    return Bed(tmp_path)
