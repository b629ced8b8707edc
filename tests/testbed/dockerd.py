"""Docker engines: the shared main one on /run/docker.sock, and private extra ones.

An *extra* daemon has its own socket, pidfile, exec-root (hence its own containerd)
and data-root, and never touches iptables, the docker0 bridge or sysctls, so it can
be started, stopped, filled up or broken without disturbing the main daemon that
other tests share.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from . import _util as u

MAIN_SOCKET = "/run/docker.sock"
MAIN_LOG = Path("/var/log/pullunit-test-dockerd.log")


def socket_answers(sock: str, timeout: float = 2.0) -> bool:
    """True if a Docker engine answers GET /_ping on the unix socket *sock*."""
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout)
    try:
        s.connect(sock)
        s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        return b" 200 " in s.recv(64)
    except OSError:
        return False
    finally:
        s.close()


def _overlay_works_on(directory: Path) -> bool:
    """overlay2 needs overlayfs mountable with upper/work on the data-root's fs."""
    probe = Path(tempfile.mkdtemp(prefix=".ovl-", dir=directory))
    try:
        for d in ("l", "u", "w", "m"):
            (probe / d).mkdir()
        r = u.sh(["mount", "-t", "overlay", "overlay", "-o",
                  f"lowerdir={probe}/l,upperdir={probe}/u,workdir={probe}/w",
                  str(probe / "m")], check=False)
        if r.returncode != 0:
            return False
        u.sh(["umount", str(probe / "m")], check=False)
        return True
    finally:
        u.rmtree(probe)


