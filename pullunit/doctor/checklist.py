"""The checklist: every check once, in order, with what it needs, walked by one loop.

The order, the prerequisites and why a later check is skipped are written here and
nowhere else. A check runs only when every check it `needs` ran without failing (a
check skipped for a failed prerequisite counts as failed, with the same reason), so
the first failure is the one to fix. Each check gets its own deadline (Options.timeout)
for everything it does on the network or with the daemon.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..boundedhttp import Deadline
from . import daemon, host, image, journal, mirrors, network, path, registry
from .context import Context
from .model import Check, Options, Status, Tally, Target
from .scrub import scrub
from .verdicts import tally

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
    # added later: appended, so the ids before keep their places
    Step("ip_versions", network.ip_versions, needs=("dns",)),
    Step("proxy_path", path.proxy_path, needs=("reference",)),
    Step("blob", path.blob, needs=("manifest",)),
    Step("daemon_log", journal.daemon_log, needs=("reference",)),
    Step("mirrors", mirrors.mirrors, needs=("reference",)),
    Step("rate_limit", registry.rate_limit, needs=("registry_api", "credentials")),
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


def _walk(ctx: Context, steps: Iterable[Step]) -> list[Check]:
    """Run `steps` in order; a step whose prerequisite (among these steps) failed or was
    skipped for a failure is skipped with the first failure's reason."""
    blocked: dict[str, str] = {}  # check id -> why the checks that need it skip
    out: list[Check] = []
    for step in steps:
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
    return out


def diagnose(target: Target | None, options: Options | None = None) -> list[Check]:
    """Run the checklist. target None: only the host checks (daemon, disk, daemon_config,
    proxy), for a host without apps."""
    ctx = Context(target, options or Options.from_env())
    try:
        return _walk(ctx, (s for s in CHECKLIST if target is not None or not s.image))
    finally:
        ctx.close()


# The checks `doctor --repeat` runs again: the way to the registry, where intermittent
# failures live (field guide 12.6). Each round starts from the name lookup; what the
# first round learned about the host (the daemon, its registry config) is kept.
REPEATED = ("dns", "tcp", "tls", "registry_api", "manifest")
_ROUND = ("reference", *REPEATED[:4], "credentials", "manifest")


def diagnose_repeated(target: Target, options: Options, rounds: int, interval: float,
                      sleep: Callable[[float], None] = time.sleep,
                      ) -> tuple[list[Check], list[Tally]]:
    """The whole checklist once, then the network checks `rounds - 1` more times,
    `interval` seconds apart: the first round's checks, and per repeated check how its
    rounds went (flapping or steady)."""
    ctx = Context(target, options)
    try:
        first = _walk(ctx, CHECKLIST)
        results = {c.check: [c] for c in first if c.check in REPEATED}
        steps = [s for s in CHECKLIST if s.id in _ROUND]
        for _ in range(rounds - 1):
            sleep(interval)
            for c in _walk(ctx.again(), steps):
                if c.check in results:
                    results[c.check].append(c)
    finally:
        ctx.close()
    return first, [tally(check, results[check]) for check in REPEATED if check in results]
