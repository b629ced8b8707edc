"""pinning.answer: the one rule for whether APP.lock.toml decides what is pulled (pinned,
stale, overridden by a config digest, or none), and the commands that show it."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from pullunit import pinning
from pullunit.config import load_app
from pullunit.errors import ConfigError
from pullunit.pinning import Applies, Lock, LockAnswer, judge
from pullunit.reference import parse_reference

from .conftest import assert_no_traceback, cli_env, run_cli

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
TAG = "registry.test:5000/team/web:1.2"


def _lock(ref: str = TAG, digest: str = D1) -> Lock:
    return Lock(ref, digest, "pin", "2026-01-01T00:00:00+00:00")


def test_no_lock() -> None:
    configured = parse_reference(TAG)
    assert judge(configured, None) == LockAnswer(Applies.NONE, configured, None)
    assert not judge(configured, None).pinned


def test_pinned_pulls_the_configured_name_at_the_locks_digest() -> None:
    configured = parse_reference(TAG)
    a = judge(configured, _lock())
    assert a.applies is Applies.PINNED and a.pinned and a.why == ""
    assert str(a.ref) == f"{TAG}@{D1}"
    assert (a.ref.domain, a.ref.path, a.ref.tag, a.ref.digest) == (
        "registry.test:5000", "team/web", "1.2", D1)
    assert a.lock == _lock()


@pytest.mark.parametrize("lock_ref", ["registry.test:5000/team/web:1.1",
                                      "registry.test:5000/team/api:1.2",
                                      "other.test/team/web:1.2"])
def test_stale_when_made_for_another_reference(lock_ref: str) -> None:
    configured = parse_reference(TAG)
    a = judge(configured, _lock(lock_ref))
    assert a.applies is Applies.STALE and not a.pinned
    assert a.ref is configured
    assert a.why == f"made for {lock_ref}, but the config says {TAG}"


@pytest.mark.parametrize("lock_ref", [TAG, f"{TAG}@{D2}", "registry.test:5000/team/web:9"])
def test_a_config_digest_overrides_any_lock(lock_ref: str) -> None:
    configured = parse_reference(f"{TAG}@{D2}")
    a = judge(configured, _lock(lock_ref))
    assert a.applies is Applies.OVERRIDDEN and not a.pinned
    assert a.ref is configured
    assert a.why == f"the config pins its own digest {D2}"


def test_the_answer_is_frozen() -> None:
    a = judge(parse_reference(TAG), None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.ref = parse_reference("x:1")  # type: ignore[misc]


def test_answer_reads_the_lock_beside_the_config(write_app: Callable[..., Path]) -> None:
    path = write_app("web", f'[image]\nref = "{TAG}"\n')
    app = load_app(path)
    assert pinning.answer(app).applies is Applies.NONE
    pinning.write(app, D1, "pin")
    assert pinning.answer(app).applies is Applies.PINNED
    assert str(pinning.answer(load_app(path)).ref) == f"{TAG}@{D1}"
    write_app("web", '[image]\nref = "registry.test:5000/team/web:1.3"\n')
    assert pinning.answer(load_app(path)).applies is Applies.STALE
    write_app("web", f'[image]\nref = "{TAG}@{D2}"\n')
    assert pinning.answer(load_app(path)).applies is Applies.OVERRIDDEN


def test_a_broken_lock_is_a_config_error(write_app: Callable[..., Path]) -> None:
    app = load_app(write_app("web", f'[image]\nref = "{TAG}"\n'))
    pinning.lock_path(app).write_text("[lock\n")
    with pytest.raises(ConfigError, match=r"web\.lock\.toml"):
        pinning.answer(app)


# --- the commands that show it ----------------------------------------------------------------

def _status(config_dir: Path, tmp_path: Path) -> dict[str, object]:
    env = cli_env(PULLUNIT_STATE_DIR=str(tmp_path / "state"),
                  PULLUNIT_RUNTIME_DIR=str(tmp_path / "run"))
    p = run_cli("status", "--config-dir", config_dir, "web", "--json", env=env)
    assert_no_traceback(p.stderr)
    lock: dict[str, object] = json.loads(p.stdout)["apps"][0]["lock"]
    return lock


@pytest.mark.parametrize("config_ref,applies,why", [
    (TAG, True, None),
    ("registry.test:5000/team/web:1.3", False,
     f"made for {TAG}, but the config says registry.test:5000/team/web:1.3"),
    (f"{TAG}@{D2}", False, f"the config pins its own digest {D2}"),
], ids=["pinned", "stale", "overridden"])
def test_status_shows_whether_the_lock_applies(config_dir: Path, tmp_path: Path,
                                               write_app: Callable[..., Path],
                                               config_ref: str, applies: bool,
                                               why: str | None) -> None:
    pinning.write(load_app(write_app("web", f'[image]\nref = "{TAG}"\n')), D1, "pin")
    write_app("web", f'[image]\nref = "{config_ref}"\n')
    lock = _status(config_dir, tmp_path)
    assert lock["digest"] == D1 and lock["source"] == "pin"
    assert lock["applies"] is applies and lock["why"] == why
    env = cli_env(PULLUNIT_STATE_DIR=str(tmp_path / "state"),
                  PULLUNIT_RUNTIME_DIR=str(tmp_path / "run"))
    text = run_cli("status", "--config-dir", config_dir, "web", env=env).stdout
    assert f"pinned:   {D1} by pin" in text
    assert ("not applied" in text) is (not applies)
    if why:
        assert f"(not applied: {why})" in text


def test_status_without_a_lock(config_dir: Path, tmp_path: Path,
                               write_app: Callable[..., Path]) -> None:
    write_app("web", f'[image]\nref = "{TAG}"\n')
    assert _status(config_dir, tmp_path) is None


@pytest.mark.parametrize("config_ref,expect,absent", [
    (TAG, "pinned to", "stale"),
    ("registry.test:5000/team/web:1.3", "is stale (made for", "pinned to"),
    (f"{TAG}@{D2}", "is not used: the config pins its own digest", "stale"),
], ids=["pinned", "stale", "overridden"])
def test_generate_says_what_each_lock_does(config_dir: Path, output_dir: Path,
                                           write_app: Callable[..., Path], config_ref: str,
                                           expect: str, absent: str) -> None:
    pinning.write(load_app(write_app("web", f'[image]\nref = "{TAG}"\n')), D1, "pin")
    write_app("web", f'[image]\nref = "{config_ref}"\n')
    p = run_cli("generate", "--config-dir", config_dir, "--output-dir", output_dir)
    assert p.returncode == 0, p.stderr
    assert expect in p.stderr and absent not in p.stderr