class DockerdProcess:
    """One dockerd. ``DockerdProcess.main()`` is the shared engine; any other instance
    is an extra daemon under its own directories (see the module doc).

    start() is idempotent; stop() ends the process but keeps its data (so a stop/start
    pair is "daemon down, then started again" with the same images); close() also
    unmounts and deletes everything it made.
    """

    def __init__(self, name: str = "extra", *, data_root_size_mb: int | None = None,
                 netns: str | None = None, storage_driver: str | None = None,
                 extra_args: tuple[str, ...] = (), owner: int | str | None = None,
                 env: dict[str, str] | None = None, _main: bool = False) -> None:
        self.name = name
        self.env = dict(env or {})  # added to the clean environment (e.g. HTTPS_PROXY)
        self.main = _main
        self.netns = netns
        self.extra_args = tuple(extra_args)
        self.owner = owner if owner is not None else os.getpid()
        self.data_root_size_mb = data_root_size_mb
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid: int | None = None
        self.rec = u.Record(id=f"dockerd-{name}-{secrets.token_hex(3)}", kind="dockerd",
                            owner=self.owner)
        if _main:
            self.socket = MAIN_SOCKET
            self.log = MAIN_LOG
            self.run_dir = self.work_dir = None
            self.storage_driver = storage_driver
            self.bridge = None
            return
        u.RUN_BASE.mkdir(parents=True, exist_ok=True)
        u.WORK_BASE.mkdir(parents=True, exist_ok=True)
        # Sockets and pidfile on /run (short paths); data on disk unless a small fs is
        # wanted, in which case a size-limited tmpfs (needs no loop device or mkfs).
        self.run_dir = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=u.RUN_BASE))
        self.work_dir = Path(tempfile.mkdtemp(prefix=f"dockerd-{name}-", dir=u.WORK_BASE))
        self.rec.paths += [str(self.run_dir), str(self.work_dir)]
        self.rec.markers = [str(self.run_dir)]
        self.socket = str(self.run_dir / "docker.sock")
        self.log = self.work_dir / "dockerd.log"
        self.data_root = self.work_dir / "data"
        self.data_root.mkdir()
        u.save_record(self.rec)  # before the mount, so a crash right after is undone
        if data_root_size_mb:
            u.sh(["mount", "-t", "tmpfs", "-o", f"size={data_root_size_mb}m,mode=0711",
                  f"ptb-{name}", str(self.data_root)])
        self.storage_driver = storage_driver or (
            "overlay2" if _overlay_works_on(self.data_root) else "vfs")
        (self.work_dir / "daemon.json").write_text("{}\n")
        self.bridge = None if netns else self._make_bridge()

    def _make_bridge(self) -> str:
        """A bridge ptbbrK (10.231.(128+K).1/24) for this daemon's default network.
        CAUTION, verified on 20.10: a dockerd started with --bridge=none DELETES an
        existing docker0 ("removeDefaultBridgeInterface"), i.e. breaks the main
        daemon's networking. --bridge=none is only safe inside a netns of our own."""
        with u.host_lock():
            addrs = u.sh(["ip", "-o", "-4", "addr", "show"]).stdout
            for k in range(64):
                name, net = f"ptbbr{k}", f"10.231.{128 + k}."
                if not Path(f"/sys/class/net/{name}").exists() and f" {net}" not in addrs:
                    self.rec.links.append(name)
                    u.save_record(self.rec)
                    u.sh(["ip", "link", "add", name, "type", "bridge"])
                    u.sh(["ip", "addr", "add", f"{net}1/24", "dev", name])
                    return name
        raise u.TestbedError("no free ptbbrK bridge name / 10.231.(128+K).0/24")

    @classmethod
    def main_daemon(cls, owner: int | str | None = None) -> DockerdProcess:
        return cls("main", owner=owner, _main=True)

    # ------------------------------------------------------------------ control

    @property
    def base_url(self) -> str:
        return f"unix://{self.socket}"

    def answers(self) -> bool:
        return socket_answers(self.socket)

    def argv(self) -> list[str]:
        argv = [u.binary("dockerd"), "--host", self.base_url]
        if self.storage_driver:
            argv += ["--storage-driver", self.storage_driver]
        argv += self.extra_args
        if self.main:
            return argv
        assert self.run_dir and self.work_dir
        argv += [
            "--pidfile", str(self.run_dir / "docker.pid"),
            "--exec-root", str(self.run_dir / "exec"),
            "--data-root", str(self.data_root),
            # Our own (empty) config: a host daemon.json must not change extra daemons.
            "--config-file", str(self.work_dir / "daemon.json"),
            # Leave the host's networking to the main daemon: no iptables, no sysctls,
            # and a bridge of our own (see _make_bridge: never --bridge=none here).
            f"--bridge={self.bridge or 'none'}", "--iptables=false", "--ip6tables=false",
            "--ip-forward=false", "--ip-masq=false",
        ]
        if self.netns:
            argv = self._in_netns(argv)
        return argv

    def _in_netns(self, argv: list[str]) -> list[str]:
        """Run *argv* in our netns, with /etc/netns/NS/resolv.conf (if any) as its
        /etc/resolv.conf. Not `ip netns exec`: that remounts /sys, which hides the
        cgroup mounts dockerd needs ("Devices cgroup isn't mounted"). A private mount
        namespace (slave: host mounts still propagate in) holds the bind mount.
        Every step execs, so the pid we hold is dockerd's."""
        assert self.netns is not None
        inner = [u.binary("nsenter"), f"--net=/run/netns/{self.netns}", "--", *argv]
        resolv = Path("/etc/netns") / self.netns / "resolv.conf"
        if resolv.exists():
            inner = ["/bin/sh", "-c", 'mount --bind "$0" /etc/resolv.conf && exec "$@"',
                     str(resolv), *inner]
        return [u.binary("unshare"), "--mount", "--propagation", "slave", "--", *inner]

    def start(self, timeout: float = 60) -> DockerdProcess:
        if self.answers():
            return self
        had_docker0 = Path("/sys/class/net/docker0").exists()
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.proc = u.spawn(self.argv(), self.log, env=u.clean_env(self.env))
        self.pid = self.proc.pid  # `ip netns exec` execs dockerd: same pid
        self.rec.pids = [(self.pid, "dockerd")]
        u.save_record(self.rec)

        def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise u.TestbedError(f"dockerd {self.name} exited {self.proc.returncode};"
                                     f" {self.log}:\n{u.log_tail(self.log)}")
            return self.answers()

        try:
            u.wait_for(up, timeout, 0.1, f"dockerd {self.name} on {self.socket}")
        except TimeoutError as e:
            self.stop()
            raise u.TestbedError(f"{e}; {self.log}:\n{u.log_tail(self.log)}") from e
        if had_docker0 and not Path("/sys/class/net/docker0").exists():
            raise u.TestbedError(f"dockerd {self.name} removed the host's docker0 bridge")
        return self

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM the daemon (it stops its own containerd and removes its socket)."""
        if self.pid is not None:
            u.stop_pid(self.pid, "dockerd", timeout)
            if self.proc is not None:
                self.proc.wait(5)
            self.pid = self.proc = None
        if not self.main:
            self.rec.pids = []
            u.save_record(self.rec)
            # A SIGKILLed dockerd leaves its containerd behind: find it by our exec-root.
            for pid in u.pids_with(str(self.run_dir)):
                u.stop_pid(pid, str(self.run_dir), 10)

    def close(self) -> None:
        self.stop()
        if not self.main:
            u.undo_record(self.rec)
        else:
            u.drop_record(self.rec.id)

    def __enter__(self) -> DockerdProcess:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ clients

    def client(self, timeout: int = 120) -> Any:
        """A docker.DockerClient for this daemon (API version negotiated)."""
        import docker
        return docker.DockerClient(base_url=self.base_url, version="auto", timeout=timeout)

    def api(self, timeout: int = 120) -> Any:
        """A docker.APIClient (low level: pull(stream=True, decode=True) etc.)."""
        import docker
        return docker.APIClient(base_url=self.base_url, version="auto", timeout=timeout)

    def info(self) -> dict[str, Any]:
        with self.api() as api:
            result: dict[str, Any] = api.info()
            return result

    def __repr__(self) -> str:
        return f"DockerdProcess({self.name!r}, socket={self.socket!r}, pid={self.pid})"


# ----------------------------------------------------------------- main daemon

_MAIN: DockerdProcess | None = None


def ensure_dockerd(timeout: float = 60, owner: int | str | None = None) -> str:
    """Make an engine answer on /run/docker.sock and return that path. An engine that
    already answers is reused (and never stopped by us); otherwise /usr/sbin/dockerd
    is started with its log in /var/log/pullunit-test-dockerd.log."""
    global _MAIN
    if socket_answers(MAIN_SOCKET):
        return MAIN_SOCKET
    _MAIN = DockerdProcess.main_daemon(owner=owner).start(timeout)
    return MAIN_SOCKET


def main_dockerd_started_here() -> DockerdProcess | None:
    """The main engine if this process started it (then stop()/start() on it are
    allowed); None if it was already running, i.e. someone else's."""
    return _MAIN


def stop_main_dockerd_if_started() -> bool:
    global _MAIN
    if _MAIN is None:
        return False
    _MAIN.close()
    _MAIN = None
    return True


# ---------------------------------------------------------------- extra daemons


def start_extra_dockerd(name: str, data_root_size_mb: int | None = None, *,
                        netns: str | None = None, extra_args: tuple[str, ...] = (),
                        timeout: float = 60) -> DockerdProcess:
    """A private second engine (own socket/pidfile/exec-root/data-root). With
    *data_root_size_mb* its data-root is a tmpfs that small, so pulling a bigger image
    fails with "no space left on device". Stop it with stop_extra_dockerd()."""
    d = DockerdProcess(name, data_root_size_mb=data_root_size_mb, netns=netns,
                       extra_args=extra_args)
    with u.closing_on_error(d):
        return d.start(timeout)


def stop_extra_dockerd(d: DockerdProcess) -> None:
    d.close()
