"""The incident checklist of the field guide (sections 2, 4, 5, 6, 8, 9 and 12), automated.

`diagnose()` runs it against the exact reference, credentials and daemon the pull unit
would use and returns one `Check` per step, in a fixed order, each with a stable id (see
CHECKS). A step whose prerequisite failed is reported as skipped with the reason, so the
first failure is the one to fix.

Doctor only looks: it never pulls, logs in, writes or restarts anything. It talks to the
registry itself with the standard library (socket, ssl, http.client), the way dockerd
would: the same host and port, HTTPS verified against the system CAs plus
certs.d/HOST/*.crt unless the daemon counts the registry as insecure (127.0.0.0/8 by
default), in which case TLS is tried unverified and plain HTTP is the fallback. Every
network operation has a TIMEOUT-second limit, and name lookups, D-Bus calls and
credential helpers run under a watchdog, so doctor cannot hang.

Credentials are read through the same code as the puller (dockerapi.credentials) and
never leave this module: every text a check returns is scrubbed of the secret values and
of anything that looks like one (classify.redact).

The pure parts (WWW-Authenticate, daemon.json, insecure-registry and NO_PROXY matching,
manifest platforms, clock skew, disk thresholds, certificate fields) are module-level
functions without I/O; the checks are methods of `_Doctor`, which holds what earlier
steps learned.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import email.utils
import enum
import hashlib
import http.client
import ipaddress
import json
import logging
import os
import platform as pyplatform
import re
import socket
import ssl
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from .classify import FailureClass, redact
from .dockerconf import (  # noqa: F401  (re-exported: tests and callers use pullunit.doctor)
    DEFAULT_DAEMON_JSON,
    LOOPBACK_CIDR,
    PROXY_KEYS,
    DaemonJson,
    DaemonJsonError,
    RegistryConfig,
    _str_list,
    _strip_scheme,
    is_insecure,
    is_loopback,
    parse_daemon_json,
    parse_env_file,
    parse_environment,
    proxy_env,
    proxy_for,
    registry_config_from_entries,
    registry_config_from_info,
    registry_host,
    registry_port,
)
from .engine import ARCH, docker_host
from .errors import PullunitError
from .hints import HintContext, fix_for
from .reference import DEFAULT_REGISTRY, ImageRef, ReferenceError, parse_reference
from .regclient import (  # noqa: F401  (re-exported: tests and callers use pullunit.doctor)
    MAX_BODY,
    TIMEOUT,
    Challenge,
    Endpoint,
    Response,
    WatchdogTimeout,
    _connect,
    describe_oserror,
    human_bytes,
    is_plain_http_error,
    load_certs_dir,
    parse_www_authenticate,
    pick_challenge,
    registry_errors,
    request,
    resolve,
    token_url,
    with_timeout,
)
from .x509info import (  # noqa: F401  (re-exported: tests and callers use pullunit.doctor)
    CertInfo,
    _children,
    _der,
    _der_time,
    _name_cn,
    cert_info,
    describe_cert,
)

log = logging.getLogger("pullunit")

DEFAULT_CERTS_D = Path("/etc/docker/certs.d")
HUB_API_HOST = "registry-1.docker.io"  # where dockerd sends docker.io requests
MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
)
INDEX_TYPES = frozenset(MANIFEST_TYPES[:2])

# The stable check ids, in the order they run and are reported (docs/doctor.md).
CHECKS = (
    "reference",      # the image reference parses (distribution grammar)
    "daemon",         # the Docker engine answers; its version and platform
    "local_image",    # the image is present locally, and its digest
    "disk",           # free space and inodes of Docker's data root
    "daemon_config",  # daemon.json: mirrors, insecure registries, proxies; drift vs. running
    "proxy",          # proxy settings in docker.service's environment (systemd, D-Bus)
    "dns",            # the registry host resolves
    "tcp",            # a TCP connection to the registry port
    "tls",            # handshake and verification (system CAs + certs.d), expiry, name
    "registry_api",   # GET /v2/ answers 200 or 401
    "credentials",    # which docker config the puller reads; has it credentials for the host
    "manifest",       # token (if asked) and the manifest of the tag/digest, with those creds
    "platform",       # the manifest offers the target platform
    "clock",          # skew between this host and the registry's Date header
)
CONFIG_CHECK = "config"  # used by the command for an app whose config does not load


class Status(enum.StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class Check:
    check: str
    status: Status
    detail: str
    hint: str = ""

    def to_json(self) -> dict[str, str]:
        return {"check": self.check, "status": str(self.status), "detail": self.detail,
                "hint": self.hint}


@dataclass(frozen=True)
class Target:
    """What to diagnose: the reference (as written), and what the app's config adds."""

    reference: str
    app: str | None = None
    platform: str | None = None  # image.platform; None: the daemon's
    auth_file: Path | None = None
    policy: str | None = None
    pinned_by: str | None = None  # the lock file whose digest replaced the config's tag


@dataclass(frozen=True)
class Options:
    certs_d: Path = DEFAULT_CERTS_D
    daemon_json: Path = DEFAULT_DAEMON_JSON
    timeout: float = TIMEOUT

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Options:
        env = os.environ if env is None else env
        return cls(certs_d=Path(env.get("PULLUNIT_DOCKER_CERTS_D") or DEFAULT_CERTS_D),
                   daemon_json=Path(env.get("PULLUNIT_DOCKER_DAEMON_JSON")
                                    or DEFAULT_DAEMON_JSON))


def failed(checks: Iterable[Check]) -> bool:
    return any(c.status is Status.FAIL for c in checks)


# =======================================================================================
# Pure logic


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base


def parse_platform(text: str) -> Platform:
    parts = text.split("/")
    return normalize(Platform(parts[0], parts[1] if len(parts) > 1 else "",
                              parts[2] if len(parts) > 2 else ""))


def normalize(p: Platform) -> Platform:
    """containerd's normalization: uname names to GOARCH, default variants dropped."""
    arch = ARCH.get(p.architecture, p.architecture)
    variant = p.variant
    if arch == "arm64" and variant == "v8":
        variant = ""
    if arch == "amd64" and variant == "v1":
        variant = ""
    if arch == "arm" and variant == "":
        variant = "v7"
    return Platform(p.os.lower(), arch, variant)


def platform_matches(want: str, have: Platform) -> bool:
    """want is OS/ARCH[/VARIANT]; a variant only counts when want names one."""
    w, h = parse_platform(want), normalize(have)
    if (w.os, w.architecture) != (h.os, h.architecture):
        return False
    return want.count("/") < 2 or w.variant == h.variant


