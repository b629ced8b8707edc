"""[run.secrets] and drop-ins under real systemd 252 in nspawn.

Secrets need an engine that sees the unit's credentials (/run/credentials/APP.service,
mounted by systemd in PID 1's mount namespace), as dockerd does on a real host: these
machines run their own engine in their mount namespace (private_dockerd.py) instead of
sharing the host's. Images still come from a testbed registry on 127.0.0.1.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import harness
import pytest
import registry_helpers as rh
from harness import Machine
from private_dockerd import PrivateDockerd
from test_scenarios import (  # noqa: F401 - fixtures
    TREE,
    App,
    DockerLeftovers,
    generate,
    leftovers,
    registries,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def sealed(e2e_root: Path, host_docker: None, leftovers: DockerLeftovers,  # noqa: F811
           registries: Any, tmp_path: Path) -> Iterator[Machine]:  # noqa: F811
    """A machine with pullunit and its own Docker engine on its /run/docker.sock. The
    host's docker0 must survive it (a dockerd with --bridge none in the host's network
    namespace deletes it, and the host engine's `docker run` then fails)."""
    had_docker0 = Path("/sys/class/net/docker0").exists()
    with Machine(e2e_root, bind_docker_sock=False) as m:
        harness.install_pullunit_from_tree(m, TREE)
        with PrivateDockerd(m, tmp_path / "dockerd.log"):
            yield m
    assert not had_docker0 or Path("/sys/class/net/docker0").exists(), \
        "the machine's private dockerd removed the host's docker0 bridge"


def inside_docker(m: Machine, *args: str, check: bool = True) -> str:
    r = m.run(["docker", *args], check=check, timeout=60)
    return r.stdout


def write_secret(m: Machine, path: str, value: str) -> None:
    m.run(["mkdir", "-p", "-m", "0700", str(Path(path).parent)])
    m.write_file(path, value, mode=0o600)


def test_secret_reaches_the_container_and_nothing_else(sealed: Machine, registries: Any,  # noqa: F811
                                                       leftovers: DockerLeftovers) -> None:  # noqa: F811
    m = sealed
    reg = registries().start()
    tag = f"{reg.address}/e2e/secret:1.0"
    rh.push_image(tag)
    value = f"pu-secret-{secrets.token_hex(12)}"
    write_secret(m, "/etc/pullunit/secrets/db", value)
    app = App(m, leftovers, "sec", tag, run={"secrets": {"db": "/etc/pullunit/secrets/db"}})
    generate(m)
    m.systemctl("start", app.run_unit)
    m.wait_for(lambda: m.show(app.run_unit, "ActiveState")["ActiveState"] == "active", 30,
               what=f"{app.run_unit} active")

    # Readable in the container, read-only, at /run/secrets/NAME.
    assert inside_docker(m, "exec", app.container, "cat", "/run/secrets/db") == value
    r = m.run(["docker", "exec", app.container, "sh", "-c", "echo x > /run/secrets/db"],
              check=False)
    assert r.returncode != 0
    inspect = json.loads(inside_docker(m, "inspect", app.container))[0]
    [mount] = [x for x in inspect["Mounts"] if x["Destination"] == "/run/secrets/db"]
    assert mount["Source"] == f"/run/credentials/{app.run_unit}/db" and mount["RW"] is False
    # systemd's copy: root only, on a ramfs that goes with the unit.
    assert m.run(["stat", "-c", "%a %U", f"/run/credentials/{app.run_unit}/db"]
                 ).stdout.split() == ["400", "root"]

    # Nowhere else: docker inspect (Env, Labels, Config...), the unit, status --json, the
    # journal, the metrics.
    assert value not in json.dumps(inspect)
    assert value not in m.run(["systemctl", "cat", app.run_unit, app.pull_unit]).stdout
    assert value not in m.run(["pullunit", "status", "--json", app.name], check=False).stdout
    assert value not in m.run(["pullunit", "metrics", app.name], check=False).stdout
    prom = m.run(["sh", "-c", "cat /var/lib/prometheus/node-exporter/*.prom"], check=False)
    assert value not in prom.stdout
    assert value not in m.journal()

    # Stopped: systemd removes its copy.
    m.systemctl("stop", app.run_unit)
    assert m.run(["test", "-e", f"/run/credentials/{app.run_unit}"],
                 check=False).returncode != 0


