"""What the Docker daemon is configured with: daemon.json, its insecure-registry list and
proxy settings (and how to show a proxy without its credentials), parsed without I/O
(doctor reads the files and asks the daemon)."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import PullunitError
from .reference import DEFAULT_REGISTRY

DEFAULT_DAEMON_JSON = Path("/etc/docker/daemon.json")
_Net = ipaddress.IPv4Network | ipaddress.IPv6Network
LOOPBACK_CIDR = ipaddress.ip_network("127.0.0.0/8")
PROXY_KEYS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")


class DaemonJsonError(PullunitError, ValueError):
    pass


@dataclass(frozen=True)
class DaemonJson:
    mirrors: tuple[str, ...] = ()
    insecure: tuple[str, ...] = ()
    proxies: tuple[tuple[str, str], ...] = ()  # (http-proxy|https-proxy|no-proxy, value)
    dns: tuple[str, ...] = ()


def _str_list(data: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DaemonJsonError(f"{where}: {key!r} must be a list of strings")
    return tuple(value)


def parse_daemon_json(text: str, where: str = str(DEFAULT_DAEMON_JSON)) -> DaemonJson:
    """The parts of daemon.json that decide how dockerd reaches a registry."""
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError as e:
        raise DaemonJsonError(f"{where}: not valid JSON ({e}); dockerd will not start "
                              "with it") from e
    if not isinstance(data, dict):
        raise DaemonJsonError(f"{where}: expected a JSON object")
    proxies = data.get("proxies", {})
    if not isinstance(proxies, dict) or not all(isinstance(v, str) for v in proxies.values()):
        raise DaemonJsonError(f"{where}: 'proxies' must be an object of strings")
    return DaemonJson(mirrors=_str_list(data, "registry-mirrors", where),
                      insecure=_str_list(data, "insecure-registries", where),
                      proxies=tuple(sorted(proxies.items())), dns=_str_list(data, "dns", where))


@dataclass(frozen=True)
class RegistryConfig:
    """dockerd's view of which registries are insecure (its RegistryConfig)."""

    cidrs: tuple[_Net, ...]
    index: tuple[tuple[str, bool], ...]  # (name, secure)
    mirrors: tuple[str, ...] = ()

    def secure_of(self, name: str) -> bool | None:
        for n, secure in self.index:
            if n == name:
                return secure
        return None


def _strip_scheme(entry: str) -> str:
    low = entry.lower()
    for scheme in ("http://", "https://"):
        if low.startswith(scheme):
            return entry[len(scheme):].rstrip("/")
    return entry.rstrip("/")


def registry_config_from_entries(insecure: Iterable[str],
                                 mirrors: Iterable[str] = ()) -> RegistryConfig:
    """What dockerd derives from insecure-registries: CIDRs, plus names marked insecure;
    127.0.0.0/8 always (dockerd adds it so a local registry needs no TLS)."""
    cidrs: list[_Net] = [LOOPBACK_CIDR]
    index: list[tuple[str, bool]] = [(DEFAULT_REGISTRY, True)]
    for raw in insecure:
        entry = _strip_scheme(raw.strip())
        try:
            net = ipaddress.ip_network(entry, strict=False) if "/" in entry else None
        except ValueError:
            net = None
        if net is not None:
            if net not in cidrs:
                cidrs.append(net)
        else:
            index.append((entry, False))
    return RegistryConfig(tuple(cidrs), tuple(index), tuple(mirrors))


def registry_config_from_info(info: Mapping[str, Any]) -> RegistryConfig | None:
    """The running daemon's RegistryConfig from GET /info."""
    rc = info.get("RegistryConfig")
    if not isinstance(rc, dict):
        return None
    cidrs: list[_Net] = []
    for c in rc.get("InsecureRegistryCIDRs") or []:
        with contextlib.suppress(ValueError, TypeError):
            cidrs.append(ipaddress.ip_network(str(c), strict=False))
    index = tuple((str(name), bool((cfg or {}).get("Secure", True)))
                  for name, cfg in (rc.get("IndexConfigs") or {}).items())
    return RegistryConfig(tuple(cidrs), index, tuple(str(m) for m in rc.get("Mirrors") or []))


