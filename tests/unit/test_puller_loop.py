"""Puller.run as a loop: it attempts, asks retry.decide, sleeps, records. Driven here with
its injected clock, sleep and rng, and a scripted engine in place of the daemon (pure
logic only: the real daemon, registries and faults are in tests/integration/test_puller.py).
The env and state files are real, in a temporary directory."""

from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pullunit import state
from pullunit.classify import FailureClass, PullFailed
from pullunit.config import load_app
from pullunit.credentials import Credentials
from pullunit.engine import LocalImage
from pullunit.mirrors import Mirror
from pullunit.notify import Notifier
from pullunit.puller import GaveUp, Outcome, Puller, Source
from pullunit.ratelimit import RateLimit
from pullunit.retry import PREFETCH_DEADLINE

REPO = "registry.test:5000/team/web"
REF = f"{REPO}:1"
FAST = {"initial_delay": '"1s"', "max_delay": '"4s"', "jitter": '"none"'}


def image(n: int, platform: str = "linux/amd64") -> LocalImage:
    os_, arch = platform.split("/")
    return LocalImage(id=f"sha256:{n:064x}", repo_digests=(f"{REPO}@sha256:{n + 100:064x}",),
                      repo_tags=(REF,), os=os_, architecture=arch, variant=None, size=1)


def run_ref(n: int) -> str:
    return f"{REPO}@sha256:{n + 100:064x}"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


class Engine:
    """inspect() and platform(), from a dict of images by name and ID; remote_digest()
    (the probe) from the bed's script."""

    def __init__(self) -> None:
        self.images: dict[str, LocalImage] = {}
        self.daemon_platform = "linux/amd64"
        self.platform_asked = 0
        self.released: list[str] = []
        self.probe: Callable[[], None] = lambda: None

    def remote_digest(self, ref: object, auth: object, timeout: float) -> str:
        assert timeout > 0
        self.probe()
        return "sha256:" + "0" * 64

    def add(self, img: LocalImage) -> None:
        self.images[img.id] = img
        self.images[REF] = img

    def inspect(self, name: str) -> LocalImage | None:
        return self.images.get(name)

    def platform(self) -> str:
        self.platform_asked += 1
        return self.daemon_platform

    def release(self, name: str) -> None:
        self.released.append(name)
        self.images.pop(name, None)


ANSWER = "answer"  # a probe that succeeds without the pull that follows it succeeding
Script = list[FailureClass | LocalImage | str]


