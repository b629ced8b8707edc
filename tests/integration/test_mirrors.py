"""Mirrors of a private registry and a real pull-through cache, against the real Docker
engine: an origin registry, Debian's docker-registry in proxy mode (`proxy.remoteurl`) as
its cache, a second registry serving other content under the same name, and a port nothing
listens on. Every case runs the installed CLI as APP-pull.service does and asserts on its
outcome, what each registry saw, the image's names in the engine, the env file, the
state history and `pullunit status --json`.

Each safety rule of mirrors.py has a case here that fails without it: a tag is pulled from
a mirror by the digest the origin names (the impostor), a mirror's word for a tag counts
only when trusted and the origin is down, a digest comes from a mirror by digest, the
image is named as the origin names it.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
from typing import Any

import docker
import pytest
from pullbed import FAST, Bed, Result, fresh, image_config

from tests.testbed import images
from tests.testbed.registry import Registry

pytestmark = pytest.mark.integration

# The origin down: a tag is retried until this deadline (no fallback on a cold host).
SHORT = FAST + 'deadline = "4s"\nstall_timeout = "10s"\n'


@pytest.fixture
def origin(make_registry: Any) -> Registry:
    return make_registry("pu-mirrors-origin")


@pytest.fixture
def cache(origin: Registry, make_registry: Any) -> Registry:
    """The origin's pull-through cache (its own storage: it only has what it fetched)."""
    return make_registry("pu-mirrors-cache", proxy=origin.url)


def host_config(bed: Bed, origin: Registry, endpoints: list[str], trust: bool = False) -> None:
    (bed.cfg / "pullunit.toml").write_text(
        f'[[mirror]]\nregistry = "{origin.address}"\nendpoints = {json.dumps(endpoints)}\n'
        f"trust_mirror_tags = {'true' if trust else 'false'}\n")


def forget(client: Any, image_id: str) -> None:
    """A cold host again: the image and all its names gone."""
    with contextlib.suppress(Exception):
        client.images.remove(image_id, force=True)


def names(client: Any, image_id: str) -> tuple[list[str], list[str]]:
    """RepoTags and RepoDigests, without pullunit's own kept-image tag."""
    attrs = client.api.inspect_image(image_id)
    tags = [t for t in attrs.get("RepoTags") or [] if not t.startswith("localhost/pullunit-keep:")]
    return tags, attrs.get("RepoDigests") or []


def blobs(reg: Registry) -> int:
    return reg.count(r"/blobs/sha256:", method="GET")


def status(bed: Bed, app: str) -> dict[str, Any]:
    p = subprocess.run(bed.cmd("status", "--json", app), capture_output=True, text=True,
                       env=bed.env, timeout=60)
    assert "Traceback" not in p.stderr, p.stderr
    data: dict[str, Any] = json.loads(p.stdout)
    return data["apps"][0]


def assert_named_by_origin(client: Any, bed: Bed, app: str, r: Result, pushed: images.Pushed,
                           image_id: str, *, origin_answered: bool = True) -> None:
    """The run unit, the history and status name the origin and the digest."""
    tags, digests = names(client, image_id)
    host = pushed.ref.split("/", 1)[0]
    if origin_answered:  # no mirror's name left behind
        assert all(n.startswith(f"{host}/") for n in tags + digests), (tags, digests)
    st = bed.state(app)
    assert st["current"]["digest"] == pushed.digest
    assert st["current"]["image_id"] == image_id
    assert st["current"]["image"] == st["image"]
    s = status(bed, app)
    assert s["current"]["digest"] == pushed.digest
    if origin_answered:
        assert pushed.pinned in digests
        assert r.out["image"] == pushed.pinned
        assert bed.env_file(app) == f"PULLUNIT_IMAGE={pushed.pinned}\n"
        assert s["current"]["reference"] == pushed.pinned
    else:
        # Docker gives an image a repo@digest name only by asking that registry: until
        # the origin answers, the run unit starts the image by its ID (its content).
        assert r.out["image"] == image_id
        assert bed.env_file(app) == f"PULLUNIT_IMAGE={image_id}\n"


