"""The `pullunit` command line: version, usage errors, init, validate, exit codes."""

from __future__ import annotations

import argparse
import json
import os
import stat
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from pullunit import __version__
from pullunit.config import load_app

from .conftest import MINIMAL, assert_no_traceback, cli_env, run_cli


def test_version() -> None:
    proc = run_cli("--version")
    assert (proc.returncode, proc.stdout) == (0, f"pullunit {__version__}\n")


def test_module_entry_point() -> None:
    proc = subprocess.run([sys.executable, "-m", "pullunit", "--version"], capture_output=True,
                          text=True, env=cli_env(), timeout=60)
    assert (proc.returncode, proc.stdout) == (0, f"pullunit {__version__}\n")


def test_help_lists_commands_and_exit_codes() -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0
    for word in ("generate", "validate", "init", "64  usage error", "78  configuration error"):
        assert word in proc.stdout


@pytest.mark.parametrize("args", [
    [],
    ["frobnicate"],
    ["generate", "--bogus"],
    ["generate", "--dry"],  # no abbreviations
    ["validate", "--config-dir"],
    ["init", "web"],  # --image is required
    ["init"],
], ids=["no-command", "unknown-command", "unknown-option", "abbreviated-option",
        "option-without-value", "init-without-image", "init-without-app"])
def test_usage_errors_exit_64(args: list[str]) -> None:
    proc = run_cli(*args)
    assert proc.returncode == 64, proc.stderr
    assert "usage: pullunit" in proc.stderr
    assert "error:" in proc.stderr
    assert_no_traceback(proc.stderr)


@pytest.mark.parametrize("command", ["generate", "validate", "init"])
def test_subcommand_help(command: str) -> None:
    proc = run_cli(command, "--help")
    assert proc.returncode == 0
    assert f"usage: pullunit {command}" in proc.stdout
    assert "--config-dir" in proc.stdout


# --- init -------------------------------------------------------------------------------------

def test_init_writes_a_valid_minimal_config(config_dir: Path) -> None:
    proc = run_cli("init", "web", "--image", "ghcr.io/org/web:1.2", "--config-dir", config_dir)
    path = config_dir / "web.toml"
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{path}\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    data = tomllib.loads(path.read_text())
    assert data["image"] == {"ref": "ghcr.io/org/web:1.2", "policy": "missing"}
    app = load_app(path)
    assert str(app.image.ref) == "ghcr.io/org/web:1.2"
    assert app.unit.description == "web (ghcr.io/org/web)"
    assert [p.name for p in config_dir.iterdir()] == ["web.toml"]  # no temp file left
    assert run_cli("validate", path).returncode == 0


def test_init_creates_the_config_dir(tmp_path: Path) -> None:
    cfg = tmp_path / "a" / "b"
    proc = run_cli("init", "web", "--image", "nginx:1", env=cli_env(PULLUNIT_CONFIG_DIR=str(cfg)))
    assert proc.returncode == 0, proc.stderr
    assert (cfg / "web.toml").is_file()


def test_init_refuses_to_overwrite(config_dir: Path, write_app: Callable[..., Path]) -> None:
    path = write_app("web", "# mine\n" + MINIMAL)
    before = path.read_bytes()
    proc = run_cli("init", "web", "--image", "nginx:2", "--config-dir", config_dir)
    assert proc.returncode == 73, proc.stderr
    assert f"{path} already exists; not overwriting it" in proc.stderr
    assert path.read_bytes() == before
    assert sorted(p.name for p in config_dir.iterdir()) == ["web.toml"]
    assert_no_traceback(proc.stderr)


@pytest.mark.parametrize(("app", "image", "message"), [
    ("web", "nginx", "--image: image reference 'nginx' has neither tag nor digest"),
    ("web", "Nginx:1", "--image: invalid image reference 'Nginx:1'"),
    ("bad name", "nginx:1", "app name 'bad name' (the file name) is not a valid unit name"),
    ("x-pull", "nginx:1", "app name 'x-pull' must not end in '-pull'"),
])
def test_init_rejects_bad_arguments_with_64(app: str, image: str, message: str,
                                            config_dir: Path) -> None:
    proc = run_cli("init", app, "--image", image, "--config-dir", config_dir)
    assert proc.returncode == 64, proc.stderr
    assert message in proc.stderr
    assert list(config_dir.iterdir()) == []


def test_init_then_generate(config_dir: Path, output_dir: Path) -> None:
    assert run_cli("init", "web", "--image", "nginx:1.25", "--config-dir",
                   config_dir).returncode == 0
    proc = run_cli("generate", "--config-dir", config_dir, "--output-dir", output_dir)
    assert proc.returncode == 0, proc.stderr
    assert "Description=web (nginx)\n" in (output_dir / "web.service").read_text()


# --- validate ---------------------------------------------------------------------------------

