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


# -- defect 4: a state file that parses but is not what pullunit wrote -----------------

_GOOD_ENTRY = {"reference": "r/app@sha256:" + "1" * 64, "digest": "sha256:" + "1" * 64,
               "image_id": "sha256:" + "2" * 64, "first_ready": 1.0, "last_ready": 2.0,
               "image": "r/app:1"}
_GOOD = {"schema": 1, "image": "r/app:1", "current": _GOOD_ENTRY, "history": [_GOOD_ENTRY],
         "verified": ["sha256:" + "2" * 64], "prefetched": None, "updated": 3.0,
         "last_failure": {"at": 1.0, "cls": "unreachable", "message": "refused",
                          "exit_code": 69}}


def _with(path: str, value: object) -> str:
    """_GOOD with the dotted path set to value (as JSON text)."""
    data = json.loads(json.dumps(_GOOD))
    *parents, last = path.split(".")
    node = data
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return json.dumps(data)


_CORRUPT = {
    "null": "null", "list": "[]", "string": '"web"', "number": "7", "true": "true",
    "float": "1.5",
    "deeply nested list": "[" * 100_000 + "]" * 100_000,
    "deeply nested object": '{"a":' * 100_000 + "1" + "}" * 100_000,
    "schema true": _with("schema", True),
    "schema 1.0": _with("schema", 1.0),
    "schema string": _with("schema", "1"),
    "history a dict": _with("history", {"a": 1}),
    "history a string": _with("history", "abc"),
    "history entry a list": _with("history.0", [1, 2]),
    "history entry null": _with("history.0", None),
    "digest a number": _with("history.0.digest", 5),
    "digest not a digest": _with("current.digest", "sha256:xyz"),
    "image_id a path": _with("current.image_id", "../../../etc/passwd"),
    "image_id missing": json.dumps({**_GOOD, "current": {
        k: v for k, v in _GOOD_ENTRY.items() if k != "image_id"}}),
    "reference a number": _with("current.reference", 1),
    "image a list": _with("image", ["x"]),
    "first_ready a string": _with("current.first_ready", "yesterday"),
    "first_ready true": _with("current.first_ready", True),
    "last_ready infinity": _with("current.last_ready", float("inf")),
    "last_ready NaN": _with("current.last_ready", float("nan")),
    "last_ready too big for a float": _with("current.last_ready", 10**400),
    "updated a dict": _with("updated", {}),
    "current a list": _with("current", [1]),
    "current a string": _with("current", "x"),
    "prefetched a number": _with("prefetched", 3),
    "verified a dict": _with("verified", {"a": 1}),
    "verified of numbers": _with("verified", [1, 2]),
    "last_failure a string": _with("last_failure", "boom"),
    "exit_code a string": _with("last_failure.exit_code", "69"),
    "exit_code true": _with("last_failure.exit_code", True),
    "exit_code out of range": _with("last_failure.exit_code", 10**30),
    "message a number": _with("last_failure.message", 5),
    "cls null": _with("last_failure.cls", None),
    "not UTF-8": b'{"schema": 1, "image": "\xff\xfe"}',
    "a huge number literal": '{"schema": 1, "updated": ' + "9" * 5000 + "}",
}


def test_good_state_fixture_loads(dirs: Path) -> None:
    path = dirs / "state" / "web.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(_GOOD))
    st = state.load("web")
    assert st.current is not None and st.history and st.last_failure is not None
    assert not list(path.parent.glob("web.corrupt-*"))