# --- the origin up ----------------------------------------------------------------------

def test_pull_through_the_cache_with_the_origin_up(client: Any, origin: Registry,
                                                   cache: Registry, bed: Bed) -> None:
    p = fresh(client, origin)
    host_config(bed, origin, [cache.address])
    app = bed.app("viacache", image_config(p.ref, FAST))
    r = bed.pull(app)
    assert r.code == 0, r.err
    assert r.out["source"] == "pulled"
    image_id = client.images.get(p.pinned).id
    # the tag was asked of the origin, the layers came through the cache, by digest
    assert origin.count(r"/manifests/" + p.ref.rsplit(":", 1)[1]) >= 1
    assert cache.count(rf"/manifests/{p.digest}") >= 1 and blobs(cache) >= 1
    assert not cache.count(r"/manifests/t\d"), "the tag must not be asked of the mirror"
    assert_named_by_origin(client, bed, app, r, p, image_id)
    # the cache's name pullunit made is gone; the origin's names hold the image
    tags, digests = names(client, image_id)
    assert not [n for n in tags + digests if n.startswith(cache.address)]
    # a warm start asks nobody
    before = len(cache.requests()) + len(origin.requests())
    again = bed.pull(app)
    assert again.code == 0 and again.out["source"] == "local", again.err
    assert len(cache.requests()) + len(origin.requests()) == before
    forget(client, image_id)


def test_a_pinned_digest_comes_from_the_mirror(client: Any, origin: Registry,
                                               cache: Registry, bed: Bed) -> None:
    p = fresh(client, origin)
    host_config(bed, origin, [cache.address])
    app = bed.app("pinned", image_config(p.pinned, FAST))
    r = bed.pull(app)
    assert r.code == 0, r.err
    image_id = client.images.get(p.pinned).id
    assert blobs(cache) >= 1 and cache.count(rf"/manifests/{p.digest}") >= 1
    assert_named_by_origin(client, bed, app, r, p, image_id)
    forget(client, image_id)


def test_a_mirror_that_is_down_is_skipped(client: Any, origin: Registry, bed: Bed,
                                          unused_port: int) -> None:
    p = fresh(client, origin)
    down = f"127.0.0.1:{unused_port}"
    host_config(bed, origin, [down])
    app = bed.app("mirrordown", image_config(p.ref, FAST))
    r = bed.pull(app)
    assert r.code == 0, r.err
    assert r.out["attempts"] == 1
    assert f"mirror {down} skipped (unreachable)" in r.err
    assert blobs(origin) >= 1
    image_id = client.images.get(p.pinned).id
    assert_named_by_origin(client, bed, app, r, p, image_id)
    forget(client, image_id)


@pytest.mark.parametrize("trust", [False, True])
def test_a_mirror_with_other_content_for_the_tag_is_rejected(
        client: Any, origin: Registry, make_registry: Any, bed: Bed, trust: bool) -> None:
    """A second registry serves another image under the same name and tag. The tag is
    resolved at the origin and asked of the mirror by that digest: the mirror does not
    have it, is skipped, and the origin's image is the one pulled (trusted or not: the
    origin answered)."""
    p = fresh(client, origin)
    impostor = make_registry("pu-mirrors-impostor")
    other = images.push_new_digest(client, impostor.ref(*p.ref.split("/", 1)[1].split(":")))
    forget(client, other.image_id)
    assert other.digest != p.digest
    host_config(bed, origin, [impostor.address], trust=trust)
    app = bed.app("impostor", image_config(p.ref, FAST))
    r = bed.pull(app)
    assert r.code == 0, r.err
    assert f"mirror {impostor.address} skipped (not_found)" in r.err
    image_id = client.images.get(p.pinned).id
    assert image_id == p.image_id != other.image_id
    assert not blobs(impostor)
    assert_named_by_origin(client, bed, app, r, p, image_id)
    forget(client, image_id)


