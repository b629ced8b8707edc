"""pin, rollback (registry down), prefetch, policy never, and the per-app lock, against the
real engine and registry. The systemd side of rollback (restart through pystemd) is in the
e2e tier; here rollback runs with --no-restart."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from pullbed import FAST, Bed, fresh, image_config

from tests.testbed import images
from tests.testbed.registry import Registry

pytestmark = pytest.mark.integration


def run(bed: Bed, *args: str) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(bed.cmd(*args), capture_output=True, text=True, env=bed.env,
                       timeout=120)
    assert "Traceback" not in p.stderr, p.stderr
    return p


def test_pin_writes_a_lock_the_puller_follows(client: Any, bed: Bed,
                                              tmp_path: Path) -> None:
    with Registry("pin", storage=tmp_path / "st") as reg:
        v1 = images.push_new_digest(client, reg.ref("team/pin", "stable"))
        app = bed.app("pin", image_config(v1.ref, FAST))
        config_before = (bed.cfg / "pin.toml").read_text()
        assert run(bed, "pin", "--check").returncode == 1  # no lock yet
        p = run(bed, "pin", "pin")
        assert p.returncode == 0, p.stderr
        lock = (bed.cfg / "pin.lock.toml").read_text()
        assert f'digest = "{v1.digest}"' in lock and 'source = "pin"' in lock
        assert (bed.cfg / "pin.toml").read_text() == config_before  # untouched
        assert run(bed, "pin", "--check").returncode == 0
        # the tag moves on; the pinned app stays on v1 until pinned again
        v2 = images.push_new_digest(client, v1.ref)
        check = run(bed, "pin", "--check")
        assert check.returncode == 1 and "STALE" in check.stdout and v2.digest in check.stdout
        r = bed.pull(app)
        assert r.code == 0, r.err
        assert r.out["image"] == v1.pinned and "pinned by pin.lock.toml" in r.err
        status = json.loads(run(bed, "status", "pin", "--json").stdout)
        assert status["apps"][0]["lock"]["digest"] == v1.digest
        assert status["apps"][0]["lock"]["applies"] is True
        assert run(bed, "pin", "pin").returncode == 0
        assert bed.pull(app).out["image"] == v2.pinned


def test_rollback_with_the_registry_down(client: Any, bed: Bed, tmp_path: Path) -> None:
    with Registry("rb", storage=tmp_path / "st") as reg:
        v1 = images.push_new_digest(client, reg.ref("team/rb", "1"))
        app = bed.app("rb", image_config(v1.ref, 'policy = "always"\n' + FAST))
        assert bed.pull(app).code == 0
        v2 = images.push_new_digest(client, v1.ref)
        assert bed.pull(app).out["image"] == v2.pinned
        reg.stop()
        p = run(bed, "rollback", "rb", "--no-restart")
        assert p.returncode == 0, p.stderr
        assert f"rolled back to {v1.pinned}" in p.stdout
        assert bed.env_file(app) == f"PULLUNIT_IMAGE={v1.pinned}\n"
        lock = (bed.cfg / "rb.lock.toml").read_text()
        assert f'digest = "{v1.digest}"' in lock and 'source = "rollback"' in lock
        assert bed.state(app)["current"]["digest"] == v1.digest
        # a later start keeps the rollback (policy always, registry down: falls back to it)
        bed.app("rb", image_config(v1.ref, 'policy = "always"\n' + FAST
                                   + 'refresh_timeout = "1s"\n'))
        r = bed.pull(app)
        assert r.code == 0, r.err
        assert r.out["image"] == v1.pinned
        # naming a digest that is not in the history is a usage error that lists the known
        bad = run(bed, "rollback", "rb", "--no-restart", "--to", "sha256:" + "0" * 64)
        assert bad.returncode == 64 and v2.digest in bad.stderr


def test_rollback_that_cannot_restart_changes_nothing(client: Any, bed: Bed,
                                                     tmp_path: Path) -> None:
    """Without --no-restart, a rollback needs systemd to restart the app. Where it cannot
    (here: systemd is not PID 1; on a systemd host: no rb2.service is loaded) it says so
    and leaves the env file, the state and the lock exactly as they were."""
    with Registry("rb2", storage=tmp_path / "st") as reg:
        v1 = images.push_new_digest(client, reg.ref("team/rb2", "1"))
        app = bed.app("rb2", image_config(v1.ref, 'policy = "always"\n' + FAST))
        assert bed.pull(app).code == 0
        v2 = images.push_new_digest(client, v1.ref)
        assert run(bed, "pin", "rb2").returncode == 0
        assert bed.pull(app).out["image"] == v2.pinned
    files = [bed.root / "run" / "rb2.env", bed.root / "state" / "rb2.json",
             bed.cfg / "rb2.lock.toml"]
    before = [f.read_bytes() for f in files]
    p = run(bed, "rollback", "rb2")
    assert p.returncode != 0, p.stdout
    assert "cannot restart rb2.service" in p.stderr, p.stderr
    assert "rolled back" not in p.stdout
    assert [f.read_bytes() for f in files] == before
    # with --no-restart the same rollback goes ahead
    p = run(bed, "rollback", "rb2", "--no-restart")
    assert p.returncode == 0, p.stderr
    assert bed.env_file(app) == f"PULLUNIT_IMAGE={v1.pinned}\n"


def test_prefetch_pulls_without_switching(client: Any, bed: Bed, tmp_path: Path) -> None:
    with Registry("pf", storage=tmp_path / "st") as reg:
        v1 = images.push_new_digest(client, reg.ref("team/pf", "1"))
        app = bed.app("pf", image_config(v1.ref, 'policy = "always"\n' + FAST))
        bed.app("other", image_config(v1.ref, 'policy = "missing"\n'))
        assert bed.pull(app).code == 0
        v2 = images.push_new_digest(client, v1.ref)
        client.images.remove(v2.ref, force=True)
        p = run(bed, "prefetch", "--json")
        assert p.returncode == 0, p.stderr
        rows = {r["app"]: r for r in json.loads(p.stdout)}
        assert rows["other"]["status"] == "skipped"
        assert rows["pf"]["status"] == "updated"
        assert rows["pf"]["running"] == v1.pinned and rows["pf"]["prefetched"] == v2.pinned
        assert bed.env_file(app) == f"PULLUNIT_IMAGE={v1.pinned}\n"  # not switched
        assert client.images.get(v2.pinned)  # but present: a restart needs no network
        reg.stop()
        bed.app("pf", image_config(v1.ref, 'policy = "always"\n' + FAST
                                   + 'refresh_timeout = "1s"\n'))
        r = bed.pull(app)
    assert r.code == 0 and r.out["source"] == "fallback"
    assert r.out["image"] == v2.pinned  # the prefetched image, not the old one


def test_policy_never(client: Any, registry: Registry, bed: Bed) -> None:
    p = fresh(client, registry)
    app = bed.app("never", image_config(p.ref, 'policy = "never"\n'))
    before = registry.count(r"/manifests/")
    r = bed.pull(app)
    assert r.code == 66 and r.out["attempts"] == 0
    assert '"never"' in r.out["message"]
    assert registry.count(r"/manifests/") == before
    client.images.pull(p.ref)
    r = bed.pull(app)
    assert r.code == 0 and r.out["source"] == "local"


def test_second_pull_of_an_app_waits_for_the_first(bed: Bed, unused_port: int) -> None:
    app = bed.app("lock", image_config(f"127.0.0.1:{unused_port}/team/app:1",
                                       FAST + 'deadline = "3s"\n'))
    first = bed.start_pull(app)
    time.sleep(0.8)
    second = bed.pull(app)
    first.communicate(timeout=30)
    assert "another pull of lock is running" in second.err
    assert second.code == 69


def test_pin_and_prefetch_go_on_past_a_broken_app(client: Any, bed: Bed,
                                                  tmp_path: Path) -> None:
    """Issue 14 #8 and #17: one app's config Python cannot hold (b) or corrupt lock file
    (c) is reported with exit 78; the apps around it are still checked, pinned and
    prefetched, and the corrupt lock is never overwritten."""
    with Registry("many", storage=tmp_path / "st") as reg:
        v1 = images.push_new_digest(client, reg.ref("team/many", "1"))
        always = image_config(v1.ref, 'policy = "always"\n' + FAST)
        bed.app("a", always)
        bed.app("b", always + "[run]\nrestart_sec = 1" + "0" * 400 + "\n")
        bed.app("c", always)
        (bed.cfg / "c.lock.toml").write_text("[lock\n")
        check = run(bed, "pin", "--check")
        assert check.returncode == 78, check.stderr
        assert "a: STALE" in check.stdout
        assert f"{bed.cfg / 'b.toml'}: run.restart_sec: " in check.stderr
        assert f"Cannot read {bed.cfg / 'c.lock.toml'}: " in check.stderr
        pin = run(bed, "pin")
        assert pin.returncode == 78, pin.stderr
        assert f'digest = "{v1.digest}"' in (bed.cfg / "a.lock.toml").read_text()
        assert (bed.cfg / "c.lock.toml").read_text() == "[lock\n"
        p = run(bed, "prefetch", "--json")
        assert p.returncode == 78, p.stderr
        rows = {r["app"]: r for r in json.loads(p.stdout)}
        assert rows["a"]["status"] == "updated" and rows["a"]["prefetched"] == v1.pinned
        assert (rows["b"]["status"], rows["b"]["class"]) == ("failed", "config")
        assert (rows["c"]["status"], rows["c"]["class"]) == ("failed", "config")
        assert "c.lock.toml" in rows["c"]["message"]


def test_docker_image_prune_leaves_the_history(client: Any, bed: Bed, tmp_path: Path) -> None:
    """An image whose tag moved on to a newer digest (or one pulled by digest) has no tag:
    dockerd counts it as dangling, and a routine `docker image prune` deleted exactly the
    images rollback and update need. pullunit tags each kept image while it is kept."""
    import secrets

    mark = f"pullunit.test.prune={secrets.token_hex(6)}"  # prune only this test's images

    def push(n: int) -> images.Pushed:
        return images.make_busybox_image(client, reg.ref("team/pr", "1"),
                                         extra_files={"/serial": f"{n}-{mark}\n"},
                                         changes=['CMD ["/bin/sh"]', f"LABEL {mark}"])

    def prune() -> None:
        client.images.prune(filters={"dangling": True, "label": mark})

    def tags_of(image_id: str) -> list[str]:
        try:
            return client.images.get(image_id).attrs.get("RepoTags") or []
        except Exception:  # gone
            return []

    with Registry("pr", storage=tmp_path / "st") as reg:
        v1 = push(1)
        app = bed.app("pr", image_config(v1.ref, 'policy = "always"\n' + FAST))
        assert bed.pull(app).code == 0
        v2 = push(2)  # the tag moves on: v1 keeps only pullunit's own tag
        assert bed.pull(app).out["image"] == v2.pinned
        prune()
        assert client.images.get(v1.image_id)  # still there
        p = run(bed, "rollback", "pr", "--no-restart")
        assert p.returncode == 0, p.stderr
        assert bed.env_file(app) == f"PULLUNIT_IMAGE={v1.pinned}\n"
        # keep = 1: what leaves the history loses pullunit's tag, and a prune may take it
        bed.app("pr", image_config(v1.ref, 'policy = "always"\n' + FAST + "keep = 1\n"))
        assert run(bed, "pin", "pr").returncode == 0  # follow the tag again (v2)
        assert bed.pull(app).out["image"] == v2.pinned
        assert not [t for t in tags_of(v1.image_id) if "pullunit-keep" in t]
        assert [t for t in tags_of(v2.image_id) if "pullunit-keep" in t]
        prune()
        assert tags_of(v1.image_id) == []
        client.images.remove(v2.image_id, force=True)
