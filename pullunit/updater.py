"""One `pullunit update` of one app: the field guide's "pull new image, verify it starts,
switch service to it" (10.1) with the way back built in.

1. Resolve the tag (or --to) to the digest the registry serves now, and pull it with the
   puller (classes, backoff, deadline, verify) -- all before the running container is
   touched, so a registry that is down changes nothing.
2. Switch with activation.activate (the one "make this digest current", shared with the
   puller and rollback): lock (source "update", so a reboot keeps it), env file, history.
3. Restart APP.service over D-Bus and wait for its readiness gate.
4. Not ready: switch back to the image that ran before the same way (lock source
   "rollback"), drop the new one from the good images, restart, wait for the gate again.
   Both outcomes go into the state's update records, which `status` shows.

The edges (registry, engine, systemd) come in as `Edges`, so the sequence is tested with
fakes; commands/update.py wires the real ones.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import pinning, state
from .activation import activate, locate
from .applock import BACKGROUND_WAIT, OPERATOR_WAIT, app_lock
from .config import AppConfig, Policy
from .engine import Engine, LocalImage
from .errors import ExitCode, Interrupted, PullunitError
from .reference import DIGEST_RE, BadReference, ImageRef, parse_reference
from .systemd import UnitState

log = logging.getLogger("pullunit")


class Result(enum.StrEnum):
    UPDATED = "updated"  # switched, and the new image became ready
    CURRENT = "current"  # already running the digest the tag names
    WOULD_UPDATE = "would_update"  # --dry-run
    SWITCHED = "switched"  # the run unit was not running: files switched, nothing started
    ROLLED_BACK = "rolled_back"  # the new image did not become ready; back on the old one
    NOT_READY = "not_ready"  # not ready, and no rollback (--no-rollback, none possible, or
    # the rollback did not become ready either)
    FAILED = "failed"  # nothing changed: could not resolve or pull (registry down, ...)
    SKIPPED = "skipped"  # not an app update can change (policy never, digest in config)


@dataclass(frozen=True)
class Outcome:
    app: str
    result: Result
    exit_code: int = 0
    from_ref: str | None = None
    to_ref: str | None = None
    cause: str | None = None  # why the new image was not ready
    cls: str | None = None  # the failure class, when resolving or pulling failed
    message: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"app": self.app, "result": str(self.result), "exit_code": self.exit_code,
                "from": self.from_ref, "to": self.to_ref, "cause": self.cause,
                "class": self.cls, "message": self.message}


@dataclass(frozen=True)
class Edges:
    resolve: Callable[[AppConfig, ImageRef], str]  # the registry's digest; raises PullFailed
    pull: Callable[[AppConfig, ImageRef], LocalImage]  # the puller, no fallback; raises
    inspect: Callable[[str], LocalImage | None]
    unit: Callable[[str], UnitState]
    restart: Callable[[str, float], UnitState]  # restart and wait for the gate
    api: Callable[[], Any]  # docker-py, for rollback archives
    engine: Callable[[], Engine] | None = None  # tags kept images (activation.hold_history)


class Failed(Exception):
    """Resolving or pulling failed: nothing was changed."""

    def __init__(self, cls: str, message: str, exit_code: int):
        super().__init__(message)
        self.cls, self.message, self.exit_code = cls, message, exit_code


def target(configured: ImageRef, to: str | None) -> ImageRef:
    """What to update to: the configured tag, or --to: a digest (of the configured
    repository) or another tag of it."""
    if to is None:
        return ImageRef(configured.domain, configured.path, configured.tag, None)
    if DIGEST_RE.match(to):
        return ImageRef(configured.domain, configured.path, configured.tag, to)
    try:
        ref = parse_reference(f"{configured.repository}:{to}")
    except BadReference:
        raise PullunitError(f"--to {to!r} is neither a tag nor a sha256 digest",
                            ExitCode.USAGE) from None
    return ref


def restart_bound(app: AppConfig) -> float:
    """How long a restart of the run unit may take before pullunit stops waiting: the
    stop (docker stop's grace + systemd's 15 s backstop) and the start (the unit's
    TimeoutStartSec), and a little more."""
    stop = app.run.stop_timeout + 15
    start = app.health.start_timeout + app.run.stop_timeout + 30
    return stop + start + 15


def ready(unit: UnitState) -> bool:
    """Our restart job is done: it succeeded if the unit is active and systemd did not
    have to restart it on its own (NRestarts is reset by a start that is asked for)."""
    return unit.active_state == "active" and unit.n_restarts == 0


def why_not(unit: UnitState) -> str:
    text = unit.status_text.strip()
    if text:
        return text
    return (f"{unit.name} is {unit.active_state} ({unit.sub_state}), result {unit.result}, "
            f"status {unit.exec_main_status}")


class Updater:
    def __init__(self, app: AppConfig, edges: Edges, *, rollback: bool = True,
                 auto: bool = False, clock: Callable[[], float] = time.time):
        self.app = app
        self.edges = edges
        self.rollback = rollback
        self.auto = auto
        self.clock = clock

    def _engine(self) -> Engine | None:
        return self.edges.engine() if self.edges.engine is not None else None

    def _lock(self) -> Any:
        # the timer's round may wait out a pull in progress; an operator hears sooner
        wait = BACKGROUND_WAIT if self.auto else OPERATOR_WAIT
        return app_lock(self.app.name, lambda m: log.info("%s", m), timeout=wait)

    def _restart(self, from_ref: str | None, to_ref: str) -> UnitState:
        try:
            return self.edges.restart(self.app.run_unit, restart_bound(self.app))
        except Interrupted as e:
            # systemd goes on with the restart; nobody judges it now. Say so where
            # `status` looks, then stop as asked.
            self._record(state.Update(self.clock(), from_ref, to_ref, "interrupted",
                                      f"pullunit update was stopped by {e.signame} while "
                                      f"{self.app.run_unit} restarted", self.auto))
            raise
        except PullunitError as e:
            if e.exit_code is not ExitCode.NOT_READY:
                raise
            return UnitState(self.app.run_unit, "loaded", "activating", "start", "", 0, 0,
                             e.message)

    def _record(self, update: state.Update) -> None:
        with self._lock():
            state.save(state.record_update(state.load(self.app.name), update))

    def run(self, to: str | None = None, *, dry_run: bool = False) -> Outcome:
        app = self.app
        if app.image.policy is Policy.NEVER:
            return Outcome(app.name, Result.SKIPPED, message="image.policy is \"never\": "
                           "an update would pull")
        if to is None and app.image.ref.digest:
            return Outcome(app.name, Result.SKIPPED, message="image.ref pins a digest in the "
                           "config: edit the config, or name one with --to")
        want = target(app.image.ref, to)
        before = state.load(app.name).current
        from_ref = before.reference if before else None
        try:
            digest = want.digest or self.edges.resolve(app, want)
        except Failed as e:
            return Outcome(app.name, Result.FAILED, e.exit_code, from_ref, None, cls=e.cls,
                           message=f"cannot resolve {want}: {e.message}")
        to_ref = want.with_digest(digest)
        if before is not None and before.digest == digest:
            return Outcome(app.name, Result.CURRENT, 0, from_ref, to_ref,
                           message=f"already running {to_ref}")
        if dry_run:
            return Outcome(app.name, Result.WOULD_UPDATE, 0, from_ref, to_ref,
                           message=f"would switch {from_ref or 'nothing'} -> {to_ref}")
        now = self.edges.unit(app.run_unit)
        if now.active_state not in ("active", "inactive", "failed"):
            # Starting, stopping or waiting to restart: switching under a job in flight
            # would start the new image without anyone judging it.
            return Outcome(app.name, Result.FAILED, int(ExitCode.TEMPFAIL), from_ref, to_ref,
                           message=f"{app.run_unit} is {now.active_state} ({now.sub_state}); "
                           "try again when it is active or stopped")
        running = now.active_state == "active"
        pull_ref = ImageRef(want.domain, want.path, want.tag, digest)
        with self._lock():
            try:
                image = self.edges.pull(app, pull_ref)
            except Failed as e:
                return Outcome(app.name, Result.FAILED, e.exit_code, from_ref, to_ref,
                               cls=e.cls, message=f"cannot pull {pull_ref}: {e.message}")
            saved_lock = pinning.snapshot(app)
            st = state.load(app.name)
            history = st.history
            done = activate(app, st, pull_ref, image, digest=digest, lock_source="update",
                            api=self.edges.api, engine=self._engine())
        to_ref = done.reference
        if not running:
            log.info("%s: switched to %s; %s is not running, so nothing was started",
                     app.name, to_ref, app.run_unit)
            return Outcome(app.name, Result.SWITCHED, 0, from_ref, to_ref,
                           message=f"{app.run_unit} is not running; it starts {to_ref} "
                           "when it is started")
        log.info("%s: switching %s -> %s", app.name, from_ref or "nothing", to_ref)
        unit = self._restart(from_ref, to_ref)
        if ready(unit):
            self._record(state.Update(self.clock(), from_ref, to_ref, "updated",
                                      auto=self.auto))
            log.info("%s: updated to %s: %s", app.name, to_ref, unit.status_text)
            return Outcome(app.name, Result.UPDATED, 0, from_ref, to_ref,
                           message=unit.status_text or f"{app.run_unit} is active")
        cause = why_not(unit)
        log.error("%s: %s did not become ready: %s", app.name, to_ref, cause)
        if not self.rollback or before is None:
            self._record(state.Update(self.clock(), from_ref, to_ref, "not_ready", cause,
                                      self.auto))
            why = "--no-rollback" if not self.rollback else "nothing ran before it"
            return Outcome(app.name, Result.NOT_READY, int(ExitCode.NOT_READY), from_ref,
                           to_ref, cause, message=f"not rolled back ({why})")
        return self._roll_back(before, image, history, saved_lock, from_ref, to_ref, cause)

    def _roll_back(self, before: state.Entry, failed: LocalImage,
                   history: tuple[state.Entry, ...], saved_lock: bytes | None,
                   from_ref: str | None, to_ref: str, cause: str) -> Outcome:
        app = self.app
        previous = locate(app, before.image_id, before.reference, inspect=self.edges.inspect,
                          api=self.edges.api)
        if previous is None:
            self._record(state.Update(self.clock(), from_ref, to_ref, "rollback_failed",
                                      cause, self.auto))
            return Outcome(app.name, Result.NOT_READY, int(ExitCode.NOT_READY), from_ref,
                           to_ref, cause, message=f"cannot roll back: {before.reference} is "
                           "no longer present locally")
        log.warning("%s: rolling back to %s", app.name, before.reference)
        with self._lock():
            done = activate(app, state.load(app.name), app.image.ref, previous,
                            digest=before.digest,
                            lock_source="rollback" if before.digest else None,
                            api=self.edges.api, engine=self._engine())
            if not before.digest:  # no digest to pin: leave the lock as it was
                pinning.restore(app, saved_lock)
            state.save(state.forget(done.state, failed.id, history, app.pull.keep))
        unit = self._restart(from_ref, done.reference)
        if ready(unit):
            self._record(state.Update(self.clock(), from_ref, to_ref, "rolled_back", cause,
                                      self.auto))
            log.warning("%s: rolled back to %s; %s was not ready: %s", app.name,
                        done.reference, to_ref, cause)
            return Outcome(app.name, Result.ROLLED_BACK, int(ExitCode.ROLLED_BACK), from_ref,
                           to_ref, cause, message=f"rolled back to {done.reference}")
        again = why_not(unit)
        self._record(state.Update(self.clock(), from_ref, to_ref, "rollback_failed",
                                  f"{cause}; after the rollback: {again}", self.auto))
        log.error("%s: the rollback to %s did not become ready either: %s", app.name,
                  done.reference, again)
        return Outcome(app.name, Result.NOT_READY, int(ExitCode.NOT_READY), from_ref, to_ref,
                       cause, message=f"rolled back to {done.reference}, which did not "
                       f"become ready either: {again}")