def test_a_silent_mirror_is_skipped_within_stall_timeout(client: Any, origin: Registry,
                                                          cache: Registry, bed: Bed) -> None:
    """A mirror that accepts and never answers (the daemon has no timeout of its own)
    costs at most stall_timeout, then the origin serves."""
    from tests.testbed.faultfront import FaultFront

    p = fresh(client, origin)
    front = FaultFront(cache, "blackhole", name="pu-mirrors-silent").start()
    try:
        host_config(bed, origin, [front.address])
        app = bed.app("silent", image_config(p.ref, FAST + 'stall_timeout = "3s"\n'))
        r = bed.pull(app, timeout=60)
        assert r.code == 0, r.err
        assert f"mirror {front.address} skipped (stalled)" in r.err
        assert r.out["attempts"] == 1
        assert r.seconds < 3 + 15  # the stall, the daemon's ping, start-up on a busy host
        image_id = client.images.get(p.pinned).id
        assert_named_by_origin(client, bed, app, r, p, image_id)
        forget(client, image_id)
    finally:
        front.close()


def test_a_mirror_with_an_untrusted_certificate_is_skipped(
        client: Any, registry: Registry, tls_registry: Any, bed: Bed) -> None:
    """A mirror on a test host whose certificate the daemon does not trust (x509): logged
    as tls, skipped, and the origin serves. (The TLS registry serves the origin's
    storage, so only its certificate stands in the way.)"""
    p = fresh(client, registry)
    host_config(bed, registry, [tls_registry.address])
    app = bed.app("tlsmirror", image_config(p.ref, FAST))
    r = bed.pull(app)
    assert r.code == 0, r.err
    assert f"mirror {tls_registry.address} skipped (tls)" in r.err
    image_id = client.images.get(p.pinned).id
    assert_named_by_origin(client, bed, app, r, p, image_id)
    forget(client, image_id)


# --- the origin down --------------------------------------------------------------------

def _warm_cache(client: Any, bed: Bed, origin: Registry, cache: Registry) -> images.Pushed:
    """An image the cache has fetched once, then a cold host and a stopped origin. The
    cache is trusted for tags: pullunit asks it for the tag too, so that it records the
    tag (a registry in proxy mode keeps only the tags it was asked for)."""
    p = fresh(client, origin)
    host_config(bed, origin, [cache.address], trust=True)
    warm = bed.app("warmup", image_config(p.ref, FAST))
    r = bed.pull(warm)
    assert r.code == 0, r.err
    forget(client, client.images.get(p.pinned).id)
    origin.stop()
    return p


def test_origin_down_a_tag_from_the_cache_needs_trust(client: Any, origin: Registry,
                                                      cache: Registry, bed: Bed) -> None:
    p = _warm_cache(client, bed, origin, cache)
    try:
        # not trusted: the origin's tag cannot be checked; retried until the deadline
        host_config(bed, origin, [cache.address], trust=False)
        app = bed.app("untrusted", image_config(p.ref, SHORT))
        served = blobs(cache)
        r = bed.pull(app)
        assert r.code == 69, r.err
        assert r.out["class"] == "unreachable"
        assert blobs(cache) == served
        with pytest.raises(docker.errors.ImageNotFound):
            client.images.get(p.ref)
        # trusted: the cache's answer for the tag stands in for the origin's
        host_config(bed, origin, [cache.address], trust=True)
        app = bed.app("trusted", image_config(p.ref, SHORT))
        r = bed.pull(app)
        assert r.code == 0, r.err
        assert "trusted for tags" in r.err
        image_id = client.images.get(p.ref).id
        assert image_id == p.image_id
        assert_named_by_origin(client, bed, app, r, p, image_id, origin_answered=False)
        tags, _ = names(client, image_id)
        assert p.ref in tags
        # the next start finds it by the origin's tag, asking nobody
        again = bed.pull(app)
        assert again.code == 0 and again.out["source"] == "local", again.err
        assert bed.state(app)["current"]["digest"] == p.digest
    finally:
        origin.start()
        forget(client, p.image_id)


