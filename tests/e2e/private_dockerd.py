"""A Docker engine in a machine's own mount namespace, for tests of what only such an
engine can see: systemd's credentials of a unit (/run/credentials/UNIT, a ramfs systemd
mounts in PID 1's mount namespace) are what `[run.secrets]` bind-mounts into a container.
The host engine the other scenarios share lives in the host's mount namespace and cannot
see them; on a real host dockerd shares PID 1's namespace, which this reproduces.

The engine is the machine's own /usr/sbin/dockerd (Debian 12's docker.io), started from the
host with `nsenter -m` into the machine's mount namespace and `unshare -m` into a private
copy of it, so that what it needs does not change the machine: a /proc of the host's pid
namespace (it runs there), the host's cgroup hierarchies, devtmpfs, a tmpfs data root.
The copy keeps the propagation of the machine's mounts (`--propagation unchanged`), so the
credentials ramfs systemd mounts under /run later appears in it. It listens on the
machine's /run/docker.sock (boot the machine with bind_docker_sock=False), shares the
host's network namespace without touching what is there (a bridge of its own, BRIDGE, no
iptables) and puts containers in the cgroup CGROUP_PARENT. Only loopback is reached (the
testbed registries).

Never `--bridge none` in the host's network namespace: dockerd 20.10 then DELETES an
existing docker0 (libnetwork's removeDefaultBridgeInterface), and the host's own engine
loses its default network ("could not find bridge docker0": every `docker run` without
--network fails, the README's demo among them). tests/testbed/README.md has the story.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from harness import Machine

EXEC_ROOT = "/run/pu-e2e-docker"
DATA_ROOT = "/var/lib/pu-e2e-docker"
CGROUP_PARENT = "pu-e2e-private-dockerd"
# The engine's default bridge: ours, beside the testbed's ptbbrK (10.231.128-191.0/24).
BRIDGE = "pue2ebr0"
BRIDGE_ADDR = "10.231.127.1/24"


def _host_cgroup_mounts() -> list[tuple[str, str, str]]:
    """(mount point, fstype, options) of each cgroup hierarchy the host has mounted."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            mount_point = pre.split()[4]
            fstype, _source, superopts = post.split()[:3]
            if fstype in ("cgroup", "cgroup2") and mount_point.startswith("/sys/fs/cgroup"):
                opts = [o for o in superopts.split(",") if o not in ("rw", "ro")]
                out.append((mount_point, fstype, ",".join(opts)))
    return out


def _script() -> str:
    lines = ["set -e",
             # Private first: nothing below may propagate back into the machine.
             "for m in /proc /sys /dev; do mount --make-rprivate $m; done",
             "mount -t proc proc /proc",
             "mount -o remount,bind,rw /sys || true",
             "umount -R -l /sys/fs/cgroup || true",
             "mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup"]
    for mount_point, fstype, opts in _host_cgroup_mounts():
        if mount_point == "/sys/fs/cgroup":  # a pure cgroup2 host
            lines.append("umount /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup")
            continue
        lines.append(f"mkdir -p {mount_point}")
        lines.append(f"mount -t cgroup2 cgroup2 {mount_point}" if fstype == "cgroup2"
                     else f"mount -t cgroup -o {opts} cgroup {mount_point}")
    lines += ["mount -t devtmpfs devtmpfs /dev",
              f"mkdir -p {DATA_ROOT} {EXEC_ROOT}",
              f"mount -t tmpfs tmpfs {DATA_ROOT}",
              f"exec /usr/sbin/dockerd --host unix:///run/docker.sock --data-root {DATA_ROOT}"
              f" --exec-root {EXEC_ROOT} --pidfile {EXEC_ROOT}.pid --storage-driver vfs"
              f" --bridge {BRIDGE} --iptables=false --ip6tables=false --ip-masq=false"
              f" --userland-proxy=false --cgroup-parent /{CGROUP_PARENT}"
              " --exec-opt native.cgroupdriver=cgroupfs"]
    return "\n".join(lines)


class PrivateDockerd:
    def __init__(self, machine: Machine, log: Path) -> None:
        self.m = machine
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PrivateDockerd:
        assert self.m.pid1 is not None
        self.had_docker0 = Path("/sys/class/net/docker0").exists()
        if not Path(f"/sys/class/net/{BRIDGE}").exists():
            subprocess.run(["ip", "link", "add", BRIDGE, "type", "bridge"], check=True)
            subprocess.run(["ip", "addr", "add", BRIDGE_ADDR, "dev", BRIDGE], check=True)
        cmd = ["nsenter", "-t", str(self.m.pid1), "-m", "--", "unshare", "-m",
               "--propagation", "unchanged", "--", "/bin/sh", "-c", _script()]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"private dockerd exited {self.proc.returncode}: "
                                   f"{self.log.read_text(errors='replace')[-3000:]}")
            r = self.m.run(["docker", "version", "--format", "{{.Server.Version}}"],
                           check=False, timeout=20)
            if r.returncode == 0:
                if self.had_docker0 and not Path("/sys/class/net/docker0").exists():
                    self.__exit__(None, None, None)
                    raise RuntimeError("the private dockerd removed the host's docker0")
                return self
            time.sleep(0.3)
        self.__exit__(None, None, None)
        raise TimeoutError("private dockerd did not answer within 60 s")

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(Exception):
            ids = self.m.run(["docker", "ps", "-aq"], check=False, timeout=20).stdout.split()
            if ids:
                self.m.run(["docker", "rm", "--force", *ids], check=False, timeout=60)
        self.proc.send_signal(signal.SIGTERM)  # our own process: dockerd (exec'd by sh)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        # A containerd (or shim) it started and left behind: ours, found by our exec root.
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                with contextlib.suppress(OSError):
                    if EXEC_ROOT.encode() in (proc / "cmdline").read_bytes():
                        os.kill(int(proc.name), signal.SIGKILL)
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            with contextlib.suppress(OSError):
                os.rmdir(hierarchy / CGROUP_PARENT)
        subprocess.run(["ip", "link", "del", BRIDGE], check=False, capture_output=True)
        self.proc = None
