"""Checks of the daemon's own path to the registry: through the proxy dockerd uses
(proxy_path: CONNECT, not around it), and a real layer of at least 1 MiB fetched the
same way (blob: a path that carries the small requests of the other checks but stalls
on full-size packets is the MTU problem of field guide 5.3)."""

from __future__ import annotations

import http.client
import json
import ssl
from typing import Any

from ..boundedhttp import (
    Deadline,
    Endpoint,
    Proxy,
    ProxyError,
    describe_oserror,
    human_bytes,
    load_certs_dir,
    proxy_from_url,
    request,
)
from ..classify import FailureClass
from ..dockerconf import proxy_for, registry_port
from ..platform import Platform, matches
from ..regclient import Session
from .context import Context
from .model import Check, Status
from .verdicts import MANIFEST_TYPES

MIN_BLOB = 2**20  # a blob smaller than this says little about the path
READ_AT_MOST = 4 * 2**20  # enough full-size packets; the rest is bandwidth, not the path
BLOB_LIMIT = 30.0  # seconds for the whole blob check, whatever Options.timeout is
_MASKED_USER = "xxxxx"  # how dockerd shows a proxy's credentials in /info


def _scheme(ctx: Context) -> str:
    if ctx.session is not None:
        return ctx.session.endpoint.scheme
    return "http" if ctx.insecure else "https"


def daemon_proxy(ctx: Context) -> tuple[Proxy | None, str]:
    """The proxy dockerd uses for this registry (None: it goes direct), and a note on
    where that came from. docker.service's settings when systemd could be asked (they
    hold the credentials), else what the running daemon reports (without them)."""
    if ctx.service_proxies is not None:
        env, source = ctx.service_proxies, "docker.service"
    elif ctx.daemon is not None:
        env, source = ctx.daemon.proxies(), "the running daemon"
    else:
        return None, "the daemon did not answer and docker.service could not be read"
    port = registry_port(ctx.registry) or (443 if _scheme(ctx) == "https" else 80)
    url = proxy_for(_scheme(ctx), ctx.api_host, port, env)
    if url is None:
        return None, f"no proxy applies to {ctx.api_host} ({source})"
    proxy = proxy_from_url(url)
    note = source
    if proxy.authorization and url.split("://", 1)[-1].startswith(f"{_MASKED_USER}:"):
        proxy = Proxy(proxy.host, proxy.port, proxy.shown, None)
        note += " (which hides the proxy's credentials: tried without them)"
    return proxy, note


def _tls_context(ctx: Context) -> ssl.SSLContext | None:
    if _scheme(ctx) != "https":
        return None
    if ctx.session is not None and ctx.session.endpoint.context is not None:
        return ctx.session.endpoint.context
    tls = ssl.create_default_context()
    if ctx.insecure:
        tls.check_hostname = False
        tls.verify_mode = ssl.CERT_NONE
    else:
        load_certs_dir(tls, ctx.options.certs_d / ctx.registry)
    return tls


def _proxied(ctx: Context, proxy: Proxy) -> Endpoint:
    scheme = _scheme(ctx)
    port = registry_port(ctx.registry) or (443 if scheme == "https" else 80)
    return Endpoint(scheme, ctx.api_host, port, (), 0, _tls_context(ctx), proxy)


def proxy_path(ctx: Context) -> Check:
    try:
        proxy, source = daemon_proxy(ctx)
    except ValueError as e:
        return Check("proxy_path", Status.WARN, f"the daemon's proxy cannot be checked: {e}",
                     "check it by hand: curl -x PROXY https://REGISTRY/v2/")
    if proxy is None:
        return Check("proxy_path", Status.SKIP, f"dockerd reaches {ctx.registry} directly: "
                     f"{source}")
    ep = _proxied(ctx, proxy)
    how = "CONNECT tunnel" if ep.scheme == "https" else "HTTP proxy request"
    url = f"{ep.base}/v2/"
    where = f"through {proxy.shown} ({how}; from {source})"
    try:
        r = request(ep, "GET", "/v2/", {}, ctx.deadline)
    except ProxyError as e:
        if e.status == 407:
            return Check("proxy_path", Status.FAIL, f"{where}: {e}: the proxy wants "
                         "credentials", "put user:password in the proxy URL of docker.service "
                         "(Environment=HTTPS_PROXY=http://USER:PASSWORD@HOST:PORT, field "
                         "guide 6.2), then 'systemctl daemon-reload && systemctl restart "
                         "docker'")
        return Check("proxy_path", Status.FAIL, f"{where}: {e}",
                     f"the proxy refuses {ctx.api_host}:{ep.port}: allow it on the proxy, "
                     f"or add {ctx.api_host} to NO_PROXY of docker.service if it should be "
                     "reached directly (field guide 6.1, 6.2)")
    except ssl.SSLCertVerificationError as e:
        return Check("proxy_path", Status.FAIL, f"{where}: x509: {e.verify_message or e}",
                     "a TLS-inspecting proxy presents its own certificate: put its CA in "
                     f"{ctx.options.certs_d / ctx.registry}/ca.crt or the system store "
                     "(field guide 6.3)")
    except (OSError, ssl.SSLError, http.client.HTTPException, ValueError) as e:
        return Check("proxy_path", Status.FAIL, f"{where}: GET {url}: {describe_oserror(e)}",
                     f"check that {proxy.shown} is reachable from this host and forwards to "
                     f"{ctx.registry} (field guide 6.1)")
    if r.status in (200, 401):
        return Check("proxy_path", Status.PASS, f"{where}: GET {url}: {r.status} {r.reason}")
    return Check("proxy_path", Status.FAIL, f"{where}: GET {url}: {r.status} {r.reason}",
                 ctx.hint(FailureClass.SERVER_ERROR if r.status >= 500
                          else FailureClass.UNKNOWN))


