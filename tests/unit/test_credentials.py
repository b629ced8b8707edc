"""Credentials from a docker config.json, and credential helpers run as real (tiny)
programs: bounded, their process group killed, failures named."""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pullunit.classify import FailureClass
from pullunit.credentials import Auth, HelperFailed, credentials, default_config_path
from pullunit.errors import ConfigError, ExitCode
from pullunit.reference import parse_reference

REF = parse_reference("127.0.0.1:5001/team/app:1")
HUB = parse_reference("team/app:1")


def _pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    d = tmp_path / "bin"
    d.mkdir()
    monkeypatch.setenv("PATH", f"{d}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    yield d
    for f in d.glob("*.pid"):  # a failed test must not leave its helper running
        pid = int(f.read_text())
        if _pid_alive(pid) and str(d) in Path(f"/proc/{pid}/cmdline").read_text():
            os.kill(pid, 9)


def _helper(d: Path, name: str, body: str) -> None:
    p = d / f"docker-credential-{name}"
    p.write_text("#!/bin/sh\n" + body)
    p.chmod(0o755)


def _config(tmp_path: Path, data: object) -> Path:
    p = tmp_path / "config.json"
    p.write_text(json.dumps(data))
    return p


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


# --- auths --------------------------------------------------------------------------------

@pytest.mark.parametrize("entry,want", [
    ({"auth": _b64("alice:s3:cret")}, Auth("alice", "s3:cret", serveraddress="127.0.0.1:5001")),
    ({"username": "bob", "password": "pw"}, Auth("bob", "pw", serveraddress="127.0.0.1:5001")),
    ({"identitytoken": "tok"}, Auth(identitytoken="tok", serveraddress="127.0.0.1:5001")),
    ({"registrytoken": "rt"}, Auth(registrytoken="rt", serveraddress="127.0.0.1:5001")),
    ({}, None),  # the CLI's placeholder next to a credsStore
    ({"auth": "***not base64***"}, None),
    ("not an object", None),
], ids=["auth", "user-password", "identitytoken", "registrytoken", "empty", "bad-b64",
        "not-object"])
def test_auths_entry(tmp_path: Path, entry: object, want: Auth | None) -> None:
    c = credentials(REF, _config(tmp_path, {"auths": {"127.0.0.1:5001": entry}}))
    assert c.auth == want
    assert c.found is (want is not None) and c.helper is None


def test_auths_keys_as_urls_and_docker_hub_names(tmp_path: Path) -> None:
    cfg = _config(tmp_path, {"auths": {
        "http://127.0.0.1:5001/v2/": {"auth": _b64("a:1")},
        "https://index.docker.io/v1/": {"auth": _b64("hub:2")}}})
    assert credentials(REF, cfg).auth == Auth("a", "1", serveraddress="127.0.0.1:5001")
    hub = credentials(HUB, cfg).auth
    assert hub is not None and (hub.username, hub.password) == ("hub", "2")
    assert credentials(parse_reference("10.0.0.1:5000/x:1"), cfg).auth is None


def test_no_config_is_anonymous(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("DOCKER_CONFIG", raising=False)
    c = credentials(REF, None)
    assert c.config_path == tmp_path / ".docker" / "config.json" and not c.found


def test_docker_config_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    _config(tmp_path, {"auths": {"127.0.0.1:5001": {"auth": _b64("a:1")}}})
    assert default_config_path() == tmp_path / "config.json"
    assert credentials(REF, None).found


@pytest.mark.parametrize("content,why", [(None, "no such file"), ("{", "not valid JSON"),
                                         ("[]", "not a JSON object")])
def test_auth_file_errors_name_the_key(tmp_path: Path, content: str | None, why: str) -> None:
    path = tmp_path / "auth.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as e:
        credentials(REF, path)
    assert e.value.exit_code == ExitCode.CONFIG
    assert f"image.auth_file {path}" in e.value.message and why in e.value.message


def test_header_is_what_docker_py_sends() -> None:
    import docker.auth

    a = Auth("alice", "pw", serveraddress="127.0.0.1:5001")
    assert a.header() == docker.auth.encode_header(a.as_dict()).decode()
    assert json.loads(base64.urlsafe_b64decode(a.header())) == {
        "username": "alice", "password": "pw", "serveraddress": "127.0.0.1:5001"}


# --- helpers ------------------------------------------------------------------------------

def test_helper_answers(tmp_path: Path, bin_dir: Path) -> None:
    _helper(bin_dir, "ok", f'read s\necho "$s" > {bin_dir}/asked\n'
                           'echo \'{"ServerURL":"x","Username":"alice","Secret":"pw"}\'\n')
    cfg = _config(tmp_path, {"credHelpers": {"127.0.0.1:5001": "ok"}, "credsStore": "other"})
    c = credentials(REF, cfg)
    assert c.auth == Auth("alice", "pw", serveraddress="127.0.0.1:5001")
    assert c.helper == "docker-credential-ok"
    assert (bin_dir / "asked").read_text() == "127.0.0.1:5001\n"


def test_helper_identity_token_and_docker_hub(tmp_path: Path, bin_dir: Path) -> None:
    _helper(bin_dir, "tok", f'read s\necho "$s" > {bin_dir}/asked\n'
                            'echo \'{"Username":"<token>","Secret":"T"}\'\n')
    c = credentials(HUB, _config(tmp_path, {"credsStore": "tok"}))
    assert c.auth == Auth(identitytoken="T", serveraddress="https://index.docker.io/v1/")
    assert (bin_dir / "asked").read_text() == "https://index.docker.io/v1/\n"


def test_helper_without_an_entry_falls_back_to_auths(tmp_path: Path, bin_dir: Path) -> None:
    _helper(bin_dir, "none", "echo 'credentials not found in native keychain'\nexit 1\n")
    cfg = _config(tmp_path, {"credsStore": "none",
                             "auths": {"127.0.0.1:5001": {"auth": _b64("a:1")}}})
    assert credentials(REF, cfg).auth == Auth("a", "1", serveraddress="127.0.0.1:5001")
    assert not credentials(HUB, cfg).found


@pytest.mark.parametrize("name,body,said", [
    ("fails", "echo 'keyring locked' >&2\nexit 3\n", "failed with exit status 3: keyring locked"),
    ("garbage", "echo 'hello'\n", "is not {\"Username\", \"Secret\"} JSON"),
    ("missing", None, "is not installed or not on PATH"),
])
def test_helper_failures_are_a_credentials_error_naming_it(tmp_path: Path, bin_dir: Path, name: str,
                                              body: str | None, said: str) -> None:
    if body is not None:
        _helper(bin_dir, name, body)
    cfg = _config(tmp_path, {"credHelpers": {"127.0.0.1:5001": name}})
    with pytest.raises(HelperFailed) as e:
        credentials(REF, cfg)
    assert e.value.helper == f"docker-credential-{name}"
    # this host's configuration (issue 10), not the registry's "access denied"
    assert e.value.failure.cls is FailureClass.CREDENTIALS and e.value.exit_code == 78
    assert said in e.value.failure.message
    assert f"credHelpers['127.0.0.1:5001'] in {cfg}" in e.value.failure.message
    assert e.value.where == f"credHelpers['127.0.0.1:5001'] in {cfg}"


def test_helper_that_hangs_is_bounded_and_killed_with_its_children(
        tmp_path: Path, bin_dir: Path) -> None:
    _helper(bin_dir, "hangs", f"echo $$ > {bin_dir}/helper.pid\n"
                              f"sh -c 'while :; do sleep 1; done' {bin_dir} &\n"
                              f"echo $! > {bin_dir}/child.pid\nwait\n")
    cfg = _config(tmp_path, {"credsStore": "hangs"})
    t = time.monotonic()
    with pytest.raises(HelperFailed) as e:
        credentials(REF, cfg, helper_timeout=1.0)
    assert time.monotonic() - t < 4
    assert "did not answer within 1s; it was stopped" in e.value.failure.message
    pids = [int((bin_dir / f).read_text()) for f in ("helper.pid", "child.pid")]
    deadline = time.monotonic() + 3
    while any(_pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_pid_alive(p) for p in pids), "the helper or its child is still running"


def test_helper_secret_never_in_the_message(tmp_path: Path, bin_dir: Path) -> None:
    _helper(bin_dir, "leaky", "echo 'password=hunter2-secret' >&2\nexit 1\n")
    with pytest.raises(HelperFailed) as e:
        credentials(REF, _config(tmp_path, {"credsStore": "leaky"}))
    assert "hunter2-secret" not in e.value.failure.message


def test_a_failure_loses_every_form_of_the_credentials_a_registry_echoes() -> None:
    """A registry may put the Authorization header it got into its error text (the fuzz
    tier's "Basic auth echoed back"): the puller and pin scrub what they sent."""
    import base64

    from pullunit.classify import Failure, FailureClass
    from pullunit.credentials import Auth

    auth = Auth(username="bob", password="pa ss/w@rd")
    basic = base64.b64encode(b"bob:pa ss/w@rd").decode()
    text = (f'not found: got {{"Authorization": ["Basic {basic}"]}} pw=pa ss/w@rd '
            f"X-Registry-Auth {auth.header()}")
    out = Failure(FailureClass.NOT_FOUND, text).without(auth.secrets()).message
    for secret in ("pa ss/w@rd", basic, auth.header()):
        assert secret not in out
    assert out.startswith("not found: got")
    assert Failure(FailureClass.NOT_FOUND, "plain").without(()).message == "plain"
