"""End-to-end harness: Debian 12 with systemd 252 as PID 1 inside systemd-nspawn.

The host this runs on has no systemd as PID 1 and no machined, so everything here
talks to nspawn and to the container's PID 1 directly (nsenter), never to a host bus.

Life cycle:

* :func:`build_root` debootstraps a bookworm root once and caches it, keyed by the
  package list and the harness's customisation version.
* :class:`Machine` mounts a throw-away overlayfs over the cached root (or copies it),
  boots it with ``systemd-nspawn --boot``, waits for ``is-system-running``, runs
  commands inside with ``nsenter`` and on exit stops exactly the nspawn process it
  started, unmounts and deletes everything it made.
* :func:`install_pullunit_from_tree` puts a source tree's ``pullunit`` package and its
  templates into a running machine the way the Debian package lays them out.

Everything here needs root. Nothing here sends network traffic except debootstrap,
which talks to the Debian mirror the host's own apt sources name.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import hashlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger("pullunit.e2e")

T = TypeVar("T")

SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_CACHE_DIR = "/var/cache/pullunit-e2e"
# Per-machine scratch (overlay upper/work dirs, console logs). On the same disk as the
# cache rather than a tmpfs: overlayfs wants upper and work on one fs, the copy fallback
# can reflink where the fs allows, and a container writing a lot does not eat RAM.
RUN_DIR = Path("/var/tmp/pullunit-e2e")
HOST_LOCK = Path("/run/pullunit-e2e.lock")

# What the product's Debian package depends on, plus the tools tests want inside.
PACKAGES: tuple[str, ...] = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "python3",
    "python3-pystemd",
    "python3-docker",
    "python3-sdnotify",
    "python3-jinja2",
    "python3-tomli-w",
    "python3-prometheus-client",
    "docker.io",
    "iproute2",
    "procps",
)
# Bump when _customize_root changes so cached roots are rebuilt.
ROOT_RECIPE_VERSION = "1"
# Units masked in the root: the container uses the host engine through the bind-mounted
# /run/docker.sock, so an engine of its own must never start (docker.socket would also
# fail to bind over the bind mount and leave the system "degraded").
MASKED_UNITS: tuple[str, ...] = ("docker.socket", "docker.service", "containerd.service")

CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
DOCKER_SOCK = "/run/docker.sock"
REPO_ROOT = Path(__file__).resolve().parents[2]


class HarnessError(RuntimeError):
    """The harness itself could not do its job (not a product failure)."""


# --------------------------------------------------------------------------- helpers


def _sh(cmd: Sequence[str], *, check: bool = True, timeout: float = 60,
        **kw: Any) -> subprocess.CompletedProcess[str]:
    """Run a host command with text output captured, bounded in time."""
    return subprocess.run(list(cmd), check=check, timeout=timeout, text=True,
                          capture_output=True, **kw)


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    """Exclusive advisory lock: parallel pytest workers / sessions must not race on
    the shared cache, the host /run/systemd setup or the stale-machine sweep."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _mounts_under(path: Path) -> list[Path]:
    """Mount points at or below *path*, deepest first (the order to unmount them)."""
    base = os.path.realpath(path)
    found: list[Path] = []
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            # Field 5 is the mount point, with spaces etc. octal-escaped.
            mnt = line.split()[4].encode().decode("unicode_escape")
            if mnt == base or mnt.startswith(base + "/"):
                found.append(Path(mnt))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def _is_mountpoint(path: Path) -> bool:
    return Path(os.path.realpath(path)) in _mounts_under(path)


def _umount_all_under(path: Path) -> None:
    """Unmount everything below *path*; lazily if a mount stays busy, because a
    leftover mount is worse than a delayed one."""
    for mnt in _mounts_under(path):
        if _sh(["umount", str(mnt)], check=False).returncode != 0:
            time.sleep(0.5)
            if _sh(["umount", str(mnt)], check=False).returncode != 0:
                _sh(["umount", "-l", str(mnt)], check=False)
    left = _mounts_under(path)
    if left:
        raise HarnessError(f"mounts still present under {path}: {left}")


def _rmtree(path: Path) -> None:
    """Remove a tree that may have held mounts: unmount first, and never cross into
    another file system (a stray bind of / or /dev must not be deleted through)."""
    if not path.exists():
        return
    _umount_all_under(path)
    _sh(["rm", "-rf", "--one-file-system", str(path)], timeout=300)


def _pid_alive(pid: int) -> bool:
    """True if *pid* exists and is not a zombie (a dead child nobody reaped yet
    counts as gone: it holds no mounts and runs nothing)."""
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat_line.rsplit(")", 1)[1].split()[0] != "Z"


