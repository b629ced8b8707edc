"""One run of `pullunit pull APP`: decide by policy, pull with classified retries and
jittered backoff, verify, record, tell systemd READY=1.

The path of a pull: commands.pull -> Puller.run -> attempt.Attempt (one attempt against
the daemon: probe, pull slot, mirrors, the pull) -> classify (what went wrong) ->
retry.decide (wait, fall back or give up) -> activation (env file, history) -> notify.
"""

from __future__ import annotations

import enum
import logging
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

from . import engine as enginelib
from . import platform, state, stats
from .activation import activate, hold_history, keep_archive, locate
from .classify import Failure, FailureClass, PullFailed
from .config import AppConfig, Policy
from .durations import human
from .engine import Engine, LocalImage
from .errors import PullunitError
from .notify import Notifier
from .reference import ImageRef

# A warm start (the image is here) is run by every pull unit at every boot: what only a
# pull or a failure needs (the attempt, retry rules, progress, hints, credentials) is
# imported then.
if TYPE_CHECKING:
    import random

    from . import retry
    from .attempt import Attempt, Cutoff
    from .credentials import Credentials
    from .dockerapi import Api
    from .hints import HintContext
    from .mirrors import Mirror

T = TypeVar("T")
log = logging.getLogger("pullunit")


class Source(enum.StrEnum):
    """Where the image an Outcome names came from."""

    LOCAL = "local"  # present already (policy missing/never): no registry contacted
    PULLED = "pulled"
    FALLBACK = "fallback"  # a known-good local image: the registry could not be used
    PREFETCHED = "prefetched"  # pulled and recorded, not made current


@dataclass(frozen=True)
class Outcome:
    reference: str  # what the run unit will start
    image: LocalImage
    source: Source
    attempts: int
    elapsed: float


class GaveUp(PullunitError):
    """The run ended without an image: the last failure, and its exit code."""

    def __init__(self, failure: Failure, attempts: int):
        super().__init__(failure.message, failure.exit_code)
        self.failure = failure
        self.attempts = attempts