def test_validate_all_apps_of_the_config_dir(config_dir: Path,
                                             write_app: Callable[..., Path]) -> None:
    write_app("a")
    write_app("b")
    proc = run_cli("validate", "--config-dir", config_dir)
    assert proc.returncode == 0
    assert proc.stdout == (f"{config_dir / 'a.toml'}: ok (a-pull.service, a.service)\n"
                           f"{config_dir / 'b.toml'}: ok (b-pull.service, b.service)\n")


def test_validate_by_app_name(config_dir: Path, write_app: Callable[..., Path]) -> None:
    write_app("web")
    proc = run_cli("validate", "--config-dir", config_dir, "web")
    assert proc.returncode == 0
    assert proc.stdout == f"{config_dir / 'web.toml'}: ok (web-pull.service, web.service)\n"


def test_validate_empty_config_dir_warns(config_dir: Path) -> None:
    proc = run_cli("validate", "--config-dir", config_dir)
    assert proc.returncode == 0
    assert proc.stderr == f"pullunit: warning: no app configs (*.toml) in {config_dir}\n"


def test_validate_writes_nothing(config_dir: Path, write_app: Callable[..., Path]) -> None:
    write_app("web")
    before = sorted(config_dir.iterdir())
    run_cli("validate", "--config-dir", config_dir)
    assert sorted(config_dir.iterdir()) == before


def test_examples_validate() -> None:
    from .conftest import EXAMPLES

    proc = run_cli("validate", EXAMPLES / "web.toml", EXAMPLES / "minimal.toml")
    assert proc.returncode == 0, proc.stderr
    # The example's secret files exist only on a host that has them: said, not an error.
    assert all("run.secrets." in line and "does not exist" in line
               for line in proc.stderr.splitlines()), proc.stderr


def test_debug_flag_is_accepted(config_dir: Path) -> None:
    proc = run_cli("--debug", "validate", "--config-dir", config_dir)
    assert proc.returncode == 0


_IMPORT_PROBE = """
import sys
from pullunit.cli import main
rc = main(sys.argv[1:])
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("docker", "pystemd", "requests"))
print(rc, "pullunit.commands.generate" in sys.modules, bad)
"""


def test_generate_does_not_import_docker(config_dir: Path, output_dir: Path,
                                         write_app: Callable[..., Path]) -> None:
    """`pullunit generate` runs on every config change: it must not pay for the Docker SDK."""
    write_app("web")
    proc = subprocess.run([sys.executable, "-c", _IMPORT_PROBE, "generate", "--config-dir",
                           str(config_dir), "--output-dir", str(output_dir)],
                          env=cli_env(), capture_output=True, text=True, timeout=60)
    assert proc.stdout == "0 True []\n", proc.stderr


@pytest.mark.parametrize("argv", [
    ["pull", "web", "--json"], ["--debug", "status", "--config-dir", "/x"],
    ["generate", "--dry-run", "a", "b"], ["rollback", "web", "--to", "sha256:1", "--no-restart"],
])
def test_the_parser_built_for_one_command_reads_it_as_the_whole_one_does(
        argv: list[str]) -> None:
    from pullunit.cli import _command_in, build_parser

    def parsed(parser: argparse.ArgumentParser) -> dict[str, object]:
        return {k: v for k, v in vars(parser.parse_args(argv)).items() if k != "func"}

    assert parsed(build_parser(_command_in(argv))) == parsed(build_parser())

_COLLECTOR_PROBE = """
import gc, sys
from pullunit.cli import main
try:
    rc = main(sys.argv[1:])
except SystemExit as e:
    rc = e.code
print(rc, gc.isenabled(), gc.get_freeze_count() > 0)
"""


