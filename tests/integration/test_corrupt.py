"""A blob that comes corrupt (issue 10, item 6; field guide 9.3), against the real dockerd
and a real registry behind tests/testbed/faultfront.py, which flips a byte in the layer
blob it relays (same length: the bytes no longer match the digest). dockerd says
"filesystem layer verification failed for digest ..." and does not retry such a blob
itself, so the front's log counts the pulls: the puller removes what the pull left and
pulls once more from scratch, then gives up with `corrupt` (72)."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pullbed import FAST, Bed, fresh, image_config

from tests.testbed import _util
from tests.testbed.faultfront import FaultFront
from tests.testbed.regapi import RegistryAPI, check_local_ref
from tests.testbed.registry import Registry

pytestmark = pytest.mark.integration
BOUND = 'deadline = "30s"\n'  # a puller that retried a corrupt blob forever ends here


@pytest.fixture
def make_front(client: Any) -> Iterator[Callable[..., FaultFront]]:
    """Fronts of this test, closed afterwards, with every image pulled through them."""
    made: list[FaultFront] = []

    def make(upstream: Registry, mode: str, **kw: Any) -> FaultFront:
        front = FaultFront(upstream, mode, name=f"pu-regclasses-c{len(made)}", **kw)
        made.append(front)
        return front.start()

    yield make
    for front in made:
        front.close()
        for img in client.images.list(all=True):  # pullunit's keep tag holds them too
            names = (img.attrs.get("RepoTags") or []) + (img.attrs.get("RepoDigests") or [])
            if any(n.startswith(f"{front.address}/") for n in names):
                with contextlib.suppress(Exception):
                    client.images.remove(img.id, force=True)
    ids = {f.rec.id for f in made}
    assert not [r for r in _util.load_records() if r.id in ids], "fault front left behind"


def _layer(ref: str, digest: str) -> str:
    r = check_local_ref(ref)
    _, manifest = RegistryAPI.for_ref(ref).get_manifest(r.repo, digest)
    (layer,) = manifest["layers"]
    return str(layer["digest"])


def test_a_layer_corrupt_twice_is_corrupt_after_exactly_two_pulls(
        client: Any, registry: Registry, bed: Bed, make_front: Any) -> None:
    p = fresh(client, registry, "pu-regclasses/corrupt")
    layer = _layer(p.ref, p.digest)
    front = make_front(registry, "corrupt", on=("blobs",), match=layer)
    app = bed.app("corrupt", image_config(front.via(p.ref), FAST + BOUND))
    r = bed.pull(app, timeout=120)
    assert r.code == 72, r.err
    assert r.out["class"] == "corrupt" and r.out["attempts"] == 2, r.out
    assert "filesystem layer verification failed for digest " + layer in r.out["message"]
    assert front.count(layer, mode="corrupt") == 2  # one pull, then one from scratch
    assert "pulling once more from scratch" in r.err
    assert "fix: a blob of " in r.err and "smartctl" in r.err  # field guide 9.3
    assert bed.env_file(app) is None
    st = bed.state(app)
    assert st["last_failure"]["cls"] == "corrupt", st["last_failure"]
    status = subprocess.run(bed.cmd("status", app, "--json"), capture_output=True,
                            text=True, env=bed.env, timeout=60)
    apps = json.loads(status.stdout)["apps"]
    assert apps[0]["failures"][0]["class"] == "corrupt", apps[0]


def test_a_corruption_that_clears_on_the_second_pull_is_ready(
        client: Any, registry: Registry, bed: Bed, make_front: Any) -> None:
    p = fresh(client, registry, "pu-regclasses/corrupt")
    layer = _layer(p.ref, p.digest)
    front = make_front(registry, "corrupt_once", on=("blobs",), match=layer)
    app = bed.app("once", image_config(front.via(p.ref), FAST + BOUND))
    r = bed.pull(app, timeout=120)
    assert r.code == 0, r.err
    assert r.out["ready"] is True and r.out["attempts"] == 2, r.out
    assert r.out["image"].endswith(p.digest)
    assert front.count(layer) == 2 and front.count(layer, mode="corrupt_once") == 2
    # the second pull came at once, from scratch, not after a backoff as a retry
    assert "pulling once more from scratch" in r.err and "retrying in" not in r.err
    assert bed.env_file(app) == f"PULLUNIT_IMAGE={r.out['image']}\n"


def test_what_the_ref_names_locally_is_removed_before_the_fresh_pull(
        client: Any, registry: Registry, bed: Bed, make_front: Any) -> None:
    """policy "always", the tag present locally (not one of the app's images): before
    the second pull the tag goes, as 'docker image rm' would (field guide 9.3)."""
    import docker

    from tests.testbed import images

    old = fresh(client, registry, "pu-regclasses/corrupt")
    old_id = client.images.pull(old.ref).id  # an older copy, here
    new = images.push_new_digest(client, old.ref)  # the tag moves on in the registry
    client.images.remove(old.ref, force=True)  # the new image is not here (a cold host)
    layer = _layer(new.ref, new.digest)
    front = make_front(registry, "corrupt", on=("blobs",), match=layer)
    client.api.tag(old_id, *front.via(old.ref).rsplit(":", 1))
    app = bed.app("always", image_config(front.via(old.ref),
                                         'policy = "always"\n' + FAST + BOUND))
    r = bed.pull(app, timeout=120)
    assert r.code == 72, r.err
    assert front.count(layer, mode="corrupt") == 2
    assert f"removing {front.via(old.ref)}" in r.err
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(front.via(old.ref))
