"""The readiness gate and `pullunit update` under real systemd 252 (Debian 12 in
systemd-nspawn), with a real registry and real images that differ in health
(health_images.py): one healthy a few seconds after its start, one whose check never
passes, one whose container exits at once.

As in test_scenarios.py, assertions are on what systemd reports (`systemctl show`), what
the engine reports (`docker inspect`), the registry's access log, and pullunit's --json.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import test_scenarios as sc
from harness import Machine
from health_images import push_health_image
from test_scenarios import App, DockerLeftovers, generate, manifest_requests

pytestmark = pytest.mark.e2e

# The scenario tier's fixtures, by name (a booted machine with pullunit installed,
# registries, the test's Docker leftovers, timings).
pu, registries, leftovers = sc.pu, sc.registries, sc.leftovers
stalled_proxy, timing = sc.stalled_proxy, sc.timing


def probe_unit(m: Machine, app: App) -> str:
    """A oneshot ordered After= the app: it records the container's health the moment
    systemd lets it start."""
    name = f"probe-{app.name}.service"
    m.write_file(f"/etc/systemd/system/{name}", f"""[Unit]
Requires={app.run_unit}
After={app.run_unit}

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/sh -c '/usr/bin/docker inspect -f "{{{{.State.Health.Status}}}}" \
    {app.container} > /run/{name}.saw'
