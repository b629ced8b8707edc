"""One attempt's turn at the mirrors of a registry (mirrors.py says what to ask; this
asks it, through the daemon).

For a tag the origin is asked first what the tag names now (one manifest HEAD, through
the daemon's GET /distribution, with the origin's credentials); each mirror is then
asked for that digest, in order, with the mirror host's own credentials. A mirror that
fails is logged with its class and skipped; the first that serves the digest wins. The
image is then named as the origin would name it: the origin's digest name (a pull of
ORIGIN@DIGEST, which with every layer present costs the daemon one manifest request)
and, for a tag, the tag (the engine's tag API); the mirror's name pullunit created goes
once the origin's name holds the image.

Every wait is the caller's: `follow` reads one pull to its end within the attempt's
stall_timeout and cutoff (and a shorter limit if given); `left` says how long the attempt
has.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .classify import Failure, FailureClass, PullFailed
from .engine import Engine, LocalImage
from .mirrors import Endpoint, Try, at, mismatch, named_by_origin, plan
from .reference import ImageRef

if TYPE_CHECKING:
    from .credentials import Auth, Credentials

log = logging.getLogger("pullunit")

# A tag resolves with one manifest request (resolve.RESOLVE_LIMIT's reasoning); naming an
# image whose layers are all here is one more. Neither may hold a ready image back long
# when its registry is the one that is down.
RESOLVE_LIMIT = 60.0
NAME_LIMIT = 10.0

# Pull ref to its end within the attempt's clocks, and within `limit` seconds if given.
Follow = Callable[[ImageRef, "Auth | None", "float | None"], None]
CredentialsFor = Callable[[ImageRef, float], "Credentials"]  # ref, helper limit


@dataclass(frozen=True)
class Served:
    """An image a mirror served, and the digest it was served by."""

    image: LocalImage
    endpoint: str
    digest: str


class MirrorPull:
    def __init__(self, engine: Engine, ref: ImageRef, endpoints: tuple[Endpoint, ...], *,
                 origin_auth: Auth | None, follow: Follow, credentials: CredentialsFor,
                 left: Callable[[], float], stall_timeout: float,
                 status: Callable[[str], object] = lambda _: None):
        self.engine = engine
        self.ref = ref
        self.endpoints = endpoints
        self.origin_auth = origin_auth
        self.follow = follow
        self.credentials = credentials
        self.left = left
        self.stall_timeout = stall_timeout
        self.status = status

    def run(self) -> Served | None:
        """The image from the first mirror that serves it, named as the origin names it;
        None when no mirror does (the caller pulls from the origin). When the origin
        failed to resolve the tag, its failure is raised: its answer stands."""
        digest: str | None = None  # what the origin says the tag is now
        failure: Failure | None = None  # or why it could not say
        if self.ref.digest is None:
            answer = self._resolve_at_origin()
            digest, failure = (answer, None) if isinstance(answer, str) else (None, answer)
        tries = plan(self.ref, self.endpoints, digest, failure.cls if failure else None)
        for t in tries:
            served = self._try(t)
            if served is not None:
                if digest is not None and t.endpoint.trust_tags:
                    self._teach_tag(t.endpoint.host, digest)
                return self._name(served, origin_down=failure is not None)
        if failure is not None:
            raise PullFailed(failure)
        return None

    def _scrubbed(self, failure: Failure) -> Failure:
        """The origin's failure without the origin's credentials (a registry may echo
        them)."""
        return failure.without(self.origin_auth.secrets() if self.origin_auth else ())

    # -- asking ------------------------------------------------------------------------
    def _limit(self, cap: float) -> float:
        left = self.left()
        if left <= 0:
            raise PullFailed.of(FailureClass.STALLED, f"no time was left to ask the mirrors "
                                f"of {self.ref.registry} for {self.ref}")
        return min(self.stall_timeout, cap, left)

    def _resolve_at_origin(self) -> str | Failure:
        try:
            digest = self.engine.remote_digest(self.ref, self.origin_auth,
                                               self._limit(RESOLVE_LIMIT))
        except PullFailed as e:
            if e.failure.cls is FailureClass.DAEMON_UNAVAILABLE:
                raise
            failure = self._scrubbed(e.failure)
            log.warning("cannot resolve %s at %s (%s): %s", self.ref, self.ref.registry,
                        failure.cls, failure.message)
            return failure
        log.info("%s is %s at %s", self.ref, digest, self.ref.registry)
        return digest

    def _try(self, t: Try) -> Served | None:
        host = t.endpoint.host
        creds: Credentials | None = None
        try:
            creds = self.credentials(t.ref, self._limit(RESOLVE_LIMIT))
            want = t.want
            if want is None:  # a trusted mirror's word for the tag: the origin is silent
                want = self.engine.remote_digest(t.ref, creds.auth, self._limit(RESOLVE_LIMIT))
                log.warning("%s did not answer for %s: using what the mirror %s (trusted "
                            "for tags) names it: %s", self.ref.registry, self.ref, host, want)
            ref = at(self.ref, host, want)
            before = self.engine.inspect(str(ref))
            log.info("pulling %s from the mirror %s", want, host)
            self.status(f"pulling {self.ref} from the mirror {host}")
            self.follow(ref, creds.auth, None)
            image = self.engine.inspect(str(ref))
            why = mismatch(want, image.digest_for(ref) if image else None, host)
            if why is not None or image is None:
                raise PullFailed.of(FailureClass.DIGEST_MISMATCH, why or f"{ref} is not here")
        except PullFailed as e:
            if e.failure.cls is FailureClass.DAEMON_UNAVAILABLE or self.left() <= 0:
                raise  # not the mirror's fault, or the attempt is over
            failure = e.failure.without(creds.secrets() if creds else ())
            log.warning("mirror %s skipped (%s): %s", host, failure.cls, failure.message)
            return None
        return Served(image, host, want) if before is not None else _Created(
            image, host, want, str(ref))

    def _teach_tag(self, host: str, digest: str) -> None:
        """Ask a trusted mirror for the tag too, while the origin answers: a pull-through
        cache (a registry in proxy mode) records a tag only when asked for it, and it is
        that record it serves when the origin is down. Its answer is only compared."""
        ref = at(self.ref, host)
        try:
            creds = self.credentials(ref, self._limit(RESOLVE_LIMIT))
            said = self.engine.remote_digest(ref, creds.auth, self._limit(RESOLVE_LIMIT))
        except PullFailed as e:
            if e.failure.cls is FailureClass.DAEMON_UNAVAILABLE:
                raise
            log.info("the mirror %s does not resolve %s (%s)", host, self.ref, e.failure.cls)
            return
        if said != digest:
            log.warning("the mirror %s says %s is %s, the origin %s: it would serve another "
                        "image for the tag while the origin is down", host, self.ref, said,
                        digest)

    # -- naming -----------------------------------------------------------------------
    def _name(self, served: Served, *, origin_down: bool) -> Served:
        """Name the image as the origin would: ORIGIN@DIGEST when the origin can be asked
        (its one manifest: the layers are here), ORIGIN:TAG for a tag; then drop the
        mirror's name pullunit made, once an origin name holds the image. Failing to
        name is a warning: the image is the right one, and runs by its ID."""
        image = served.image
        if not origin_down:
            origin = ImageRef(self.ref.domain, self.ref.path, None, served.digest)
            try:
                self.follow(origin, self.origin_auth, min(NAME_LIMIT, self.left()))
            except PullFailed as e:
                if e.failure.cls is FailureClass.DAEMON_UNAVAILABLE:
                    raise
                failure = self._scrubbed(e.failure)
                log.warning("cannot name %s as %s (%s): %s; the app runs it by its ID",
                            image.id[:19], origin, failure.cls, failure.message)
        if self.ref.tag and not self.ref.digest:
            self.engine.hold(image.id, self.ref.repository, self.ref.tag)
        named = self.engine.inspect(image.id) or image
        if isinstance(served, _Created) and named_by_origin(self.ref, named.repo_tags,
                                                           named.repo_digests):
            self.engine.release(served.mirror_name)
            named = self.engine.inspect(image.id) or named
        log.info("%s served %s by the mirror %s", self.ref, served.digest, served.endpoint)
        return Served(named, served.endpoint, served.digest)


@dataclass(frozen=True)
class _Created(Served):
    """Served under a mirror's name that was not here before: pullunit's to remove."""

    mirror_name: str
