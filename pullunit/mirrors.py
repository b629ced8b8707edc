"""Mirrors of a registry: which endpoints to try for an image, and what each may serve.

Pure logic. dockerd's own `registry-mirrors` covers Docker Hub only; these work for any
registry, in the spirit of containerd's hosts.toml: the host-wide `[[mirror]]` tables of
pullunit.toml (hostconfig.py), or an app's own `[image] mirrors`, list endpoints tried in
order before the origin. The safety rules live here, each one function:

- a digest is pulled from a mirror by that digest: the daemon checks the content;
- a tag is resolved at the origin and pulled from a mirror by the digest the origin named;
  only when the origin cannot answer (down, silent, 5xx, rate limited) does a mirror's
  own answer for a tag count, and only from a mirror marked `trust_mirror_tags`;
- what a mirror served must carry the digest that was asked for;
- the image is named as the origin would name it (mirrorpull.py does the naming).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .configvalues import Parser, Where, boolean, endpoint, endpoint_list, strict_table
from .reference import ImageRef, canonical_registry

if TYPE_CHECKING:  # config.py imports this module: classify stays off the generator's path
    from .classify import FailureClass

# The origin could not say what its tag names now: a mirror's answer may stand in for it
# (from a trusted mirror only). Any other answer of the origin (not found, denied, a
# certificate it cannot prove) stands: a mirror must not override it. FailureClass values.
ORIGIN_SILENT = frozenset({"unreachable", "dns", "stalled", "server_error", "rate_limited"})


@dataclass(frozen=True)
class Mirror:
    """One [[mirror]] table of pullunit.toml."""

    registry: str  # the origin, as image.ref writes it ("docker.io" for no host)
    endpoints: tuple[str, ...]
    trust_mirror_tags: bool = False


@dataclass(frozen=True)
class Endpoint:
    host: str  # host[:port]
    trust_tags: bool = False


@dataclass(frozen=True)
class Try:
    """One mirror to ask: `ref` names the repository there, by digest, or by tag for a
    trusted mirror while the origin is silent (then `want` is None: whatever digest the
    mirror names for the tag)."""

    endpoint: Endpoint
    ref: ImageRef
    want: str | None


# ------------------------------------------------------------------ configuration


_MIRROR_KEYS: dict[str, Parser] = {"registry": endpoint, "endpoints": endpoint_list,
                "trust_mirror_tags": boolean}


def parse_mirrors(value: object, where: Where) -> tuple[Mirror, ...]:
    """The [[mirror]] array of tables: every key checked, one entry per origin."""
    if not isinstance(value, list):
        raise where.error("expected an array of tables [[mirror]]")
    out: list[Mirror] = []
    for i, raw in enumerate(value):
        w = where.child(i)
        keys = strict_table(raw, _MIRROR_KEYS, w, "[mirror]")
        for required in ("registry", "endpoints"):
            if required not in keys:
                raise w.child(required).error("is required")
        mirror = Mirror(**keys)
        if not mirror.endpoints:
            raise w.child("endpoints").error("must list at least one endpoint")
        if any(same_host(e, mirror.registry) for e in mirror.endpoints):
            raise w.child("endpoints").error(
                f"lists the origin {mirror.registry!r} itself; it is always tried last")
        if any(same_host(m.registry, mirror.registry) for m in out):
            raise w.child("registry").error(
                f"{mirror.registry!r} has a [[mirror]] table already; list all its "
                "endpoints in one")
        out.append(mirror)
    return tuple(out)


def same_host(a: str, b: str) -> bool:
    """Registry host names compare without regard to case (DNS)."""
    return canonical_registry(a.lower()) == canonical_registry(b.lower())


# ------------------------------------------------------------------ which endpoints


def endpoints_for(ref: ImageRef, mirrors: Sequence[Mirror],
                  override: tuple[str, ...] | None = None) -> tuple[Endpoint, ...]:
    """The endpoints to try for ref, in order (the origin comes after them).

    An app's `[image] mirrors` replaces the host's list for its registry (an empty one: no
    mirrors). Trusting a mirror's tags is the host's decision: an endpoint keeps it only
    when the host's [[mirror]] of this registry lists it with trust_mirror_tags."""
    entry = next((m for m in mirrors if same_host(m.registry, ref.registry)), None)
    trusted = {h.lower() for h in entry.endpoints} if entry and entry.trust_mirror_tags else set()
    hosts = override if override is not None else (entry.endpoints if entry else ())
    return tuple(Endpoint(h, h.lower() in trusted) for h in hosts
                 if not same_host(h, ref.registry))


def at(ref: ImageRef, host: str, digest: str | None = None) -> ImageRef:
    """ref's repository at a mirror: by `digest`, else by ref's tag. The path is the one
    at the origin registry (Docker Hub's short names gain library/)."""
    return ImageRef(domain=host, path=ref.remote_path, tag=None if digest else ref.tag,
                    digest=digest)


# ------------------------------------------------------------------ what to ask


def plan(ref: ImageRef, endpoints: Sequence[Endpoint], digest: str | None = None,
         failure: FailureClass | None = None) -> tuple[Try, ...]:
    """What to ask each mirror, in order. For a tag, the origin was asked first: `digest`
    is what it named, or `failure` the class of its failure. For a digest (ref has one)
    the origin is not asked."""
    if ref.digest:
        return tuple(Try(e, at(ref, e.host, ref.digest), ref.digest) for e in endpoints)
    if digest is not None:
        return tuple(Try(e, at(ref, e.host, digest), digest) for e in endpoints)
    if failure is not None and failure in ORIGIN_SILENT:
        return tuple(Try(e, at(ref, e.host), None) for e in endpoints if e.trust_tags)
    return ()


def mismatch(want: str, served: str | None, endpoint: str) -> str | None:
    """Why what a mirror served is rejected, or None when it is the digest asked for."""
    if served == want:
        return None
    return (f"mirror {endpoint} served {served or 'an image without a digest'}, but "
            f"{want} was asked for")


def named_by_origin(ref: ImageRef, repo_tags: Sequence[str],
                    repo_digests: Sequence[str]) -> bool:
    """The image has a name of ref's repository (a tag or a digest), so taking a mirror's
    name off it leaves it neither dangling nor unnamed for the app."""
    from .engine import familiar

    want = familiar(ref.repository)
    for name in repo_digests:
        if familiar(name.partition("@")[0]) == want:
            return True
    for name in repo_tags:
        repo, _, _tag = name.rpartition(":")
        if familiar(repo) == want:
            return True
    return False