class Puller:
    def __init__(self, app: AppConfig, *, notifier: Notifier | None = None,
                 rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 ref: ImageRef | None = None, started: float | None = None,
                 on_record: Callable[[state.AppState], object] | None = None,
                 mirrors: tuple[Mirror, ...] = (), max_parallel_pulls: int = 0):
        self.app = app
        self.mirrors = mirrors  # pullunit.toml's [[mirror]] tables (mirrors.py)
        self.on_record = on_record  # after each failed attempt is saved (metrics)
        self.ref = ref or app.image.ref
        self.notifier = notifier or Notifier()
        self.rng = rng  # the jitter's random source; SystemRandom on the first retry
        self.clock = clock
        self.sleep = sleep
        self.state = state.load(app.name)
        self.api: Api | None = None  # docker-py, for rollback archives only
        self.engine: Engine | None = None  # enginelib.connect(), when first needed
        self.creds: Credentials | None = None
        self.cred_helper: str | None = None  # a credential helper that failed
        self.cred_source: str | None = None  # the config key that names it
        self.max_parallel_pulls = max_parallel_pulls
        # `deadline` counts from `started` when the caller began earlier (it waited for
        # the app's lock): the whole command is bounded, not each part of it.
        self.start = clock() if started is None else started
        self._retry_rules: retry.Rules | None = None
        self._at: Attempt | None = None  # made when the first attempt needs the daemon

    @property
    def attempts(self) -> int:
        """Attempts made in this run (a probe and the pull after it are one)."""
        return self._at.number if self._at is not None else 0

    def attempt(self) -> Attempt:
        """The run's attempts against the daemon (attempt.py), made on first use: a warm
        start never imports them."""
        if self._at is None:
            from .attempt import Attempt

            self._at = Attempt(self.app, self.ref, start=self.start,
                               engine=lambda: self._engine(),
                               credentials=lambda left: self._credentials(left),
                               find_local=lambda: self._find_local(),
                               state=lambda: self.state, notifier=self.notifier,
                               clock=self.clock, sleep=self.sleep, mirrors=self.mirrors,
                               max_parallel_pulls=self.max_parallel_pulls)
        return self._at

    # -- the loop: attempt, ask retry.decide what next, sleep -------------------------
    def run(self, *, prefetch: bool = False) -> Outcome:
        """Make the image ready (or, with prefetch, only pull and record a newer one)."""
        retries, previous, probes, failures = 0, None, 0, 0
        probe = False  # the next attempt starts with a probe (retry.decide says when)
        can_fall_back = not prefetch and self._fallback_possible()
        while True:
            if self._at is not None:
                self._at.begin()  # only this attempt's probe and 429 speak for it
            try:
                return self._attempt(prefetch, can_fall_back, probe=probe)
            except PullFailed as e:
                failure = e.failure.without(self.creds.secrets() if self.creds else ())
            from . import retry

            at = self.attempt()
            rules = self._rules(prefetch)
            rng = self._random()
            if failure.cls is FailureClass.DAEMON_UNAVAILABLE:
                self.api = self.engine = None
            if at.answered:  # the registry answered a probe: its schedule starts over
                probes = 0
            failures += 1
            self._report(failure, failures, prefetch)
            failed_at = self.clock()
            retry_after, asking = self._retry_after(failure, rules)
            now = retry.Situation(failure.cls, failed_at - self.start, retries, previous,
                                  can_fall_back, retry_after, probes, at.answered)
            decision = retry.decide(rules, now, rng)
            while isinstance(decision, retry.FallBack):
                image = self._fallback()
                if image is not None:
                    return self._ready(image, Source.FALLBACK, failure)
                can_fall_back = False
                now = replace(now, fallback_possible=False)
                decision = retry.decide(rules, now, rng)
            if isinstance(decision, retry.GiveUp):
                if not decision.permanent:
                    log.error("giving up: %s", decision.reason)
                self._record(0.0)
                raise GaveUp(failure, self.attempts)
            if decision.probing:
                probes += 1
            else:
                retries, previous = retries + 1, decision.drawn
            probe = decision.probe
            delay = max(0.0, decision.delay - asking)  # the wait counts from the failure
            self._record(delay)  # saved before the wait is announced (and interruptible)
            due = time.strftime("%H:%M:%S", time.localtime(time.time() + delay))
            self.notifier.status(f"attempt {max(self.attempts, 1)} failed ({failure.cls}): "
                                 f"{_short(failure.message)}; next attempt in {human(delay)} "
                                 f"at {due}")
            log.info("retrying in %s%s", human(delay),
                     " (a probe first; the pull once it is answered)" if probe else "")
            self.sleep(delay)

    def _retry_after(self, failure: Failure,
                     rules: retry.Rules) -> tuple[float | None, float]:
        """The registry's Retry-After after a 429 or a 503 (the daemon's text carries no
        headers): read by the pull's own quota HEAD after a 429 (Attempt._with_quota), else
        asked now with that HEAD (a probe's 429, a 503), within regclient.QUOTA_TIMEOUT,
        the stall_timeout and what is left of the deadline. (None without one, and the
        seconds spent asking now.)"""
        at = self.attempt()
        seconds, spent = at.retry_after, 0.0
        # a pull's 429 was asked about inside its attempt (_with_quota): not twice
        asked = failure.cls is FailureClass.RATE_LIMITED and not at.probing
        if seconds is None and not asked and _may_say_retry_after(failure):
            from .regclient import QUOTA_TIMEOUT

            began = self.clock()
            left = self.start + rules.effective_deadline - began
            limit = min(QUOTA_TIMEOUT, self.app.pull.stall_timeout, left)
            quota = at.quota(limit) if limit > 0.2 else None
            seconds = quota.retry_after if quota is not None else None
            spent = self.clock() - began
        if seconds is not None:
            log.info("%s asks to wait %s (Retry-After)", self.ref.registry, human(seconds))
        return seconds, spent

    def _rules(self, prefetch: bool) -> retry.Rules:
        """The retry rules of this run, made when a pull or a failure first needs them."""
        from . import retry

        if self._retry_rules is None:
            self._retry_rules = retry.Rules.of(self.app, prefetch=prefetch)
        return self._retry_rules

    def _random(self) -> random.Random:
        if self.rng is None:
            import random

            self.rng = random.SystemRandom()
        return self.rng

    def _attempt(self, prefetch: bool, can_fall_back: bool, *, probe: bool = False) -> Outcome:
        """One try by image.policy: the local image, or a pull (after a probe, when
        asked, and in a host-wide pull slot). Raises PullFailed."""
        if self.app.image.policy is not Policy.ALWAYS and not prefetch:
            local = self._find_local()
            if local is not None:
                return self._ready(self._accept(local), Source.LOCAL)
            if self.app.image.policy is Policy.NEVER:
                raise PullFailed.of(FailureClass.NOT_FOUND, f"{self.ref} is not present "
                                    "locally and image.policy is \"never\"")
        cutoff = self._cutoff(self._rules(prefetch).effective_deadline, can_fall_back)
        image = self._accept(self.attempt().run(cutoff, probe=probe))
        return self._prefetched(image) if prefetch else self._ready(image, Source.PULLED)

    # -- fallback: a known-good image keeps the app running --------------------------
    def _same_image(self, entry: state.Entry) -> bool:
        configured = str(self.app.image.ref)
        return (entry.image or self.state.image) == configured

    def _candidates(self) -> list[state.Entry]:
        st = self.state
        entries = [e for e in (st.prefetched, st.current, *st.history) if e is not None]
        seen: set[str] = set()
        out = []
        for e in entries:
            if e.image_id not in seen and self._same_image(e):
                seen.add(e.image_id)
                out.append(e)
        return out

    def _fallback_possible(self) -> bool:
        return bool(self._candidates()) or self.app.image.policy is Policy.ALWAYS

    def _fallback(self) -> LocalImage | None:
        """Newest good image for this ref: present locally, else loaded from its archive."""
        for entry in self._candidates():
            img = locate(self.app, entry.image_id, entry.reference, inspect=self._inspect,
                         api=self._api)
            if img is not None:
                try:
                    return self._accept(img, fallback=True)
                except PullFailed as e:
                    log.warning("not falling back to %s: %s", entry.reference, e)
        if self.app.image.policy is Policy.ALWAYS:
            tagged = self._find_local()
            if tagged is not None:
                try:
                    return self._accept(tagged, fallback=True)
                except PullFailed as e:
                    log.warning("not falling back to the local %s: %s", self.ref, e)
        return None

    def _api(self) -> Api:
        """docker-py, imported on first use: only rollback archives need it."""
        if self.api is None:
            from . import dockerapi

            self.api = dockerapi.connect()
        return self.api

    def _engine(self) -> Engine:
        if self.engine is None:
            self.engine = enginelib.connect()
        return self.engine

    def _look(self, fn: Callable[[Engine], T]) -> T:
        """Ask the engine something; EngineUnavailable is the attempt's failure."""
        return fn(self._engine())

    def _inspect(self, name: str) -> LocalImage | None:
        return self._engine().inspect(name)

    def _find_local(self) -> LocalImage | None:
        image = enginelib.find_local(self._engine(), self.ref)
        current = self.state.current
        if (image is None and self.ref.digest and current is not None
                and current.digest == self.ref.digest and self._same_image(current)):
            # Served by a mirror while the origin could not be asked: Docker has no
            # ORIGIN@DIGEST name for it, but the state knows its ID, which names its
            # content. A start then needs neither the origin nor the mirror.
            image = self._engine().inspect(current.image_id)
        return image

    def _credentials(self, left: float) -> Credentials:
        """Credentials for the ref, once per run; a credential helper gets at most
        credentials.HELPER_TIMEOUT, and never more than what is `left` of the attempt."""
        if self.creds is None:
            from . import credentials

            try:
                self.creds = credentials.credentials(
                    self.ref, self.app.image.auth_file,
                    helper_timeout=max(0.0, min(credentials.HELPER_TIMEOUT, left)))
            except credentials.HelperFailed as e:
                self.cred_helper, self.cred_source = e.helper, e.where
                raise
            self.cred_helper = self.cred_source = None
        return self.creds

    def _cutoff(self, deadline: float, can_fall_back: bool) -> Cutoff:
        """The attempt ends at the deadline, or at refresh_timeout while falling back to
        a local image is still possible: no attempt may outlive the clock that decides
        what happens next."""
        from .attempt import Cutoff

        refresh = self.start + self.app.pull.refresh_timeout
        if can_fall_back and self.clock() < refresh < self.start + deadline:
            return Cutoff(refresh, "pull.refresh_timeout")
        return Cutoff(self.start + deadline, "pull.deadline")

    def _digest_of(self, image: LocalImage) -> str | None:
        """The registry digest of image for the app's ref; for one a mirror served that
        the origin could not name, the digest the mirror served it by (and the one it
        had when it became current: an image ID names its content)."""
        digest = image.digest_for(self.ref)
        served = self._at.served if self._at is not None else None
        current = self.state.current
        if digest is None and served is not None and served.image.id == image.id:
            digest = served.digest
        if (digest is None and current is not None and current.image_id == image.id
                and self._same_image(current)):
            digest = current.digest
        return digest

    def _is_current(self, image: LocalImage) -> bool:
        """The app's current image: it passed the daemon's platform when it became current,
        and its ID is the digest of a config that names its platform, so asking again
        cannot change the answer (short of replacing the daemon by one of another
        architecture). That saves a warm start its slowest call: dockerd runs `runc` and
        `docker-init` to answer GET /version."""
        current = self.state.current
        return current is not None and current.image_id == image.id

    def _accept(self, image: LocalImage, *, fallback: bool = False) -> LocalImage:
        """The checks that make an image good to run: digest, platform (image.platform, or
        the daemon's unless the image is already current), verify command (once per
        image). A fallback is an older good image chosen on purpose: a pinned digest does
        not reject it."""
        if (not fallback and self.ref.digest
                and self._digest_of(image) != self.ref.digest):
            raise PullFailed.of(FailureClass.DIGEST_MISMATCH,
                                f"image has digest {self._digest_of(image)}, pinned "
                                f"{self.ref.digest}")
        want = self.app.image.platform or (None if self._is_current(image) else
                                           self._look(lambda e: e.platform()))
        if want is not None and not platform.matches(want, image.platform):
            raise PullFailed.of(FailureClass.PLATFORM,
                                f"{self.ref} is {image.platform}, but {want} is required"
                                + (" (image.platform)" if self.app.image.platform else
                                   " (the daemon's platform)"))
        verify = self.app.image.verify
        if verify and image.id not in self.state.verified:
            timeout = self.app.pull.stall_timeout
            timeout = 300.0 if math.isinf(timeout) else max(timeout, 30.0)
            self.notifier.status(f"verifying {self.ref}")
            code, output = self._engine().run_verify(image.id, verify, timeout)
            if code != 0:
                raise PullFailed.of(FailureClass.VERIFY_FAILED, f"image.verify {list(verify)} "
                                    f"exited {code}: {_short(output, 300)}")
            self.state = state.AppState(**{**self.state.__dict__,
                                          "verified": (*self.state.verified, image.id)[-20:]})
            log.info("verify command passed for %s", image.id[:19])
        return image

    def _ready(self, image: LocalImage, source: Source,
               failure: Failure | None = None) -> Outcome:
        done = activate(self.app, self.state, self.ref, image, failure=failure,
                        digest=self._digest_of(image), api=self._api, engine=self.engine)
        self.state = done.state
        reference = done.reference
        elapsed = self.clock() - self.start
        if source is Source.FALLBACK:
            assert failure is not None
            text = (f"WARNING: running on the local image {reference}: could not refresh "
                    f"{self.ref} ({failure.cls})")
            log.warning("%s", text)
        elif source is Source.LOCAL:
            text = f"ready: {reference} (present locally)"
        else:
            text = f"ready: {reference} (pulled in {human(elapsed)}, attempt {self.attempts})"
        log.info("%s", text)
        self.notifier.ready(text)
        return Outcome(reference, image, source, self.attempts, elapsed)

    def _prefetched(self, image: LocalImage) -> Outcome:
        reference = image.run_reference(self.ref)
        before = self.state
        self.state = state.record_prefetch(self.state, str(self.app.image.ref), reference,
                                           self._digest_of(image), image.id)
        state.save(self.state)
        if self.engine is not None:
            hold_history(self.app.name, before, self.state, image, self.engine)
        keep_archive(self.app, self.state, image.id, self._api)
        return Outcome(reference, image, Source.PREFETCHED, self.attempts,
                       self.clock() - self.start)

    def _report(self, failure: Failure, attempt: int, prefetch: bool = False) -> None:
        """One log line per failure: class, the daemon's words, and the fix; and the
        failure in the state (last failure, history, counters), saved by _record or, on
        a fallback, by activate."""
        from .hints import fix_for

        at = self.attempt()
        what = "probe failed" if at.probing else "pull failed" if at.number else "cannot pull"
        cut_by = at.settle(failure)  # said once; the next failure has its own cause
        log.error("%s (%s): %s; fix: %s", what,
                  failure.cls, failure.message,
                  fix_for(failure.cls, self._hint_context(failure.cls, cut_by)))
        self.state = stats.failed(self.state, str(failure.cls), failure.message,
                                  int(failure.exit_code), attempt, prefetch=prefetch)

    def _record(self, backoff: float) -> None:
        """Save the state of a failed attempt, with the wait before the next one."""
        self.state = stats.waiting(self.state, backoff)
        try:
            state.save(self.state)
        except Exception as e:  # a read-only state dir must not stop the retries
            log.warning("%s", e)
        if self.on_record is not None:
            self.on_record(self.state)

    def _hint_context(self, cls: FailureClass, cut_by: str | None) -> HintContext:
        from .hints import HintContext

        data_root = free = None
        if cls in (FailureClass.DISK_FULL, FailureClass.CORRUPT) and self.engine is not None:
            try:
                data_root = self.engine.data_root()
                st = os.statvfs(data_root)
                free = st.f_bavail * st.f_frsize
            except (OSError, PullFailed):
                pass
        creds = self.creds
        return HintContext(ref=self.ref, config_path=creds.config_path if creds else None,
                           credentials_found=bool(creds and creds.found),
                           auth_file_configured=self.app.image.auth_file is not None,
                           running_as_root=os.geteuid() == 0, data_root=data_root,
                           free_bytes=free, platform=self.app.image.platform,
                           credential_helper=self.cred_helper,
                           credential_source=self.cred_source, cut_by=cut_by)


def _may_say_retry_after(failure: Failure) -> bool:
    """A 429, or a 503 the daemon quotes: the answers that come with Retry-After (RFC
    9110). Any other failure is not worth a request of our own to ask."""
    return failure.cls is FailureClass.RATE_LIMITED or (
        failure.cls is FailureClass.SERVER_ERROR
        and re.search(r"\b503\b", failure.message) is not None)


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"