""")
    m.systemctl("daemon-reload")
    return name


# ------------------------------------------------------------------- the gate itself


def test_start_waits_until_healthy_and_after_units_wait_too(
        pu: Machine, registries: Any, leftovers: DockerLeftovers, timing: Any) -> None:
    reg = registries().start()
    tag = f"{reg.address}/e2e/gate:1.0"
    image_id, _ = push_health_image(tag, "healthy", ready_after=4)
    app = App(pu, leftovers, "gate", tag)
    generate(pu)
    probe = probe_unit(pu, app)

    t0 = time.monotonic()
    pu.systemctl("start", "--no-block", probe)
    # The container runs, its health is "starting": the unit is still activating, in
    # ExecStartPost=, and the probe ordered after it has not started.
    pu.wait_for(lambda: (app.container_info() or {}).get("status") == "running", 20, 0.1,
                "the container to run")
    run = app.run("ActiveState", "SubState", "StatusText", "NRestarts")
    assert (run["ActiveState"], run["SubState"]) == ("activating", "start-post"), run
    assert run["StatusText"].startswith(f"waiting for {app.container}: "), run
    assert pu.show(probe, "ActiveState")["ActiveState"] == "inactive"
    assert app.jobs().get(probe) == ("start", "waiting"), app.jobs()

    pu.wait_state(probe, "active", timeout=30)
    timing("start_to_healthy", time.monotonic() - t0)
    assert pu.read_file(f"/run/{probe}.saw").strip() == "healthy"
    run = app.run()
    assert (run["ActiveState"], run["SubState"], run["Result"]) == (
        "active", "running", "success"), run
    assert run["StatusText"].startswith(f"ready: {app.container} is healthy after "), run
    assert run["NRestarts"] == "0"
    info = app.container_info()
    assert info is not None and info["image"] == image_id
    started = int(pu.show(app.run_unit, "ExecMainStartTimestampMonotonic")[
        "ExecMainStartTimestampMonotonic"])
    active = int(pu.show(app.run_unit, "ActiveEnterTimestampMonotonic")[
        "ActiveEnterTimestampMonotonic"])
    assert active - started >= 3_000_000, "active before the image could be healthy"
    # After start-up nothing of the gate stays: the unit's only process is docker run.
    procs = pu.run(["systemctl", "show", "-P", "MainPID", app.run_unit]).stdout.strip()
    cgroup = pu.show(app.run_unit, "ControlGroup")["ControlGroup"]
    pids = pu.run(["cat", f"/sys/fs/cgroup{cgroup}/cgroup.procs"], check=False).stdout.split()
    if not pids:  # hybrid hierarchy: the systemd one holds the processes
        pids = pu.run(["cat", f"/sys/fs/cgroup/systemd{cgroup}/cgroup.procs"]).stdout.split()
    assert pids == [procs], (pids, procs)

    # A stop is still docker stop, and the SIGTERM it delivers is not a failure.
    pu.systemctl("stop", app.run_unit)
    run = app.run()
    assert (run["ActiveState"], run["Result"]) == ("inactive", "success"), run
    assert app.container_info() is None


@pytest.mark.parametrize("kind", ["never", "exits", "slow"])
def test_start_fails_with_the_reason_and_never_pulls(
        kind: str, pu: Machine, registries: Any, leftovers: DockerLeftovers,
        timing: Any) -> None:
    """never: the check fails (unhealthy); exits: the container exits at once; slow:
    the check stays "starting" (a long start period) past health.start_timeout."""
    reg = registries().start()
    tag = f"{reg.address}/e2e/{kind}:1.0"
    push_health_image(tag, "healthy" if kind == "slow" else kind,  # type: ignore[arg-type]
                      ready_after=3600)
    health = {"start_timeout": "6s"}
    if kind == "slow":
        health["start_period"] = "1h"
    app = App(pu, leftovers, kind, tag, health=health)
    generate(pu)
    t0 = time.monotonic()
    r = pu.systemctl("start", app.run_unit, check=False)
    took = time.monotonic() - t0
    timing(f"start_to_failed_{kind}", took)
    assert r.returncode != 0
    assert "control process exited with error code" in r.stderr, r.stderr
    assert took < 6 + 8, f"took {took:.1f}s"
    run = app.run()
    assert run["Result"] == "exit-code", run
    expected = {"never": "not ready: unhealthy (last check exited 1",
                "exits": "not ready: the container exited with status 3",
                "slow": "not ready: not healthy within health.start_timeout (6.0s): "
                        "running, health: starting"}[kind]
    assert run["StatusText"].startswith(expected), run
    assert expected.split(": ", 1)[1][:30] in pu.journal(app.run_unit)
    if kind == "exits":
        assert took < 5, "a container that exits at once must fail the start at once"
    # The failed container is gone (the gate stopped it: no ExecStop= for a failed start).
    pu.wait_for(lambda: (app.container_info() or {}).get("status") != "running", 15, 0.2,
                "the failed container to be stopped")
    # Restart= may start it again (restart = "on-failure"); the registry never sees the
    # run unit: only the pull unit's one pull.
    pulls = len(manifest_requests(reg))
    assert pulls >= 1
    time.sleep(4)
    assert len(manifest_requests(reg)) == pulls, manifest_requests(reg)
    assert app.pull("NRestarts")["NRestarts"] == "0"


def test_gate_off_is_the_old_unit(pu: Machine, registries: Any,
                                  leftovers: DockerLeftovers) -> None:
    reg = registries().start()
    tag = f"{reg.address}/e2e/off:1.0"
    push_health_image(tag, "never")
    app = App(pu, leftovers, "off", tag, health={"enabled": False})
    generate(pu)
    pu.systemctl("start", app.run_unit)
    run = app.run("ActiveState", "SubState")
    assert (run["ActiveState"], run["SubState"]) == ("active", "running"), run
    assert "ExecStartPost" not in pu.read_file(f"/etc/systemd/system/{app.run_unit}")


def update(m: Machine, *args: str, timeout: float = 180) -> tuple[int, Any, str]:
    r = m.run(["pullunit", "update", "--json", *args], check=False, timeout=timeout)
    try:
        doc = json.loads(r.stdout)
    except ValueError:
        raise AssertionError(f"no JSON from update: {r.stdout!r}\n{r.stderr}") from None
    return r.returncode, doc, r.stderr


def history_digests(m: Machine, app: App) -> list[str | None]:
    doc = json.loads(m.read_file(f"/var/lib/pullunit/{app.name}.json"))
    return [e["digest"] for e in doc["history"]]


def lock_of(m: Machine, app: App) -> str:
    return m.read_file(f"/etc/pullunit/{app.name}.lock.toml")


def test_update_switches_then_rolls_back_by_itself(
        pu: Machine, registries: Any, leftovers: DockerLeftovers, timing: Any) -> None:
    """v1 -> v2 (healthy): switched, pinned ("update"), history has both, a reboot keeps
    v2. v2 -> v3 (never healthy): rolled back to v2 by itself, exit 80, the app active on
    v2 at the end, status --json names the cause."""
    reg = registries().start()
    tag = f"{reg.address}/e2e/upd:1.0"
    repo = f"{reg.address}/e2e/upd"
    v1_id, v1 = push_health_image(tag, "healthy", ready_after=2)
    app = App(pu, leftovers, "upd", tag, health={"start_timeout": "20s"})
    generate(pu, "--enable")
    pu.systemctl("start", app.run_unit)
    app.wait_active()
    assert (app.container_info() or {}).get("image") == v1_id

    # Nothing new yet: up to date, nothing restarted.
    invocation = app.run("InvocationID")["InvocationID"]
    code, doc, err = update(pu, app.name)
    assert (code, doc[0]["result"]) == (0, "current"), (doc, err)
    assert app.run("InvocationID")["InvocationID"] == invocation

    v2_id, v2 = push_health_image(tag, "healthy", ready_after=2)
    code, doc, err = update(pu, app.name, "--dry-run")
    assert (code, doc[0]["result"]) == (0, "would_update"), (doc, err)
    assert doc[0]["to"] == f"{repo}@{v2}"
    assert app.run("InvocationID")["InvocationID"] == invocation
    assert (app.container_info() or {}).get("image") == v1_id

    t0 = time.monotonic()
    code, doc, err = update(pu, app.name)
    timing("update_v1_to_v2", time.monotonic() - t0)
    assert code == 0, (doc, err)
    (out,) = doc
    assert (out["result"], out["from"], out["to"]) == (
        "updated", f"{repo}@{v1}", f"{repo}@{v2}"), out
    assert out["message"].startswith(f"ready: {app.container} is healthy after "), out
    info = app.container_info()
    assert info is not None and (info["image"], info["config_image"]) == (
        v2_id, f"{repo}@{v2}")
    assert app.env_reference() == f"{repo}@{v2}"
    lock = lock_of(pu, app)
    assert f'digest = "{v2}"' in lock and 'source = "update"' in lock, lock
    assert history_digests(pu, app) == [v2, v1]
    run = app.run()
    assert (run["ActiveState"], run["NRestarts"]) == ("active", "0"), run
    status_code, status = app.status_json(app.name)
    (entry,) = status["apps"]
    assert status_code == 0 and entry["healthy"] is True
    assert entry["health"]["status"] == "healthy" and entry["health"]["gate"] is True
    last = entry["last_update"]
    assert (last["from"], last["to"], last["result"], last["cause"]) == (
        f"{repo}@{v1}", f"{repo}@{v2}", "updated", None), last

    # A reboot keeps v2 (the lock), though nothing else would say so.
    first = app.container_info()
    pu.reboot()
    app.wait_active(timeout=40)
    info = app.container_info()
    assert info is not None and info["id"] != first["id"]  # type: ignore[index]
    assert info["image"] == v2_id

    # v3 never becomes healthy: back on v2 by itself.
    _, v3 = push_health_image(tag, "never")
    t0 = time.monotonic()
    code, doc, err = update(pu, app.name)
    timing("update_v2_to_v3_and_back", time.monotonic() - t0)
    assert code == 80, (doc, err)
    (out,) = doc
    assert (out["result"], out["from"], out["to"]) == (
        "rolled_back", f"{repo}@{v2}", f"{repo}@{v3}"), out
    assert out["cause"].startswith("not ready: unhealthy (last check exited 1"), out
    assert out["message"] == f"rolled back to {repo}@{v2}"
    app.wait_active()
    info = app.container_info()
    assert info is not None and info["image"] == v2_id
    assert app.env_reference() == f"{repo}@{v2}"
    lock = lock_of(pu, app)
    assert f'digest = "{v2}"' in lock and 'source = "rollback"' in lock, lock
    assert v3 not in history_digests(pu, app)
    assert history_digests(pu, app)[0] == v2
    run = app.run()
    assert (run["ActiveState"], run["SubState"], run["NRestarts"]) == (
        "active", "running", "0"), run
    status_code, status = app.status_json(app.name)
    (entry,) = status["apps"]
    assert status_code == 0 and entry["healthy"] is True
    last = entry["last_update"]
    assert (last["from"], last["to"], last["result"]) == (
        f"{repo}@{v2}", f"{repo}@{v3}", "rolled_back"), last
    assert last["cause"] == out["cause"]
    assert entry["last_rollback"] == last
    human = pu.run(["pullunit", "status", app.name], check=False).stdout
    assert "rolled back automatically" in human and "unhealthy" in human, human
    # Why, in the update's log and in the run unit's journal (where the gate said it).
    assert "did not become ready: not ready: unhealthy" in err, err
    assert f"rolling back to {repo}@{v2}" in err, err
    assert "not ready: unhealthy (last check exited 1" in pu.journal(app.run_unit)


def test_update_with_the_registry_down_changes_nothing(
        pu: Machine, registries: Any, leftovers: DockerLeftovers) -> None:
    reg = registries().start()
    tag = f"{reg.address}/e2e/updown:1.0"
    push_health_image(tag, "healthy", ready_after=1)
    app = App(pu, leftovers, "updown", tag)
    generate(pu)
    pu.systemctl("start", app.run_unit)
    app.wait_active()
    push_health_image(tag, "healthy")
    reg.stop()
    before = (app.container_info(), app.run("InvocationID"), app.env_reference())
    state_before = pu.read_file(f"/var/lib/pullunit/{app.name}.json")
    t0 = time.monotonic()
    code, doc, err = update(pu, app.name)
    assert time.monotonic() - t0 < 30
    assert code == 69, (doc, err)
    (out,) = doc
    assert (out["result"], out["class"]) == ("failed", "unreachable"), out
    assert "connection refused" in out["message"]
    assert (app.container_info(), app.run("InvocationID"), app.env_reference()) == before
    assert pu.read_file(f"/var/lib/pullunit/{app.name}.json") == state_before
    assert pu.run(["test", "-e", f"/etc/pullunit/{app.name}.lock.toml"],
                  check=False).returncode == 1
    run = app.run()
    assert (run["ActiveState"], run["NRestarts"]) == ("active", "0"), run

    # Bad [health]/[update] values: exit 78 naming file and key, nothing written.
    unit_before = pu.read_file(f"/etc/systemd/system/{app.run_unit}")
    pu.write_file(app.config_path, pu.read_file(app.config_path)
                  + "[health]\nretries = 0\n[update]\nauto = true\n")
    r = pu.run(["pullunit", "generate"], check=False)
    assert r.returncode == 78, r.stderr
    assert f"{app.config_path}: health.retries: must be between 1 and 1000" in r.stderr
    assert "Traceback" not in r.stderr
    assert pu.read_file(f"/etc/systemd/system/{app.run_unit}") == unit_before
    r = pu.run(["pullunit", "update", app.name], check=False)
    assert r.returncode == 78 and "health.retries" in r.stderr, r.stderr
    assert pu.read_file(f"/var/lib/pullunit/{app.name}.json") == state_before


def test_timer_updates_only_auto_apps(pu: Machine, registries: Any,
                                      leftovers: DockerLeftovers) -> None:
    for unit in ("pullunit-update.service", "pullunit-update.timer"):
        pu.write_file(f"/etc/systemd/system/{unit}",
                      (sc.TREE / "units" / unit).read_text())
    pu.systemctl("daemon-reload")
    timer = pu.show("pullunit-update.timer", "LoadState", "RandomizedDelayUSec")
    assert timer["LoadState"] == "loaded", timer
    assert timer["RandomizedDelayUSec"] != "0", timer
    reg = registries().start()
    apps, first = {}, {}
    for kind, auto in (("auto", True), ("manual", False)):
        tag = f"{reg.address}/e2e/{kind}:1.0"
        first[kind], _ = push_health_image(tag, "healthy", ready_after=1)
        apps[kind] = App(pu, leftovers, kind, tag, update={"auto": auto})
    generate(pu)
    for a in apps.values():
        pu.systemctl("start", a.run_unit)
        a.wait_active()
    manual_env = apps["manual"].env_reference()
    new = {kind: push_health_image(f"{reg.address}/e2e/{kind}:1.0", "healthy",
                                   ready_after=1)
           for kind in apps}
    pu.systemctl("start", "pullunit-update.service")  # oneshot: returns when done
    svc = pu.show("pullunit-update.service", "Result", "ExecMainStatus")
    assert (svc["Result"], svc["ExecMainStatus"]) == ("success", "0"), svc
    assert (apps["auto"].container_info() or {}).get("image") == new["auto"][0]
    assert (apps["manual"].container_info() or {}).get("image") == first["manual"]
    assert apps["manual"].env_reference() == manual_env
    _, status = apps["auto"].status_json(apps["auto"].name)
    last = status["apps"][0]["last_update"]
    assert (last["result"], last["auto"]) == ("updated", True), last
    _, status = apps["manual"].status_json(apps["manual"].name)
    assert status["apps"][0]["last_update"] is None


def test_leftover_containers_are_removed_and_clean_stops_skip_it(
        pu: Machine, registries: Any, leftovers: DockerLeftovers) -> None:
    """A container with the app's name left behind (by hand, or by a docker run that was
    killed) is removed before the app starts; a clean stop leaves a marker so the next
    start need not ask Docker; a killed docker run gets its container removed at once."""
    reg = registries().start()
    tag = f"{reg.address}/e2e/left:1.0"
    image_id, _ = push_health_image(tag, "healthy", ready_after=1, keep_local=True)
    app = App(pu, leftovers, "left", tag)
    generate(pu)
    rh_docker = sc.rh.docker
    rh_docker("run", "-d", "--name", app.container, "--network", "none", image_id)
    pu.systemctl("start", app.run_unit)
    app.wait_active()
    marker = f"/run/pullunit/{app.name}.stopped"
    first = app.container_info()
    assert first is not None and first["config_image"] != image_id  # the unit's, by digest

    pu.systemctl("stop", app.run_unit)
    assert pu.run(["test", "-e", marker], check=False).returncode == 0
    pu.systemctl("start", app.run_unit)
    app.wait_active()
    assert pu.run(["test", "-e", marker], check=False).returncode == 1  # used up

    # docker run killed: the container would run on without its unit.
    running = app.container_info()
    assert running is not None
    pu.systemctl("kill", "--signal=KILL", "--kill-who=main", app.run_unit)
    pu.wait_for(lambda: app.run("NRestarts")["NRestarts"] == "1", 20, 0.1,
                "Restart= to start the app again")
    app.wait_active()
    again = app.container_info()
    assert again is not None and again["id"] != running["id"]
    assert pu.run(["test", "-e", marker], check=False).returncode == 1
