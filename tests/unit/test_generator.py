"""pullunit-generator: the systemd.generator(7) entry point, run as systemd runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pullunit import sdgenerator

from .conftest import BIN, MINIMAL, assert_no_traceback, cli_env, run_cli


def run_generator(config_dir: Path, *dirs: Path, env: dict[str, str] | None = None
                  ) -> subprocess.CompletedProcess[str]:
    return run_cli(*dirs, program="pullunit-generator",
                   env=env or cli_env(PULLUNIT_CONFIG_DIR=str(config_dir)))


def test_writes_units_and_wants_links(config_dir: Path, output_dir: Path,
                                      write_app: Callable[..., Path]) -> None:
    write_app("web")
    write_app("db", MINIMAL + "[unit]\nwanted_by = ['multi-user.target', 'graphical.target']\n")
    write_app("manual", MINIMAL + "[unit]\nwanted_by = []\n")
    proc = run_generator(config_dir, output_dir)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert sorted(p.name for p in output_dir.glob("*.service")) == [
        "db-pull.service", "db.service", "manual-pull.service", "manual.service",
        "web-pull.service", "web.service"]
    links = {str(p.relative_to(output_dir)): os.readlink(p)
             for p in output_dir.glob("*.wants/*")}
    assert links == {
        "multi-user.target.wants/web.service": "../web.service",
        "multi-user.target.wants/db.service": "../db.service",
        "graphical.target.wants/db.service": "../db.service",
    }
    for link in output_dir.glob("*.wants/*"):
        assert link.resolve() == output_dir / link.name  # the links are not dangling


def test_units_match_pullunit_generate(config_dir: Path, output_dir: Path, tmp_path: Path,
                                       write_app: Callable[..., Path]) -> None:
    write_app("web")
    assert run_generator(config_dir, output_dir).returncode == 0
    other = tmp_path / "cli"
    assert run_cli("generate", "--config-dir", config_dir, "--output-dir", other).returncode == 0
    for name in ("web.service", "web-pull.service"):
        assert (output_dir / name).read_text() == (other / name).read_text()


def test_three_directory_form_writes_only_the_normal_dir(
        config_dir: Path, tmp_path: Path, write_app: Callable[..., Path]) -> None:
    write_app("web")
    normal, early, late = (tmp_path / n for n in ("normal", "early", "late"))
    for d in (normal, early, late):
        d.mkdir()
    proc = run_generator(config_dir, normal, early, late)
    assert proc.returncode == 0, proc.stderr
    assert (normal / "web.service").exists()
    assert list(early.iterdir()) == [] and list(late.iterdir()) == []


def test_rerun_is_idempotent(config_dir: Path, output_dir: Path,
                             write_app: Callable[..., Path]) -> None:
    write_app("web")
    assert run_generator(config_dir, output_dir).returncode == 0
    proc = run_generator(config_dir, output_dir)
    assert proc.returncode == 0, proc.stderr
    assert os.readlink(output_dir / "multi-user.target.wants" / "web.service") == "../web.service"


@pytest.mark.parametrize("args", [[], ["a", "b"], ["a", "b", "c", "d"]],
                         ids=["none", "two", "four"])
def test_usage(args: list[str], config_dir: Path) -> None:
    proc = run_generator(config_dir, *map(Path, args))
    assert proc.returncode == 64
    assert proc.stderr == "usage: pullunit-generator NORMAL_DIR [EARLY_DIR LATE_DIR]\n"


def test_missing_config_dir_generates_nothing(tmp_path: Path, output_dir: Path) -> None:
    proc = run_generator(tmp_path / "nope", output_dir)
    assert proc.returncode == 0, proc.stderr
    assert list(output_dir.iterdir()) == []


@pytest.fixture
def shared_dirs() -> Iterator[tuple[Path, Path]]:
    """A config dir and an output dir that an unprivileged user can use."""
    d = Path(tempfile.mkdtemp(prefix="pullunit-gen-", dir="/tmp"))
    try:
        os.chmod(d, 0o755)
        cfg, out = d / "cfg", d / "out"
        cfg.mkdir(mode=0o755)
        out.mkdir()
        os.chmod(out, 0o777)
        yield cfg, out
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None,
                    reason="needs root and setpriv to drop to a user who cannot open /dev/kmsg")
def test_invalid_app_is_logged_and_others_generated(shared_dirs: tuple[Path, Path]) -> None:
    """Without /dev/kmsg (here: not writable for nobody) the log goes to stderr."""
    cfg, out = shared_dirs
    (cfg / "web.toml").write_text(MINIMAL)
    (cfg / "bad.toml").write_text('[image]\nref = "Bad:1"\n')
    for f in cfg.iterdir():
        f.chmod(0o644)
    proc = subprocess.run(
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
         str(BIN / "pullunit-generator"), str(out)],
        env=cli_env(PULLUNIT_CONFIG_DIR=str(cfg)), capture_output=True, text=True, timeout=60,
        cwd="/")
    assert proc.returncode == 1
    assert proc.stderr == (
        f"pullunit-generator: {cfg / 'bad.toml'}: image.ref: invalid image reference 'Bad:1' "
        "(repository names must be lower case); expected [HOST[:PORT]/]PATH[:TAG]"
        "[@sha256:DIGEST]; its units were not generated\n")
    assert sorted(p.name for p in out.glob("*.service")) == ["web-pull.service", "web.service"]
    assert not (out / "bad.service").exists()


def test_log_prefers_kmsg_with_a_priority(monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    written: list[bytes] = []
    real_open = os.open

    def fake_open(path: str, flags: int, *a: int) -> int:
        if path == "/dev/kmsg":
            assert flags & os.O_WRONLY
            return real_open("/dev/null", os.O_WRONLY)
        return real_open(path, flags, *a)

    real_write = os.write

    def fake_write(fd: int, data: bytes) -> int:
        written.append(data)
        return real_write(fd, data)

    monkeypatch.setattr(os, "open", fake_open)
    monkeypatch.setattr(os, "write", fake_write)
    sdgenerator._log(3, "x.toml: run.ports[0]: malformed")
    assert written == [f"<3>pullunit-generator[{os.getpid()}]: x.toml: run.ports[0]: "
                       "malformed\n".encode()]
    assert capsys.readouterr().err == ""


def _no_kmsg(real_open: Callable[..., int]) -> Callable[..., int]:
    def fake_open(path: str, flags: int, *a: int) -> int:
        if path == "/dev/kmsg":
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *a)
    return fake_open


def test_log_falls_back_to_stderr(monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(os, "open", _no_kmsg(os.open))
    sdgenerator._log(3, "something failed")
    assert capsys.readouterr().err == "pullunit-generator: something failed\n"


def test_internal_error_is_logged_not_raised(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    def boom(*a: object, **k: object) -> None:
        raise RuntimeError("kaboom")

    monkeypatch.setattr(sdgenerator, "generate", boom)
    monkeypatch.setattr(os, "open", _no_kmsg(os.open))
    assert sdgenerator.main([str(tmp_path)]) == 1
    assert capsys.readouterr().err == "pullunit-generator: internal error: RuntimeError: kaboom\n"


_IMPORT_PROBE = """
import sys
from pullunit import sdgenerator
rc = sdgenerator.main(sys.argv[1:])
bad = sorted(m for m in sys.modules
             if m.split(".")[0] in ("docker", "pystemd", "requests", "sdnotify", "urllib3"))
