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