def test_origin_down_a_digest_comes_from_the_cache(client: Any, origin: Registry,
                                                   cache: Registry, bed: Bed) -> None:
    p = _warm_cache(client, bed, origin, cache)
    try:
        app = bed.app("pinneddown", image_config(p.pinned, SHORT))
        r = bed.pull(app)
        assert r.code == 0, r.err
        image_id = client.images.get(p.image_id).id
        assert image_id == p.image_id
        assert_named_by_origin(client, bed, app, r, p, image_id, origin_answered=False)
        # the next start needs neither the origin nor the cache: the state knows the image
        cache.stop()
        warm = bed.pull(app)
        assert warm.code == 0 and warm.out["source"] == "local", warm.err
        assert bed.env_file(app) == f"PULLUNIT_IMAGE={image_id}\n"
        # the origin back (first: distribution 2.8 in proxy mode does not start without
        # it), then the cache: the next pull (policy always: a start of a "missing" app
        # asks no registry) names the image as the origin does
        origin.start()
        cache.start()
        bed.app("pinneddown", image_config(p.pinned, 'policy = "always"\n' + SHORT))
        layers = blobs(origin)
        named = bed.pull(app)
        assert named.code == 0, named.err
        assert p.pinned in names(client, image_id)[1]
        assert blobs(origin) == layers, "naming must not pull layers from the origin"
        assert bed.env_file(app) == f"PULLUNIT_IMAGE={p.pinned}\n"
    finally:
        origin.start()
        forget(client, p.image_id)


def test_cache_down_the_origin_serves(client: Any, origin: Registry, cache: Registry,
                                      bed: Bed) -> None:
    p = fresh(client, origin)
    host_config(bed, origin, [cache.address])
    cache.stop()
    try:
        app = bed.app("cachedown", image_config(p.ref, FAST))
        r = bed.pull(app)
        assert r.code == 0, r.err
        assert f"mirror {cache.address} skipped (unreachable)" in r.err
        image_id = client.images.get(p.pinned).id
        assert_named_by_origin(client, bed, app, r, p, image_id)
    finally:
        cache.start()
        forget(client, p.image_id)


# --- doctor ---------------------------------------------------------------------------

def doctor(bed: Bed, app: str) -> tuple[int, dict[str, dict[str, str]]]:
    p = subprocess.run(bed.cmd("doctor", app, "--json"), capture_output=True, text=True,
                       env=bed.env, timeout=120)
    assert "Traceback" not in p.stderr and "internal error" not in p.stdout, p.stderr
    return p.returncode, {c["check"]: c for c in json.loads(p.stdout)[0]["checks"]}


def test_doctor_checks_every_mirror(client: Any, origin: Registry, cache: Registry, bed: Bed,
                                   unused_port: int) -> None:
    p = fresh(client, origin)
    down = f"127.0.0.1:{unused_port}"
    host_config(bed, origin, [cache.address, down])
    app = bed.app("doc", image_config(p.ref))
    code, checks = doctor(bed, app)
    assert code == 0, checks  # a mirror that fails is a warning: the origin still serves
    m = checks["mirrors"]
    assert m["status"] == "warn", m
    assert f"{down}: tcp: cannot connect" in m["detail"]
    assert f"answering: {cache.address}" in m["detail"]
    assert f"{cache.address}, {down}" in m["detail"]  # the puller's order
    assert m["hint"]
    # the app's own list replaces the host's
    bed.app("doc", image_config(p.ref, f'mirrors = ["{cache.address}"]\n'))
    code, checks = doctor(bed, app)
    assert code == 0 and checks["mirrors"]["status"] == "pass", checks["mirrors"]
    # none configured for this registry
    (bed.cfg / "pullunit.toml").unlink()
    bed.app("doc", image_config(p.ref))
    code, checks = doctor(bed, app)
    assert checks["mirrors"]["status"] == "pass"
    assert "no mirrors" in checks["mirrors"]["detail"]