class Said(Notifier):
    """The STATUS= lines the puller sends, kept."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def _send(self, text: str) -> None:
        self.lines.append(text)


class Bed:
    def __init__(self, root: Path):
        self.root = root
        self.clock = Clock()
        self.engine = Engine()
        self.pulls = 0
        self.probes = 0
        self.notifier = Said()
        self.quotas: list[RateLimit | None] = []  # what the registry says after each 429
        self.quota_asked: list[float] = []

    def quota(self, timeout: float) -> RateLimit | None:
        self.quota_asked.append(timeout)
        return self.quotas.pop(0) if self.quotas else None

    def app(self, policy: str, pull: dict[str, str], image_keys: str = "") -> Path:
        path = self.root / "web.toml"
        table = "".join(f"{k} = {v}\n" for k, v in {**FAST, **pull}.items())
        path.write_text(f'[image]\nref = "{REF}"\npolicy = "{policy}"\n{image_keys}'
                        f'[pull]\n{table}')
        return path

    def puller(self, script: Script, policy: str = "missing",
               seconds_per_attempt: float = 0.5, image_keys: str = "",
               max_parallel_pulls: int = 0, mirrors: tuple[Mirror, ...] = (),
               **pull: str) -> Puller:
        """pull: [pull] keys over FAST, as TOML values; image_keys: more [image] lines.
        A probe takes the next step when it is a failure, and succeeds (leaving the step
        to the pull) when it is an image; probes and pulls both take seconds_per_attempt."""
        p = Puller(load_app(self.app(policy, pull, image_keys)), clock=self.clock,
                   sleep=self.clock.sleep, rng=random.Random(1), notifier=self.notifier,
                   max_parallel_pulls=max_parallel_pulls, mirrors=mirrors)
        steps = list(script)

        def pull_once(cutoff: object = None) -> LocalImage:
            self.pulls += 1
            self.clock.now += seconds_per_attempt
            step = steps.pop(0)
            if isinstance(step, FailureClass):
                raise PullFailed.of(step, f"scripted {step}")
            assert isinstance(step, LocalImage), f"a pull met {step!r}"
            self.engine.add(step)
            return step

        def probe() -> None:
            self.probes += 1
            self.clock.now += seconds_per_attempt
            if isinstance(steps[0], FailureClass):
                step = steps.pop(0)
                raise PullFailed.of(step, f"scripted {step} (probe)")
            if steps[0] == ANSWER:
                steps.pop(0)

        def no_helper(left: float) -> Credentials:
            return Credentials(None, None)

        self.engine.probe = probe
        p._credentials = no_helper  # type: ignore[method-assign]

        def no_api() -> None:
            raise AssertionError("the loop needs no docker-py here")

        attempt = p.attempt()  # the daemon side of the run: its pull and quota scripted
        attempt._pull_once = pull_once  # type: ignore[method-assign]
        attempt.quota = self.quota  # type: ignore[method-assign]
        p._engine = lambda: self.engine  # type: ignore[method-assign]
        p._api = no_api  # type: ignore[method-assign]
        return p

    def env(self) -> str | None:
        path = self.root / "run" / "web.env"
        return path.read_text() if path.exists() else None

    def state(self) -> dict[str, object]:
        data: dict[str, object] = json.loads((self.root / "state" / "web.json").read_text())
        return data

    def good(self, n: int) -> None:
        """A known-good image of this ref in the history, present in the engine."""
        img = image(n)
        self.engine.images[img.id] = img
        st = state.record_ready(state.load("web"), REF, run_ref(n), f"sha256:{n + 100:064x}",
                                img.id, 3, now=1.0)
        state.save(st)


@pytest.fixture
def bed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Bed:
    monkeypatch.setenv("PULLUNIT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("PULLUNIT_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    return Bed(tmp_path)


U, N, R, D = (FailureClass.UNREACHABLE, FailureClass.NOT_FOUND, FailureClass.RATE_LIMITED,
              FailureClass.DAEMON_UNAVAILABLE)


def test_transient_failures_back_off_then_pull(bed: Bed) -> None:
    out = bed.puller([U, U, U, U, image(1)]).run()
    assert bed.clock.sleeps == [1.0, 2.0, 4.0, 4.0]
    # after the first pull fails, each attempt probes the registry (3 fail, the 4th is
    # answered) and pulls only then: 5 attempts, 2 of them pulls
    assert (out.source, out.attempts, out.reference) == (Source.PULLED, 5, run_ref(1))
    assert (bed.pulls, bed.probes) == (2, 4)
    assert out.elapsed == pytest.approx(11.0 + 6 * 0.5)
    assert bed.env() == f"PULLUNIT_IMAGE={run_ref(1)}\n"
    st = bed.state()
    assert st["last_failure"] is None and st["current"]["image_id"] == image(1).id  # type: ignore[index]


def test_deadline_ends_the_run(bed: Bed) -> None:
    with pytest.raises(GaveUp) as e:
        bed.puller([U] * 20, deadline='"10s"').run()
    # one pull, then probes: 0.5 + 1 + 0.5 + 2 + 0.5 + 4 + 0.5 = 9 s; the next 4 s would
    # pass 10 s
    assert e.value.failure.cls is U and e.value.attempts == 4
    assert (bed.pulls, bed.probes) == (1, 3)
    assert bed.clock.sleeps == [1.0, 2.0, 4.0]
    assert bed.env() is None
    assert bed.state()["last_failure"]["cls"] == "unreachable"  # type: ignore[index]


def test_rate_limited_waits_at_least_the_floor(bed: Bed) -> None:
    out = bed.puller([R, R, image(1)], rate_limit_delay='"30s"').run()
    assert bed.clock.sleeps == [30.0, 30.0]
    assert out.source is Source.PULLED


def test_permanent_failure_gives_up_at_once(bed: Bed, caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(GaveUp) as e:
        bed.puller([N, image(1)]).run()
    assert e.value.failure.cls is N and e.value.attempts == 1
    assert bed.clock.sleeps == [] and bed.pulls == 1
    assert "giving up:" not in caplog.text  # the command says it once, with the class


def test_retry_permanent_retries_a_permanent_failure(bed: Bed) -> None:
    out = bed.puller([N, N, image(1)], retry_permanent="true").run()
    assert bed.clock.sleeps == [1.0, 2.0] and out.attempts == 3


def test_policy_missing_uses_the_local_image_without_pulling(bed: Bed) -> None:
    bed.engine.add(image(3))
    out = bed.puller([]).run()
    assert (out.source, out.attempts, bed.pulls) == (Source.LOCAL, 0, 0)
    assert bed.env() == f"PULLUNIT_IMAGE={run_ref(3)}\n"


def test_a_local_image_is_checked_against_the_daemons_platform(bed: Bed) -> None:
    bed.engine.add(image(3, "linux/arm64"))
    with pytest.raises(GaveUp) as e:
        bed.puller([]).run()
    assert e.value.failure.cls is FailureClass.PLATFORM and bed.engine.platform_asked == 1
    assert "(the daemon's platform)" in e.value.failure.message


def test_a_warm_start_of_the_current_image_does_not_ask_the_daemon_its_platform(
        bed: Bed) -> None:
    """It passed that check when it became current, and its ID fixes its platform."""
    bed.good(3)
    bed.engine.add(image(3))
    out = bed.puller([]).run()
    assert (out.source, out.reference) == (Source.LOCAL, run_ref(3))
    assert bed.engine.platform_asked == 0


def test_a_warm_start_neither_makes_nor_imports_an_attempt(bed: Bed) -> None:
    """attempt.py is the daemon side of a pull: every pull unit's warm start at boot
    does without it (it is imported when the first attempt or failure needs it)."""
    bed.engine.add(image(3))
    p = Puller(load_app(bed.app("missing", {})), clock=bed.clock, sleep=bed.clock.sleep,
               notifier=bed.notifier)
    p._engine = lambda: bed.engine  # type: ignore[assignment,method-assign,return-value]
    out = p.run()
    assert (out.source, out.attempts, p._at) == (Source.LOCAL, 0, None)
    code = "import sys, pullunit.commands.pull; print('pullunit.attempt' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    assert proc.stdout.strip() == "False"


def test_a_configured_platform_is_checked_even_for_the_current_image(bed: Bed) -> None:
    bed.good(3)
    bed.engine.add(image(3))
    with pytest.raises(GaveUp) as e:
        bed.puller([], image_keys='platform = "linux/arm64"\n').run()
    assert e.value.failure.cls is FailureClass.PLATFORM
    assert "(image.platform)" in e.value.failure.message


def test_policy_never_without_the_image(bed: Bed) -> None:
    with pytest.raises(GaveUp) as e:
        bed.puller([], policy="never").run()
    assert e.value.failure.cls is N and e.value.attempts == 0 and bed.pulls == 0


def test_policy_always_falls_back_when_refresh_timeout_ends(
        bed: Bed, caplog: pytest.LogCaptureFixture) -> None:
    bed.good(7)
    out = bed.puller([U] * 20, refresh_timeout='"5s"', policy="always").run()
    # 0.5 + 1 + 0.5 + 2 + 0.5 = 4.5 s; the third wait is cut to end at 5 s
    assert bed.clock.sleeps == [1.0, 2.0, 0.5]
    # one pull, three probes (the last at 5 s fails: fall back)
    assert (out.source, out.reference, out.attempts) == (Source.FALLBACK, run_ref(7), 4)
    assert (bed.pulls, bed.probes) == (1, 3)
    assert bed.env() == f"PULLUNIT_IMAGE={run_ref(7)}\n"
    assert bed.state()["last_failure"]["cls"] == "unreachable"  # type: ignore[index]
    assert "WARNING: running on the local image" in caplog.text


def test_policy_always_falls_back_at_once_on_a_permanent_failure(bed: Bed) -> None:
    bed.good(7)
    out = bed.puller([FailureClass.DENIED], policy="always").run()
    assert out.source is Source.FALLBACK and bed.clock.sleeps == []


def test_fallback_skips_an_image_that_fails_its_checks(
        bed: Bed, caplog: pytest.LogCaptureFixture) -> None:
    bed.good(6)
    bed.good(7)
    del bed.engine.images[image(7).id]  # the current one is gone (no archive)
    bed.engine.images[image(6).id] = image(6, "linux/arm64")  # an older one: wrong platform
    with pytest.raises(GaveUp):
        bed.puller([U] * 20, refresh_timeout='"2s"', deadline='"12s"',
                   policy="always").run()
    assert caplog.text.count("not falling back to") == 1  # tried once, at 2 s
    assert bed.clock.sleeps == [1.0, 2.0, 4.0]


def test_daemon_unavailable_never_falls_back(bed: Bed) -> None:
    bed.good(7)
    out = bed.puller([D, D, D, image(1)], refresh_timeout='"3s"', policy="always").run()
    assert out.source is Source.PULLED and out.attempts == 4
    # it wakes when refresh_timeout ends (at 3 s), but a daemon_unavailable does not fall
    # back: the fallback needs the daemon too
    assert bed.clock.sleeps == [1.0, 1.0, 4.0]


def test_prefetch_records_without_switching_and_never_falls_back(bed: Bed) -> None:
    bed.good(7)
    out = bed.puller([U, image(1)], refresh_timeout='"100ms"', policy="always").run(
        prefetch=True)
    assert out.source is Source.PREFETCHED and bed.clock.sleeps == [1.0]
    assert bed.env() is None  # the running app is not switched
    st = bed.state()
    assert st["prefetched"]["image_id"] == image(1).id  # type: ignore[index]
    assert st["current"]["image_id"] == image(7).id  # type: ignore[index]


def test_prefetch_gives_up_within_its_own_deadline(bed: Bed) -> None:
    with pytest.raises(GaveUp):
        bed.puller([U] * 1000, max_delay='"60s"', policy="always").run(prefetch=True)
    assert sum(bed.clock.sleeps) <= PREFETCH_DEADLINE
    assert sum(bed.clock.sleeps) > PREFETCH_DEADLINE - 60 - 1


def test_full_jitter_uses_the_injected_rng(bed: Bed) -> None:
    def run(seed: int) -> list[float]:
        b = Bed(bed.root)
        p = b.puller([U, U, U, image(1)], jitter='"full"')
        p.rng = random.Random(seed)
        p.run()
        return b.clock.sleeps

    first, again, other = run(5), run(5), run(6)
    assert first == again != other
    assert all(0 <= s <= cap for s, cap in zip(first, [1.0, 2.0, 4.0], strict=True))


def test_each_failure_is_logged_once_with_its_fix(bed: Bed,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pullunit")
    bed.puller([U, U, image(1)]).run()
    failures = [r for r in caplog.records if "failed (unreachable)" in r.getMessage()]
    assert [r.getMessage().split(" (")[0] for r in failures] == ["pull failed", "probe failed"]
    assert all("fix:" in r.getMessage() for r in failures)
    assert [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()] == [
        "retrying in 1.0s (a probe first; the pull once it is answered)",
        "retrying in 2.0s (a probe first; the pull once it is answered)"]


def test_outcome_source_is_a_plain_string_in_json(bed: Bed) -> None:
    out: Outcome = bed.puller([image(1)]).run()
    assert json.dumps({"source": out.source}) == '{"source": "pulled"}'


def test_the_loop_never_reads_the_real_clock(bed: Bed,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    def boom() -> float:
        raise AssertionError("monotonic() read")

    monkeypatch.setattr(time, "monotonic", boom)
    sleeps: list[Callable[[float], None]] = []
    monkeypatch.setattr(time, "sleep", lambda s: sleeps.append(s))  # type: ignore[arg-type]
    bed.puller([U, U, image(1)]).run()
    assert bed.clock.sleeps == [1.0, 2.0] and sleeps == []


# --- probes: cheap while the registry is down, layers only once it answers -----------------

def test_probes_replace_pulls_while_the_registry_is_down(bed: Bed) -> None:
    out = bed.puller([U, FailureClass.SERVER_ERROR, FailureClass.DNS,
                      FailureClass.STALLED, image(1)]).run()
    assert (bed.pulls, bed.probes, out.attempts) == (2, 4, 5)
    assert bed.clock.sleeps == [1.0, 2.0, 4.0, 4.0]  # the ramp, capped (FAST: max 4 s)
    waiting = [line for line in bed.notifier.lines if "next attempt in" in line]
    assert len(waiting) == 4 and waiting[0].startswith("STATUS=attempt 1 failed (unreachable)")
    assert waiting[3].startswith("STATUS=attempt 4 failed (stalled)")


def test_the_probe_schedule_is_capped_by_probe_interval(bed: Bed) -> None:
    bed.puller([U] * 8 + [image(1)], max_delay='"1min"', probe_interval='"5s"').run()
    assert bed.clock.sleeps == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0, 5.0]


def test_a_failed_pull_after_an_answered_probe_backs_off(bed: Bed) -> None:
    """The registry answers probes but the pull fails: layer pulls follow the backoff
    (1, 2, 4 ... pull.max_delay), each after a probe; probes alone would retry at 1 s."""
    S = FailureClass.STALLED
    bed.puller([U, ANSWER, S, ANSWER, S, ANSWER, S, ANSWER, image(1)],
               probe_interval='"1s"').run()
    assert bed.clock.sleeps == [1.0, 1.0, 2.0, 4.0]
    assert (bed.pulls, bed.probes) == (5, 4)


def test_a_probe_404_is_permanent(bed: Bed) -> None:
    with pytest.raises(GaveUp) as e:
        bed.puller([U, N, image(1)]).run()
    assert e.value.failure.cls is N and (bed.pulls, bed.probes) == (1, 1)
    assert bed.clock.sleeps == [1.0]


def test_daemon_unavailable_is_retried_without_probes(bed: Bed) -> None:
    bed.puller([D, D, image(1)]).run()
    assert (bed.pulls, bed.probes) == (3, 0)


def test_a_429_probe_waits_at_least_the_floor(bed: Bed) -> None:
    bed.puller([U, R, image(1)], rate_limit_delay='"30s"').run()
    assert bed.clock.sleeps == [1.0, 30.0] and bed.probes == 2


# --- the host-wide pull limit -------------------------------------------------------------

@pytest.fixture
def slots_taken(bed: Bed) -> Iterator[None]:
    """Another puller holds the host's only slot."""
    from pullunit.pullslots import pull_slot

    with pull_slot(1, "other", 0.0, lambda m: None, clock=bed.clock,
                   sleep=bed.clock.sleep):
        yield