@pytest.mark.parametrize("text", list(_CORRUPT.values()), ids=list(_CORRUPT))
def test_state_of_the_wrong_shape_is_set_aside(text: str | bytes, dirs: Path) -> None:
    path = dirs / "state" / "web.json"
    path.parent.mkdir(parents=True)
    raw = text if isinstance(text, bytes) else text.encode()
    path.write_bytes(raw)
    st = state.load("web")
    assert st == state.AppState("web")
    aside = list(path.parent.glob("web.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == raw
    assert not path.exists()
    state.save(_ready(st, 1))  # and the app goes on with a fresh file
    assert state.load("web").current is not None


@pytest.mark.parametrize("text", ["null", "[1]", "[" * 50_000],
                         ids=["null", "list", "deeply nested"])
def test_status_and_pull_go_on_past_a_state_file_of_the_wrong_shape(
        text: str, tmp_path: Path) -> None:
    """The CLI: no exit 70 on every start, the app is not blocked."""
    from .conftest import assert_no_traceback, cli_env, run_cli

    cfg = tmp_path / "etc"
    cfg.mkdir()
    # nothing listens on port 9: the pull gives up at its deadline, as any failed pull
    (cfg / "web.toml").write_text('[image]\nref = "127.0.0.1:9/team/app:1"\n'
                                  '[pull]\ndeadline = "1s"\ninitial_delay = "200ms"\n')
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    env = cli_env(PULLUNIT_STATE_DIR=str(state_dir), PULLUNIT_RUNTIME_DIR=str(tmp_path / "run"),
                  DOCKER_HOST=f"unix://{tmp_path}/no-docker.sock")
    (state_dir / "web.json").write_text(text)
    p = run_cli("status", "--config-dir", cfg, "web", env=env)
    assert_no_traceback(p.stderr)
    assert p.returncode == 1 and "moved it to" in p.stderr
    (state_dir / "web.json").write_text(text)
    p = run_cli("pull", "--config-dir", cfg, "web", env=env)
    assert_no_traceback(p.stderr)
    assert p.returncode == 69, p.stderr


@pytest.mark.parametrize("kind", ["symlink", "fifo", "directory"])
def test_state_path_that_is_not_a_file_is_set_aside(kind: str, dirs: Path) -> None:
    """A FIFO there would block every start; a symlink would be read through."""
    path = dirs / "state" / "web.json"
    path.parent.mkdir(parents=True)
    secret = dirs / "secret.json"
    secret.write_text(json.dumps(_GOOD))
    if kind == "symlink":
        path.symlink_to(secret)
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    assert state.load("web") == state.AppState("web")
    assert not os.path.lexists(path)
    assert secret.read_text() == json.dumps(_GOOD)
    state.save(_ready(state.load("web"), 1))
    assert path.is_file() and not path.is_symlink()
    assert secret.read_text() == json.dumps(_GOOD)


def test_oversized_state_file_is_set_aside(dirs: Path) -> None:
    path = dirs / "state" / "web.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**_GOOD, "pad": "x" * (state.MAX_BYTES + 1)}))
    assert state.load("web") == state.AppState("web")


def test_unknown_keys_are_kept_for_forward_compatibility(dirs: Path) -> None:
    path = dirs / "state" / "web.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({**_GOOD, "added_later": {"x": 1}}))
    assert state.load("web").current is not None


# -- defect 5: writes never go through a symlink ---------------------------------------

@pytest.mark.parametrize("which", ["state", "env"])
def test_symlink_at_a_written_path_is_replaced_not_followed(which: str, dirs: Path) -> None:
    target = dirs / "target"
    target.write_text("precious\n")
    path = (dirs / "state" / "web.json") if which == "state" else (dirs / "run" / "web.env")
    path.parent.mkdir(parents=True)
    path.symlink_to(target)
    if which == "state":
        state.save(_ready(state.AppState("web"), 1))
    else:
        state.write_env_file("web", "r/app@sha256:" + "a" * 64)
    assert target.read_text() == "precious\n"
    assert path.is_file() and not path.is_symlink()


# -- defect 10: registry text is recorded printable -------------------------------------

ESCAPES = "manifest unknown: \x1b]0;pwned\x07\x1b[2J\x9b31m gone\nforged line\u202e"


def test_failure_message_is_recorded_printable(dirs: Path) -> None:
    st = state.record_failure(state.AppState("web"), "not_found", ESCAPES, 66, now=1.0)
    assert st.last_failure is not None
    msg = st.last_failure.message
    assert msg == ("manifest unknown: \\x1b]0;pwned\\x07\\x1b[2J\\x9b31m gone\\x0aforged "
                   "line\\u202e")
    state.save(st)
    raw = (dirs / "state" / "web.json").read_text()
    assert "\\u001b" not in raw and "\x1b" not in raw


def test_escapes_already_in_a_state_file_are_not_replayed(dirs: Path) -> None:
    path = dirs / "state" / "web.json"
    path.parent.mkdir(parents=True)
    path.write_text(_with("last_failure.message", ESCAPES))
    lf = state.load("web").last_failure
    assert lf is not None and "\x1b" not in lf.message and "\\x1b]0;pwned" in lf.message
