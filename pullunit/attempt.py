"""One attempt of a pull against the daemon: the probe, the host's pull slot, the mirrors'
turn, the pull read to its end within the attempt's clocks, the one fresh pull after a
corrupt blob, the registry's quota after a 429, and the words a failure is said in.

The run across attempts (policy, retry.decide, fallback, accept, ready, state) is
puller.py's: a Puller builds one Attempt per run, when its first attempt needs the daemon,
and hands it what it reads there (the engine, the credentials, the local image, the
state) as accessors. What carries over from one attempt to the next (the attempt count,
the probes sent, the one corrupt retry, the last failure a clock did not make) is the
run's and lives here because only the attempts change it.

Imported by the puller only once a pull or a failure needs it: a warm start (the image is
here) never loads it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import engine as enginelib
from .classify import Failure, FailureClass, PullFailed
from .config import AppConfig
from .durations import human
from .engine import Engine, LocalImage, PullStream
from .enginehttp import EngineUnavailable
from .notify import Notifier
from .reference import ImageRef

if TYPE_CHECKING:
    from .credentials import Auth, Credentials
    from .mirrorpull import Served
    from .mirrors import Endpoint, Mirror
    from .pullstream import Progress
    from .ratelimit import RateLimit
    from .state import AppState

log = logging.getLogger("pullunit")
POLL = 0.25  # how often a waiting pull checks its clocks; also bounds SIGTERM latency
PROBE_LIMIT = 60.0  # a manifest HEAD not answered within this is not going to be


@dataclass(frozen=True)
class Cutoff:
    """When the current attempt must end, and which clock says so."""

    at: float  # on the puller's clock
    why: str  # "pull.deadline" or "pull.refresh_timeout"


class Attempt:
    """The attempts of one run against the daemon, one `run` each. Raises PullFailed."""

    def __init__(self, app: AppConfig, ref: ImageRef, *, start: float,
                 engine: Callable[[], Engine],
                 credentials: Callable[[float], Credentials],
                 find_local: Callable[[], LocalImage | None],
                 state: Callable[[], AppState],
                 notifier: Notifier, clock: Callable[[], float],
                 sleep: Callable[[float], None],
                 mirrors: tuple[Mirror, ...] = (), max_parallel_pulls: int = 0):
        self.app = app
        self.ref = ref
        self.start = start  # the run's: the clocks' messages count from it
        self._engine = engine  # the puller's, connected when first needed
        self._credentials = credentials  # the run's, found once; `left` bounds a helper
        self._find_local = find_local
        self._state = state
        self.notifier = notifier
        self.clock = clock
        self.sleep = sleep
        self.mirrors = mirrors  # pullunit.toml's [[mirror]] tables (mirrors.py)
        self.max_parallel_pulls = max_parallel_pulls
        self.number = 0  # attempts made in this run (the corrupt retry is one more)
        self.probes = 0  # probes sent in this run
        self.corrupt_retried = False  # a corrupt blob gets one fresh pull per run
        self.last_failure: Failure | None = None  # the last one not made by a clock
        self.auth: Auth | None = None  # the run's credentials, once found: for the quota
        # -- what the loop reads of the current attempt (reset by `begin`) --
        self.served: Served | None = None  # what a mirror served in the last attempt
        self.cut_by: str | None = None  # the clock that ended the last attempt, if any
        self.answered = False  # a probe succeeded in the current attempt
        self.probing = False  # the current attempt is at its probe
        # Retry-After (seconds) of the registry's answer to the quota HEAD after the
        # last 429, None without one: for the retry loop to honour
        self.retry_after: float | None = None

    def begin(self) -> None:
        """A new turn of the loop: only this attempt's probe and 429 speak for it."""
        self.answered = self.probing = False
        self.retry_after = None

    def settle(self, failure: Failure) -> str | None:
        """The loop reports `failure`: which clock ended the attempt (None: none did),
        said once; the next failure has its own cause. A failure no clock made is the
        one a later cut quotes as what really went wrong."""
        cut_by, self.cut_by = self.cut_by, None
        if cut_by is None:
            self.last_failure = failure
        return cut_by

    def run(self, cut: Cutoff, *, probe: bool = False) -> LocalImage:
        """One attempt: a probe first when asked (and no mirror may serve the image), then
        the pull in a host-wide pull slot. The image is the puller's to accept."""
        self.number += 1  # a probe and the pull after it are one attempt
        # With mirrors an attempt goes to them first: a down origin must not keep the
        # pull from them, so no probe of the origin gates it.
        if probe and not self._endpoints():
            self._probe(cut)
        with self._pull_slot(cut):
            return self._pull_fresh(cut)

    def quota(self, timeout: float) -> RateLimit | None:
        """The registry's quota, asked directly (the edge: regclient)."""
        from .regclient import quota_after_429

        auth = self.auth.as_dict() if self.auth else {}
        return quota_after_429(self.ref, auth, timeout)

    # -- before the pull: the probe and the slot -----------------------------------------
    def _probe(self, cut: Cutoff) -> None:
        """Is the registry back? A manifest HEAD through the daemon (GET /distribution:
        its proxies, certs.d, mirrors and our credentials apply), bounded by
        stall_timeout and the attempt's cutoff. Raises PullFailed of the probe's class:
        a 404 is not_found, a daemon that does not answer daemon_unavailable."""
        self.cut_by = None
        engine = self._engine()
        creds = self._credentials(cut.at - self.clock())
        self.auth = creds.auth
        limit = min(self.app.pull.stall_timeout, PROBE_LIMIT, cut.at - self.clock())
        self.probes += 1
        self.probing = True
        log.info("probing %s for %s (probe %d)", self.ref.registry, self.ref, self.probes)
        self.notifier.status(f"probing {self.ref.registry} for {self.ref} "
                             f"(probe {self.probes})")
        try:
            if limit <= 0:
                raise PullFailed.of(FailureClass.STALLED, "no time left for a probe")
            engine.remote_digest(self.ref, creds.auth, limit)
        except PullFailed as e:
            if self.clock() < cut.at or e.failure.cls is not FailureClass.STALLED:
                raise
            self.cut_by = cut.why  # the clock ended it: say so, keep what went wrong before
            passed = (f"{cut.why} ({human(cut.at - self.start)}) passed during attempt "
                      f"{self.number}, probing {self.ref.registry}")
            last = self.last_failure
            if last is not None:
                raise PullFailed.of(last.cls, f"{last.message}; then {passed}") from None
            raise PullFailed.of(FailureClass.STALLED, passed) from None
        self.answered, self.probing = True, False
        log.info("%s answered the probe: pulling", self.ref.registry)

    def _pull_slot(self, cut: Cutoff) -> contextlib.AbstractContextManager[object]:
        """One of the host's max_parallel_pulls slots for the layer pull, waited for until
        the attempt's cutoff at most (pullslots.py)."""
        if self.max_parallel_pulls <= 0:
            return contextlib.nullcontext()
        return self._slot(cut)

    @contextlib.contextmanager
    def _slot(self, cut: Cutoff) -> Iterator[None]:
        from . import pullslots

        def waiting(message: str) -> None:
            log.info("%s", message)
            self.notifier.status(message)

        try:
            with pullslots.pull_slot(self.max_parallel_pulls, self.app.name, cut.at, waiting,
                                     clock=self.clock, sleep=self.sleep):
                yield
        except pullslots.NoSlot as e:
            self.cut_by = cut.why
            raise PullFailed.of(FailureClass.STALLED,
                                f"{cut.why} ({human(cut.at - self.start)}) passed while "
                                f"waiting for a pull slot: {e}") from None

    # -- the pull ----------------------------------------------------------------------
    def _pull_fresh(self, cutoff: Cutoff) -> LocalImage:
        """A pull; when a blob comes corrupt (its bytes do not match its digest, or it
        does not unpack), what the pull could have left under the ref goes and the image
        is pulled once more from scratch within the same cutoff (field guide 9.3). Once
        per run: corrupt again is `corrupt`, permanent. The daemon does not retry such a
        blob itself, and drops the layers it had registered for the failed pull.
        A 429 gets the registry's own numbers added (`_with_quota`)."""
        try:
            try:
                return self._pull_once(cutoff)
            except PullFailed as e:
                if e.failure.cls is not FailureClass.CORRUPT or self.corrupt_retried:
                    raise
                self.corrupt_retried = True
                log.warning("pull of %s: %s; removing what the pull left and pulling once "
                            "more from scratch", self.ref, e.failure.message)
            self._remove_partial()
            self.number += 1
            return self._pull_once(cutoff)
        except PullFailed as e:
            if e.failure.cls is FailureClass.RATE_LIMITED:
                raise self._with_quota(e, cutoff) from None
            raise

    def _with_quota(self, e: PullFailed, cutoff: Cutoff) -> PullFailed:
        """A 429: the daemon does not pass on the registry's quota headers, so one manifest
        HEAD of our own (not counted as a pull by Docker Hub), with the pull's
        credentials, within QUOTA_TIMEOUT and what is left of the attempt, reads them.
        Their numbers go into the failure's message (so the log line, STATUS= and the
        state say "N of M pulls left in the window ..."); a Retry-After is kept in
        `self.retry_after` for the retry loop. Nothing is added when the registry sends
        no quota or cannot be asked."""
        from .regclient import QUOTA_TIMEOUT

        self.retry_after = None
        left = min(QUOTA_TIMEOUT, cutoff.at - self.clock())
        if left < 0.2:
            return e
        quota = self.quota(left)
        if quota is None:
            return e
        self.retry_after = quota.retry_after
        said = quota.describe() if quota.known else f"Retry-After {human(quota.retry_after or 0)}"
        return PullFailed(Failure(e.failure.cls, f"{self.ref.registry}: {said}; "
                                                 f"{e.failure.message}"), e.hint)

    def _remove_partial(self) -> None:
        """Untag the ref (removing its image when nothing else names it, as 'docker
        image rm' does) unless the image is one of the app's known-good images
        (current, prefetched, history): those passed their checks and may be needed
        for a fallback. Dangling layers are the daemon's to collect."""
        local = self._find_local()
        st = self._state()
        good = {e.image_id for e in (st.prefetched, st.current, *st.history) if e is not None}
        if local is not None and local.id not in good:
            name = enginelib.local_name(self.ref)
            log.info("removing %s (%s) before pulling it again", name, local.id[:19])
            self._engine().release(name)

    def _pull_once(self, cutoff: Cutoff | None = None) -> LocalImage:
        """One attempt. Every wait in it (credential helper, the daemon, the registry
        behind it) ends by stall_timeout or the cutoff, whichever comes first."""
        pull = self.app.pull
        cut = cutoff or Cutoff(self.start + pull.deadline, "pull.deadline")
        self.cut_by = None
        engine = self._engine()
        creds = self._credentials(cut.at - self.clock())
        self.auth = creds.auth
        self.served = None
        if self._endpoints():
            self.served = self._from_mirrors(engine, creds.auth, cut)
            if self.served is not None:
                return self.served.image
        log.info("pulling %s (attempt %d)", self.ref, self.number)
        self.notifier.status(f"pulling {self.ref} (attempt {self.number})")
        self._follow(engine, self.ref, creds.auth, cut)
        image = self._find_local()
        if image is None:
            if self.ref.digest:
                raise PullFailed.of(FailureClass.DIGEST_MISMATCH,
                                    f"pulled {self.ref}, but no local image has digest "
                                    f"{self.ref.digest}")
            raise PullFailed.of(FailureClass.UNKNOWN,
                                f"the daemon reported {self.ref} pulled, but it is not present")
        return image

    def _follow(self, engine: Engine, ref: ImageRef, auth: Auth | None, cut: Cutoff) -> None:
        """Pull ref through the daemon, reading its progress to the end; raises PullFailed
        when the daemon reports an error, nothing moves for stall_timeout, or `cut` ends
        the attempt (the socket is dropped: dockerd cancels the pull)."""
        pull = self.app.pull
        stream = engine.pull(ref, self.app.image.platform, auth,
                             silence_limit=min(pull.stall_timeout, cut.at - self.clock()))
        from .progress import Reporter
        from .pullstream import Progress

        progress = Progress.empty()
        reporter = Reporter(self.notifier, str(ref))
        last_progress = self.clock()
        try:
            for msg in stream.messages(POLL):
                now = self.clock()
                if msg is not None and progress.update(msg):
                    last_progress = now
                    reporter.update(progress.done, progress.total)
                if now >= cut.at:
                    moving = stream.answered and progress.done > 0 and not progress.retrying
                    raise self._cut(cut, self._where(stream, progress, ref), moving=moving)
                if now - last_progress > pull.stall_timeout:
                    raise self._stalled(engine, stream, progress, ref)
        finally:
            stream.abort()
            reporter.finish()

    # -- mirrors (mirrors.py, mirrorpull.py) --------------------------------------------
    def _endpoints(self) -> tuple[Endpoint, ...]:
        from .mirrors import endpoints_for

        return endpoints_for(self.ref, self.mirrors, self.app.image.mirrors)

    def _from_mirrors(self, engine: Engine, auth: Auth | None, cut: Cutoff) -> Served | None:
        """The image from a mirror of the registry, named as the origin names it; None:
        no mirror served it, pull from the origin."""
        from . import credentials
        from .mirrorpull import MirrorPull

        def follow(ref: ImageRef, ref_auth: Auth | None, limit: float | None) -> None:
            if limit is None:
                return self._follow(engine, ref, ref_auth, cut)
            try:  # a step with its own shorter bound: its end is no cut of the attempt
                self._follow(engine, ref, ref_auth,
                             Cutoff(min(cut.at, self.clock() + limit), cut.why))
            finally:
                self.cut_by = None

        def creds_for(ref: ImageRef, limit: float) -> Credentials:
            # The mirror host's own credentials: the origin's never go to another host.
            return credentials.credentials(ref, self.app.image.auth_file,
                                           helper_timeout=min(credentials.HELPER_TIMEOUT, limit))

        try:
            return MirrorPull(engine, self.ref, self._endpoints(), origin_auth=auth,
                              follow=follow, credentials=creds_for,
                              left=lambda: cut.at - self.clock(),
                              stall_timeout=self.app.pull.stall_timeout,
                              status=self.notifier.status).run()
        except PullFailed as e:
            if (self.clock() < cut.at
                    or e.failure.cls is FailureClass.DAEMON_UNAVAILABLE):
                raise
            raise self._cut(cut, f"while asking the mirrors of {self.ref.registry}",
                            meanwhile=e.failure) from None

    # -- the words of a failure ----------------------------------------------------------
    def _where(self, stream: PullStream, progress: Progress, ref: ImageRef) -> str:
        if not stream.answered:
            return f"before {ref.registry} answered the request for {ref}"
        where = f"with {_mb(progress.done)} of {_mb(progress.total)} done"
        if progress.retrying:
            where += " (the daemon was retrying a failed layer download)"
        return where

    def _stalled(self, engine: Engine, stream: PullStream, progress: Progress,
                 ref: ImageRef) -> PullFailed:
        stall = human(self.app.pull.stall_timeout)
        if not stream.answered:
            # dockerd answers a pull once it has the manifest: silence is the registry's,
            # unless the daemon itself is stuck.
            if not engine.ping():
                return EngineUnavailable(f"it accepted the pull of {ref} but sent nothing "
                                         f"for {stall} and does not answer a ping", engine.host)
            return enginelib.registry_silent(ref, self.app.pull.stall_timeout)
        return PullFailed.of(FailureClass.STALLED,
                             f"pull of {ref} made no progress for {stall} "
                             f"(pull.stall_timeout) {self._where(stream, progress, ref)}")

    def _cut(self, cut: Cutoff, where: str, *, moving: bool = False,
             meanwhile: Failure | None = None) -> PullFailed:
        """A clock ended the attempt (`where`: what it was doing): say which, and keep
        what really went wrong before, or `meanwhile` (a 503 does not become a "stall"
        because the deadline came during the retry, nor an unreachable origin because it
        came while the mirrors were asked). Only a pull that was `moving` is a stall."""
        self.cut_by = cut.why
        passed = (f"{cut.why} ({human(cut.at - self.start)}) passed during attempt "
                  f"{self.number}, {where}")
        last = self.last_failure or meanwhile
        if last is not None and not moving:
            return PullFailed.of(last.cls, f"{last.message}; then {passed}")
        return PullFailed.of(FailureClass.STALLED, passed)

def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"
