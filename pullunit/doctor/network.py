"""Checks of the way to the registry: name, TCP, TLS, the way dockerd would go."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import ssl
import time
from pathlib import Path
from typing import Any

from ..boundedhttp import (
    Endpoint,
    WatchdogTimeout,
    describe_oserror,
    handshake,
    is_plain_http_error,
    load_certs_dir,
    resolve,
)
from ..classify import FailureClass
from ..dockerconf import is_insecure, is_loopback, registry_config_from_entries, registry_port
from ..regclient import Session
from ..x509info import CertInfo, cert_info, describe_cert
from .context import Context
from .model import Check, Status, short
from .verdicts import CERT_WARN_DAYS


def dns(ctx: Context) -> Check:
    host = ctx.api_host
    port = registry_port(ctx.registry) or 443
    try:
        ipaddress.ip_address(host)
        literal = True
    except ValueError:
        literal = False
    try:
        ctx.addresses = resolve(host, port, ctx.deadline)
    except socket.gaierror as e:
        return Check("dns", Status.FAIL, f"lookup {host}: {e.strerror or e}",
                     ctx.hint(FailureClass.DNS))
    except (WatchdogTimeout, TimeoutError) as e:
        return Check("dns", Status.FAIL, f"lookup {host}: {describe_oserror(e)}",
                     ctx.hint(FailureClass.DNS))
    addrs = [sa[0] for _, sa in ctx.addresses]
    if literal:
        return Check("dns", Status.PASS, f"{host} is an IP address; nothing to resolve")
    shown = ", ".join(addrs[:4]) + (f" (+{len(addrs) - 4})" if len(addrs) > 4 else "")
    return Check("dns", Status.PASS, f"{host} resolves to {shown}")


def _fmt_addr(sockaddr: tuple[Any, ...], port: int) -> str:
    host = str(sockaddr[0])
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def tcp(ctx: Context) -> Check:
    rc = ctx.registry_config or registry_config_from_entries(())
    addrs = [sa[0] for _, sa in ctx.addresses]
    ctx.insecure = is_insecure(ctx.registry, addrs, rc)
    explicit = registry_port(ctx.registry)
    # dockerd: HTTPS on 443; an insecure registry may fall back to plain HTTP on 80
    ports = [explicit] if explicit else ([443, 80] if ctx.insecure else [443])
    errors: list[str] = []
    for port in ports:
        for family, sockaddr in ctx.addresses[:4]:
            remaining = ctx.deadline.left()
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
            ctx.connected = (family, sa, port)
            ms = (time.monotonic() - started) * 1000
            return Check("tcp", Status.PASS, f"connected to {_fmt_addr(sa, port)} in "
                         f"{ms:.0f} ms")
    hint = ctx.hint(FailureClass.UNREACHABLE)
    if any("timed out" in e for e in errors):
        hint = (f"packets to {ctx.registry} are dropped: check firewall egress rules "
                "(iptables -S, nft list ruleset, security groups) and routes; " + hint)
    return Check("tcp", Status.FAIL, "cannot connect: " + "; ".join(errors), hint)


def _endpoint(ctx: Context, scheme: str, tls: ssl.SSLContext | None) -> Endpoint:
    assert ctx.connected is not None
    family, sockaddr, port = ctx.connected
    return Endpoint(scheme, ctx.api_host, port, sockaddr, family, tls)


def _cert_text(ctx: Context, der: bytes) -> tuple[str, CertInfo | None]:
    try:
        info = cert_info(der)
    except (ValueError, IndexError):
        return "certificate could not be parsed", None
    return describe_cert(info, ctx.now), info


def _unverified() -> ssl.SSLContext:
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE
    return tls


def tls(ctx: Context) -> Check:
    if ctx.insecure:
        return _tls_insecure(ctx)
    registry, certs = ctx.registry, ctx.options.certs_d / ctx.registry
    system = ssl.create_default_context()
    with_certs_d = ssl.create_default_context()
    try:
        used = load_certs_dir(with_certs_d, certs)
    except (ssl.SSLError, OSError) as e:
        return Check("tls", Status.FAIL, f"cannot load {certs}: {e}",
                     f"dockerd fails on the same files: fix or remove them in {certs}")
    source = f"{certs}/{', '.join(used)}" if used else "the system CAs"
    try:
        version, der = handshake(_endpoint(ctx, "https", with_certs_d if used else system),
                                 ctx.deadline)
    except ssl.SSLCertVerificationError as e:
        return _tls_untrusted(ctx, e, certs, used)
    except ssl.SSLError as e:
        if is_plain_http_error(e):
            return Check("tls", Status.FAIL, f"{registry} does not speak TLS: "
                         "http: server gave HTTP response to HTTPS client",
                         f"serve {registry} over TLS; or, only if you accept unverified "
                         "plain HTTP, add it to insecure-registries in daemon.json (field "
                         "guide 6.4)")
        return Check("tls", Status.FAIL, f"TLS handshake with {registry} failed: "
                     f"{e.reason or e}", ctx.hint(FailureClass.TLS))
    except OSError as e:
        what = "TLS handshake timeout" if isinstance(e, TimeoutError) \
            else f"TLS handshake failed: {describe_oserror(e)}"
        return Check("tls", Status.FAIL, f"{registry}: {what}",
                     ctx.hint(FailureClass.UNREACHABLE))
    if used:
        with contextlib.suppress(Exception):
            handshake(_endpoint(ctx, "https", system), ctx.deadline)
            source = "the system CAs"  # certs.d is there, but not needed
    ctx.session = Session(_endpoint(ctx, "https", with_certs_d if used else system))
    text, info = _cert_text(ctx, der)
    detail = f"{version}, verified against {source}: {text}"
    if info is not None and info.not_after is not None:
        days = (info.not_after - ctx.now).total_seconds() / 86400
        if days < CERT_WARN_DAYS:
            return Check("tls", Status.WARN, detail,
                         f"renew the certificate of {registry} before it expires")
    return Check("tls", Status.PASS, detail)


def _tls_untrusted(ctx: Context, e: ssl.SSLCertVerificationError, certs: Path,
                   used: list[str]) -> Check:
    registry = ctx.registry
    reason = e.verify_message or str(e.reason or e)
    text = ""
    info: CertInfo | None = None
    with contextlib.suppress(Exception):
        _, der = handshake(_endpoint(ctx, "https", _unverified()), ctx.deadline)
        text, info = _cert_text(ctx, der)
    detail = f"x509: {reason}" + (f"; {text}" if text else "")
    low = reason.lower()
    if "expired" in low or "not yet valid" in low:
        hint = (f"renew the certificate of {registry}; and check this host's clock "
                "(timedatectl; field guide 5.4)")
    elif "hostname mismatch" in low or "ip address mismatch" in low:
        names = ", ".join(info.names) if info and info.names else "other names"
        hint = (f"the certificate is for {names}, not {ctx.api_host}: reissue it with "
                f"{ctx.api_host} in subjectAltName, or use a name it covers")
    elif used:
        hint = (f"{certs}/{', '.join(used)} does not verify this certificate chain: put the "
                "CA that issued it there (ca.crt), or check for a TLS-inspecting proxy "
                "(field guide 6.3)")
    else:
        hint = (f"put the CA of {registry} in {certs}/ca.crt (dockerd reads it at each "
                "pull), or add it to the system store (update-ca-certificates) and restart "
                "docker; a TLS-inspecting proxy needs its CA there too (field guide 6.3)")
    return Check("tls", Status.FAIL, detail, hint)


def _tls_insecure(ctx: Context) -> Check:
    """dockerd treats this registry as insecure: HTTPS without verification, then
    plain HTTP."""
    registry = ctx.registry
    loop = is_loopback(ctx.api_host)
    why = ("it is on 127.0.0.0/8, which dockerd always treats as insecure" if loop
           else "it is in the daemon's insecure registries")
    warn_hint = (f"field guide 6.4: give {registry} a trusted certificate and remove it "
                 "from insecure-registries")
    unverified = _unverified()
    try:
        version, der = handshake(_endpoint(ctx, "https", unverified), ctx.deadline)
    except (ssl.SSLError, OSError) as e:
        ctx.session = Session(_endpoint(ctx, "http", None))
        if isinstance(e, ssl.SSLError) and is_plain_http_error(e):
            detail = f"{registry} speaks plain HTTP; dockerd falls back to HTTP because {why}"
        else:
            detail = (f"no TLS from {registry} ({short(describe_oserror(e), 80)}); dockerd "
                      f"falls back to plain HTTP because {why}")
        if loop:
            return Check("tls", Status.SKIP, detail)
        return Check("tls", Status.WARN, detail + "; pulls are not encrypted", warn_hint)
    ctx.session = Session(_endpoint(ctx, "https", unverified))
    text, _ = _cert_text(ctx, der)
    detail = f"{version}, not verified because {why}: {text}"
    return Check("tls", Status.PASS if loop else Status.WARN, detail,
                 "" if loop else warn_hint)


def _family_name(family: int) -> str:
    return "IPv6" if family == socket.AF_INET6 else "IPv4"


def ip_versions(ctx: Context) -> Check:
    """When the registry's name has IPv4 and IPv6 addresses, each path on its own: Go
    (dockerd) tries both (happy eyeballs), so a broken one costs a delay on every
    connection, or the pull where the working one is slow to answer."""
    first: dict[int, tuple[Any, ...]] = {}
    for family, sockaddr in ctx.addresses:
        first.setdefault(family, sockaddr)
    host = ctx.api_host
    if len(first) < 2:
        only = _family_name(next(iter(first))) if first else "no"
        return Check("ip_versions", Status.SKIP, f"{host} has {only} addresses only: one "
                     "path to check (tcp did)")
    port = registry_port(ctx.registry) or (ctx.connected[2] if ctx.connected else 443)
    results: list[tuple[str, str, str | None]] = []  # family, address, error
    for family, sockaddr in sorted(first.items()):
        sa = (sockaddr[0], port, *sockaddr[2:])
        # each family gets its share of what is left, so one black hole cannot use it all
        share = max(ctx.deadline.left() / (2 if not results else 1), 0.05)
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.settimeout(share)
                s.connect(sa)
            results.append((_family_name(family), _fmt_addr(sa, port), None))
        except OSError as e:
            results.append((_family_name(family), _fmt_addr(sa, port), describe_oserror(e)))
    detail = "; ".join(f"{name} {addr}: {err or 'connects'}" for name, addr, err in results)
    broken = [name for name, _, err in results if err]
    if not broken:
        return Check("ip_versions", Status.PASS, detail)
    if len(broken) == len(results):
        return Check("ip_versions", Status.FAIL, detail, ctx.hint(FailureClass.UNREACHABLE))
    bad = broken[0]
    return Check("ip_versions", Status.WARN, detail,
                 f"the {bad} path to {host} is broken while the other works: dockerd tries "
                 f"both, so pulls wait on {bad} first or fail where it is preferred; fix "
                 f"{bad} routing/firewall to {host}, or remove its "
                 f"{'AAAA' if bad == 'IPv6' else 'A'} records")
