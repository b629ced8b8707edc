"""Doctor's pure judgements: manifest platforms, clock skew, disk and certificate limits."""

from __future__ import annotations

import email.utils
from collections.abc import Mapping
from datetime import UTC
from typing import Any

from ..platform import Platform
from ..ratelimit import LOW_FRACTION, RateLimit
from .model import Check, Status, Tally, Verdict

MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
)
MEDIA_NAMES = {
    "application/vnd.oci.image.index.v1+json": "OCI image index",
    "application/vnd.docker.distribution.manifest.list.v2+json": "Docker manifest list",
    "application/vnd.docker.distribution.manifest.v2+json": "Docker image manifest v2",
    "application/vnd.oci.image.manifest.v1+json": "OCI image manifest",
    "application/vnd.docker.distribution.manifest.v1+prettyjws": "schema 1 manifest",
}


def manifest_platforms(manifest: Mapping[str, Any]) -> list[Platform] | None:
    """The platforms of an image index / manifest list, as written; None for a single
    manifest. Attestation entries (unknown/unknown) are left out."""
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


def tally(check: str, results: list[Check]) -> Tally:
    """How one check went over `doctor --repeat`'s rounds. A round in which a
    prerequisite failed does not count for or against it (it did not run); a warning is
    not a failure."""
    ran = [c for c in results if not (c.status is Status.SKIP
                                       and c.detail.startswith("skipped: "))]
    failed = [c for c in ran if c.status is Status.FAIL]
    counts: dict[str, int] = {}
    for c in failed:
        counts[c.detail] = counts.get(c.detail, 0) + 1
    if not ran:
        verdict = Verdict.SKIPPED
    elif not failed:
        verdict = Verdict.OK
    elif len(failed) == len(ran):
        verdict = Verdict.STEADY
    else:
        verdict = Verdict.FLAPPING
    return Tally(check, len(results), len(ran), len(failed), verdict,
                 tuple(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))))


def rate_limit_verdict(status: int, quota: RateLimit, hub: bool,
                       anonymous: bool) -> tuple[Status, str, str]:
    """What the quota a registry reported (its answer to a manifest HEAD with `status`)
    means: (status, detail, what to hint: "" | "rate_limited" | "anonymous_hub").
    Warn when the quota is used up or low (at most LOW_FRACTION of the limit left), or
    when pulls from Docker Hub are anonymous (its lowest limit, shared by everything
    behind the same address)."""
    said = quota.describe()
    if quota.source:
        said += f", counted for {quota.source}"
    anon = ("pulls from Docker Hub are anonymous (no credentials for docker.io): the "
            "anonymous limit applies, per address") if hub and anonymous else ""
    if status == 429 or (quota.remaining == 0 and quota.known):
        detail = f"rate limited now: {said}" if status == 429 else f"no pulls left: {said}"
        return Status.WARN, "; ".join(x for x in (detail, anon) if x), "rate_limited"
    if quota.low:
        detail = f"{said} (low: at most {LOW_FRACTION:.0%} of the limit left)"
        return Status.WARN, "; ".join(x for x in (detail, anon) if x), "rate_limited"
    if anon:
        return Status.WARN, f"{anon}; {said}", "anonymous_hub"
    if not quota.known:
        return (Status.PASS, "the registry sends no RateLimit headers (no published pull "
                "quota)", "")
    return Status.PASS, said, ""