def _image_manifest(ctx: Context, session: Session,
                    deadline: Deadline) -> dict[str, Any] | Check:
    """The manifest of the platform the pull unit wants (an index is resolved)."""
    assert ctx.manifest is not None and ctx.ref is not None
    data = ctx.manifest.data
    entries = data.get("manifests")
    if not isinstance(entries, list):
        return data
    want, _ = ctx.want_platform()
    for m in entries:
        p = m.get("platform") if isinstance(m, dict) else None
        if isinstance(p, dict) and matches(want, Platform(str(p.get("os", "")),
                                                          str(p.get("architecture", "")),
                                                          str(p.get("variant") or ""))):
            url = f"{session.endpoint.base}/v2/{ctx.ref.remote_path}/manifests/{m['digest']}"
            r = session.fetch("GET", url, {**ctx.manifest.authorization,
                                           "Accept": ", ".join(MANIFEST_TYPES)}, deadline)
            if r.status != 200:
                return Check("blob", Status.WARN, f"GET {url}: {r.status} {r.reason}",
                             ctx.hint(FailureClass.SERVER_ERROR))
            child: dict[str, Any] = json.loads(r.body)
            return child
    return Check("blob", Status.SKIP, f"skipped: no image for {want} to fetch a layer of")


def blob(ctx: Context) -> Check:
    assert ctx.ref is not None and ctx.session is not None and ctx.manifest is not None
    deadline = Deadline.after(max(BLOB_LIMIT, ctx.options.timeout))
    stall = ctx.options.timeout
    try:
        proxy, source = daemon_proxy(ctx)
    except ValueError:
        proxy, source = None, "the daemon's proxy cannot be used here"
    session = Session(_proxied(ctx, proxy)) if proxy is not None else ctx.session
    via = f"through {proxy.shown}" if proxy is not None else "directly, as dockerd does"
    try:
        manifest = _image_manifest(ctx, session, deadline)
    except (OSError, ssl.SSLError, http.client.HTTPException, ValueError) as e:
        return Check("blob", Status.WARN, f"cannot fetch the platform's manifest: "
                     f"{describe_oserror(e)}", ctx.hint(FailureClass.UNREACHABLE))
    if isinstance(manifest, Check):
        return manifest
    layers = [x for x in manifest.get("layers") or [] if isinstance(x, dict)
              and isinstance(x.get("size"), int) and isinstance(x.get("digest"), str)]
    if not layers:
        return Check("blob", Status.SKIP, "the manifest lists no layers to fetch")
    layer = max(layers, key=lambda x: int(x["size"]))
    size = int(layer["size"])
    if size < MIN_BLOB:
        return Check("blob", Status.SKIP, f"the largest layer is {human_bytes(size)}: no "
                     f"blob of {human_bytes(MIN_BLOB)} or more to test the path with")
    want = min(size, READ_AT_MOST)
    url = f"{session.endpoint.base}/v2/{ctx.ref.remote_path}/blobs/{layer['digest']}"
    try:
        d = session.download(url, ctx.manifest.authorization, deadline, want, stall)
    except ProxyError as e:
        return Check("blob", Status.FAIL, f"GET {url} {via}: {e}",
                     "see the proxy_path check (field guide 6.1)")
    except (OSError, ssl.SSLError, http.client.HTTPException, ValueError) as e:
        hint = ctx.hint(FailureClass.UNREACHABLE)
        if isinstance(e, TimeoutError):
            hint = _MTU_HINT.format(host=ctx.api_host) + "; " + hint
        return Check("blob", Status.FAIL, f"GET {url} {via}: {describe_oserror(e)} before "
                     "the body started", hint)
    what = f"layer {layer['digest'][:19]}… ({human_bytes(size)}) {via}"
    if d.status != 200:
        return Check("blob", Status.FAIL, f"GET {d.url}: {d.status} {d.reason}",
                     ctx.hint(FailureClass.SERVER_ERROR if d.status >= 500
                              else FailureClass.NOT_FOUND if d.status == 404
                              else FailureClass.UNKNOWN))
    rate = f"{human_bytes(d.received / d.seconds)}/s" if d.seconds > 0 else "at once"
    if d.stalled:
        return Check("blob", Status.FAIL,
                     f"{what}: the transfer stalled after {human_bytes(d.received)} of "
                     f"{human_bytes(want)}: (next to) nothing for {stall:.0f} s",
                     _MTU_HINT.format(host=ctx.api_host))
    if d.received < want:
        return Check("blob", Status.WARN, f"{what}: only {human_bytes(d.received)} of "
                     f"{human_bytes(want)} in {d.seconds:.1f} s ({rate})",
                     "the path is slow: a pull of the whole image may hit pull.stall_timeout "
                     "or pull.deadline; check bandwidth limits and the proxy")
    return Check("blob", Status.PASS, f"{what}: {human_bytes(d.received)} in "
                 f"{d.seconds:.2f} s ({rate}), no stall" + ("" if proxy is None
                                                             else f" ({source})"))


_MTU_HINT = ("small requests get through but the transfer stops: typical of an MTU "
             "problem on the path (field guide 5.3): compare 'ping -M do -s 1472 {host}' "
             "with a smaller size, check tunnels/VPN MTUs and TCP MSS clamping; or a proxy "
             "or middlebox that stalls large transfers")

