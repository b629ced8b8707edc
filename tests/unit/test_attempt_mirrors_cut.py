"""A clock that runs out while the mirrors are asked is a cut of the attempt, like a cut
during the pull: the failure that really happened before stands (not a "stall").

Regression: an origin that is down made every attempt fail `unreachable`; when the
deadline came while the last attempt was asking the origin for its tag, the run ended
`stalled` ("no time was left to ask the mirrors"), and the integration test that pulls
with the origin down failed on a loaded machine."""

from __future__ import annotations

from pathlib import Path

import pytest

from pullunit.attempt import Attempt, Cutoff
from pullunit.classify import Failure, FailureClass, PullFailed
from pullunit.config import load_app
from pullunit.credentials import Credentials
from pullunit.mirrors import Mirror
from pullunit.notify import Notifier
from pullunit.state import AppState

REF = "registry.test:5000/team/web:1.0"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class OriginThatTakesTheRestOfTheTime:
    """remote_digest (the origin's tag lookup) uses up the attempt's time, then fails
    as a silent registry does when its bound ends."""

    def __init__(self, clock: Clock, until: float) -> None:
        self.clock, self.until, self.asked = clock, until, 0

    def remote_digest(self, ref: object, auth: object, timeout: float) -> str:
        self.asked += 1
        self.clock.now = self.until
        raise PullFailed.of(FailureClass.STALLED, "the registry sent nothing")


def attempt(tmp_path: Path, clock: Clock, engine: object) -> Attempt:
    path = tmp_path / "web.toml"
    path.write_text(f'[image]\nref = "{REF}"\n[pull]\ndeadline = "4s"\n')
    app = load_app(path)
    return Attempt(app, app.image.ref, start=clock(), engine=lambda: engine,  # type: ignore[arg-type,return-value]
                   credentials=lambda left: Credentials(None, None),
                   find_local=lambda: None, state=lambda: AppState(app.name),
                   notifier=Notifier(), clock=clock, sleep=lambda s: None,
                   mirrors=(Mirror("registry.test:5000", ("cache.test:5000",)),))


@pytest.fixture(autouse=True)
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULLUNIT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("PULLUNIT_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)


def test_the_failure_before_the_cut_stands(tmp_path: Path) -> None:
    clock = Clock()
    cut = Cutoff(clock() + 4.0, "pull.deadline")
    engine = OriginThatTakesTheRestOfTheTime(clock, until=cut.at)
    at = attempt(tmp_path, clock, engine)
    at.settle(Failure(FailureClass.UNREACHABLE, "dial tcp: connection refused"))
    with pytest.raises(PullFailed) as e:
        at._from_mirrors(engine, None, cut)  # type: ignore[arg-type]
    assert engine.asked == 1
    assert e.value.failure.cls is FailureClass.UNREACHABLE, e.value.failure
    assert "pull.deadline" in e.value.failure.message
    assert at.cut_by == "pull.deadline"


def test_with_time_left_the_origin_s_own_failure_is_raised(tmp_path: Path) -> None:
    clock = Clock()
    cut = Cutoff(clock() + 4.0, "pull.deadline")
    engine = OriginThatTakesTheRestOfTheTime(clock, until=clock() + 1.0)
    at = attempt(tmp_path, clock, engine)
    at.settle(Failure(FailureClass.UNREACHABLE, "dial tcp: connection refused"))
    with pytest.raises(PullFailed) as e:
        at._from_mirrors(engine, None, cut)  # type: ignore[arg-type]
    assert e.value.failure.cls is FailureClass.STALLED
    assert at.cut_by is None
