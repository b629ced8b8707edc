"""A blob that comes corrupt (issue 10, item 6; field guide 9.3), against the real dockerd
and a real registry behind tests/testbed/faultfront.py, which flips a byte in the layer
blob it relays (same length: the bytes no longer match the digest). dockerd says
"filesystem layer verification failed for digest ..." and does not retry such a blob
itself, so the front's log counts the pulls: the puller removes what the pull left and
pulls once more from scratch, then gives up with `corrupt` (72)."""

from __future__ import annotations

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
def make_front() -> Iterator[Callable[..., FaultFront]]:
    made: list[FaultFront] = []

    def make(upstream: Registry, mode: str, **kw: Any) -> FaultFront:
        front = FaultFront(upstream, mode, name=f"pu-regclasses-c{len(made)}", **kw)
        made.append(front)
        return front.start()

    yield make
    for front in made:
        front.close()
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
