"""The host's fingerprint: what decides how this host's daemon reaches a registry (field
guide section 8, "works on one host but not another"), for `doctor --json`, and the
comparison of fingerprints from several hosts (`doctor --compare A.json B.json ...`).

Collected by looking only, each part bounded; proxies are shown without credentials.
The comparison is pure: it names what differs, the likeliest cause of a pull that works
on one host and not on another first.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..boundedhttp import with_timeout
from ..dockerconf import DaemonJsonError, parse_daemon_json, proxy_env, redact_proxies
from .model import Options

# daemon.json keys that change how images are pulled (dockerd's config); the others
# (logging, cgroups, ...) do not matter here.
PULL_KEYS = ("registry-mirrors", "insecure-registries", "allow-nondistributable-artifacts",
             "proxies", "dns", "dns-opts", "dns-search", "max-concurrent-downloads",
             "max-download-attempts", "mtu", "ipv6", "features", "storage-driver",
             "data-root", "containerd")

# The parts of a fingerprint, most suspicious first, and why each matters.
RANK: tuple[tuple[str, str], ...] = (
    ("proxies", "the daemon's proxy decides the whole path to the registry (6.1, 6.2)"),
    ("daemon_json", "registry mirrors, insecure registries and proxies (8.2)"),
    ("certs_d", "per-registry CAs and client certificates (6.3)"),
    ("ca_bundle", "the system CAs the daemon verifies registries with (6.3)"),
    ("resolv_conf", "the resolvers that answer the registry's name (5.2)"),
    ("mtu", "packet size on the default route: stalls after the handshake (5.3)"),
    ("docker", "daemon version and storage (8.1)"),
    ("pullunit", "pullunit's version"),
)


def _sha256(path: Path) -> str | None:
    try:
        return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _daemon_facts(timeout: float) -> tuple[dict[str, Any] | None, dict[str, str]]:
    from .daemon import _ask_daemon

    try:
        api, version, info = with_timeout(lambda: _ask_daemon(timeout), timeout,
                                          "asking the Docker daemon")
    except Exception:
        return None, {}
    with contextlib.suppress(Exception):
        api.close()
    docker = {"version": version.get("Version"), "api_version": version.get("ApiVersion"),
              "storage_driver": info.get("Driver"), "root_dir": info.get("DockerRootDir")}
    proxies = {k: str(v) for k, v in (("HTTP_PROXY", info.get("HttpProxy")),
                                      ("HTTPS_PROXY", info.get("HttpsProxy")),
                                      ("NO_PROXY", info.get("NoProxy"))) if v}
    return docker, proxies


def _service_proxies(timeout: float) -> dict[str, str] | None:
    """docker.service's proxies (Environment= and EnvironmentFile=), None without systemd."""
    from ..systemd import booted
    from .host import _docker_service_env

    if not booted():
        return None
    try:
        env, _ = with_timeout(_docker_service_env, timeout, "reading docker.service")
    except Exception:
        return None
    return proxy_env(env) if env is not None else None


def _daemon_json(path: Path) -> dict[str, Any] | str:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as e:
        return f"unreadable: {e.strerror}"
    try:
        parse_daemon_json(text, str(path))  # the same validity rules as daemon_config
        data = json.loads(text) if text.strip() else {}
    except (DaemonJsonError, ValueError):
        return f"invalid JSON ({_sha256(path)})"
    out = {k: data[k] for k in PULL_KEYS if k in data}
    if isinstance(out.get("proxies"), dict):
        out["proxies"] = redact_proxies({str(k): str(v) for k, v in out["proxies"].items()})
    return out


def _resolv_conf(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"nameservers": [], "search": [], "options": []}
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            words = line.split("#", 1)[0].split()
            if len(words) >= 2 and words[0] == "nameserver":
                out["nameservers"].append(words[1])
            elif words and words[0] in ("search", "domain"):
                out["search"] = words[1:]
            elif words and words[0] == "options":
                out["options"] += words[1:]
    return out


