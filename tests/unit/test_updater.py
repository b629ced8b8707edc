"""updater.Updater: the update sequence (resolve, pull, switch, restart through the gate,
roll back) with real files in a temporary directory and scripted edges standing in for the
registry, the puller, the engine and systemd (the real ones: tests/e2e/test_readiness.py).
Plus the state and lock pieces it adds: update records, forget(), lock source "update"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pullunit import pinning, state
from pullunit.activation import activate
from pullunit.config import AppConfig, load_app
from pullunit.engine import LocalImage
from pullunit.errors import ExitCode, PullunitError
from pullunit.reference import ImageRef, parse_reference
from pullunit.systemd import UnitState
from pullunit.updater import Edges, Failed, Result, Updater, ready, restart_bound, target

REPO = "registry.test:5000/team/web"
REF = parse_reference(f"{REPO}:1")


def digest(n: int) -> str:
    return "sha256:" + f"{n:x}" * 64


def image(n: int) -> LocalImage:
    return LocalImage(id="sha256:" + f"{n + 10:02x}" * 32, repo_digests=(f"{REPO}@{digest(n)}",),
                      repo_tags=(), os="linux", architecture="amd64", variant=None, size=1)


def unit(active: str = "active", sub: str = "running", n_restarts: int = 0,
         text: str = "") -> UnitState:
    return UnitState("web.service", "loaded", active, sub, "success", 0, n_restarts, text)


HEALTHY = unit(text="ready: web is healthy after 2.0s")
UNHEALTHY = unit("activating", "auto-restart", 0, "not ready: unhealthy (last check exited 1)")


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PULLUNIT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("PULLUNIT_RUNTIME_DIR", str(tmp_path / "run"))
    return tmp_path


def make_app(root: Path, extra: str = "") -> AppConfig:
    path = root / "web.toml"
    path.write_text(f'[image]\nref = "{REF}"\n[pull]\nkeep = 3\n{extra}')
    return load_app(path)


class Fake:
    """The edges: the registry serves `remote`; pulls return image(n); each restart
    returns the next of `restarts`. Everything asked is recorded."""

    def __init__(self, remote: int, restarts: list[UnitState], *, running: bool | str = True,
                 resolve_fails: Failed | None = None, present: set[int] | None = None):
        self.remote = remote
        self.restarts = list(restarts)
        self.running = running
        self.resolve_fails = resolve_fails
        self.present = present if present is not None else {1, 2, 3}
        self.calls: list[str] = []
        self.envs_at_restart: list[str] = []

    def resolve(self, app: AppConfig, ref: ImageRef) -> str:
        self.calls.append(f"resolve {ref}")
        if self.resolve_fails:
            raise self.resolve_fails
        return digest(self.remote)

    def pull(self, app: AppConfig, ref: ImageRef) -> LocalImage:
        self.calls.append(f"pull {ref}")
        n = next(i for i in range(1, 10) if ref.digest == digest(i))
        return image(n)

    def inspect(self, image_id: str) -> LocalImage | None:
        for n in self.present:
            if image(n).id == image_id:
                return image(n)
        return None

    def unit(self, name: str) -> UnitState:
        if isinstance(self.running, str):
            return unit(*self.running.split())
        return unit() if self.running else unit("inactive", "dead")

    def restart(self, name: str, bound: float) -> UnitState:
        self.calls.append(f"restart {name}")
        self.envs_at_restart.append(state.read_env_file("web") or "")
        return self.restarts.pop(0)

    def edges(self) -> Edges:
        return Edges(self.resolve, self.pull, self.inspect, self.unit, self.restart,
                     api=lambda: None)


def running_on(app: AppConfig, *ns: int) -> None:
    """The app ran image(n) for each n in turn (the last is current)."""
    for n in ns:
        activate(app, state.load("web"), REF, image(n))


def ref_of(n: int) -> str:
    return f"{REPO}@{digest(n)}"


def test_update_to_a_healthy_image(root: Path) -> None:
    app = make_app(root)
    running_on(app, 1)
    fake = Fake(2, [HEALTHY])
    out = Updater(app, fake.edges(), clock=lambda: 1000.0).run()
    assert (out.result, out.exit_code, out.from_ref, out.to_ref) == (
        Result.UPDATED, 0, ref_of(1), ref_of(2))
    assert out.message == HEALTHY.status_text
    # pulled by digest, under the configured tag, before the restart
    assert fake.calls == [f"resolve {REPO}:1", f"pull {REPO}:1@{digest(2)}",
                          "restart web.service"]
    assert fake.envs_at_restart == [ref_of(2)]
    lock = pinning.read(app)
    assert lock is not None and (lock.digest, lock.source) == (digest(2), "update")
    st = state.load("web")
    assert [e.digest for e in st.history] == [digest(2), digest(1)]
    assert st.updates == (state.Update(1000.0, ref_of(1), ref_of(2), "updated"),)


def test_not_ready_rolls_back_to_what_ran_before(root: Path) -> None:
    app = make_app(root)
    running_on(app, 9, 8, 1)  # a full history: keep = 3
    before = state.load("web").history
    fake = Fake(3, [UNHEALTHY, HEALTHY])
    out = Updater(app, fake.edges(), clock=lambda: 5.0, auto=True).run()
    assert (out.result, out.exit_code) == (Result.ROLLED_BACK, int(ExitCode.ROLLED_BACK))
    assert out.exit_code == 80
    assert out.cause == UNHEALTHY.status_text
    assert out.message == f"rolled back to {ref_of(1)}"
    assert fake.envs_at_restart == [ref_of(3), ref_of(1)]
    assert state.read_env_file("web") == ref_of(1)
    lock = pinning.read(app)
    assert lock is not None and (lock.digest, lock.source) == (digest(1), "rollback")
    st = state.load("web")
    assert st.current is not None and st.current.digest == digest(1)
    # The bad image is not a good one; what it pushed out of the history is back.
    assert [e.image_id for e in st.history] == [e.image_id for e in before]
    assert st.updates == (state.Update(5.0, ref_of(1), ref_of(3), "rolled_back",
                                       UNHEALTHY.status_text, True),)


def test_an_automatic_restart_is_not_readiness(root: Path) -> None:
    """The unit active again, but only after Restart= had to restart it: not ready."""
    app = make_app(root)
    running_on(app, 1)
    flapping = unit("active", "running", 1, "ready: web is healthy after 1.0s")
    assert not ready(flapping)
    out = Updater(app, Fake(2, [flapping, HEALTHY]).edges()).run()
    assert out.result is Result.ROLLED_BACK
    assert out.cause == flapping.status_text


def test_the_cause_without_a_status_text(root: Path) -> None:
    app = make_app(root)
    running_on(app, 1)
    failed = UnitState("web.service", "loaded", "failed", "failed", "timeout", 0, 0, "")
    out = Updater(app, Fake(2, [failed, HEALTHY]).edges()).run()
    assert out.cause == "web.service is failed (failed), result timeout, status 0"


def test_rollback_that_is_not_ready_either(root: Path) -> None:
    app = make_app(root)
    running_on(app, 1)
    out = Updater(app, Fake(2, [UNHEALTHY, UNHEALTHY]).edges()).run()
    assert (out.result, out.exit_code) == (Result.NOT_READY, 81)
    assert "did not become ready either" in out.message
    assert state.load("web").updates[0].result == "rollback_failed"
    assert state.read_env_file("web") == ref_of(1)  # it is back on v1 all the same


def test_no_rollback_leaves_the_new_image(root: Path) -> None:
    app = make_app(root)
    running_on(app, 1)
    fake = Fake(2, [UNHEALTHY])
    out = Updater(app, fake.edges(), rollback=False).run()
    assert (out.result, out.exit_code) == (Result.NOT_READY, 81)
    assert out.message == "not rolled back (--no-rollback)"
    assert fake.calls[-1] == "restart web.service" and len(fake.envs_at_restart) == 1
    assert state.read_env_file("web") == ref_of(2)
    assert state.load("web").updates[0].result == "not_ready"


def test_rollback_when_the_old_image_is_gone(root: Path) -> None:
    app = make_app(root)
    running_on(app, 1)
    out = Updater(app, Fake(2, [UNHEALTHY], present={2}).edges()).run()
    assert out.result is Result.NOT_READY
    assert out.message == f"cannot roll back: {ref_of(1)} is no longer present locally"


def test_a_gate_that_outlives_its_bound_is_not_ready(root: Path) -> None:
    app = make_app(root)
    running_on(app, 1)

    class Slow(Fake):
        def restart(self, name: str, bound: float) -> UnitState:
            self.calls.append(f"restart {name}")
            if len(self.calls) == 3:
                raise PullunitError("web.service was still starting after 300s",
                                    ExitCode.NOT_READY)
            return HEALTHY

    out = Updater(app, Slow(2, []).edges()).run()
    assert out.result is Result.ROLLED_BACK
    assert out.cause == "web.service was still starting after 300s"


def test_registry_down_changes_nothing(root: Path) -> None:
    app = make_app(root)
    running_on(app, 1)
    files = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    fake = Fake(2, [], resolve_fails=Failed("unreachable", "connection refused", 69))
    out = Updater(app, fake.edges()).run()
    assert (out.result, out.exit_code, out.cls) == (Result.FAILED, 69, "unreachable")
    assert out.message == f"cannot resolve {REPO}:1: connection refused"
    assert fake.calls == [f"resolve {REPO}:1"]
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == files


def test_current_and_dry_run_change_nothing(root: Path) -> None:
    app = make_app(root)
    running_on(app, 1)
    files = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    out = Updater(app, Fake(1, []).edges()).run()
    assert (out.result, out.message) == (Result.CURRENT, f"already running {ref_of(1)}")
    fake = Fake(2, [])
    out = Updater(app, fake.edges()).run(dry_run=True)
    assert (out.result, out.to_ref) == (Result.WOULD_UPDATE, ref_of(2))
    assert out.message == f"would switch {ref_of(1)} -> {ref_of(2)}"
    assert fake.calls == [f"resolve {REPO}:1"]
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == files


def test_an_app_that_is_not_running_is_switched_not_started(root: Path) -> None:
    app = make_app(root)
    running_on(app, 1)
    fake = Fake(2, [], running=False)
    out = Updater(app, fake.edges()).run()
    assert out.result is Result.SWITCHED and out.exit_code == 0
    assert not any(c.startswith("restart") for c in fake.calls)
    assert state.read_env_file("web") == ref_of(2)


@pytest.mark.parametrize("now", ["activating start-post", "activating auto-restart",
                                 "deactivating stop-sigterm"])
def test_a_unit_in_the_middle_of_a_job_is_left_alone(root: Path, now: str) -> None:
    app = make_app(root)
    running_on(app, 1)
    files = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    fake = Fake(2, [], running=now)
    out = Updater(app, fake.edges()).run()
    assert (out.result, out.exit_code) == (Result.FAILED, 75)
    assert out.message.startswith(f"web.service is {now.split()[0]} ({now.split()[1]})")
    assert fake.calls == [f"resolve {REPO}:1"]
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == files


def test_to_a_digest_skips_the_registry_lookup(root: Path) -> None:
    app = make_app(root)
    running_on(app, 1)
    fake = Fake(9, [HEALTHY])
    out = Updater(app, fake.edges()).run(digest(2))
    assert out.result is Result.UPDATED and out.to_ref == ref_of(2)
    assert fake.calls[0] == f"pull {REPO}:1@{digest(2)}"


@pytest.mark.parametrize(("to", "expected"), [
    (None, f"{REPO}:1"), ("2.0", f"{REPO}:2.0"), (digest(4), f"{REPO}:1@{digest(4)}")])
def test_target(to: str | None, expected: str) -> None:
    assert str(target(REF, to)) == expected


def test_target_rejects_what_is_neither_tag_nor_digest() -> None:
    with pytest.raises(PullunitError) as e:
        target(REF, "no/such tag")
    assert e.value.exit_code is ExitCode.USAGE


def test_skipped_apps(root: Path) -> None:
    path = root / "never.toml"
    path.write_text(f'[image]\nref = "{REF}"\npolicy = "never"\n')
    out = Updater(load_app(path), Fake(2, []).edges()).run()
    assert (out.result, out.exit_code) == (Result.SKIPPED, 0)
    path.write_text(f'[image]\nref = "{REPO}@{digest(1)}"\n')
    out = Updater(load_app(path), Fake(2, []).edges()).run()
    assert out.result is Result.SKIPPED and "pins a digest" in out.message


def test_restart_bound_covers_stop_and_start() -> None:
    app = load_app(Path(__file__).parents[2] / "examples" / "web.toml")
    # docker stop 30 s + systemd's 15 s; start: 120 s + 30 s + 30 s; and 15 s more
    assert restart_bound(app) == 45 + 180 + 15


# -- the state and lock pieces -----------------------------------------------------------

def test_state_without_updates_still_loads(root: Path) -> None:
    old = {"schema": 1, "image": str(REF), "current": None, "history": [], "verified": [],
           "last_failure": None, "prefetched": None, "updated": 1.0}
    st = state.from_json("web", old)
    assert st.updates == ()
    again = state.from_json("web", json.loads(json.dumps(state.record_update(
        st, state.Update(2.0, None, "x", "updated")).to_json())))
    assert again.updates == (state.Update(2.0, None, "x", "updated"),)


def test_update_records_are_bounded(root: Path) -> None:
    st = state.AppState("web")
    for i in range(state.UPDATES_KEPT + 5):
        st = state.record_update(st, state.Update(float(i), None, str(i), "updated"))
    assert len(st.updates) == state.UPDATES_KEPT
    assert st.updates[0].to_ref == str(state.UPDATES_KEPT + 4)


def test_lock_source_update_is_read_back(root: Path) -> None:
    app = make_app(root)
    pinning.write(app, digest(2), "update")
    lock = pinning.read(app)
    assert lock is not None and lock.source == "update"
    saved = pinning.snapshot(app)
    pinning.write(app, digest(3), "rollback")
    pinning.restore(app, saved)
    assert pinning.read(app) == lock
    pinning.restore(app, None)
    assert pinning.read(app) is None


def test_outcome_json_keys() -> None:
    from pullunit.updater import Outcome

    doc: dict[str, Any] = Outcome("web", Result.ROLLED_BACK, 80, "a", "b", "why").to_json()
    assert doc == {"app": "web", "result": "rolled_back", "exit_code": 80, "from": "a",
                   "to": "b", "cause": "why", "class": None, "message": ""}


# -- what status shows of it -------------------------------------------------------------

def test_status_shows_last_update_last_rollback_and_health(tmp_path: Path) -> None:
    from .conftest import assert_no_traceback, cli_env, run_cli

    cfg = tmp_path / "etc"
    cfg.mkdir()
    (cfg / "web.toml").write_text(f'[image]\nref = "{REF}"\n')
    env = cli_env(PULLUNIT_STATE_DIR=str(tmp_path / "state"),
                  PULLUNIT_RUNTIME_DIR=str(tmp_path / "run"),
                  DOCKER_HOST=f"unix://{tmp_path}/no-docker.sock")
    (tmp_path / "state").mkdir()
    st = state.AppState("web")
    st = state.record_update(st, state.Update(100.0, ref_of(1), ref_of(2), "rolled_back",
                                              "not ready: unhealthy (last check exited 1)",
                                              auto=True))
    st = state.record_update(st, state.Update(200.0, ref_of(1), ref_of(3), "updated"))
    (tmp_path / "state" / "web.json").write_text(json.dumps(st.to_json()))

    p = run_cli("status", "--config-dir", cfg, "web", "--json", env=env)
    assert_no_traceback(p.stderr)
    (entry,) = json.loads(p.stdout)["apps"]
    assert entry["last_update"] == {"at": 200.0, "from": ref_of(1), "to": ref_of(3),
                                    "result": "updated", "cause": None, "auto": False}
    assert entry["last_rollback"] == {
        "at": 100.0, "from": ref_of(1), "to": ref_of(2), "result": "rolled_back",
        "cause": "not ready: unhealthy (last check exited 1)", "auto": True}
    health = entry["health"]
    assert (health["gate"], health["container"], health["status"]) == (True, None, None)
    assert health["error"].startswith("the Docker daemon does not answer")

    text = run_cli("status", "--config-dir", cfg, "web", env=env).stdout
    assert f"updated:  {ref_of(1)} -> {ref_of(3)}: updated, " in text
    assert (f"rolled back automatically from {ref_of(2)} ") in text
    assert "not ready: unhealthy (last check exited 1)" in text
    assert "health:   unknown: the Docker daemon does not answer" in text


def test_stopped_while_the_unit_restarts_is_recorded(root: Path) -> None:
    from pullunit.errors import Interrupted

    app = make_app(root)
    running_on(app, 1)

    class Stopped(Fake):
        def restart(self, name: str, bound: float) -> UnitState:
            raise Interrupted("SIGTERM", ExitCode.SIGTERM)

    with pytest.raises(Interrupted):
        Updater(app, Stopped(2, []).edges(), clock=lambda: 7.0).run()
    (u,) = state.load("web").updates
    assert (u.result, u.to_ref) == ("interrupted", ref_of(2))
    assert u.cause == "pullunit update was stopped by SIGTERM while web.service restarted"