def manifest_platforms(manifest: Mapping[str, Any]) -> list[Platform] | None:
    """The platforms of an image index / manifest list; None for a single manifest.
    Attestation entries (unknown/unknown) are left out."""
    entries = manifest.get("manifests")
    if not isinstance(entries, list):
        return None
    out = []
    for m in entries:
        p = m.get("platform") if isinstance(m, dict) else None
        if not isinstance(p, dict):
            continue
        plat = Platform(str(p.get("os", "")), str(p.get("architecture", "")),
                        str(p.get("variant") or ""))
        if plat.os != "unknown":
            out.append(plat)
    return out


def config_platform(config: Mapping[str, Any]) -> Platform:
    """The platform recorded in an image config blob (or a schema 1 manifest)."""
    return Platform(str(config.get("os") or "linux"), str(config.get("architecture", "")),
                    str(config.get("variant") or ""))


def clock_skew(date_header: str, sent: float, received: float) -> float | None:
    """Seconds the registry's clock is ahead of ours (negative: behind), comparing its
    Date header with the middle of our request. Date is truncated to whole seconds, so
    the server's time was half a second later on average."""
    try:
        server = email.utils.parsedate_to_datetime(date_header)
    except (TypeError, ValueError, IndexError):
        return None
    if server.tzinfo is None:
        server = server.replace(tzinfo=UTC)
    return server.timestamp() + 0.5 - (sent + received) / 2


SKEW_WARN = 30.0  # tokens carry iat/nbf; registries allow little leeway
SKEW_FAIL = 300.0  # certificates, tokens and the daemon's logs stop making sense


def skew_status(skew: float) -> Status:
    a = abs(skew)
    return Status.FAIL if a >= SKEW_FAIL else Status.WARN if a >= SKEW_WARN else Status.PASS


DISK_FAIL_BYTES = 1 * 2**30
DISK_WARN_FRACTION = 0.10
INODE_FAIL_FRACTION = 0.01
INODE_WARN_FRACTION = 0.05


def disk_status(free: int, total: int, ifree: int, itotal: int) -> Status:
    """Fail under 1 GiB or 1 % of inodes free; warn under 10 % of space or 5 % of inodes.
    Filesystems without an inode limit (btrfs) report 0 inodes and are judged on space."""
    inode_fraction = ifree / itotal if itotal > 0 else 1.0
    if free < DISK_FAIL_BYTES or inode_fraction < INODE_FAIL_FRACTION:
        return Status.FAIL
    if (total > 0 and free / total < DISK_WARN_FRACTION) or inode_fraction < INODE_WARN_FRACTION:
        return Status.WARN
    return Status.PASS


CERT_WARN_DAYS = 14


# =======================================================================================
# Small I/O helpers

T = TypeVar("T")


@dataclass
class _Facts:
    """What earlier checks learned, for the later ones."""

    ref: ImageRef | None = None
    api: Any = None  # docker.APIClient when the daemon answered
    version: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    daemon_platform: str | None = None
    local_digest: str | None = None
    data_root: str | None = None
    free_bytes: int | None = None
    registry_config: RegistryConfig | None = None
    addresses: list[tuple[Any, ...]] = field(default_factory=list)
    connected: tuple[int, tuple[Any, ...], int] | None = None  # family, sockaddr, port
    endpoint: Endpoint | None = None
    insecure: bool = False
    v2: Response | None = None
    challenge: Challenge | None = None
    creds: Any = None  # dockerapi.Credentials
    manifest: dict[str, Any] | None = None
    manifest_type: str = ""
    auth_header: dict[str, str] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)
    reasons: dict[str, str] = field(default_factory=dict)  # check id -> why later ones skip