def _proc_cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _children(pid: int) -> list[int]:
    """Direct children of *pid*, found through /proc/*/stat (portable across kernels
    built without /proc/PID/task/TID/children)."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat_line = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # comm may contain spaces/parens: the fields after the last ')' are fixed.
        fields = stat_line.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid:
            kids.append(int(entry))
    return kids


def _ns_pid(pid: int) -> list[int]:
    """The NSpid chain of a process: host pid first, innermost pid namespace last."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return [int(x) for x in line.split()[1:]]
    except OSError:
        pass
    return []


def wait_for(predicate: Callable[[], T], timeout: float, interval: float = 0.2,
             what: str = "condition") -> T:
    """Poll *predicate* until it returns something truthy and return that; raise
    TimeoutError naming *what* otherwise. Bounded: at most timeout/interval polls."""
    deadline = time.monotonic() + timeout
    last: T = predicate()
    while not last:
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}"
                               f" (last value: {last!r})")
        time.sleep(interval)
        last = predicate()
    return last


# --------------------------------------------------------------------- root building


def debian_mirror() -> str:
    """The Debian mirror the host's own apt uses (deb822 .sources or one-line lists),
    so debootstrap goes where the rest of the machine's packages come from."""
    candidates: list[str] = []
    src_dir = Path("/etc/apt/sources.list.d")
    files = sorted(src_dir.glob("*.sources")) if src_dir.is_dir() else []
    for f in files:
        for stanza in f.read_text().split("\n\n"):
            fields = {}
            for line in stanza.splitlines():
                if ":" in line and not line.lstrip().startswith("#"):
                    k, v = line.split(":", 1)
                    fields[k.strip().lower()] = v.strip()
            suites = fields.get("suites", "").split()
            if SUITE in suites and "deb" in fields.get("types", "deb").split():
                candidates += fields.get("uris", "").split()
    lists = [Path("/etc/apt/sources.list"), *sorted(src_dir.glob("*.list"))]
    for f in lists:
        if not f.is_file():
            continue
        for line in f.read_text().splitlines():
            parts = [p for p in line.split() if not p.startswith("[")]
            if len(parts) >= 3 and parts[0] == "deb" and parts[2] == SUITE:
                candidates.append(parts[1])
    for uri in candidates:
        if uri.rstrip("/").endswith("/debian"):
            return uri.rstrip("/")
    return DEFAULT_MIRROR


def root_key(packages: Sequence[str] = PACKAGES) -> str:
    """Cache key: the suite, the sorted package list and the recipe version."""
    blob = json.dumps([SUITE, sorted(packages), ROOT_RECIPE_VERSION, "minbase"])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _customize_root(root: Path) -> None:
    """One-off changes to a fresh debootstrap root before it is published."""
    unit_dir = root / "etc/systemd/system"
    unit_dir.mkdir(parents=True, exist_ok=True)
    for unit in MASKED_UNITS:
        link = unit_dir / unit
        if link.exists() or link.is_symlink():
            link.unlink()
        link.symlink_to("/dev/null")
    # An empty machine-id makes every boot get a fresh transient id from nspawn's
    # container UUID, so parallel machines from one root do not share an identity.
    (root / "etc/machine-id").write_text("")
    # Keep the journal in /run (volatile): faster, and nothing survives a machine.
    conf = root / "etc/systemd/journald.conf.d"
    conf.mkdir(parents=True, exist_ok=True)
    (conf / "e2e.conf").write_text("[Journal]\nStorage=volatile\nRateLimitBurst=0\n")
    # Debs are only needed to build the root; they would double its size.
    for deb in (root / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()


def _du_mb(path: Path) -> int:
    out = _sh(["du", "-sxm", str(path)], timeout=300).stdout
    return int(out.split()[0])


def build_root(cache_dir: str | os.PathLike[str] = DEFAULT_CACHE_DIR,
               packages: Sequence[str] = PACKAGES, mirror: str | None = None) -> Path:
    """Return a cached bookworm root with systemd and the product's dependencies,
    debootstrapping it first if no complete one is cached.

    The build happens in a hidden temp dir next to the final one and is published by
    one rename(2), so an interrupted build never leaves a root that looks complete.
    A small ``<key>.json`` next to the root records how long the build took.
    """
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    key = root_key(packages)
    final = cache / f"{SUITE}-{key}"
    if (final / "usr/lib/systemd/systemd").exists():
        return final
    with _flock(cache / ".lock"):
        if (final / "usr/lib/systemd/systemd").exists():  # another worker built it
            return final
        # Leftovers of builds that were killed (we hold the lock, so none is live).
        for stale in cache.glob(".build-*"):
            log.warning("removing interrupted build %s", stale)
            _kill_procs_inside(stale)
            _rmtree(stale)
        return _debootstrap(final, packages, mirror or debian_mirror())


def _debootstrap(final: Path, packages: Sequence[str], mirror: str) -> Path:
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=final.parent))
    target = work / "root"
    cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(packages)}",
           SUITE, str(target), mirror]
    log.info("building e2e root: %s", " ".join(cmd))
    t0 = time.monotonic()
    try:
        rc, output = _run_debootstrap(cmd, work / "debootstrap.out")
        if rc != 0:
            tail = target / "debootstrap/debootstrap.log"
            extra = tail.read_text()[-4000:] if tail.exists() else ""
            raise HarnessError(f"debootstrap failed ({rc}):\n{output[-3000:]}\n{extra}")
        # debootstrap unmounts its /proc and /sys on success; make sure, because
        # rename() of a tree with mounts in it would carry them into the cache.
        _umount_all_under(target)
        _customize_root(target)
        seconds = time.monotonic() - t0
        size_mb = _du_mb(target)
        os.rename(target, final)
    except BaseException:
        _rmtree(work)
        raise
    _rmtree(work)
    info = {"seconds": round(seconds, 1), "size_mb": size_mb, "mirror": mirror,
            "packages": sorted(packages), "built_at": time.time()}
    final.with_suffix(".json").write_text(json.dumps(info, indent=2))
    log.info("e2e root built in %.1fs, %d MB: %s", seconds, size_mb, final)
    return final