print(rc, bad)
"""


def test_never_imports_docker_or_pystemd(config_dir: Path, output_dir: Path,
                                         write_app: Callable[..., Path]) -> None:
    write_app("web")
    write_app("db")
    proc = subprocess.run([sys.executable, "-c", _IMPORT_PROBE, str(output_dir)],
                          env=cli_env(PULLUNIT_CONFIG_DIR=str(config_dir)),
                          capture_output=True, text=True, timeout=60)
    assert proc.stdout == "0 []\n", proc.stderr
    assert (output_dir / "web.service").exists()


def test_console_script_import_time_has_no_docker(config_dir: Path, output_dir: Path,
                                                  write_app: Callable[..., Path]) -> None:
    write_app("web")
    proc = subprocess.run([sys.executable, "-X", "importtime", str(BIN / "pullunit-generator"),
                           str(output_dir)],
                          env=cli_env(PULLUNIT_CONFIG_DIR=str(config_dir)),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    modules = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
               if line.startswith("import time:")}
    assert "pullunit.sdgenerator" in modules and "jinja2" in modules
    assert not {m for m in modules if m.split(".")[0] in ("docker", "pystemd")}


def test_pull_unit_points_at_an_existing_pullunit(config_dir: Path, output_dir: Path,
                                                  write_app: Callable[..., Path]) -> None:
    """systemd runs generators with a minimal PATH. ExecStart= of the pull unit must still
    name the pullunit installed next to this generator, not a guess that may not exist."""
    write_app("web")
    env = cli_env(PULLUNIT_CONFIG_DIR=str(config_dir), PATH="/usr/sbin:/usr/bin:/sbin:/bin")
    del env["PULLUNIT_EXECUTABLE"]
    proc = run_generator(config_dir, output_dir, env=env)
    assert proc.returncode == 0, proc.stderr
    exec_start = next(line for line in (output_dir / "web-pull.service").read_text().splitlines()
                      if line.startswith("ExecStart="))
    executable = exec_start.removeprefix("ExecStart=").split(" ")[0]
    assert os.access(executable, os.X_OK), exec_start
    assert_no_traceback(proc.stderr)
