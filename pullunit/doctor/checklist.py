"""The checklist: every check once, in order, with what it needs, walked by one loop.

The order, the prerequisites and why a later check is skipped are written here and
nowhere else. A check runs only when every check it `needs` ran without failing (a
check skipped for a failed prerequisite counts as failed, with the same reason), so
the first failure is the one to fix. Each check gets its own deadline (Options.timeout)
for everything it does on the network or with the daemon.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from ..regclient import Deadline
from . import daemon, host, image, network, registry
from .context import Context
from .model import Check, Options, Status, Target
from .scrub import scrub

log = logging.getLogger("pullunit")


@dataclass(frozen=True)
class Step:
    id: str  # stable: scripts match on it (docs/doctor.md)
    run: Callable[[Context], Check]
    needs: tuple[str, ...] = ()  # earlier checks that must not have failed
    image: bool = True  # needs an image reference: left out of the host-only run
    blocks: str = ""  # why the checks that need this one skip when it fails


CHECKLIST = (
    Step("reference", image.reference, blocks="the image reference is invalid"),
    Step("daemon", daemon.daemon, image=False, blocks="the Docker daemon did not answer"),
    Step("local_image", image.local_image, needs=("reference", "daemon")),
    Step("disk", host.disk, image=False),
    Step("daemon_config", daemon.daemon_config, image=False),
    Step("proxy", host.proxy, image=False),
    Step("dns", network.dns, needs=("reference",), blocks="{host} does not resolve"),
    Step("tcp", network.tcp, needs=("dns",), blocks="no TCP connection to {registry}"),
    Step("tls", network.tls, needs=("tcp",), blocks="no usable TLS connection to {registry}"),
    Step("registry_api", registry.registry_api, needs=("tls",),
         blocks="{registry} does not answer GET /v2/ as a registry"),
    Step("credentials", registry.credentials, needs=("reference",),
         blocks="the credentials cannot be read"),
    Step("manifest", registry.manifest, needs=("registry_api", "credentials"),
         blocks="the manifest could not be fetched"),
    Step("platform", image.platform_check, needs=("manifest",)),
    Step("clock", registry.clock, needs=("registry_api",)),
)
CHECKS = tuple(step.id for step in CHECKLIST)


def _run(step: Step, ctx: Context) -> Check:
    ctx.deadline = Deadline.after(ctx.options.timeout)
    try:
        return step.run(ctx)
    except Exception as e:  # a bug in one check must not hide the others
        log.debug("doctor check %s", step.id, exc_info=True)
        return Check(step.id, Status.FAIL, f"internal error: {type(e).__name__}: {e}",
                     "run 'pullunit --debug doctor' and report the traceback")


def diagnose(target: Target | None, options: Options | None = None) -> list[Check]:
    """Run the checklist. target None: only the host checks (daemon, disk, daemon_config,
    proxy), for a host without apps."""
    ctx = Context(target, options or Options.from_env())
    blocked: dict[str, str] = {}  # check id -> why the checks that need it skip
    out: list[Check] = []
    try:
        for step in CHECKLIST:
            if target is None and step.image:
                continue
            reason = next((blocked[n] for n in step.needs if n in blocked), None)
            if reason is not None:
                blocked[step.id] = reason
                result = Check(step.id, Status.SKIP, f"skipped: {reason}")
            else:
                result = _run(step, ctx)
                if result.status is Status.FAIL:
                    blocked[step.id] = (step.blocks or f"{step.id} failed").format_map(
                        ctx.names())
            out.append(scrub(result, ctx.secrets))
    finally:
        ctx.close()
    return out