class _Doctor:
    def __init__(self, target: Target | None, options: Options):
        self.target = target
        self.opt = options
        self.f = _Facts()
        self.now = datetime.now(UTC)

    # --- plumbing ------------------------------------------------------------------

    def run(self) -> list[Check]:
        steps: list[tuple[str, Callable[[], Check]]] = [
            ("reference", self.reference), ("daemon", self.daemon),
            ("local_image", self.local_image), ("disk", self.disk),
            ("daemon_config", self.daemon_config), ("proxy", self.proxy),
            ("dns", self.dns), ("tcp", self.tcp), ("tls", self.tls),
            ("registry_api", self.registry_api), ("credentials", self.credentials),
            ("manifest", self.manifest), ("platform", self.platform), ("clock", self.clock),
        ]
        image_checks = {"reference", "local_image", "dns", "tcp", "tls", "registry_api",
                        "credentials", "manifest", "platform", "clock"}
        out: list[Check] = []
        for check_id, step in steps:
            if self.target is None and check_id in image_checks:
                continue
            try:
                result = step()
            except Exception as e:  # a bug in one check must not hide the others
                log.debug("doctor check %s", check_id, exc_info=True)
                result = Check(check_id, Status.FAIL, f"internal error: {type(e).__name__}: "
                               f"{e}", "run 'pullunit --debug doctor' and report the traceback")
            if result.status is Status.FAIL and check_id not in self.f.reasons:
                self.f.reasons[check_id] = f"{check_id} failed"
            out.append(self._scrub(result))
        if self.f.api is not None:
            with contextlib.suppress(Exception):
                self.f.api.close()
        return out

    def _scrub(self, c: Check) -> Check:
        def clean(text: str) -> str:
            for s in self.f.secrets:
                if s:
                    text = text.replace(s, "***")
            return redact(text)
        return Check(c.check, c.status, clean(c.detail), clean(c.hint))

    def _skip(self, check_id: str, *needs: str) -> Check | None:
        for n in needs:
            if n in self.f.reasons:
                self.f.reasons.setdefault(check_id, self.f.reasons[n])  # for the next ones
                return Check(check_id, Status.SKIP, f"skipped: {self.f.reasons[n]}")
        return None

    def _hint(self, cls: FailureClass, **kw: Any) -> str:
        assert self.f.ref is not None
        creds = self.f.creds
        ctx = HintContext(ref=self.f.ref,
                          config_path=creds.config_path if creds is not None else None,
                          credentials_found=bool(creds is not None and creds.found),
                          auth_file_configured=bool(self.target and self.target.auth_file),
                          running_as_root=os.geteuid() == 0, data_root=self.f.data_root,
                          free_bytes=self.f.free_bytes,
                          platform=self._want_platform()[0])
        return fix_for(cls, dataclasses.replace(ctx, **kw))

    @property
    def _registry(self) -> str:
        assert self.f.ref is not None
        return self.f.ref.registry

    def _api_host(self) -> str:
        """The host dockerd actually connects to for this registry."""
        assert self.f.ref is not None
        return HUB_API_HOST if self.f.ref.registry == DEFAULT_REGISTRY else self.f.ref.host

    def _want_platform(self) -> tuple[str, str]:
        """The platform the pull unit asks for, and where that comes from."""
        if self.target is not None and self.target.platform:
            return self.target.platform, "image.platform"
        if self.f.daemon_platform:
            return self.f.daemon_platform, "the daemon's platform"
        machine = pyplatform.machine()
        return f"linux/{ARCH.get(machine, machine)}", "this host's platform"

    # --- 1 reference -----------------------------------------------------------------

    def reference(self) -> Check:
        assert self.target is not None
        try:
            ref = parse_reference(self.target.reference)
        except ReferenceError as e:
            self.f.reasons["reference"] = "the image reference is invalid"
            return Check("reference", Status.FAIL, str(e),
                         "write it as [HOST[:PORT]/]PATH:TAG or PATH@sha256:DIGEST, in lower "
                         "case, e.g. registry.example.com/team/app:1.2.3")
        self.f.ref = ref
        what = f"digest {ref.digest[:19]}…" if ref.digest else f"tag {ref.tag}"
        where = (f"Docker Hub ({HUB_API_HOST})" if ref.registry == DEFAULT_REGISTRY
                 else ref.registry)
        detail = f"{ref}: repository {ref.remote_path} at {where}, {what}"
        if self.target.pinned_by:
            detail += f" (pinned by {self.target.pinned_by})"
        elif ref.tag and not ref.digest:
            detail += " (a tag can move; 'pullunit pin' locks a digest)"
        return Check("reference", Status.PASS, detail)

    # --- 2 daemon ---------------------------------------------------------------------

    def daemon(self) -> Check:
        host = docker_host()
        try:
            from . import dockerapi

            api = dockerapi.connect(timeout=self.opt.timeout)
            version = api.version()
            info = api.info()
        except Exception as e:
            self.f.reasons["daemon"] = "the Docker daemon did not answer"
            text = str(e)
            hint = fix_for(FailureClass.DAEMON_UNAVAILABLE,
                           HintContext(ref=self.f.ref or ImageRef(None, "x", "x", None)))
            if "permission denied" in text.lower():
                hint = (f"this user may not use {host}: run doctor as root (as the pull unit "
                        "runs) or as a member of the docker group")
            if not text.startswith("cannot talk to the Docker daemon"):
                text = f"cannot talk to the Docker daemon at {host}: {text}"
            return Check("daemon", Status.FAIL, _short(text), hint)
        self.f.api, self.f.version, self.f.info = api, dict(version), dict(info)
        arch = str(version.get("Arch", ""))
        self.f.daemon_platform = f"{version.get('Os', 'linux')}/{ARCH.get(arch, arch)}"
        self.f.data_root = str(info.get("DockerRootDir") or "/var/lib/docker")
        self.f.registry_config = registry_config_from_info(info)
        return Check("daemon", Status.PASS,
                     f"Docker {version.get('Version', '?')} (API {version.get('ApiVersion', '?')}"
                     f", {self.f.daemon_platform}, storage {info.get('Driver', '?')}) at {host}")

    # --- 3 local image ----------------------------------------------------------------

    def local_image(self) -> Check:
        skipped = self._skip("local_image", "reference", "daemon")
        if skipped:
            return skipped
        from . import dockerapi
        from .engine import find_local

        assert self.f.ref is not None
        ref = self.f.ref
        img = find_local(dockerapi.SdkEngine(self.f.api), ref)
        policy = self.target.policy if self.target else None
        if img is None:
            if policy == "never":
                return Check("local_image", Status.FAIL,
                             f"{ref} is not present locally, and image.policy = \"never\" "
                             "means the pull unit will not pull it",
                             f"load it ('docker load -i FILE' or 'docker pull {ref}'), or set "
                             "image.policy = \"missing\"")
            return Check("local_image", Status.PASS,
                         f"{ref} is not present locally; the pull unit will pull it")
        digest = img.digest_for(ref)
        self.f.local_digest = digest
        detail = (f"present: image {img.id[:19]}…, "
                  f"{'digest ' + digest if digest else 'no registry digest (built or loaded here)'}"
                  f", {img.platform}, {human_bytes(img.size)}")
        want, source = self._want_platform()
        if not platform_matches(want, parse_platform(img.platform)):
            return Check("local_image", Status.WARN,
                         f"{detail}; but it is {img.platform}, not {want} ({source})",
                         "the puller rejects it (exit 65): remove it ('docker image rm "
                         f"{ref}') and pull an image built for {want}")
        return Check("local_image", Status.PASS, detail)

    # --- 4 disk -------------------------------------------------------------------------

    def disk(self) -> Check:
        root = self.f.data_root or "/var/lib/docker"
        note = "" if self.f.data_root else " (the daemon did not say; assumed)"
        path = Path(root)
        while not path.exists() and path != path.parent:
            path = path.parent
        try:
            st = os.statvfs(path)
        except OSError as e:
            return Check("disk", Status.SKIP, f"cannot stat {root}: {e.strerror}")
        free, total = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
        ifree, itotal = st.f_favail, st.f_files
        self.f.free_bytes = free
        status = disk_status(free, total, ifree, itotal)
        inodes = (f", {ifree:,} of {itotal:,} inodes free ({100 * ifree / itotal:.0f} %)"
                  if itotal else ", no inode limit")
        shown = root if str(path) == root else f"{root} (on {path})"
        detail = (f"data root {shown}{note}: {human_bytes(free)} of {human_bytes(total)} free"
                  f"{inodes}")
        hint = ""
        if status is not Status.PASS:
            hint = fix_for(FailureClass.DISK_FULL,
                           HintContext(ref=self.f.ref or ImageRef(None, "x", "x", None),
                                       data_root=root, free_bytes=free))
        return Check("disk", status, detail, hint)

    # --- 5 daemon.json ------------------------------------------------------------------

    def daemon_config(self) -> Check:
        path = self.opt.daemon_json
        notes: list[str] = []
        warn: list[str] = []
        hints: list[str] = []
        try:
            text = path.read_text()
        except FileNotFoundError:
            text = None
        except OSError as e:
            return Check("daemon_config", Status.WARN, f"cannot read {path}: {e.strerror}",
                         "run doctor as root")
        if text is None:
            dj = DaemonJson()
            notes.append(f"no {path} (dockerd defaults)")
        else:
            try:
                dj = parse_daemon_json(text, str(path))
            except DaemonJsonError as e:
                self.f.reasons["daemon_config"] = f"{path} is invalid"
                return Check("daemon_config", Status.FAIL, str(e),
                             f"fix {path} ('python3 -m json.tool {path}'), then "
                             "'systemctl restart docker'")
            notes.append(f"{path}: mirrors {list(dj.mirrors) or 'none'}, insecure registries "
                         f"{list(dj.insecure) or 'none'}"
                         + (f", proxies {dict(dj.proxies)}" if dj.proxies else ""))
        running = self.f.registry_config
        if running is None:
            self.f.registry_config = registry_config_from_entries(dj.insecure, dj.mirrors)
        else:
            # 8.2: daemon.json edited but dockerd not restarted (flags can only add)
            declared = registry_config_from_entries(dj.insecure, dj.mirrors)
            missing = [str(n) for n in declared.cidrs if n not in running.cidrs]
            missing += [n for n, secure in declared.index
                        if not secure and running.secure_of(n) is not False]
            missing += [m for m in dj.mirrors if m.rstrip("/") not in
                        [r.rstrip("/") for r in running.mirrors]]
            if missing:
                warn.append(f"the running daemon does not have {', '.join(missing)} from "
                            f"{path.name}")
                hints.append("restart docker to apply daemon.json ('systemctl restart docker')")
            daemon_proxies = {k: v for k, v in (("HTTP_PROXY", self.f.info.get("HttpProxy")),
                                                 ("HTTPS_PROXY", self.f.info.get("HttpsProxy")),
                                                 ("NO_PROXY", self.f.info.get("NoProxy")))
                              if v}
            if daemon_proxies:
                notes.append(f"the running daemon uses proxies {daemon_proxies}")
            major = _major(str(self.f.version.get("Version", "")))
            if dj.proxies and major is not None and major < 23:
                warn.append(f"'proxies' in {path.name} needs Docker 23 or newer; this daemon "
                            "will refuse to start with it")
                hints.append("set the proxies in a docker.service drop-in (Environment=) "
                             "instead")
        if self.f.ref is not None:
            rc = self.f.registry_config
            assert rc is not None
            if self._registry == DEFAULT_REGISTRY and (dj.mirrors or rc.mirrors):
                notes.append("Docker Hub pulls try the mirrors first")
            if self._registry_insecure_by_name(rc):
                notes.append(f"{self._registry} is listed as an insecure registry")
        status = Status.WARN if warn else Status.PASS
        return Check("daemon_config", status, "; ".join(warn + notes), "; ".join(hints))

    def _registry_insecure_by_name(self, rc: RegistryConfig) -> bool:
        """Insecure by an explicit entry (not merely by being on loopback)."""
        host = self._api_host()
        if is_loopback(host):
            return False
        no_loopback = RegistryConfig(tuple(n for n in rc.cidrs if n != LOOPBACK_CIDR),
                                     rc.index, rc.mirrors)
        return is_insecure(self._registry, [], no_loopback)

    # --- 6 docker.service proxies -------------------------------------------------------

    def proxy(self) -> Check:
        from .systemd import booted

        if not booted():
            return Check("proxy", Status.SKIP, "systemd is not PID 1 here: cannot read "
                         "docker.service's environment (daemon_config shows what the running "
                         "daemon uses)")
        try:
            env, files = with_timeout(_docker_service_env, self.opt.timeout,
                                      "reading docker.service over D-Bus")
        except Exception as e:
            return Check("proxy", Status.SKIP, f"cannot read docker.service: {_short(str(e))}")
        if env is None:
            state = files[0] if files else "not loaded"
            return Check("proxy", Status.SKIP, f"docker.service is {state} (dockerd is not "
                         "run by systemd here)")
        proxies = proxy_env(env)
        source = "docker.service" + (f" (and {', '.join(files)})" if files else "")
        if not proxies:
            detail = f"no HTTP_PROXY/HTTPS_PROXY/NO_PROXY in {source}"
        else:
            detail = f"{source}: " + ", ".join(f"{k}={v}" for k, v in proxies.items())
        warn: list[str] = []
        hints: list[str] = []
        running = {k: v for k, v in (("HTTP_PROXY", self.f.info.get("HttpProxy")),
                                     ("HTTPS_PROXY", self.f.info.get("HttpsProxy")),
                                     ("NO_PROXY", self.f.info.get("NoProxy"))) if v}
        if self.f.api is not None and _plain_proxies(running) != _plain_proxies(proxies):
            warn.append("the running daemon's proxies differ from docker.service's")
            hints.append("'systemctl daemon-reload && systemctl restart docker' to apply them")
        if self.f.ref is not None and proxies:
            scheme = "http" if is_loopback(self._api_host()) else "https"
            port = registry_port(self._registry) or 443
            p = proxy_for(scheme, self._api_host(), port, proxies)
            if p:
                warn.append(f"dockerd reaches {self._registry} through {p}; doctor's network "
                            "checks connect directly")
                hints.append(f"test the proxy path: curl -x {p} https://{self._registry}/v2/; "
                             f"if {self._api_host()} should be reached directly add it to "
                             "NO_PROXY in a docker.service drop-in")
        if warn:
            return Check("proxy", Status.WARN, "; ".join([*warn, detail]), "; ".join(hints))
        return Check("proxy", Status.PASS, detail)

    # --- 7 dns --------------------------------------------------------------------------

    def dns(self) -> Check:
        skipped = self._skip("dns", "reference")
        if skipped:
            return skipped
        host = self._api_host()
        port = registry_port(self._registry) or 443
        try:
            ipaddress.ip_address(host)
            literal = True
        except ValueError:
            literal = False
        try:
            self.f.addresses = resolve(host, port, self.opt.timeout)
        except socket.gaierror as e:
            self.f.reasons["dns"] = f"{host} does not resolve"
            return Check("dns", Status.FAIL, f"lookup {host}: {e.strerror or e}",
                         self._hint(FailureClass.DNS))
        except WatchdogTimeout as e:
            self.f.reasons["dns"] = f"{host} does not resolve"
            return Check("dns", Status.FAIL, f"lookup {host}: {e}",
                         self._hint(FailureClass.DNS))
        addrs = [sa[0] for _, sa in self.f.addresses]
        if literal:
            return Check("dns", Status.PASS, f"{host} is an IP address; nothing to resolve")
        shown = ", ".join(addrs[:4]) + (f" (+{len(addrs) - 4})" if len(addrs) > 4 else "")
        return Check("dns", Status.PASS, f"{host} resolves to {shown}")

    # --- 8 tcp --------------------------------------------------------------------------

    def tcp(self) -> Check:
        skipped = self._skip("tcp", "reference", "dns")
        if skipped:
            return skipped
        rc = self.f.registry_config or registry_config_from_entries(())
        addrs = [sa[0] for _, sa in self.f.addresses]
        self.f.insecure = is_insecure(self._registry, addrs, rc)
        explicit = registry_port(self._registry)
        # dockerd: HTTPS on 443; an insecure registry may fall back to plain HTTP on 80
        ports = [explicit] if explicit else ([443, 80] if self.f.insecure else [443])
        deadline = time.monotonic() + self.opt.timeout
        errors: list[str] = []
        for port in ports:
            for family, sockaddr in self.f.addresses[:4]:
                remaining = deadline - time.monotonic()
                if remaining <= 0.05:
                    errors.append(f"{_fmt_addr(sockaddr, port)}: no time left")
                    break
                sa = (sockaddr[0], port, *sockaddr[2:])
                started = time.monotonic()
                try:
                    with socket.socket(family, socket.SOCK_STREAM) as s:
                        s.settimeout(remaining)
                        s.connect(sa)
                except OSError as e:
                    errors.append(f"{_fmt_addr(sa, port)}: {describe_oserror(e)}")
                    continue
                self.f.connected = (family, sa, port)
                ms = (time.monotonic() - started) * 1000
                return Check("tcp", Status.PASS, f"connected to {_fmt_addr(sa, port)} in "
                             f"{ms:.0f} ms")
        self.f.reasons["tcp"] = f"no TCP connection to {self._registry}"
        timed_out = any("timed out" in e for e in errors)
        hint = self._hint(FailureClass.UNREACHABLE)
        if timed_out:
            hint = (f"packets to {self._registry} are dropped: check firewall egress rules "
                    "(iptables -S, nft list ruleset, security groups) and routes; " + hint)
        return Check("tcp", Status.FAIL, "cannot connect: " + "; ".join(errors), hint)

    # --- 9 tls --------------------------------------------------------------------------

    def _endpoint(self, scheme: str, ctx: ssl.SSLContext | None) -> Endpoint:
        assert self.f.connected is not None
        family, sockaddr, port = self.f.connected
        return Endpoint(scheme, self._api_host(), port, sockaddr, family, ctx)

    def _handshake(self, ctx: ssl.SSLContext) -> tuple[str, bytes]:
        ep = self._endpoint("https", ctx)
        with _connect(ep, self.opt.timeout) as s:
            assert isinstance(s, ssl.SSLSocket)
            return s.version() or "TLS", s.getpeercert(binary_form=True) or b""

    def _cert_text(self, der: bytes) -> tuple[str, CertInfo | None]:
        try:
            info = cert_info(der)
        except (ValueError, IndexError):
            return "certificate could not be parsed", None
        return describe_cert(info, self.now), info

    def tls(self) -> Check:
        skipped = self._skip("tls", "reference", "tcp")
        if skipped:
            return skipped
        registry, certs = self._registry, self.opt.certs_d / self._registry
        unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        unverified.check_hostname = False
        unverified.verify_mode = ssl.CERT_NONE
        if self.f.insecure:
            return self._tls_insecure(unverified)
        system = ssl.create_default_context()
        with_certs_d = ssl.create_default_context()
        try:
            used = load_certs_dir(with_certs_d, certs)
        except (ssl.SSLError, OSError) as e:
            self.f.reasons["tls"] = "TLS is not usable"
            return Check("tls", Status.FAIL, f"cannot load {certs}: {e}",
                         f"dockerd fails on the same files: fix or remove them in {certs}")
        source = f"{certs}/{', '.join(used)}" if used else "the system CAs"
        try:
            version, der = self._handshake(with_certs_d if used else system)
        except ssl.SSLCertVerificationError as e:
            return self._tls_untrusted(e, unverified, certs, used)
        except ssl.SSLError as e:
            self.f.reasons["tls"] = "the TLS handshake failed"
            if is_plain_http_error(e):
                return Check("tls", Status.FAIL, f"{registry} does not speak TLS: "
                             "http: server gave HTTP response to HTTPS client",
                             f"serve {registry} over TLS; or, only if you accept unverified "
                             "plain HTTP, add it to insecure-registries in daemon.json (field "
                             "guide 6.4)")
            return Check("tls", Status.FAIL, f"TLS handshake with {registry} failed: "
                         f"{e.reason or e}", self._hint(FailureClass.TLS))
        except OSError as e:
            self.f.reasons["tls"] = "the TLS handshake failed"
            what = "TLS handshake timeout" if isinstance(e, TimeoutError | socket.timeout) \
                else f"TLS handshake failed: {describe_oserror(e)}"
            return Check("tls", Status.FAIL, f"{registry}: {what}",
                         self._hint(FailureClass.UNREACHABLE))
        if used:
            with contextlib.suppress(Exception):
                self._handshake(system)
                source = "the system CAs"  # certs.d is there, but not needed
        self.f.endpoint = self._endpoint("https", with_certs_d if used else system)
        text, info = self._cert_text(der)
        detail = f"{version}, verified against {source}: {text}"
        if info is not None and info.not_after is not None:
            days = (info.not_after - self.now).total_seconds() / 86400
            if days < CERT_WARN_DAYS:
                return Check("tls", Status.WARN, detail,
                             f"renew the certificate of {registry} before it expires")
        return Check("tls", Status.PASS, detail)

    def _tls_untrusted(self, e: ssl.SSLCertVerificationError, unverified: ssl.SSLContext,
                       certs: Path, used: list[str]) -> Check:
        registry = self._registry
        self.f.reasons["tls"] = f"the certificate of {registry} is not trusted"
        reason = e.verify_message or str(e.reason or e)
        text = ""
        info: CertInfo | None = None
        with contextlib.suppress(Exception):
            _, der = self._handshake(unverified)
            text, info = self._cert_text(der)
        detail = f"x509: {reason}" + (f"; {text}" if text else "")
        low = reason.lower()
        if "expired" in low or "not yet valid" in low:
            hint = (f"renew the certificate of {registry}; and check this host's clock "
                    "(timedatectl; field guide 5.4)")
        elif "hostname mismatch" in low or "ip address mismatch" in low:
            names = ", ".join(info.names) if info and info.names else "other names"
            hint = (f"the certificate is for {names}, not {self._api_host()}: reissue it with "
                    f"{self._api_host()} in subjectAltName, or use a name it covers")
        elif used:
            hint = (f"{certs}/{', '.join(used)} does not verify this certificate chain: put the "
                    "CA that issued it there (ca.crt), or check for a TLS-inspecting proxy "
                    "(field guide 6.3)")
        else:
            hint = (f"put the CA of {registry} in {certs}/ca.crt (dockerd reads it at each "
                    "pull), or add it to the system store (update-ca-certificates) and restart "
                    "docker; a TLS-inspecting proxy needs its CA there too (field guide 6.3)")
        return Check("tls", Status.FAIL, detail, hint)

    def _tls_insecure(self, unverified: ssl.SSLContext) -> Check:
        """dockerd treats this registry as insecure: HTTPS without verification, then
        plain HTTP."""
        registry = self._registry
        loop = is_loopback(self._api_host())
        why = ("it is on 127.0.0.0/8, which dockerd always treats as insecure" if loop
               else "it is in the daemon's insecure registries")
        warn_hint = (f"field guide 6.4: give {registry} a trusted certificate and remove it "
                     "from insecure-registries")
        try:
            version, der = self._handshake(unverified)
        except (ssl.SSLError, OSError) as e:
            self.f.endpoint = self._endpoint("http", None)
            if isinstance(e, ssl.SSLError) and is_plain_http_error(e):
                detail = f"{registry} speaks plain HTTP; dockerd falls back to HTTP because {why}"
            else:
                detail = (f"no TLS from {registry} ({_short(describe_oserror(e), 80)}); dockerd "
                          f"falls back to plain HTTP because {why}")
            if loop:
                return Check("tls", Status.SKIP, detail)
            return Check("tls", Status.WARN, detail + "; pulls are not encrypted", warn_hint)
        self.f.endpoint = self._endpoint("https", unverified)
        text, _ = self._cert_text(der)
        detail = f"{version}, not verified because {why}: {text}"
        return Check("tls", Status.PASS if loop else Status.WARN, detail,
                     "" if loop else warn_hint)

    # --- 10 GET /v2/ ----------------------------------------------------------------------

    def _get(self, path: str, headers: Mapping[str, str] | None = None,
             method: str = "GET") -> Response:
        assert self.f.endpoint is not None
        return request(self.f.endpoint, method, path, headers or {}, self.opt.timeout)

    def registry_api(self) -> Check:
        skipped = self._skip("registry_api", "reference", "dns", "tcp", "tls")
        if skipped:
            return skipped
        assert self.f.endpoint is not None
        url = f"{self.f.endpoint.base}/v2/"
        try:
            r = self._get("/v2/")
        except (OSError, ssl.SSLError, http.client.HTTPException, ValueError) as e:
            self.f.reasons["registry_api"] = f"GET {url} failed"
            return Check("registry_api", Status.FAIL, f"GET {url}: {describe_oserror(e)}",
                         self._hint(FailureClass.UNREACHABLE))
        self.f.v2 = r
        api_version = r.headers.get("Docker-Distribution-Api-Version", "")
        if r.status == 200:
            return Check("registry_api", Status.PASS,
                         f"GET {url}: 200, no authentication needed"
                         + (f" ({api_version})" if api_version else ""))
        if r.status == 401:
            self.f.challenge = pick_challenge(r.headers.get_all("WWW-Authenticate") or [])
            c = self.f.challenge
            how = "no WWW-Authenticate challenge" if c is None else (
                f"{c.scheme.capitalize()} authentication"
                + (f" (realm {c.params['realm']})" if c.params.get("realm") else ""))
            return Check("registry_api", Status.PASS,
                         f"GET {url}: 401, {how}: DNS, TLS and routing work")
        self.f.reasons["registry_api"] = f"GET {url} answered {r.status}"
        cls = {404: FailureClass.NOT_FOUND, 429: FailureClass.RATE_LIMITED}.get(
            r.status, FailureClass.SERVER_ERROR if r.status >= 500 else FailureClass.UNKNOWN)
        detail = f"GET {url}: {r.status} {r.reason}"
        if r.status == 404 or not api_version:
            detail += " (is this a Docker registry? expected 200 or 401 with " \
                      "Docker-Distribution-Api-Version)"
        return Check("registry_api", Status.FAIL, detail, self._hint(cls))

    # --- 11 credentials -------------------------------------------------------------------

    def credentials(self) -> Check:
        skipped = self._skip("credentials", "reference")
        if skipped:
            return skipped
        from . import dockerapi

        assert self.f.ref is not None
        auth_file = self.target.auth_file if self.target else None
        ref = self.f.ref
        try:
            creds = with_timeout(lambda: dockerapi.credentials(ref, auth_file),
                                 self.opt.timeout, "reading docker credentials")
        except PullunitError as e:
            self.f.reasons["credentials"] = "the credentials cannot be read"
            return Check("credentials", Status.FAIL, e.message,
                         "image.auth_file must be a readable docker config.json "
                         "({\"auths\": {HOST: {\"auth\": BASE64(user:password)}}})")
        except WatchdogTimeout as e:
            self.f.reasons["credentials"] = "the credential helper hangs"
            return Check("credentials", Status.FAIL, str(e),
                         "the docker credential helper (credsStore/credHelpers) did not "
                         "answer: check it with 'docker-credential-NAME list'")
        self.f.creds = creds
        auth = {str(k).lower(): v for k, v in (creds.auth_config or {}).items()}
        self.f.secrets.extend(str(auth[k]) for k in ("password", "auth", "identitytoken",
                                                     "registrytoken") if auth.get(k))
        which = (f"image.auth_file {creds.config_path}" if auth_file
                 else f"{creds.config_path}")
        warn: list[str] = []
        hints: list[str] = []
        if auth_file is None and os.geteuid() != 0:
            warn.append(f"doctor runs as uid {os.geteuid()} and read {creds.config_path}, but "
                        "the pull unit runs as root and reads root's docker config")
            hints.append("run doctor as root, or set image.auth_file")
        if auth_file is None and os.environ.get("DOCKER_CONFIG"):
            warn.append("DOCKER_CONFIG is set in this shell; the pull unit does not inherit it")
            hints.append("set image.auth_file to that config instead")
        if creds.found:
            kind = ("an identity token" if auth.get("identitytoken")
                    else "a registry token" if auth.get("registrytoken")
                    else "a user name and password")
            detail = f"{which} holds {kind} for {self._registry} (not shown)"
        else:
            detail = f"no credentials for {self._registry} in {which}"
            if self.f.v2 is not None and self.f.v2.status == 200:
                detail += "; none needed (the registry allows anonymous access)"
            elif self.f.challenge is not None and self.f.challenge.scheme == "basic":
                warn.append(detail + "; the registry asks for Basic authentication")
                hints.append(self._hint(FailureClass.DENIED))
                detail = ""
            else:
                detail += "; pulling anonymously"
        if warn:
            return Check("credentials", Status.WARN, "; ".join(w for w in [*warn, detail] if w),
                         "; ".join(hints))
        return Check("credentials", Status.PASS, detail)

    # --- 12 manifest --------------------------------------------------------------------

    def _token(self) -> tuple[dict[str, str], Check | None]:
        """Authorization for the manifest request, from the /v2/ challenge."""
        assert self.f.ref is not None
        c = self.f.challenge
        auth = {str(k).lower(): v for k, v in
                ((self.f.creds.auth_config or {}) if self.f.creds else {}).items()}
        user, password = auth.get("username"), auth.get("password")
        basic = None
        if user and password is not None:
            raw = f"{user}:{password}".encode()
            basic = "Basic " + base64.b64encode(raw).decode()
            self.f.secrets.append(basic.split(" ", 1)[1])
        if c is None or self.f.v2 is None or self.f.v2.status == 200:
            return {}, None
        if c.scheme == "basic":
            return ({"Authorization": basic} if basic else {}), None
        if c.scheme != "bearer":
            return {}, Check("manifest", Status.FAIL, f"the registry asks for {c.scheme} "
                             "authentication, which Docker does not speak", "")
        url = token_url(c, self.f.ref.remote_path)
        if url is None:
            return {}, Check("manifest", Status.FAIL, "the Bearer challenge names no realm",
                             "the registry's token service is misconfigured")
        headers: dict[str, str] = {}
        method, body = "GET", None
        if auth.get("identitytoken"):
            method = "POST"
            q = urllib.parse.urlsplit(url).query
            params = dict(urllib.parse.parse_qsl(q))
            body = urllib.parse.urlencode({"grant_type": "refresh_token",
                                           "refresh_token": str(auth["identitytoken"]),
                                           "client_id": "pullunit", **params})
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            url = url.split("?", 1)[0]
        elif basic:
            headers["Authorization"] = basic
        shown = url.split("?", 1)[0]
        try:
            r = self._fetch_url(method, url, headers, body)
        except (OSError, ssl.SSLError, http.client.HTTPException, ValueError) as e:
            return {}, Check("manifest", Status.FAIL, f"token request to {shown}: "
                             f"{describe_oserror(e)}", self._hint(FailureClass.UNREACHABLE))
        if r.status in (401, 403):
            what = ("refused the credentials" if basic or auth.get("identitytoken")
                    else "refused an anonymous token (no credentials were sent)")
            return {}, Check("manifest", Status.FAIL, f"the token service {shown} {what} "
                             f"({r.status})", self._hint(FailureClass.DENIED))
        if r.status != 200:
            return {}, Check("manifest", Status.FAIL,
                             f"token request to {shown}: {r.status} {r.reason}",
                             self._hint(FailureClass.SERVER_ERROR if r.status >= 500
                                        else FailureClass.UNKNOWN))
        try:
            data = json.loads(r.body)
            token = str(data.get("token") or data.get("access_token") or "")
        except (ValueError, AttributeError):
            token = ""
        if not token:
            return {}, Check("manifest", Status.FAIL, f"the token service {shown} returned no "
                             "token", "")
        self.f.secrets.append(token)
        return {"Authorization": f"Bearer {token}"}, None

    def _fetch_url(self, method: str, url: str, headers: Mapping[str, str],
                   body: str | None = None, redirects: int = 3) -> Response:
        """A request to any URL (token realm, blob redirect), verified like the registry
        (dockerd uses the registry's TLS settings for them too). Authorization is dropped
        when a redirect leaves the host."""
        assert self.f.endpoint is not None
        for _ in range(redirects + 1):
            u = urllib.parse.urlsplit(url)
            scheme, host = u.scheme or self.f.endpoint.scheme, u.hostname or self.f.endpoint.host
            port = u.port or (443 if scheme == "https" else 80)
            path = (u.path or "/") + (f"?{u.query}" if u.query else "")
            if (host, port) == (self.f.endpoint.host, self.f.endpoint.port) \
                    and scheme == self.f.endpoint.scheme:
                ep = self.f.endpoint
            else:
                family, sockaddr = resolve(host, port, self.opt.timeout)[0]
                ctx = self.f.endpoint.context
                if scheme == "https" and ctx is None:
                    ctx = ssl.create_default_context()
                ep = Endpoint(scheme, host, port, sockaddr, family, ctx)
            hdrs = dict(headers)
            r = request(ep, method, path, hdrs, self.opt.timeout,
                        body=None if body is None else body.encode())
            if r.status in (301, 302, 303, 307, 308) and r.headers.get("Location"):
                nxt = urllib.parse.urljoin(f"{ep.base}{path}", r.headers["Location"])
                n = urllib.parse.urlsplit(nxt)
                if (n.hostname, n.port or (443 if n.scheme == "https" else 80)) != (host, port):
                    headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
                url = nxt
                if r.status == 303:
                    method, body = "GET", None
                continue
            return r
        raise ValueError(f"more than {redirects} redirects")

    def manifest(self) -> Check:
        skipped = self._skip("manifest", "reference", "dns", "tcp", "tls", "registry_api",
                             "credentials")
        if skipped:
            return skipped
        assert self.f.ref is not None and self.f.endpoint is not None
        ref = self.f.ref
        headers, problem = self._token()
        if problem is not None:
            self.f.reasons["manifest"] = "no token for the manifest request"
            return problem
        self.f.auth_header = headers
        which = ref.digest or ref.tag
        path = f"/v2/{ref.remote_path}/manifests/{which}"
        url = f"{self.f.endpoint.base}{path}"
        try:
            r = self._get(path, {**headers, "Accept": ", ".join(MANIFEST_TYPES)})
        except (OSError, ssl.SSLError, http.client.HTTPException, ValueError) as e:
            self.f.reasons["manifest"] = "the manifest request failed"
            return Check("manifest", Status.FAIL, f"GET {url}: {describe_oserror(e)}",
                         self._hint(FailureClass.UNREACHABLE))
        if r.status != 200:
            self.f.reasons["manifest"] = "the manifest could not be fetched"
            codes = registry_errors(r.body)
            detail = f"GET {url}: {r.status} {r.reason}" + (f" ({', '.join(codes)})"
                                                            if codes else "")
            if r.status in (401, 403):
                if self.f.creds is not None and not self.f.creds.found:
                    detail += f": no credentials for {self._registry} were sent"
                else:
                    detail += f": the credentials for {self._registry} were rejected"
                return Check("manifest", Status.FAIL, detail, self._hint(FailureClass.DENIED))
            if r.status == 404:
                if "NAME_UNKNOWN" in codes:
                    detail += f": repository {ref.remote_path} does not exist"
                else:
                    detail += f": {ref.remote_path} has no {'digest' if ref.digest else 'tag'} " \
                              f"{which}"
                return Check("manifest", Status.FAIL, detail,
                             self._hint(FailureClass.NOT_FOUND))
            cls = FailureClass.RATE_LIMITED if r.status == 429 else (
                FailureClass.SERVER_ERROR if r.status >= 500 else FailureClass.UNKNOWN)
            return Check("manifest", Status.FAIL, detail, self._hint(cls))
        media = (r.headers.get("Content-Type") or "").split(";")[0].strip()
        digest = r.headers.get("Docker-Content-Digest") or \
            "sha256:" + hashlib.sha256(r.body).hexdigest()
        try:
            manifest = json.loads(r.body)
            if not isinstance(manifest, dict):
                raise ValueError("not a JSON object")
        except ValueError as e:
            self.f.reasons["manifest"] = "the manifest is not valid JSON"
            return Check("manifest", Status.FAIL, f"GET {url}: the manifest is not JSON ({e})",
                         self._hint(FailureClass.SERVER_ERROR))
        self.f.manifest = manifest
        self.f.manifest_type = media or str(manifest.get("mediaType", ""))
        kind = _MEDIA_NAMES.get(self.f.manifest_type, self.f.manifest_type or "manifest")
        detail = f"{ref}: {kind}, {digest}"
        if ref.digest and digest != ref.digest:
            self.f.reasons["manifest"] = "the registry serves another digest"
            return Check("manifest", Status.FAIL, detail + f", but {ref.digest} was pinned",
                         self._hint(FailureClass.DIGEST_MISMATCH))
        if self.f.local_digest:
            detail += ("; the local image is this digest" if self.f.local_digest == digest
                       else f"; the local image is {self.f.local_digest} (a newer digest is "
                       "in the registry)")
        return Check("manifest", Status.PASS, detail)

    # --- 13 platform --------------------------------------------------------------------

    def platform(self) -> Check:
        skipped = self._skip("platform", "reference", "manifest")
        if skipped:
            return skipped
        if self.f.manifest is None:
            return Check("platform", Status.SKIP, "skipped: no manifest")
        assert self.f.ref is not None
        want, source = self._want_platform()
        offered = manifest_platforms(self.f.manifest)
        if offered is None:
            have, problem = self._config_platform()
            if problem is not None:
                return problem
            assert have is not None
            offered = [have]
            what = "single-platform image"
        else:
            what = "image index"
        names = ", ".join(str(p) for p in offered) or "no platforms"
        if any(platform_matches(want, p) for p in offered):
            return Check("platform", Status.PASS, f"{want} ({source}) is offered: {what} for "
                         f"{names}")
        note = ("; dockerd 20.10 pulls it anyway, and the puller then rejects it (exit 65)"
                if what.startswith("single") else "")
        return Check("platform", Status.FAIL,
                     f"{self.f.ref} has no image for {want} ({source}): {what} for {names}"
                     + note, self._hint(FailureClass.PLATFORM, platform=want))

    def _config_platform(self) -> tuple[Platform | None, Check | None]:
        assert self.f.ref is not None and self.f.manifest is not None
        m = self.f.manifest
        if m.get("schemaVersion") == 1:
            return config_platform(m), None
        cfg = m.get("config")
        digest = cfg.get("digest") if isinstance(cfg, dict) else None
        if not isinstance(digest, str):
            return None, Check("platform", Status.WARN, "the manifest names no config blob; "
                               "cannot tell its platform", "")
        assert self.f.endpoint is not None
        url = f"{self.f.endpoint.base}/v2/{self.f.ref.remote_path}/blobs/{digest}"
        try:
            r = self._fetch_url("GET", url, self.f.auth_header)
            data = json.loads(r.body) if r.status == 200 else None
        except (OSError, ssl.SSLError, http.client.HTTPException, ValueError) as e:
            return None, Check("platform", Status.WARN, f"GET {url}: {describe_oserror(e)}; "
                               "cannot tell the image's platform", "")
        if not isinstance(data, dict):
            return None, Check("platform", Status.WARN, f"GET {url}: {r.status} {r.reason}; "
                               "cannot tell the image's platform", "")
        return config_platform(data), None

    # --- 14 clock -----------------------------------------------------------------------

    def clock(self) -> Check:
        skipped = self._skip("clock", "reference", "registry_api")
        if skipped:
            return skipped
        r = self.f.v2
        if r is None:
            return Check("clock", Status.SKIP, "skipped: no answer from the registry")
        date = r.headers.get("Date")
        skew = clock_skew(date or "", r.sent, r.received)
        if skew is None:
            return Check("clock", Status.SKIP, "the registry sent no usable Date header")
        status = skew_status(skew)
        direction = "ahead of" if skew > 0 else "behind"
        detail = (f"the registry's clock is {abs(skew):.0f} s {direction} this host's "
                  f"(Date: {date})")
        if status is Status.PASS:
            text = (f"in sync with the registry (skew {round(skew):+d} s, within the Date "
                    "header's 1 s resolution)" if abs(skew) < 2 else detail)
            return Check("clock", Status.PASS, text)
        return Check("clock", status, detail,
                     "check this host's clock: 'timedatectl' (NTP active?); TLS certificates "
                     "and registry tokens depend on it (field guide 5.4)")