def _run_debootstrap(cmd: list[str], out_path: Path, timeout: float = 1800,
                     ) -> tuple[int, str]:
    """Run debootstrap in its own process group, tied to our life (PDEATHSIG), and
    kill the whole group on timeout or interrupt so no dpkg keeps writing into a
    build dir that the next build_root() is about to delete."""
    with open(out_path, "wb") as out:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                             stderr=subprocess.STDOUT, start_new_session=True,
                             preexec_fn=_pdeathsig(signal.SIGKILL))
        try:
            p.wait(timeout)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            raise
    return p.returncode, out_path.read_text(errors="replace")


def _kill_procs_inside(path: Path) -> None:
    """SIGKILL processes chrooted into, or naming, *path*: orphans of a killed build
    (debootstrap's subshells, dpkg in its chroot), found by what they use, never by
    name. Repeated a bounded number of times since a dying shell may still fork."""
    base = os.path.realpath(path) + "/"
    for _ in range(20):
        victims = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                root = os.readlink(f"/proc/{entry}/root") + "/"
            except OSError:
                continue
            args = _proc_cmdline(int(entry))
            if root.startswith(base) or any(a.startswith(base) for a in args):
                victims.append(int(entry))
        victims = [v for v in victims if _pid_alive(v)]
        if not victims:
            return
        for pid in victims:
            log.warning("killing pid %d left over in %s", pid, path)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    raise HarnessError(f"processes keep running inside {path}")


def root_build_info(root: Path) -> dict[str, Any]:
    """What build_root recorded about *root* (build time, size); {} if unknown."""
    f = root.with_suffix(".json")
    return json.loads(f.read_text()) if f.exists() else {}


# ------------------------------------------------------------------------ host prep


def _make_inaccessible_nodes(d: Path) -> None:
    """The mode-0 nodes PID-1 systemd normally creates in /run/systemd/inaccessible;
    nspawn bind-mounts them over paths it hides and fails if they are missing."""
    d.mkdir(parents=True, exist_ok=True)
    makers: dict[str, Callable[[Path], None]] = {
        "reg": lambda p: p.touch(),
        "dir": lambda p: p.mkdir(),
        "chr": lambda p: os.mknod(p, 0o600 | stat.S_IFCHR, os.makedev(0, 0)),
        "blk": lambda p: os.mknod(p, 0o600 | stat.S_IFBLK, os.makedev(0, 0)),
        "fifo": lambda p: os.mkfifo(p),
        "sock": _bind_unix_socket,
    }
    for name, make in makers.items():
        p = d / name
        if not (p.exists() or p.is_symlink()):
            make(p)
        os.chmod(p, 0)


def _bind_unix_socket(path: Path) -> None:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(str(path))
    finally:
        s.close()


def prepare_host() -> None:
    """Idempotent host setup that a host systemd would otherwise have done.

    * /run/systemd/nspawn must be a tmpfs: nspawn keeps its per-machine mount
      propagation dirs there and cannot make them work on the root fs here.
    * /run/systemd/inaccessible/{reg,dir,chr,blk,fifo,sock} (mode 0).
    """
    with _flock(HOST_LOCK):
        nspawn_dir = Path("/run/systemd/nspawn")
        nspawn_dir.mkdir(parents=True, exist_ok=True)
        if not _is_mountpoint(nspawn_dir):
            _sh(["mount", "-t", "tmpfs", "-o", "mode=0755", "tmpfs", str(nspawn_dir)])
        _make_inaccessible_nodes(Path("/run/systemd/inaccessible"))


