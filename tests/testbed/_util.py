"""Small shared helpers: commands, polling, ports, pids, loopback HTTP, leftovers.

Everything the test bed starts is written down in a *record* under ``STATE_DIR`` (a
tmpfs, so a reboot forgets it) so that a crashed run's processes, mounts, netns and
files can be found and removed by pid and path later, never by process name.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

STATE_DIR = Path("/run/pullunit-testbed")
RECORDS = STATE_DIR / "records"
# Short on purpose: dockerd/containerd put unix sockets below here (108-byte limit).
RUN_BASE = Path("/run/ptb")
WORK_BASE = Path("/var/tmp/pullunit-testbed")

# Proxy variables must never reach a dockerd or urllib we start: a proxy would carry
# test traffic off this machine.
PROXY_VARS = ("http_proxy", "https_proxy", "no_proxy", "all_proxy", "ftp_proxy")

# Which Debian package brings each binary the test bed runs (for a clear failure).
BINARIES = {
    "dockerd": ("/usr/sbin/dockerd", "docker.io"),
    "docker-registry": ("/usr/bin/docker-registry", "docker-registry"),
    "nginx": ("/usr/sbin/nginx", "nginx-light"),
    "htpasswd": ("/usr/bin/htpasswd", "apache2-utils"),
    "openssl": ("/usr/bin/openssl", "openssl"),
    "busybox": ("/bin/busybox", "busybox-static"),
    "ip": ("/usr/sbin/ip", "iproute2"),
    "mount": ("/usr/bin/mount", "mount"),
    "unshare": ("/usr/bin/unshare", "util-linux"),
    "nsenter": ("/usr/bin/nsenter", "util-linux"),
}


class TestbedError(RuntimeError):
    """The test bed could not set something up (not a product failure)."""

    __test__ = False  # not a pytest test class despite the name


def binary(name: str) -> str:
    """Absolute path of a required binary, or TestbedError naming the package."""
    path, pkg = BINARIES[name]
    if os.access(path, os.X_OK):
        return path
    found = shutil.which(name)
    if found:
        return found
    raise TestbedError(f"{name} not found: apt-get install -y {pkg}")


def missing_prerequisites() -> list[str]:
    """Human-readable problems that make the test bed unusable (empty list: fine)."""
    problems = []
    if os.geteuid() != 0:
        problems.append("the test bed needs root (dockerd, mounts, netns)")
    for name in BINARIES:
        try:
            binary(name)
        except TestbedError as e:
            problems.append(str(e))
    try:
        import docker  # noqa: F401
    except ImportError:
        problems.append("python docker SDK missing: pip install docker (or python3-docker)")
    return problems


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.lower() not in PROXY_VARS}
    env.update(extra or {})
    return env


def sh(cmd: Sequence[str], *, check: bool = True, timeout: float = 60,
       **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run a command, text output captured, bounded in time; errors carry stderr."""
    try:
        return subprocess.run(list(cmd), check=check, timeout=timeout, text=True,
                              capture_output=True, env=kw.pop("env", clean_env()), **kw)
    except subprocess.CalledProcessError as e:
        raise TestbedError(f"{' '.join(cmd)} exited {e.returncode}: "
                           f"{(e.stderr or '').strip()[-2000:]}") from e


def wait_for(pred: Callable[[], T], timeout: float, interval: float = 0.1,
             what: str = "condition") -> T:
    """Poll *pred* until truthy and return its value; TimeoutError naming *what*."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


# ----------------------------------------------------------------------- ports


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the kernel's pick; a small race remains,
    acceptable because every start verifies its server really came up)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def tcp_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    assert_allowed_address(host)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# Test hosts live here (tlsreg/netns); everything else must be loopback.
TEST_NET = ipaddress.ip_network("10.231.0.0/16")


def assert_allowed_address(host: str) -> None:
    """The network rule, enforced: only loopback or our own netns test hosts."""
    if host in ("localhost",):
        return
    try:
        ip = ipaddress.ip_address(host)
    except ValueError as e:
        raise TestbedError(f"refusing to contact {host!r}: only IP literals on loopback "
                           f"or {TEST_NET} are allowed") from e
    if not (ip.is_loopback or ip in TEST_NET):
        raise TestbedError(f"refusing to contact {host}: not loopback nor {TEST_NET}")


# ------------------------------------------------------------------------ http


@dataclass
class HttpResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(method: str, url: str, *, data: bytes | None = None,
         headers: dict[str, str] | None = None, auth: tuple[str, str] | None = None,
         cafile: str | None = None, timeout: float = 30) -> HttpResponse:
    """One HTTP request to an allowed address, no proxies, errors as responses."""
    host = urllib.parse.urlsplit(url).hostname or ""
    assert_allowed_address(host)
    hdrs = dict(headers or {})
    if auth:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        hdrs["Authorization"] = f"Basic {token}"
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if url.startswith("https:"):
        ctx = ssl.create_default_context(cafile=cafile)
        handlers.append(urllib.request.HTTPSHandler(context=ctx))
    opener = urllib.request.build_opener(*handlers)
    req = urllib.request.Request(url, data=data, headers=hdrs, method=method)
    try:
        with opener.open(req, timeout=timeout) as r:
            return HttpResponse(r.status, dict(r.headers.items()), r.read())
    except urllib.error.HTTPError as e:
        return HttpResponse(e.code, dict(e.headers.items()), e.read())


# ------------------------------------------------------------------ processes


def pid_alive(pid: int) -> bool:
    """True if *pid* exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def stop_pid(pid: int, marker: str = "", timeout: float = 20) -> None:
    """SIGTERM then SIGKILL one process we started, identified by pid. *marker* (a
    path unique to our instance) must appear in its command line, so a recycled pid
    belonging to someone else is never signalled."""
    if not pid_alive(pid) or (marker and marker not in " ".join(cmdline(pid))):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.05)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not pid_alive(pid) or _reap(pid), 10, 0.05, f"pid {pid} to die")
    _reap(pid)