def is_insecure(registry: str, addresses: Iterable[str], config: RegistryConfig) -> bool:
    """dockerd's isSecureIndex, negated: an index entry decides; otherwise insecure when
    any address the host resolves to (or the literal IP) is in an insecure CIDR."""
    secure = config.secure_of(registry)
    if secure is not None:
        return not secure
    ips: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for a in [*addresses, registry_host(registry)]:
        with contextlib.suppress(ValueError):
            ips.append(ipaddress.ip_address(a.split("%")[0]))
    return any(ip in net for ip in ips for net in config.cidrs if ip.version == net.version)


def registry_host(registry: str) -> str:
    """host of host[:port] (brackets of an IPv6 literal removed)."""
    if registry.startswith("["):
        return registry[1:registry.index("]")]
    return registry.rsplit(":", 1)[0] if ":" in registry else registry


def registry_port(registry: str) -> int | None:
    tail = registry.rsplit("]", 1)[-1]
    if ":" in tail:
        with contextlib.suppress(ValueError):
            return int(tail.rsplit(":", 1)[1])
    return None


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def proxy_for(scheme: str, host: str, port: int, env: Mapping[str, str]) -> str | None:
    """The proxy a Go program (dockerd) would use for scheme://host:port, given its
    environment: golang.org/x/net/http/httpproxy rules, NO_PROXY included."""
    key = "HTTPS_PROXY" if scheme == "https" else "HTTP_PROXY"
    proxy = env.get(key) or env.get(key.lower())
    if not proxy:
        return None
    host = host.lower().strip("[]")
    if host == "localhost" or is_loopback(host):
        return None
    no_proxy = env.get("NO_PROXY") or env.get("no_proxy") or ""
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return None
        with contextlib.suppress(ValueError):
            net = ipaddress.ip_network(entry, strict=False)
            if ip is not None and ip.version == net.version and ip in net:
                return None
            continue
        name, want_port = entry, ""
        if entry.startswith("[") and "]" in entry:  # [v6]:port
            name, _, rest = entry[1:].partition("]")
            want_port = rest.lstrip(":")
        elif entry.count(":") == 1:
            name, _, want_port = entry.partition(":")
        if name.startswith("*."):
            name = name[1:]
        match_host = not name.startswith(".")
        suffix = name if name.startswith(".") else "." + name
        if (host.endswith(suffix) or (match_host and host == name)) and (
                not want_port or want_port == str(port)):
            return None
    return proxy


def parse_environment(entries: Iterable[str | bytes]) -> dict[str, str]:
    """systemd's Environment= list (b"KEY=value" items) as a dict."""
    env: dict[str, str] = {}
    for e in entries:
        text = e.decode(errors="replace") if isinstance(e, bytes) else e
        k, sep, v = text.partition("=")
        if sep:
            env[k] = v
    return env


def parse_env_file(text: str) -> dict[str, str]:
    """An EnvironmentFile= (KEY=value lines, # comments, optional quotes)."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        k, sep, v = line.partition("=")
        if sep:
            v = v.strip()
            if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
                v = v[1:-1]
            env[k.strip()] = v
    return env


def proxy_env(env: Mapping[str, str]) -> dict[str, str]:
    """Only the proxy variables (upper case wins, as in Go)."""
    out = {}
    for k in PROXY_KEYS:
        v = env.get(k) or env.get(k.lower())
        if v:
            out[k] = v
    return out


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


def redact_url(value: str) -> str:
    """A proxy URL (or any URL) fit to show: its whole userinfo becomes ***.

    Parsed, not pattern-matched: the userinfo is everything between the scheme (if any:
    Go reads `user:pass@host` as http) and the LAST '@', since a password may hold '@',
    '/', ':' or spaces, and a user part alone may be a token (http://TOKEN@proxy). A
    value without '@' has no userinfo and is returned unchanged."""
    m = _SCHEME.match(value)
    scheme = m.group(0) if m else ""
    at = value.rfind("@")
    if at < len(scheme):
        return value
    return f"{scheme}***{value[at:]}"


def redact_proxies(proxies: Mapping[str, str]) -> dict[str, str]:
    """Every value of a proxy setting (HTTP_PROXY, https-proxy, NO_PROXY...) redacted."""
    return {k: redact_url(v) for k, v in proxies.items()}
