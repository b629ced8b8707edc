"""The mirrors of the image's registry (pullunit.toml's [[mirror]], or the app's
[image] mirrors): each endpoint reached the way the origin's checks reach the origin
(name, TCP, TLS or the daemon's insecure rule, GET /v2/), each step with the per-check
limit. A mirror that fails is a warning: the puller skips it and goes on to the origin."""

from __future__ import annotations

from collections.abc import Callable

from ..boundedhttp import Deadline
from ..mirrors import at
from .context import Context
from .model import Check, Status, Target

_WAY = ("dns", "tcp", "tls", "registry_api")


def _steps() -> tuple[Callable[[Context], Check], ...]:
    from . import network, registry

    return (network.dns, network.tcp, network.tls, registry.registry_api)


def _reach(ctx: Context, host: str) -> Check:
    """The first check on the way to `host` that fails, or its GET /v2/."""
    assert ctx.ref is not None
    ref = at(ctx.ref, host)
    sub = Context(Target(reference=str(ref)), ctx.options, now=ctx.now, secrets=ctx.secrets,
                  daemon=ctx.daemon, registry_config=ctx.registry_config,
                  service_proxies=ctx.service_proxies, ref=ref)
    result = Check("mirrors", Status.FAIL, "not checked")
    for step in _steps():
        sub.deadline = Deadline.after(ctx.options.timeout)
        result = step(sub)
        if result.status is Status.FAIL:
            break
    return result


def mirrors(ctx: Context) -> Check:
    assert ctx.ref is not None and ctx.target is not None
    hosts = ctx.target.mirrors
    if not hosts:
        return Check("mirrors", Status.PASS, f"no mirrors of {ctx.registry} are configured")
    answered: list[str] = []
    failed: list[str] = []
    hints: list[str] = []
    for host in hosts:
        result = _reach(ctx, host)
        if result.status is Status.FAIL:
            failed.append(f"{host}: {result.check}: {result.detail}")
            if result.hint:
                hints.append(f"{host}: {result.hint}")
        else:
            answered.append(host)
    order = f"tried in this order before {ctx.registry}: {', '.join(hosts)}"
    if not failed:
        return Check("mirrors", Status.PASS, f"every mirror answers GET /v2/ ({order})")
    detail = "; ".join(failed)
    if answered:
        detail += f"; answering: {', '.join(answered)}"
    return Check("mirrors", Status.WARN, f"{detail} ({order}; the puller skips a mirror "
                 "that fails)", "; ".join(hints))