def _reap(pid: int) -> bool:
    """Collect our own dead child so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
    return not pid_alive(pid)


def spawn(argv: Sequence[str], log: Path, *, env: dict[str, str] | None = None,
          cwd: str | None = None) -> subprocess.Popen[bytes]:
    """Start a long-running server in its own session, output appended to *log*."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True,
                                env=env or clean_env(), cwd=cwd)


def log_tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


# -------------------------------------------------------------------- mounts


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below *path*, deepest first."""
    base = os.path.realpath(path)
    found = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            mnt = line.split()[4].encode().decode("unicode_escape")
            if mnt == base or mnt.startswith(base + "/"):
                found.append(mnt)
    return sorted(found, key=lambda m: m.count("/"), reverse=True)


def umount_all(path: Path) -> None:
    for mnt in mounts_under(path):
        if sh(["umount", mnt], check=False).returncode != 0:
            time.sleep(0.3)
            if sh(["umount", mnt], check=False).returncode != 0:
                sh(["umount", "-l", mnt], check=False)


def rmtree(path: Path) -> None:
    """Delete a tree that may hold mounts, never crossing into another file system."""
    if not path.exists():
        return
    umount_all(path)
    sh(["rm", "-rf", "--one-file-system", str(path)], timeout=120)


# ------------------------------------------------------------------- records


@dataclass
class Record:
    """What one started component left on the host, to undo it after a crash.
    owner: the pid of the process that made it, or "cli" for `python -m tests.testbed up`."""

    id: str
    kind: str
    owner: int | str = field(default_factory=os.getpid)
    pids: list[tuple[int, str]] = field(default_factory=list)  # (pid, cmdline marker)
    paths: list[str] = field(default_factory=list)  # dirs/files to unmount and delete
    netns: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)  # host-side interfaces
    # Unique paths (our temp dirs): any process whose command line names one is ours,
    # e.g. the containerd a SIGKILLed dockerd left behind.
    markers: list[str] = field(default_factory=list)


def save_record(rec: Record) -> None:
    RECORDS.mkdir(parents=True, exist_ok=True)
    tmp = RECORDS / f".{rec.id}.tmp"
    tmp.write_text(json.dumps(asdict(rec)))
    tmp.rename(RECORDS / f"{rec.id}.json")


def drop_record(rec_id: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        (RECORDS / f"{rec_id}.json").unlink()


def load_records() -> list[Record]:
    out = []
    for p in sorted(RECORDS.glob("*.json")) if RECORDS.exists() else []:
        try:
            d = json.loads(p.read_text())
            d["pids"] = [tuple(x) for x in d["pids"]]
            out.append(Record(**d))
        except (OSError, ValueError, TypeError):
            p.unlink(missing_ok=True)
    return out


def undo_record(rec: Record) -> None:
    """Stop the record's processes, then remove its netns, links, mounts and paths."""
    for pid, marker in rec.pids:
        stop_pid(pid, marker)
    for m in rec.markers:
        for pid in pids_with(m):
            stop_pid(pid, m)
    for ns in rec.netns:
        for pid in netns_pids(ns):
            stop_pid(pid)  # only processes inside our own netns
        sh(["ip", "netns", "del", ns], check=False)
    for link in rec.links:
        if Path(f"/sys/class/net/{link}").exists():
            sh(["ip", "link", "del", link], check=False)
    for p in rec.paths:
        path = Path(p)
        if path.is_dir():
            rmtree(path)
        else:
            path.unlink(missing_ok=True)
    drop_record(rec.id)


def pids_with(marker: str) -> list[int]:
    """Processes whose command line mentions *marker*, a directory unique to us."""
    me = os.getpid()
    return [int(e) for e in os.listdir("/proc")
            if e.isdigit() and int(e) != me and marker in " ".join(cmdline(int(e)))]


def netns_pids(ns: str) -> list[int]:
    r = sh(["ip", "netns", "pids", ns], check=False)
    return [int(x) for x in r.stdout.split() if x.isdigit()] if r.returncode == 0 else []


def owner_alive(rec: Record) -> bool:
    return rec.owner == "cli" or (isinstance(rec.owner, int) and pid_alive(rec.owner))


def sweep_stale() -> list[str]:
    """Undo records whose owning process died (a crashed or killed earlier run)."""
    done = []
    for rec in load_records():
        if not owner_alive(rec):
            undo_record(rec)
            done.append(f"{rec.kind} {rec.id}")
    return done


def leftovers(owner: int | str | None = None) -> list[str]:
    """Records still present (optionally only those of *owner*), as text."""
    return [f"{r.kind} {r.id} (owner {r.owner}): pids={r.pids} paths={r.paths} "
            f"netns={r.netns}" for r in load_records() if owner is None or r.owner == owner]


@contextlib.contextmanager
def host_lock() -> Iterator[None]:
    """Serialise picking and creating host-wide names (netns, bridges, subnets)
    between concurrent test runs."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(STATE_DIR / "lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def closing_on_error(obj: Any) -> Iterator[Any]:
    """Call obj.close() if the block raises (half-started components clean up)."""
    try:
        yield obj
    except BaseException:
        with contextlib.suppress(Exception):
            obj.close()
        raise