def check_prerequisites() -> list[str]:
    """Problems that make e2e tests impossible here, in words a person can act on."""
    problems = []
    if os.geteuid() != 0:
        problems.append("e2e tests must run as root (nspawn, mount, debootstrap)")
    for tool, pkg in (("systemd-nspawn", "systemd-container"), ("debootstrap", "debootstrap"),
                      ("nsenter", "util-linux"), ("mount", "mount")):
        if shutil.which(tool) is None:
            problems.append(f"{tool} not found: apt-get install -y {pkg}")
    return problems


# ----------------------------------------------------------------------- host docker
# The host engine comes from tests.testbed.dockerd.ensure_dockerd (one implementation
# for every tier; it also guards the host's docker0 bridge).


# ------------------------------------------------------------------------ machines


_PR_SET_PDEATHSIG = 1


def _pdeathsig(sig: int) -> Callable[[], None]:
    """preexec_fn: the kernel sends *sig* to the child when its parent dies."""
    def preexec() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
    return preexec


def _nspawn_preexec(cgroup_dirs: Sequence[str]) -> Callable[[], None]:
    """preexec_fn for nspawn (runs in the child between fork and exec).

    * Joins the machine's own cgroups before nspawn looks at its cgroup: with
      --keep-unit nspawn puts the container in "<own cgroup>/payload" and itself in
      ".../supervisor"; run from the root cgroup (as here, no host systemd) two
      machines would otherwise share /payload and trample each other's init.scope.
    * PR_SET_PDEATHSIG: if the test process dies without tearing down (SIGKILL, OOM),
      the kernel sends nspawn SIGTERM, which shuts its container down cleanly.
    """
    procs_files = [os.path.join(d, "cgroup.procs") for d in cgroup_dirs]
    die_with_parent = _pdeathsig(signal.SIGTERM)

    def preexec() -> None:
        for f in procs_files:
            with open(f, "w") as fh:
                fh.write("0")
        die_with_parent()

    return preexec


def _nspawn_cgroup_hierarchies() -> list[Path]:
    """This process's cgroup in each hierarchy nspawn cares about: the cgroup2 one
    (pure v2, or "unified" in hybrid mode) and the v1 name=systemd one if mounted."""
    own: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            own["cgroup2"] = path
        elif "name=systemd" in controllers.split(","):
            own["name=systemd"] = path
    found: list[Path] = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        pre, _, post = line.partition(" - ")
        fstype, _src, opts = [*post.split(), "", ""][:3]
        fields = pre.split()
        mount_root, mount_point = fields[3], fields[4]
        if fstype == "cgroup2":
            key = "cgroup2"
        elif fstype == "cgroup" and "name=systemd" in opts.split(","):
            key = "name=systemd"
        else:
            continue
        if key not in own:  # a second mount of the same hierarchy
            continue
        path = own.pop(key)
        rel = os.path.relpath(path, mount_root) if path.startswith(mount_root) else "."
        found.append(Path(os.path.normpath(os.path.join(mount_point, rel))))
    return found


def _make_machine_cgroups(name: str) -> list[Path]:
    dirs = [h / "pullunit-e2e" / name for h in _nspawn_cgroup_hierarchies()]
    for d in dirs:
        d.mkdir(parents=True, exist_ok=True)
    return dirs


def _kill_cgroup_procs(top: Path) -> None:
    """SIGKILL whatever is left in a machine's own cgroup tree. Normally nothing is:
    this is the backstop for an orphaned container whose nspawn was killed, found by
    cgroup membership rather than by name."""
    for dirpath, _dirs, _files in os.walk(top):
        with contextlib.suppress(OSError):
            for pid in Path(dirpath, "cgroup.procs").read_text().split():
                log.warning("killing leftover pid %s in %s", pid, dirpath)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)


def _remove_cgroup_tree(top: Path) -> None:
    """rmdir a cgroup and its children bottom-up (cgroupfs only allows rmdir, and only
    of cgroups without processes - which they are once the container is gone)."""
    if not top.is_dir():
        return
    _kill_cgroup_procs(top)
    for dirpath, _dirs, _files in os.walk(top, topdown=False):
        for attempt in range(50):  # the kernel may lag a moment after the last exit
            try:
                os.rmdir(dirpath)
                break
            except FileNotFoundError:
                break
            except OSError:
                if attempt == 49:
                    raise HarnessError(f"cgroup {dirpath} still busy") from None
                time.sleep(0.1)
    with contextlib.suppress(OSError):  # shared parent; other machines may still use it
        top.parent.rmdir()