_MEDIA_NAMES = {
    "application/vnd.oci.image.index.v1+json": "OCI image index",
    "application/vnd.docker.distribution.manifest.list.v2+json": "Docker manifest list",
    "application/vnd.docker.distribution.manifest.v2+json": "Docker image manifest v2",
    "application/vnd.oci.image.manifest.v1+json": "OCI image manifest",
    "application/vnd.docker.distribution.manifest.v1+prettyjws": "schema 1 manifest",
}


def _docker_service_env() -> tuple[dict[str, str] | None, list[str]]:
    """docker.service's Environment= plus its EnvironmentFile= contents (D-Bus)."""
    from pystemd.systemd1 import Unit

    with Unit(b"docker.service") as u:
        state = u.Unit.LoadState
        state = state.decode() if isinstance(state, bytes) else str(state or "")
        if state != "loaded":
            return None, [state]
        svc = u.Service
        env = parse_environment(svc.Environment or [])
        files: list[str] = []
        for entry in svc.EnvironmentFiles or []:
            raw = entry[0] if isinstance(entry, list | tuple) else entry
            name = raw.decode() if isinstance(raw, bytes) else str(raw)
            with contextlib.suppress(OSError):
                env.update(parse_env_file(Path(name).read_text()))
                files.append(name)
        return env, files


def _plain_proxies(p: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in p.items() if v}


def _major(version: str) -> int | None:
    m = re.match(r"(\d+)\.", version)
    return int(m.group(1)) if m else None


def _fmt_addr(sockaddr: tuple[Any, ...], port: int) -> str:
    host = str(sockaddr[0])
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _short(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def diagnose(target: Target | None, options: Options | None = None) -> list[Check]:
    """Run the checklist. target None: only the host checks (daemon, disk, daemon_config,
    proxy), for a host without apps."""
    return _Doctor(target, options or Options.from_env()).run()