def test_missing_secret_fails_the_start_and_leaks_nothing(sealed: Machine, registries: Any,  # noqa: F811
                                                          leftovers: DockerLeftovers) -> None:  # noqa: F811
    m = sealed
    reg = registries().start()
    tag = f"{reg.address}/e2e/nosecret:1.0"
    rh.push_image(tag)
    app = App(m, leftovers, "nosec", tag, run={"secrets": {"db": "/etc/pullunit/secrets/gone"}})
    generate(m)
    r = m.systemctl("start", app.run_unit, check=False)
    assert r.returncode != 0
    run = app.run()
    assert run["Result"] == "exit-code" and run["ExecMainStatus"] == "243", run
    assert "Failed to set up credentials" in m.journal(app.run_unit)
    # docker run never ran: no container was made.
    assert inside_docker(m, "ps", "-aq", "--filter", f"name={app.container}").strip() == ""
    status = m.run(["pullunit", "status", app.name], check=False).stdout
    assert "243/CREDENTIALS" in status and "/etc/pullunit/secrets/gone" in status
    said = m.run(["pullunit", "validate"], check=False)
    assert "/etc/pullunit/secrets/gone does not exist" in said.stderr

    # The file arrives: the next start runs.
    value = f"pu-secret-{secrets.token_hex(12)}"
    write_secret(m, "/etc/pullunit/secrets/gone", value)
    m.systemctl("reset-failed", app.run_unit)
    m.systemctl("start", app.run_unit)
    assert inside_docker(m, "exec", app.container, "cat", "/run/secrets/db") == value


def test_generator_picks_up_a_drop_in_and_removal_undoes_it(
        sealed: Machine, registries: Any, leftovers: DockerLeftovers) -> None:  # noqa: F811
    m = sealed
    reg = registries().start()
    tag = f"{reg.address}/e2e/dropin:1.0"
    rh.push_image(tag)
    app = App(m, leftovers, "drop", tag, run={"env": {"KEPT": "main"}})
    dropin = f"{app.config_path}.d/50-host.toml"
    m.run(["mkdir", "-p", f"{app.config_path}.d"])
    m.write_file(dropin, '[run.env]\nFROM_DROPIN = "yes"\n[unit]\ndescription = "via drop-in"\n')
    m.systemctl("daemon-reload")  # the installed pullunit-generator, nothing else
    props = m.show(app.run_unit, "Description", "FragmentPath")
    assert props["Description"] == "via drop-in", props
    assert props["FragmentPath"] == f"/run/systemd/generator/{app.run_unit}"
    unit = m.read_file(f"/run/systemd/generator/{app.run_unit}")
    assert f"# with drop-in {dropin}\n" in unit
    m.systemctl("start", app.run_unit)
    env = json.loads(inside_docker(m, "inspect", app.container))[0]["Config"]["Env"]
    assert "FROM_DROPIN=yes" in env and "KEPT=main" in env
    cat = m.run(["pullunit", "cat", app.name]).stdout
    assert f"# {dropin}\nFROM_DROPIN = \"yes\"" in cat

    m.run(["rm", dropin])
    m.systemctl("daemon-reload")
    assert m.show(app.run_unit, "Description")["Description"].startswith(f"{app.name} container")
    m.systemctl("restart", app.run_unit)
    env = json.loads(inside_docker(m, "inspect", app.container))[0]["Config"]["Env"]
    assert "KEPT=main" in env and not any(e.startswith("FROM_DROPIN=") for e in env)


def test_encrypted_secret_is_decrypted_by_systemd_for_the_container(
        sealed: Machine, registries: Any, leftovers: DockerLeftovers) -> None:  # noqa: F811
    """`{ path = ..., encrypted = true }`: LoadCredentialEncrypted= with a file made by
    systemd-creds (no TPM in the machine: the host key /var/lib/systemd/credential.secret,
    made on first use). The container reads the plaintext; the file on disk and every
    place pullunit writes hold only ciphertext or nothing."""
    m = sealed
    reg = registries().start()
    tag = f"{reg.address}/e2e/encsecret:1.0"
    rh.push_image(tag)
    value = f"pu-secret-{secrets.token_hex(12)}"
    write_secret(m, "/etc/pullunit/secrets/plain", value)
    # The credential's name is sealed into it: it must be the name the unit loads it as.
    m.run(["systemd-creds", "encrypt", "--name=tls", "/etc/pullunit/secrets/plain",
           "/etc/pullunit/secrets/tls.cred"])
    m.run(["rm", "/etc/pullunit/secrets/plain"])
    assert value not in m.run(["cat", "/etc/pullunit/secrets/tls.cred"]).stdout
    app = App(m, leftovers, "encsec", tag, run={"secrets": {
        "tls": {"path": "/etc/pullunit/secrets/tls.cred", "encrypted": True}}})
    generate(m)
    unit = m.run(["systemctl", "cat", app.run_unit]).stdout
    assert "LoadCredentialEncrypted=tls:/etc/pullunit/secrets/tls.cred" in unit
    m.systemctl("start", app.run_unit)
    m.wait_for(lambda: m.show(app.run_unit, "ActiveState")["ActiveState"] == "active", 30,
               what=f"{app.run_unit} active")
    assert inside_docker(m, "exec", app.container, "cat", "/run/secrets/tls") == value
    inspect = json.loads(inside_docker(m, "inspect", app.container))[0]
    assert value not in json.dumps(inspect)
    assert value not in m.run(["pullunit", "status", "--json", app.name], check=False).stdout
    assert value not in m.journal()