class Machine:
    """A booted, throw-away systemd container made from a cached root.

    Use as a context manager::

        with Machine(build_root()) as m:
            m.systemctl("start", "foo.service")
            assert m.show("foo.service", "ActiveState")["ActiveState"] == "active"
    """

    def __init__(self, root: Path, name: str | None = None,
                 binds: Sequence[str] = (), bind_docker_sock: bool = True,
                 boot_timeout: float = 60, stop_timeout: float = 30,
                 use_overlay: bool = True) -> None:
        self.image = Path(root)
        self.name = name or f"pue2e-{secrets.token_hex(4)}"
        self.binds = list(binds)
        self.bind_docker_sock = bind_docker_sock
        self.boot_timeout = boot_timeout
        self.stop_timeout = stop_timeout
        self.use_overlay = use_overlay
        self.workdir: Path | None = None
        self.root: Path | None = None  # the container's / as seen from the host
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid1: int | None = None
        self.overlay = False
        self.boot_seconds: float | None = None
        self.teardown_seconds: float | None = None
        self.state: str | None = None
        self.cgroups: list[Path] = []
        self.console_log: Path | None = None
        self.reboot_count = 0

    # ---- context manager

    def __enter__(self) -> Machine:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None and self.pid1 is not None:
            # Outside pytest (where conftest attaches it to the report) the journal is
            # the only way to see why a unit misbehaved after the machine is gone.
            with contextlib.suppress(Exception):
                sys.stderr.write(f"\n===== journal of {self.name} =====\n"
                                 f"{self.journal()}\n===== end journal =====\n")
        self.stop()

    # ---- boot

    def start(self) -> None:
        prepare_host()
        sweep_stale_machines()
        if self.bind_docker_sock and not os.path.exists(DOCKER_SOCK):
            raise HarnessError(f"{DOCKER_SOCK} does not exist: start the host dockerd first "
                               "(or pass bind_docker_sock=False)")
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.name}.", dir=RUN_DIR))
        (self.workdir / "owner.pid").write_text(str(os.getpid()))
        self.cgroups = _make_machine_cgroups(self.name)
        (self.workdir / "cgroups").write_text("".join(f"{c}\n" for c in self.cgroups))
        t0 = time.monotonic()
        self.root = self._make_root()
        self._spawn()
        self.pid1 = wait_for(self._find_pid1, 20, 0.05, "container PID 1 to appear")
        self._wait_booted()
        self.boot_seconds = time.monotonic() - t0
        log.info("%s booted (%s) in %.1fs", self.name, self.state, self.boot_seconds)

    def _make_root(self) -> Path:
        assert self.workdir is not None
        root = self.workdir / "root"
        root.mkdir()
        if self.use_overlay and _overlay_supported():
            upper, work = self.workdir / "upper", self.workdir / "work"
            upper.mkdir()
            work.mkdir()
            opts = f"lowerdir={self.image},upperdir={upper},workdir={work}"
            res = _sh(["mount", "-t", "overlay", "overlay", "-o", opts, str(root)],
                      check=False)
            if res.returncode == 0:
                self.overlay = True
                self._set_hostname(root)
                return root
            log.warning("overlay mount failed (%s); copying the root instead", res.stderr)
        # Fallback: a full copy (reflinks where the fs supports them) - slower, ~seconds.
        root.rmdir()
        _sh(["cp", "-a", "--reflink=auto", str(self.image), str(root)], timeout=600)
        self._set_hostname(root)
        return root

    def _set_hostname(self, root: Path) -> None:
        """PID 1 prefers /etc/hostname over the name nspawn gives the container; make
        them agree so journal lines say which machine they came from. (A plain host
        write is safe here: etc/hostname in our own image is a regular file.)"""
        (root / "etc/hostname").write_text(f"{self.name}\n")

    def _spawn(self) -> None:
        assert self.root is not None and self.workdir is not None
        cmd = ["systemd-nspawn", "-D", str(self.root), "-M", self.name,
               # Without a host systemd/machined these two are required, or nspawn
               # fails with "Failed to open system bus".
               "--register=no", "--keep-unit",
               # passive: a pty for the console that never reads our stdin.
               "--console=passive", "--boot"]
        if self.bind_docker_sock:
            cmd.insert(-1, f"--bind={DOCKER_SOCK}")
        for b in self.binds:
            cmd.insert(-1, f"--bind={b}")
        self.console_log = self.workdir / "console.log"
        # Appended to, not truncated: after reboot() it holds every boot's console.
        with open(self.console_log, "ab") as out:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=_nspawn_preexec(
                                             [str(c) for c in self.cgroups]))
        (self.workdir / "nspawn.pid").write_text(str(self.proc.pid))

    def _find_pid1(self) -> int | None:
        """The container's systemd: a descendant of our nspawn whose pid inside its
        own pid namespace is 1 (nspawn forks an intermediate child in some modes,
        so look two levels down rather than trusting the direct child)."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise HarnessError(f"systemd-nspawn exited with {self.proc.returncode}:\n"
                               f"{self.console_tail()}")
        level = [self.proc.pid]
        for _ in range(3):
            level = [c for p in level for c in _children(p)]
            for pid in level:
                ns = _ns_pid(pid)
                if len(ns) > 1 and ns[-1] == 1:
                    return pid
        return None

    def _wait_booted(self, ready: Sequence[str] = ("running", "degraded")) -> None:
        def booted() -> str | None:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise HarnessError(f"systemd-nspawn exited with {self.proc.returncode} "
                                   f"during boot:\n{self.console_tail()}")
            # Before PID 1 has its private socket up this fails or says "offline"/
            # "starting"; those are just "not yet".
            r = self.run(["systemctl", "is-system-running"], check=False, timeout=10)
            state = r.stdout.strip()
            if state in ("maintenance", "stopping"):
                raise HarnessError(f"{self.name} boot ended in state {state!r}")
            return state if state in ready else None

        try:
            self.state = wait_for(booted, self.boot_timeout, 0.2, f"{self.name} to boot")
        except TimeoutError as e:
            failed = self.run(["systemctl", "--failed", "--no-legend"], check=False).stdout
            raise HarnessError(f"{e}\nfailed units:\n{failed}\n"
                               f"console:\n{self.console_tail()}") from None

    def console_tail(self, chars: int = 4000) -> str:
        if self.console_log is None or not self.console_log.exists():
            return ""
        return self.console_log.read_bytes()[-chars:].decode(errors="replace")

    # ---- running things inside

    def run(self, cmd: Sequence[str], check: bool = True, timeout: float = 60,
            input: str | None = None, env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:
        """Run *cmd* inside the container (all its namespaces, its root and cwd /),
        with a clean environment (the host's PATH, PYTHON* etc. must not leak in).

        nsenter forks when entering a pid namespace, so on timeout the whole process
        group is killed, not just nsenter.
        """
        if self.pid1 is None:
            raise HarnessError(f"{self.name} is not running")
        full_env = {"PATH": CONTAINER_PATH, "LANG": "C.UTF-8", "HOME": "/root",
                    "TERM": "dumb", "SYSTEMD_PAGER": "", "SYSTEMD_COLORS": "0"}
        full_env.update(env or {})
        argv = ["nsenter", "-t", str(self.pid1), "-a", "-r", "-w", "--",
                "/usr/bin/env", "-i", *(f"{k}={v}" for k, v in full_env.items()), *cmd]
        return _run_killable(argv, list(cmd), check=check, timeout=timeout, input=input)

    def systemctl(self, *args: str, check: bool = True,
                  timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self.run(["systemctl", "--no-pager", *args], check=check, timeout=timeout)

    def show(self, unit: str, *props: str) -> dict[str, str]:
        """``systemctl show`` as a dict; all properties when none are named."""
        args = [f"--property={p}" for p in props]
        out = self.systemctl("show", *args, "--", unit).stdout
        result: dict[str, str] = {}
        for line in out.splitlines():
            k, sep, v = line.partition("=")
            if sep:
                result[k] = v
        return result

    def wait_for(self, predicate: Callable[[], T], timeout: float = 30,
                 interval: float = 0.2, what: str = "condition") -> T:
        return wait_for(predicate, timeout, interval, what)

    def wait_state(self, unit: str, *states: str, timeout: float = 30) -> str:
        """Wait until *unit*'s ActiveState is one of *states*; returns it."""
        def check() -> str | None:
            s = self.show(unit, "ActiveState")["ActiveState"]
            return s if s in states else None
        state = wait_for(check, timeout, 0.2, f"{unit} to be {'/'.join(states)}")
        assert state is not None  # wait_for only returns truthy values
        return state

    def journal(self, unit: str | None = None, since_boot: bool = True) -> str:
        args = ["journalctl", "--no-pager", "-o", "short-precise"]
        if since_boot:
            args.append("-b")
        if unit:
            args += ["-u", unit]
        return self.run(args, check=False, timeout=30).stdout

    def write_file(self, path: str, text: str, mode: int = 0o644) -> None:
        """Write *text* to *path* inside the container, creating parent dirs.

        Written through the container (not via the host view of its root) so that
        absolute symlinks inside the container resolve inside it, not on the host.
        """
        script = 'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"'
        self.run(["sh", "-c", script, "sh", path, f"{mode:o}"], input=text)

    def read_file(self, path: str) -> str:
        return self.run(["cat", "--", path]).stdout

    def copy_in(self, host_path: str | os.PathLike[str], container_path: str,
                exclude: Sequence[str] = ("__pycache__", "*.pyc")) -> None:
        """Copy a host file or directory tree to *container_path* (which becomes the
        file / the directory itself, replacing nothing else). Uses tar over a pipe
        so modes survive and container symlinks resolve inside the container."""
        src = Path(host_path)
        if not src.exists():
            raise FileNotFoundError(src)
        if src.is_dir():
            excl = [f"--exclude={e}" for e in exclude]
            tar = subprocess.run(["tar", "-C", str(src), *excl, "-cf", "-", "."],
                                 check=True, capture_output=True, timeout=120)
            script = 'mkdir -p "$1" && tar --no-same-owner -C "$1" -xf -'
            _run_killable(self._nsenter_argv(["sh", "-c", script, "sh", container_path]),
                          ["copy_in", str(src)], input_bytes=tar.stdout, timeout=120)
        else:
            mode = stat.S_IMODE(src.stat().st_mode)
            script = 'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"'
            _run_killable(self._nsenter_argv(["sh", "-c", script, "sh", container_path,
                                              f"{mode:o}"]),
                          ["copy_in", str(src)], input_bytes=src.read_bytes(), timeout=120)

    def _nsenter_argv(self, cmd: Sequence[str]) -> list[str]:
        assert self.pid1 is not None
        return ["nsenter", "-t", str(self.pid1), "-a", "-r", "-w", "--", "/usr/bin/env",
                "-i", f"PATH={CONTAINER_PATH}", "LANG=C.UTF-8", *cmd]

    def reboot(self, wait_for_startup: bool = True) -> None:
        """Power the container off and boot it again on the same root.

        The container's disk (the overlay upper dir, or the copied root) is kept, so
        what a real reboot keeps - /etc, /var, enabled units - survives, while /run and
        the volatile journal start empty. Like a host that reboots: the orderly
        shutdown stops the units (and so the containers they run on the host engine).
        nspawn exits when its container powers off, so "reboot" is: SIGTERM our nspawn,
        wait, spawn a new nspawn on the same root, wait for the boot. ``boot_seconds``
        is the new boot's time; ``reboot_count`` counts reboots.

        With ``wait_for_startup=False`` it returns as soon as PID 1 answers, even while
        the boot is still ``starting`` (for tests of a boot that does not finish).
        """
        if self.proc is None or self.pid1 is None or self.root is None:
            raise HarnessError(f"{self.name} is not running")
        _terminate_nspawn(self.proc.pid, self.pid1, self.stop_timeout, popen=self.proc)
        self.pid1 = None
        # The old container's cgroups are empty now; start the next boot from fresh
        # ones, as a first boot does (nspawn builds its payload/supervisor tree anew).
        for cg in self.cgroups:
            _remove_cgroup_tree(cg)
        self.cgroups = _make_machine_cgroups(self.name)
        t0 = time.monotonic()
        self._spawn()
        self.pid1 = wait_for(self._find_pid1, 20, 0.05, "container PID 1 to appear")
        if wait_for_startup:
            self._wait_booted()
        else:
            self._wait_booted(("starting", "running", "degraded"))
        self.boot_seconds = time.monotonic() - t0
        self.reboot_count += 1
        log.info("%s rebooted (%s) in %.1fs", self.name, self.state, self.boot_seconds)

    # ---- teardown

    def stop(self) -> None:
        """Stop the container this object started and remove every trace of it.

        Order matters: SIGTERM to *our* nspawn pid (nspawn turns it into an orderly
        poweroff of the container), SIGKILL after stop_timeout (the container's PID 1
        first: killing a pid namespace's init kills everything in it, whereas a killed
        nspawn alone would orphan the container), then unmount the overlay, then delete.
        """
        t0 = time.monotonic()
        try:
            if self.proc is not None:
                _terminate_nspawn(self.proc.pid, self.pid1, self.stop_timeout,
                                  popen=self.proc)
        finally:
            self.pid1 = None
            for cg in self.cgroups:
                _remove_cgroup_tree(cg)
            self.cgroups = []
            if self.workdir is not None:
                _rmtree(self.workdir)
                self.workdir = None
            self.teardown_seconds = time.monotonic() - t0
            log.info("%s torn down in %.1fs", self.name, self.teardown_seconds)


def _run_killable(argv: list[str], shown: list[str], *, check: bool = True,
                  timeout: float = 60, input: str | None = None,
                  input_bytes: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """subprocess.run, but in its own process group that is SIGKILLed on timeout."""
    data: bytes | None = input_bytes if input_bytes is not None else (
        input.encode() if input is not None else None)
    p = subprocess.Popen(argv, stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = p.communicate(data, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group_leader_last(p)
        p.communicate()
        raise subprocess.TimeoutExpired(shown, timeout) from None
    res = subprocess.CompletedProcess(shown, p.returncode, out.decode(errors="replace"),
                                      err.decode(errors="replace"))
    if check and res.returncode != 0:
        raise subprocess.CalledProcessError(res.returncode, shown, res.stdout, res.stderr)
    return res


def _kill_group_leader_last(p: subprocess.Popen[bytes]) -> None:
    """SIGKILL a timed-out nsenter's process group, nsenter itself last.

    Order matters: nsenter lives in the host pid namespace, so if it dies before its
    child (which runs inside the container), the child is re-parented to the *host's*
    init, becomes a zombie nobody in the container can reap, and the container's
    final killing spree then waits 10 s for it at shutdown. Killing the members first
    lets nsenter reap them and exit by itself.
    """
    members = [pid for pid in _pids_in_group(p.pid) if pid != p.pid]
    for pid in members:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    try:
        p.wait(5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)


def _pids_in_group(pgid: int) -> list[int]:
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            pids.append(int(entry))
    return pids


def _terminate_nspawn(nspawn_pid: int, pid1: int | None, timeout: float,
                      popen: subprocess.Popen[bytes] | None = None) -> None:
    def gone() -> bool:
        if popen is not None:
            return popen.poll() is not None
        return not _pid_alive(nspawn_pid)

    if gone():
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(nspawn_pid, signal.SIGTERM)
    try:
        wait_for(gone, timeout, 0.1, f"nspawn {nspawn_pid} to exit")
        return
    except TimeoutError:
        log.warning("nspawn %d ignored SIGTERM for %.0fs; killing", nspawn_pid, timeout)
    if pid1 is not None and _pid_alive(pid1):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid1, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.kill(nspawn_pid, signal.SIGKILL)
    wait_for(gone, 10, 0.1, f"nspawn {nspawn_pid} to die")


def _overlay_supported() -> bool:
    with contextlib.suppress(OSError):
        return any(line.split()[-1] == "overlay"
                   for line in Path("/proc/filesystems").read_text().splitlines())
    return False


def sweep_stale_machines() -> None:
    """Tear down machines whose owning test process died without cleaning up
    (SIGKILLed pytest, a crashed CI job): stop their nspawn - identified by the pid
    they recorded *and* a cmdline naming their own root, so a reused pid is never
    hit - then unmount and delete their scratch dirs."""
    if not RUN_DIR.is_dir():
        return
    with _flock(HOST_LOCK):
        for d in RUN_DIR.iterdir():
            if not d.is_dir():
                continue
            try:
                owner = int((d / "owner.pid").read_text())
            except (OSError, ValueError):
                owner = -1
            if owner > 0 and _pid_alive(owner):
                continue
            try:
                npid = int((d / "nspawn.pid").read_text())
            except (OSError, ValueError):
                npid = -1
            if npid > 0 and str(d / "root") in _proc_cmdline(npid):
                log.warning("stopping stale nspawn %d of %s", npid, d)
                _terminate_nspawn(npid, None, 30)
            log.warning("removing stale machine dir %s", d)
            with contextlib.suppress(OSError):
                for cg in (d / "cgroups").read_text().split():
                    _remove_cgroup_tree(Path(cg))
            _rmtree(d)


def leftovers() -> list[str]:
    """Everything the harness may have left behind on the host, as readable lines:
    machine scratch dirs, mounts under them, nspawn processes running a root from
    them, and per-machine cgroups. Empty when everything was torn down."""
    found: list[str] = []
    if RUN_DIR.is_dir():
        found += [f"machine dir {d}" for d in RUN_DIR.iterdir()]
        found += [f"mount {m}" for m in _mounts_under(RUN_DIR)]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            argv = _proc_cmdline(int(entry))
            if (argv and argv[0].endswith("systemd-nspawn") and _pid_alive(int(entry))
                    and any(a.startswith(str(RUN_DIR)) for a in argv)):
                found.append(f"nspawn process {entry}: {' '.join(argv)}")
    for h in _nspawn_cgroup_hierarchies():
        top = h / "pullunit-e2e"
        if top.is_dir():
            found += [f"cgroup {c}" for c in top.iterdir() if c.is_dir()]
    return found


# ------------------------------------------------------------------ product install


PULLUNIT_DIST = "/usr/lib/python3/dist-packages/pullunit"
CLI_WRAPPER = "#!/usr/bin/python3\nfrom pullunit.cli import main\nraise SystemExit(main())\n"
GENERATOR_WRAPPER = ("#!/usr/bin/python3\nfrom pullunit.sdgenerator import main\n"
                     "raise SystemExit(main())\n")


def install_pullunit_from_tree(machine: Machine, tree: str | os.PathLike[str] = REPO_ROOT,
                               ) -> None:
    """Lay a source tree's pullunit out in *machine* as the .deb does: the package in
    dist-packages, the top-level templates/ as the ``pullunit.templates`` package,
    /usr/bin/pullunit and the systemd generator as tiny wrappers around the modules."""
    src = Path(tree)
    pkg, templates = src / "pullunit", src / "templates"
    if not (pkg / "__init__.py").is_file():
        raise HarnessError(f"{pkg} is not a Python package")
    machine.run(["rm", "-rf", PULLUNIT_DIST])
    machine.copy_in(pkg, PULLUNIT_DIST)
    if templates.is_dir():
        machine.run(["rm", "-rf", f"{PULLUNIT_DIST}/templates"])
        machine.copy_in(templates, f"{PULLUNIT_DIST}/templates")
    machine.write_file("/usr/bin/pullunit", CLI_WRAPPER, 0o755)
    machine.write_file("/usr/lib/systemd/system-generators/pullunit-generator",
                       GENERATOR_WRAPPER, 0o755)
