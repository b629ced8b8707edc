"""The [run] container keys end to end: one app using every key runs under real systemd
252 (Debian 12 in nspawn) on the host's engine, and `docker inspect` of its container
shows each value applied; two networks (docker create + network connect + docker start
--attach) with their aliases and a fixed address; `pullunit status` shows the limits; the
default log driver keeps the output in the unit's journal only.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
import registry_helpers as rh
import test_scenarios as scenarios
from harness import Machine
from test_scenarios import App, DockerLeftovers, generate

# The scenarios' fixtures, used here by name.
leftovers, pu = scenarios.leftovers, scenarios.pu
registries, stalled_proxy = scenarios.registries, scenarios.stalled_proxy

pytestmark = pytest.mark.e2e


def inspect(name: str) -> dict[str, Any]:
    out = rh.docker("inspect", "--type", "container", name).stdout
    doc: dict[str, Any] = json.loads(out)[0]
    return doc


def without_network_none(m: Machine, app: App) -> None:
    """App writes network = "none" (the scenarios need no network); run.networks and
    run.network cannot both be set."""
    m.write_file(app.config_path, m.read_file(app.config_path).replace('network = "none"\n', ""))


@pytest.fixture
def networks() -> Iterator[list[tuple[str, str]]]:
    """Two user-defined networks on the host engine, (name, subnet prefix), removed at
    the end. A fixed address needs a subnet of one's own: picked at random in
    10.233.0.0/16, again if another network has it."""
    made: list[tuple[str, str]] = []
    tag = secrets.token_hex(3)
    for role in ("front", "back"):
        for _ in range(20):
            prefix = f"10.233.{secrets.randbelow(250) + 1}"
            name = f"pu-keys-{tag}-{role}"
            r = rh.docker("network", "create", "--subnet", f"{prefix}.0/24", name, check=False)
            if r.returncode == 0:
                made.append((name, prefix))
                break
            assert "overlap" in r.stderr.lower(), r.stderr
        else:
            pytest.fail("no free /24 in 10.233.0.0/16 for a test network")
    yield made
    for name, _ in made:
        rh.docker("network", "rm", name, check=False)


def test_every_container_key_reaches_docker(pu: Machine, registries: Any,
                                            leftovers: DockerLeftovers,
                                            networks: list[tuple[str, str]]) -> None:
    (front, front_prefix), (back, _) = networks
    reg = registries().start()
    tag = f"{reg.address}/e2e/keys:1.0"
    rh.push_image(tag)
    run: dict[str, Any] = {
        "networks": [{"name": front, "aliases": ["web", "www"], "ip": f"{front_prefix}.10"},
                     {"name": back, "aliases": ["api"]}],
        "memory": "64m", "memory_swap": "128m", "cpus": 0.5, "pids_limit": 50,
        "shm_size": "16m", "ulimits": {"nofile": {"soft": 1024, "hard": 2048}, "core": 0},
        "log_driver": "local", "log_opts": {"max-size": "1m", "max-file": 2},
        "read_only": True, "tmpfs": ["/scratch:size=8m,mode=1777"],
        "cap_add": ["net_bind_service"], "cap_drop": ["ALL"],
        "security_opt": ["label=disable"], "no_new_privileges": True, "privileged": False,
        "devices": ["/dev/zero:/dev/zero2:r"], "group_add": ["1001"],
        "sysctls": {'"net.ipv4.ip_unprivileged_port_start"': 80},
        "hostname": "keys-e2e", "dns": ["10.0.0.2"], "dns_search": ["shop.internal"],
        "add_hosts": {'"db.shop.internal"': "10.0.0.5"},
        "labels": {'"com.example.team"': "shop 100% $HOME"}, "workdir": "/scratch",
        "init": True, "stop_signal": "SIGINT",
    }
    app = App(pu, leftovers, "keys", tag, run=run)
    without_network_none(pu, app)
    r = pu.run(["pullunit", "validate", app.config_path], check=False)
    assert r.returncode == 0, r.stderr
    generate(pu)
    pu.systemctl("start", app.run_unit)
    app.wait_active(timeout=30)

    c = inspect(app.container)
    host, config = c["HostConfig"], c["Config"]
    assert host["Memory"] == 64 << 20 and host["MemorySwap"] == 128 << 20
    assert host["NanoCpus"] == 500_000_000
    assert host["PidsLimit"] == 50
    assert host["ShmSize"] == 16 << 20
    assert sorted((u["Name"], u["Soft"], u["Hard"]) for u in host["Ulimits"]) == [
        ("core", 0, 0), ("nofile", 1024, 2048)]
    assert host["LogConfig"] == {"Type": "local", "Config": {"max-size": "1m", "max-file": "2"}}
    assert host["ReadonlyRootfs"] is True
    assert host["Tmpfs"] == {"/scratch": "size=8m,mode=1777"}
    assert [x.upper().removeprefix("CAP_") for x in host["CapAdd"]] == ["NET_BIND_SERVICE"]
    assert [x.upper().removeprefix("CAP_") for x in host["CapDrop"]] == ["ALL"]
    assert sorted(host["SecurityOpt"]) == ["label=disable", "no-new-privileges=true"]
    assert host["Privileged"] is False
    assert host["Devices"] == [{"PathOnHost": "/dev/zero", "PathInContainer": "/dev/zero2",
                                "CgroupPermissions": "r"}]
    assert host["GroupAdd"] == ["1001"]
    assert host["Sysctls"] == {"net.ipv4.ip_unprivileged_port_start": "80"}
    assert config["Hostname"] == "keys-e2e"
    assert host["Dns"] == ["10.0.0.2"] and host["DnsSearch"] == ["shop.internal"]
    assert host["ExtraHosts"] == ["db.shop.internal:10.0.0.5"]
    assert config["Labels"]["com.example.team"] == "shop 100% $HOME"
    assert config["Labels"]["pullunit.app"] == app.name
    assert config["WorkingDir"] == "/scratch"
    assert host["Init"] is True
    assert config["StopSignal"] == "SIGINT"
    assert host["AutoRemove"] is True
    nets = c["NetworkSettings"]["Networks"]
    assert set(nets) == {front, back}
    assert {"web", "www"} <= set(nets[front]["Aliases"])
    assert nets[front]["IPAddress"] == f"{front_prefix}.10"
    assert (nets[front]["IPAMConfig"] or {}).get("IPv4Address") == f"{front_prefix}.10"
    assert "api" in nets[back]["Aliases"]
    # Applied, not only recorded: the kernel's view from inside the container.
    seen = rh.docker("exec", app.container, "/bin/sh", "-c",
                     "cat /proc/sys/net/ipv4/ip_unprivileged_port_start; hostname; "
                     "ulimit -n; touch /x 2>&1 || echo read-only").stdout.split("\n")
    assert seen[:3] == ["80", "keys-e2e", "1024"], seen
    assert "read-only" in "\n".join(seen[3:]), seen

    # With a log driver of its own, Docker keeps a copy (docker logs reads it) and the
    # attached client still copies the output into the unit's journal: with "journald"
    # both would be in the journal, which validate points out.
    pu.wait_for(lambda: "READY-MARKER" in pu.journal(app.run_unit), 10, 0.2,
                "the container's output in the unit's journal")
    logs = rh.docker("logs", app.container)
    assert "READY-MARKER" in logs.stdout + logs.stderr
    warned = pu.run(["pullunit", "validate", app.config_path], check=False).stderr
    assert warned == ""

    # pullunit status: the effective limits of the running container.
    _, doc = app.status_json(app.name)
    (entry,) = doc["apps"]
    assert entry["limits"] == {"memory": 64 << 20, "memory_swap": 128 << 20, "cpus": 0.5,
                               "pids": 50}, entry
    human = pu.run(["pullunit", "status", app.name], check=False).stdout
    assert "limits:   memory 64 MiB (with swap 128 MiB), cpus 0.5, pids 50" in human, human

    # docker start --attach is the main process; a stop by the stop signal is clean.
    assert "docker start --attach" in pu.show(app.run_unit, "ExecStart")["ExecStart"]
    pu.systemctl("stop", app.run_unit)
    stopped = app.run()
    assert (stopped["ActiveState"], stopped["Result"]) == ("inactive", "success"), stopped
    pu.wait_for(lambda: app.container_info() is None, 10, 0.1, "the container to be removed")
    _, doc = app.status_json(app.name)
    assert doc["apps"][0]["limits"] is None


def test_default_log_driver_keeps_one_copy_in_the_journal(pu: Machine, registries: Any,
                                                          leftovers: DockerLeftovers) -> None:
    reg = registries().start()
    tag = f"{reg.address}/e2e/logs:1.0"
    rh.push_image(tag)
    app = App(pu, leftovers, "logs", tag, run={"command": ["hello-from-the-container"]})
    generate(pu)
    pu.systemctl("start", app.run_unit)
    app.wait_active(timeout=30)
    assert inspect(app.container)["HostConfig"]["LogConfig"]["Type"] == "none"
    pu.wait_for(lambda: "READY-MARKER" in pu.journal(app.run_unit), 10, 0.2,
                "the container's output in the unit's journal")
    journal = pu.journal(app.run_unit)
    assert journal.count("hello-from-the-container") == 1, journal
    logs = rh.docker("logs", app.container, check=False)
    # Docker keeps no copy: `docker logs` refuses (in whatever words this engine uses)
    # and has none of the output.
    assert logs.returncode != 0, logs
    assert "hello-from-the-container" not in logs.stdout + logs.stderr, logs
    # No limits set: status shows the container has none.
    _, doc = app.status_json(app.name)
    assert doc["apps"][0]["limits"] == {"memory": None, "memory_swap": None, "cpus": None,
                                        "pids": None}


def test_a_missing_second_network_fails_the_start_and_leaves_no_container(
        pu: Machine, registries: Any, leftovers: DockerLeftovers,
        networks: list[tuple[str, str]]) -> None:
    (front, _), _ = networks
    reg = registries().start()
    tag = f"{reg.address}/e2e/nonet:1.0"
    gone = f"pu-keys-{secrets.token_hex(3)}-gone"
    rh.push_image(tag)
    app = App(pu, leftovers, "nonet", tag,
              run={"restart": "no", "networks": [front, gone]})
    without_network_none(pu, app)
    generate(pu)
    r = pu.systemctl("start", app.run_unit, check=False)
    assert r.returncode != 0
    run = app.run()
    assert run["ActiveState"] == "failed" and run["Result"] == "exit-code", run
    assert gone in pu.journal(app.run_unit)  # docker's error names it, in any words
    # ExecStopPost= removed the container docker create made.
    pu.wait_for(lambda: app.container_info() is None, 10, 0.1, "the container to be removed")
