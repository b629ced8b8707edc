"""State and env files: versioned, atomic, bounded history; corrupt files set aside."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from pullunit import state
from pullunit.errors import PullunitError


@pytest.fixture(autouse=True)
def dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PULLUNIT_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("PULLUNIT_RUNTIME_DIR", str(tmp_path / "run"))
    return tmp_path


def _ready(st: state.AppState, n: int, keep: int = 3) -> state.AppState:
    return state.record_ready(st, "r/app:1", f"r/app@sha256:{n:064x}", f"sha256:{n:064x}",
                              f"sha256:{n + 1000:064x}", keep, now=1000.0 + n)


def test_missing_state_is_fresh() -> None:
    st = state.load("web")
    assert st.current is None and st.history == ()


def test_round_trip_and_history_is_bounded_newest_first(dirs: Path) -> None:
    st = state.load("web")
    for n in range(5):
        st = _ready(st, n)
    state.save(st)
    path = dirs / "state" / "web.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    data = json.loads(path.read_text())
    assert data["schema"] == state.SCHEMA_VERSION
    back = state.load("web")
    assert back == st
    assert [e.digest for e in back.history] == [f"sha256:{n:064x}" for n in (4, 3, 2)]
    assert back.current == back.history[0]


def test_same_image_again_keeps_first_ready() -> None:
    st = _ready(state.load("web"), 1)
    st = _ready(st, 2)
    st = state.record_ready(st, "r/app:1", f"r/app@sha256:{1:064x}", f"sha256:{1:064x}",
                            f"sha256:{1001:064x}", 3, now=5000.0)
    assert st.current is not None
    assert (st.current.first_ready, st.current.last_ready) == (1001.0, 5000.0)
    assert len(st.history) == 2


def test_failure_is_recorded_and_cleared_by_success() -> None:
    st = state.record_failure(state.load("web"), "unreachable", "refused", 69, now=1.0)
    assert st.last_failure is not None and st.last_failure.cls == "unreachable"
    st = _ready(st, 1)
    assert st.last_failure is None


def test_corrupt_state_is_set_aside_not_lost(dirs: Path) -> None:
    path = dirs / "state" / "web.json"
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    st = state.load("web")
    assert st.current is None
    aside = list(path.parent.glob("web.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_text() == "{not json"


def test_unknown_schema_is_set_aside(dirs: Path) -> None:
    path = dirs / "state" / "web.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"schema": 99}))
    assert state.load("web").current is None
    assert list(path.parent.glob("web.corrupt-*"))


def test_env_file(dirs: Path) -> None:
    ref = "127.0.0.1:5000/team/app@sha256:" + "a" * 64
    path = state.write_env_file("web", ref)
    assert path == dirs / "run" / "web.env"
    assert path.read_text() == f"PULLUNIT_IMAGE={ref}\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert state.read_env_file("web") == ref
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("bad", ["a b", "x$HOME", "x\ny", "x'y", 'x"y', "x`id`", "x\\y"])
def test_env_file_refuses_unsafe_values(bad: str, dirs: Path) -> None:
    with pytest.raises(PullunitError):
        state.write_env_file("web", bad)
    assert not (dirs / "run" / "web.env").exists()


def test_save_failure_is_a_clear_error(dirs: Path) -> None:
    st = _ready(state.load("web"), 1)
    if os.geteuid() == 0:
        # root ignores permissions: make the state dir a file instead
        (dirs / "state").write_text("")
    else:
        (dirs / "state").mkdir(mode=0o500)
    with pytest.raises(PullunitError, match="Cannot write state file"):
        state.save(st)
