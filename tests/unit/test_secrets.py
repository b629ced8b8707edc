"""[run.secrets]: parsing, the unit's LoadCredential= lines and the container's mounts,
bad values (exit 78, named, nothing written, other apps generated), what systemd makes of
the units, and validate's warnings about the files."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from pullunit.appsecrets import Secret
from pullunit.config import parse_app
from pullunit.errors import ConfigError
from pullunit.render import docker_run_argv
from pullunit.unitfiles import generate

from . import sdtools
from .conftest import assert_no_traceback, cli_env, run_cli

EXE = "/usr/bin/true"
HEAD = '[image]\nref = "127.0.0.1:5000/team/web:1"\n'


def parse(text: str, name: str = "web") -> object:
    return parse_app(name, tomllib.loads(HEAD + text), Path(f"/etc/pullunit/{name}.toml"))


def test_both_forms() -> None:
    app = parse('[run.secrets]\ndb = "/etc/pullunit/secrets/db"\n'
                'tls = { path = "/etc/pullunit/secrets/../tls.cred", encrypted = true }\n'
                'plain = { path = "/s/p" }\n')
    assert app.run.secrets == (  # type: ignore[attr-defined]
        Secret("db", Path("/etc/pullunit/secrets/db")),
        Secret("tls", Path("/etc/pullunit/tls.cred"), encrypted=True),
        Secret("plain", Path("/s/p")))


def test_mounts_and_credential_lines() -> None:
    app = parse('[run]\nname = "box"\n[run.secrets]\n"db.pw-1" = "/s/db"\n'
                'k = { path = "/s/k", encrypted = true }\n', name="my.app")
    argv = docker_run_argv(app)  # type: ignore[arg-type]
    i = argv.index("--mount")
    assert argv[i:i + 4] == [
        "--mount", "type=bind,source=/run/credentials/my.app.service/db.pw-1,"
        "target=/run/secrets/db.pw-1,readonly",
        "--mount", "type=bind,source=/run/credentials/my.app.service/k,"
        "target=/run/secrets/k,readonly"]
    secrets = app.run.secrets  # type: ignore[attr-defined]
    assert [s.directive() for s in secrets] == [
        "LoadCredential=db.pw-1:/s/db", "LoadCredentialEncrypted=k:/s/k"]


BAD = [
    ('[run]\nsecrets = ["/s"]\n', "run.secrets: expected a table"),
    ('[run.secrets]\n"a/b" = "/s"\n', "run.secrets.a/b: invalid secret name 'a/b'"),
    ('[run.secrets]\n".." = "/s"\n', "run.secrets...: invalid secret name '..'"),
    ('[run.secrets]\n".hidden" = "/s"\n', "invalid secret name '.hidden'"),
    ('[run.secrets]\n"a,target=/etc" = "/s"\n', "invalid secret name 'a,target=/etc'"),
    ('[run.secrets]\n"a:b" = "/s"\n', "invalid secret name 'a:b'"),
    ('[run.secrets]\n"%n" = "/s"\n', "invalid secret name '%n'"),
    ('[run.secrets]\n"" = "/s"\n', "invalid secret name ''"),
    ('[run.secrets]\n"' + "a" * 256 + '" = "/s"\n', "invalid secret name"),
    ('[run.secrets]\nx = "relative/file"\n', "run.secrets.x: path 'relative/file' must be "
     "absolute"),
    ('[run.secrets]\nx = "/s/%n"\n', "run.secrets.x: path '/s/%n' must not contain '%'"),
    ('[run.secrets]\nx = "/s/${HOME}"\n', "must not contain '%', '$' or '\\'"),
    ('[run.secrets]\nx = "/s/a\\nLoadCredential=y:/etc/shadow"\n',
     "run.secrets.x: value '/s/a\\nLoadCredential=y:/etc/shadow' contains control character"),
    ('[run.secrets]\nx = "/s/a "\n', "run.secrets.x: path '/s/a ' must be an absolute path "
     "without surrounding white space"),
    ('[run.secrets]\nx = ""\n', "run.secrets.x: must not be empty"),
    ("[run.secrets]\nx = 1\n", "run.secrets.x: expected a path or a table"),
    ("[run.secrets]\nx = { encrypted = true }\n", "run.secrets.x.path: is required"),
    ('[run.secrets]\nx = { path = "/s", encrypted = "yes" }\n',
     "run.secrets.x.encrypted: expected true or false"),
    ('[run.secrets]\nx = { path = "/s", encrypt = true }\n',
     "run.secrets.x.encrypt: unknown key 'encrypt'; did you mean 'encrypted'?"),
    ('[run]\nvolumes = ["/srv/x:/run/secrets/db/"]\n[run.secrets]\ndb = "/s"\n',
     "run.volumes[0]: destination /run/secrets/db is where secret 'db' is mounted"),
]


@pytest.mark.parametrize(("text", "message"), BAD, ids=[m[:40] for _, m in BAD])
def test_bad_secret_values(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse(text)
    assert message in e.value.message
    assert e.value.message.startswith("/etc/pullunit/web.toml: run.")


def test_bad_secret_via_cli_is_78_named_and_writes_nothing(config_dir: Path,
                                                          tmp_path: Path) -> None:
    (config_dir / "bad.toml").write_text(HEAD + '[run.secrets]\n"../x" = "/etc/shadow"\n')
    (config_dir / "good.toml").write_text(HEAD + '[run.secrets]\ndb = "/s/db"\n')
    out = tmp_path / "out"
    proc = run_cli("generate", "--config-dir", config_dir, "--output-dir", out,
                   env=cli_env(PULLUNIT_EXECUTABLE=EXE))
    assert proc.returncode == 78
    assert_no_traceback(proc.stderr)
    assert f"{config_dir / 'bad.toml'}: run.secrets.../x: invalid secret name" in proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["good-pull.service", "good.service"]


def test_contents_never_reach_the_units(config_dir: Path, tmp_path: Path) -> None:
    secret = tmp_path / "db"
    secret.write_text("TOPSECRET-b2c7")
    os.chmod(secret, 0o600)
    (config_dir / "web.toml").write_text(HEAD + f'[run.secrets]\ndb = "{secret}"\n')
    out = tmp_path / "out"
    assert generate(config_dir, out, executable=EXE).errors == []
    for unit in out.iterdir():
        assert "TOPSECRET" not in unit.read_text()
    assert f"LoadCredential=db:{secret}\n" in (out / "web.service").read_text()


@pytest.mark.skipif(not sdtools.HAVE_VERIFY, reason="needs systemd-analyze")
def test_units_with_secrets_pass_systemd_analyze_verify(config_dir: Path,
                                                        tmp_path: Path) -> None:
    (config_dir / "web.toml").write_text(
        HEAD + '[run]\nvolumes = ["/srv:/run/secrets"]\n[run.secrets]\n'
        'db = "/etc/pullunit/secrets/a b:c"\nk = { path = "/s/k.cred", encrypted = true }\n'
        '"x.y_z-1" = "/s/x"\n')
    (config_dir / "col:on.toml").write_text(HEAD + '[run]\nname = "colon"\n'
                                            '[run.secrets]\ndb = "/s/db"\n')
    out = tmp_path / "out"
    result = generate(config_dir, out, executable=EXE)
    assert result.errors == []
    proc = sdtools.verify(sorted(out.glob("*.service")))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout + proc.stderr == ""
    if sdtools.HAVE_SYSTEMD_TEST:  # (systemd 252's dump does not show LoadCredential=)
        loaded = sdtools.load_units(sorted(out.glob("*.service")))
        assert loaded.complaints() == [], loaded.stderr
        web = loaded.units["web.service"]
        [start] = web.exec_lines["ExecStart"]
        argv = sdtools.exec_argv(start)
        assert "type=bind,source=/run/credentials/web.service/db,target=/run/secrets/db," \
               "readonly" in argv


def test_validate_warns_about_the_files(config_dir: Path, tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.write_text("x")
    os.chmod(loose, 0o644)
    tight = tmp_path / "tight"
    tight.write_text("x")
    os.chmod(tight, 0o600)
    (config_dir / "web.toml").write_text(
        HEAD + f'[run.secrets]\nmissing = "{tmp_path}/nope"\nloose = "{loose}"\n'
        f'tight = "{tight}"\ndir = "{tmp_path}"\n')
    proc = run_cli("validate", "--config-dir", config_dir)
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert f"run.secrets.missing: {tmp_path}/nope does not exist" in err
    assert "status 243/CREDENTIALS" in err
    assert f"run.secrets.loose: {loose} is readable by every user (mode 0644)" in err
    assert f"run.secrets.dir: {tmp_path} is a directory" in err
    assert "run.secrets.tight" not in err


def test_status_names_the_secrets_when_systemd_could_not_load_them() -> None:
    from pullunit.appsecrets import start_failure

    secrets = (Secret("db", Path("/s/db")), Secret("k", Path("/s/k")))
    said = start_failure(secrets, 243)
    assert said is not None and "243/CREDENTIALS" in said and "/s/db, /s/k" in said
    assert start_failure(secrets, 1) is None
    assert start_failure((), 243) is None  # 243 without secrets: not ours to explain