def test_a_warm_start_takes_no_slot(bed: Bed, slots_taken: None) -> None:
    bed.engine.add(image(3))
    out = bed.puller([], max_parallel_pulls=1).run()
    assert out.source is Source.LOCAL and bed.clock.sleeps == []


def test_a_puller_waits_for_a_slot_says_so_and_falls_back_at_refresh_timeout(
        bed: Bed, slots_taken: None, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pullunit")
    bed.good(7)
    out = bed.puller([image(1)], policy="always", max_parallel_pulls=1,
                     refresh_timeout='"5s"').run()
    assert out.source is Source.FALLBACK and bed.pulls == 0
    assert bed.clock.now - 1000.0 == pytest.approx(5.0)  # waited to the cutoff only
    waiting = [line for line in bed.notifier.lines if "waiting for a pull slot" in line]
    assert waiting == [f"STATUS=waiting for a pull slot: all 1 in use (pid {os.getpid()} "
                       "other); max_parallel_pulls in pullunit.toml"]
    assert "waiting for a pull slot" in caplog.text
    assert "while waiting for a pull slot" in bed.state()["last_failure"]["message"]  # type: ignore[index]


def test_only_layer_pulls_take_a_slot(bed: Bed, monkeypatch: pytest.MonkeyPatch) -> None:
    from pullunit import pullslots

    real = pullslots.pull_slot
    taken: list[int] = []

    def counting(limit: int, *a: object, **kw: object) -> object:
        taken.append(limit)
        return real(limit, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(pullslots, "pull_slot", counting)
    bed.puller([U, U, U, image(1)], max_parallel_pulls=2).run()
    assert (bed.pulls, bed.probes, taken) == (2, 3, [2, 2])


def test_the_registrys_retry_after_is_honoured(bed: Bed) -> None:
    """The pull's 429 and the probe's: each HEAD reads Retry-After 90 s."""
    bed.quotas = [RateLimit(retry_after=90.0), RateLimit(retry_after=90.0)]
    bed.puller([R, R, image(1)], rate_limit_delay='"30s"').run()
    assert bed.clock.sleeps == [90.0, 90.0]  # above the 429 floor and the probe schedule
    assert len(bed.quota_asked) == 2  # one HEAD per 429, never two


@pytest.mark.parametrize(("cls", "message", "asks"), [
    (R, "toomanyrequests: slow down", True),
    (FailureClass.SERVER_ERROR, "received unexpected HTTP status: 503 Service Unavailable",
     True),
    (FailureClass.SERVER_ERROR, "received unexpected HTTP status: 502 Bad Gateway", False),
    (U, "dial tcp 127.0.0.1:5000: connect: connection refused", False),
])
def test_only_a_429_or_503_is_worth_asking_for_retry_after(
        cls: FailureClass, message: str, asks: bool) -> None:
    from pullunit.classify import Failure
    from pullunit.puller import _may_say_retry_after

    assert _may_say_retry_after(Failure(cls, message)) is asks


def test_without_a_retry_after_the_429_floor_applies(bed: Bed) -> None:
    bed.puller([R, image(1)], rate_limit_delay='"30s"').run()
    assert bed.clock.sleeps == [30.0]


def test_the_time_spent_asking_for_retry_after_counts_in_the_wait(bed: Bed) -> None:
    """A probe's 429: the loop asks (the pull's own 429 was asked inside its attempt)."""
    p = bed.puller([U, R, image(1)], rate_limit_delay='"30s"')

    def slow_registry(timeout: float) -> None:
        bed.quota_asked.append(timeout)
        bed.clock.now += 2.0  # the HEAD took 2 s and said nothing
        return None

    p.attempt().quota = slow_registry  # type: ignore[method-assign,assignment]
    p.run()
    assert bed.clock.sleeps == [1.0, 28.0]  # 30 s from the failure, not from the answer
    assert len(bed.quota_asked) == 1


# --- a corrupt blob: removed, pulled once more from scratch, then `corrupt` (issue 10) ---

C = FailureClass.CORRUPT


def test_a_corrupt_blob_is_pulled_once_more_at_once_and_can_succeed(bed: Bed) -> None:
    out = bed.puller([C, image(1)], policy="always").run()
    assert (out.source, out.attempts, bed.pulls) == (Source.PULLED, 2, 2)
    assert bed.clock.sleeps == []  # from scratch at once: not a backoff
    assert bed.engine.released == []  # nothing was under the ref


def test_corrupt_twice_gives_up_with_its_own_code(bed: Bed) -> None:
    with pytest.raises(GaveUp) as e:
        bed.puller([C, C, image(1)]).run()
    assert e.value.failure.cls is C and e.value.attempts == 2 and bed.pulls == 2
    assert int(e.value.exit_code) == 72 and bed.clock.sleeps == []
    assert bed.state()["last_failure"]["cls"] == "corrupt"  # type: ignore[index]


def test_corrupt_removes_an_unknown_image_under_the_ref_before_pulling_again(
        bed: Bed) -> None:
    bed.engine.add(image(7))  # tagged under the ref, not one of the app's images
    out = bed.puller([C, image(1)], policy="always").run()
    assert bed.engine.released == [REF] and out.attempts == 2


def test_corrupt_keeps_a_known_good_image_under_the_ref(bed: Bed) -> None:
    """The app's own good image under the ref is not removed, and under policy "always"
    the second corruption (permanent) falls back to it."""
    bed.good(3)
    bed.engine.add(image(3))
    out = bed.puller([C, C], policy="always").run()
    assert bed.engine.released == [] and bed.pulls == 2
    assert out.source is Source.FALLBACK and out.reference == run_ref(3)


def test_one_fresh_pull_per_run(bed: Bed) -> None:
    """retry_permanent: later corrupt attempts are retried by the loop, not doubled."""
    out = bed.puller([C, C, C, image(1)], retry_permanent="true").run()
    assert bed.pulls == 4 and out.attempts == 4 and bed.clock.sleeps == [1.0, 2.0]


# --- a 429: the registry's own quota, read with one HEAD, goes into the failure ---


def test_a_429_says_the_registrys_quota_and_keeps_its_retry_after(bed: Bed) -> None:
    bed.quotas = [RateLimit(limit=100, remaining=0, window=21600, retry_after=120.0)]
    p = bed.puller([R, image(1)], rate_limit_delay='"30s"')
    statuses: list[str] = []
    p.notifier.status = statuses.append  # type: ignore[method-assign]
    p.run()
    assert any(s.startswith("attempt 1 failed (rate_limited): registry.test:5000: 0 of 100 "
                            "pulls left in the window (6h, rolling)") for s in statuses), statuses
    assert len(bed.quota_asked) == 1 and 0 < bed.quota_asked[0] <= 3.0
    failure = bed.state()["failures"][0]  # type: ignore[index]
    assert failure["cls"] == "rate_limited"
    assert failure["message"].startswith(
        "registry.test:5000: 0 of 100 pulls left in the window (6h, rolling)")
    assert "Retry-After 2min" in failure["message"]
    assert "scripted rate_limited" in failure["message"]
    assert bed.clock.sleeps == [120.0]  # the loop honours it


def test_a_429_without_a_quota_keeps_the_daemons_words(bed: Bed) -> None:
    p = bed.puller([R, image(1)])
    p.run()
    assert bed.state()["failures"][0]["message"] == "scripted rate_limited"  # type: ignore[index]
    assert p.attempt().retry_after is None and len(bed.quota_asked) == 1


def test_no_quota_lookup_for_other_classes(bed: Bed) -> None:
    bed.puller([U, image(1)]).run()
    assert bed.quota_asked == []


def test_no_probe_gates_a_ref_with_mirrors(bed: Bed) -> None:
    """The mirrors are tried first in every attempt: a down origin must not keep the
    pull from them (the attempts keep the probe schedule's short waits)."""
    p = bed.puller([U, U, image(1)],
                   mirrors=(Mirror("registry.test:5000", ("cache.test:5000",)),))
    p.run()
    assert (bed.pulls, bed.probes) == (3, 0)
    assert bed.clock.sleeps == [1.0, 2.0]
