"""The readiness gate (`pullunit ready`) against a real engine whose daemon goes away
while the gate waits: a private dockerd (tests/testbed), so the shared one is never
touched.

The gate keeps no connection open: a daemon that stops answering for a while (frozen
here with SIGSTOP) is asked again until it answers, and the gate passes once Docker says
healthy; a daemon restart that takes the container with it is a failed start, said at
once; a daemon that stays down costs the gate no more than its own bound.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.testbed import images
from tests.testbed.dockerd import DockerdProcess

PULLUNIT = str(Path(sys.executable).parent / "pullunit")
ENTRY = """#!/bin/sh
(sleep 6; : > /tmp/ready) &
trap 'exit 0' TERM INT
while :; do sleep 1 & wait $!; done
"""
CHECK = ('HEALTHCHECK --interval=1s --timeout=2s --start-period=60s --retries=2 '
         'CMD ["test", "-f", "/tmp/ready"]')


def docker(d: DockerdProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/usr/bin/docker", "-H", d.base_url, *args], capture_output=True,
                          text=True, timeout=60, check=True)


def start_container(d: DockerdProcess, name: str) -> None:
    client = d.client()
    try:
        tar = images.busybox_rootfs_tar({"/entry": ENTRY}, executable=("/entry",))
        images.import_rootfs(client, "127.0.0.1:5999/gate/app:1", tar,
                             ['ENTRYPOINT ["/entry"]', "ENV PATH=/bin", CHECK])
    finally:
        client.close()
    docker(d, "run", "-d", "--name", name, "--network", "none", "127.0.0.1:5999/gate/app:1")


def gate(d: DockerdProcess, name: str, timeout: str) -> subprocess.Popen[str]:
    env = {**os.environ, "DOCKER_HOST": d.base_url, "NO_COLOR": "1"}
    env.pop("NOTIFY_SOCKET", None)
    env.pop("MAINPID", None)
    return subprocess.Popen([PULLUNIT, "ready", "--container", name, "--start-timeout",
                             timeout, "--stop-timeout", "2s", "gateapp"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_gate_waits_through_a_daemon_that_does_not_answer() -> None:
    with DockerdProcess("gatefreeze") as d:
        d.start()
        start_container(d, "gated")
        t0 = time.monotonic()
        proc = gate(d, "gated", "40s")
        time.sleep(1.5)
        assert d.pid is not None
        os.kill(d.pid, signal.SIGSTOP)  # accepts connections, answers nothing
        try:
            time.sleep(7.0)  # longer than one request's timeout (5 s)
            assert proc.poll() is None, proc.communicate()
        finally:
            os.kill(d.pid, signal.SIGCONT)
        _, err = proc.communicate(timeout=60)
        took = time.monotonic() - t0
        assert proc.returncode == 0, err
        assert "ready: gated is healthy after" in err
        assert took < 40
        status = docker(d, "inspect", "-f", "{{.State.Status}}", "gated").stdout.strip()
        assert status == "running"


def test_a_daemon_restart_that_takes_the_container_fails_the_start() -> None:
    with DockerdProcess("gaterestart") as d:
        d.start()
        start_container(d, "gated")
        proc = gate(d, "gated", "60s")
        time.sleep(1.5)
        d.stop()
        d.start()
        t0 = time.monotonic()
        _, err = proc.communicate(timeout=60)
        assert time.monotonic() - t0 < 15
        assert proc.returncode == 81, err
        assert "not ready: the container exited with status" in err, err
        assert "Traceback" not in err


def test_a_daemon_that_stays_down_costs_the_gate_its_bound() -> None:
    with DockerdProcess("gatedown") as d:
        d.start()
        start_container(d, "gated")
        proc = gate(d, "gated", "4s")
        time.sleep(1.0)
        d.stop()
        t0 = time.monotonic()
        _, err = proc.communicate(timeout=60)
        assert time.monotonic() - t0 < 4 + 12  # its bound, plus one request's timeout
        assert proc.returncode == 81, err
        assert "not ready: not healthy within health.start_timeout (4.0s): the Docker " \
               "daemon does not answer" in err, err
        assert "Traceback" not in err