@pytest.mark.parametrize(("args", "expect"), [
    (["validate"], "0 True True"),  # start-up's objects frozen, then collected as usual
    (["validate", "--no-such-flag"], "64 True True"),  # a usage error, the same
])
def test_start_up_pauses_the_collector_and_resumes_it(config_dir: Path, args: list[str],
                                                      expect: str,
                                                      write_app: Callable[..., Path]) -> None:
    """The cyclic collector is off while start-up imports (it was a third of a warm start)
    and on again, whatever happened, before anything else runs."""
    write_app("web")
    proc = subprocess.run([sys.executable, "-c", _COLLECTOR_PROBE, *args, "--config-dir",
                           str(config_dir)], env=cli_env(), capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.splitlines()[-1] == expect, proc.stderr


def test_a_caller_that_turned_the_collector_off_keeps_it_off(config_dir: Path) -> None:
    import gc

    from pullunit.cli import main

    gc.disable()
    try:
        assert main(["validate", "--config-dir", str(config_dir)]) == 0
        assert not gc.isenabled()
    finally:
        gc.enable()

@pytest.mark.parametrize("flag", ["--reload", "--enable", "--start"])
def test_systemd_actions_need_systemd_as_pid_1(config_dir: Path, output_dir: Path,
                                               write_app: Callable[..., Path],
                                               flag: str) -> None:
    """This machine has no systemd PID 1: the units are written, then a clear error
    (exit 69), no traceback. (The e2e tier runs these flags under real systemd.)"""
    if os.path.isdir("/run/systemd/system"):
        pytest.skip("systemd is PID 1 here; the e2e tier covers this path")
    write_app("web")
    p = run_cli("generate", "--config-dir", str(config_dir), "--output-dir",
                str(output_dir), flag)
    assert p.returncode == 69, p.stderr
    assert "systemd is not running as PID 1" in p.stderr
    assert_no_traceback(p.stderr)
    assert (output_dir / "web.service").exists()


# --- one broken app among good ones (defects 6 and 8) -------------------------------------

PINNED = '[image]\nref = "nginx@sha256:' + "a" * 64 + '"\n'  # pin and prefetch: no Docker
BROKEN = {
    "400-digit-duration": MINIMAL + "[run]\nrestart_sec = 1" + "0" * 400 + "\n",
    "nested-1000-deep": MINIMAL + "[run]\ncommand = " + "[" * 1000 + "]" * 1000 + "\n",
    "5000-digit-integer": MINIMAL + "[pull]\nkeep = 1" + "0" * 5000 + "\n",
    "typo": MINIMAL + "[run]\nportz = []\n",
}


@pytest.mark.parametrize("broken", list(BROKEN), ids=list(BROKEN))
@pytest.mark.parametrize(("command", "code"), [
    (["validate"], 78), (["generate"], 78), (["status"], 1), (["status", "--json"], 1),
    (["pin", "--check"], 78), (["pin"], 78), (["prefetch"], 78), (["prefetch", "--json"], 78),
], ids=lambda v: " ".join(v) if isinstance(v, list) else str(v))
def test_a_broken_app_fails_alone(command: list[str], code: int, broken: str,
                                  config_dir: Path, output_dir: Path,
                                  write_app: Callable[..., Path]) -> None:
    """Every multi-app command reports the broken app (exit 78 for a config error, 1 for
    status), never exits 70, and still handles the apps before and after it."""
    write_app("a", PINNED)
    bad = write_app("b", BROKEN[broken])
    write_app("c", PINNED)
    args = [*command, "--config-dir", config_dir]
    if command == ["generate"]:
        args += ["--output-dir", output_dir]
    proc = run_cli(*args, env=cli_env(PULLUNIT_RUNTIME_DIR=str(config_dir.parent / "run"),
                                      PULLUNIT_STATE_DIR=str(config_dir.parent / "state"),
                                      DOCKER_HOST="unix:///nonexistent/docker.sock"))
    assert proc.returncode == code, proc.stderr
    assert_no_traceback(proc.stderr)
    assert f"{bad}: " in proc.stderr + proc.stdout
    out = proc.stdout
    if command[0] == "validate":
        assert f"{config_dir / 'a.toml'}: ok" in out and f"{config_dir / 'c.toml'}: ok" in out
    elif command[0] == "generate":
        assert sorted(p.name for p in output_dir.iterdir()) == [
            "a-pull.service", "a.service", "c-pull.service", "c.service"]
    elif command[0] == "pin":
        assert out.count(": pinned in its config") == 2
    elif command == ["prefetch", "--json"]:
        rows = json.loads(out)
        assert [(r["app"], r["status"], r["class"]) for r in rows] == [
            ("a", "skipped", None), ("b", "failed", "config"), ("c", "skipped", None)]
        assert f"{bad}: " in rows[1]["message"]
    elif command == ["status", "--json"]:
        rows = json.loads(out)["apps"]
        assert [(r["app"], r["error"] is None) for r in rows] == [
            ("a", True), ("b", False), ("c", True)]
    else:
        assert "a" in out and "c" in out


def test_doctor_reports_a_broken_app_as_a_failed_check(config_dir: Path,
                                                       write_app: Callable[..., Path]) -> None:
    bad = write_app("b", BROKEN["400-digit-duration"])
    proc = run_cli("doctor", "--json", "--config-dir", config_dir)
    assert proc.returncode == 1, proc.stderr
    assert_no_traceback(proc.stderr)
    [row] = json.loads(proc.stdout)
    assert row["checks"][0]["status"] == "fail"
    assert row["checks"][0]["detail"].startswith(f"{bad}: run.restart_sec: ")


@pytest.mark.parametrize("command", [["pull", "b"], ["rollback", "b"], ["doctor", "b"]])
def test_single_app_commands_exit_78_on_a_broken_config(
        command: list[str], config_dir: Path, write_app: Callable[..., Path]) -> None:
    bad = write_app("b", BROKEN["nested-1000-deep"])
    proc = run_cli(*command, "--config-dir", config_dir,
                   env=cli_env(PULLUNIT_RUNTIME_DIR=str(config_dir.parent / "run"),
                               PULLUNIT_STATE_DIR=str(config_dir.parent / "state")))
    assert proc.returncode == 78, proc.stderr
    assert f"Cannot read {bad}: arrays or tables are nested too deeply" in proc.stderr
    assert_no_traceback(proc.stderr)