def _certs_d(root: Path) -> dict[str, str]:
    """HOST/FILE -> sha256 of every file dockerd would read from certs.d."""
    out: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for host in sorted(root.iterdir()):
            if host.is_dir():
                for f in sorted(host.iterdir()):
                    if f.suffix in (".crt", ".cert", ".key"):
                        out[f"{host.name}/{f.name}"] = _sha256(f) or "unreadable"
    return out


def default_route_mtu(proc: Path = Path("/proc/net"),
                      sys_net: Path = Path("/sys/class/net")) -> dict[str, Any]:
    """The interface and MTU of the IPv4 and IPv6 default routes (None: no such route)."""
    out: dict[str, Any] = {"ipv4": None, "ipv6": None}

    def mtu(iface: str) -> dict[str, Any]:
        try:
            value: int | None = int((sys_net / iface / "mtu").read_text())
        except (OSError, ValueError):
            value = None
        return {"interface": iface, "mtu": value}

    with contextlib.suppress(OSError):
        for line in (proc / "route").read_text().splitlines()[1:]:
            f = line.split()
            if len(f) >= 8 and f[1] == "00000000" and f[7] == "00000000":
                out["ipv4"] = mtu(f[0])
                break
    with contextlib.suppress(OSError):
        for line in (proc / "ipv6_route").read_text().splitlines():
            f = line.split()
            if len(f) >= 10 and f[0] == "0" * 32 and f[1] == "00" and f[9] != "lo":
                out["ipv6"] = mtu(f[9])
                break
    return out


def collect(options: Options) -> dict[str, Any]:
    """This host's fingerprint (JSON-ready). Each part that cannot be read is null."""
    timeout = options.timeout
    docker, daemon_proxies = _daemon_facts(timeout)
    service = _service_proxies(timeout)
    proxies = service if service is not None else daemon_proxies
    return {
        "pullunit": __version__,
        "docker": docker,
        "daemon_json": _daemon_json(options.daemon_json),
        # docker.service's own settings when systemd can be asked (the daemon masks the
        # credentials it reports, so both are compared without them)
        "proxies": {"source": "docker.service" if service is not None else "daemon",
                    **redact_proxies(proxies)},
        "resolv_conf": _resolv_conf(options.resolv_conf),
        "ca_bundle": {"path": str(options.ca_bundle), "sha256": _sha256(options.ca_bundle)},
        "certs_d": _certs_d(options.certs_d),
        "mtu": default_route_mtu(),
        "hostname": os.uname().nodename,
    }


# -- comparing --------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    key: str  # dotted: proxies.HTTPS_PROXY, daemon_json.registry-mirrors, ...
    why: str
    values: tuple[Any, ...]  # one per fingerprint, None where absent


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    """Leaves by dotted key; an empty table has no leaves (its keys read as absent)."""
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    else:
        out[prefix] = value


def compare(fingerprints: Sequence[Mapping[str, Any]]) -> list[Difference]:
    """What differs between the fingerprints, most suspicious first (RANK), then by key.
    The host name differs by nature and is not a difference."""
    flat = []
    for fp in fingerprints:
        d: dict[str, Any] = {}
        _flatten({k: v for k, v in fp.items() if k != "hostname"}, "", d)
        flat.append(d)
    keys = sorted({k for d in flat for k in d})
    order = {name: i for i, (name, _) in enumerate(RANK)}
    why = dict(RANK)
    out = []
    for key in keys:
        values = tuple(d.get(key) for d in flat)
        if any(v != values[0] for v in values[1:]):
            top = key.split(".", 1)[0]
            out.append((order.get(top, len(RANK)), key,
                        Difference(key, why.get(top, ""), values)))
    return [d for _, _, d in sorted(out, key=lambda t: (t[0], t[1]))]


def fingerprint_of(data: Any) -> Mapping[str, Any] | None:
    """The fingerprint in a `doctor --json` output (a list of targets, each with "host")
    or a bare fingerprint object."""
    if isinstance(data, list):
        for item in data:
            if isinstance(item, Mapping) and isinstance(item.get("host"), Mapping):
                host: Mapping[str, Any] = item["host"]
                return host
        return None
    if isinstance(data, Mapping) and "pullunit" in data:
        return data
    return None
