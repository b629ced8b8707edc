"""pullunit.unitfiles and `pullunit generate`: writing, idempotence, pruning, isolation of
invalid apps, dry runs."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pullunit import paths
from pullunit.config import APP_NAME_MAX
from pullunit.configvalues import ARG_MAX_BYTES
from pullunit.durations import MAX_SECONDS
from pullunit.errors import ExitCode, PullunitError
from pullunit.render import UNIT_LINE_MAX, UnitFile
from pullunit.unitfiles import generate, marker_source

from . import sdtools
from .conftest import BIN, MINIMAL, assert_no_traceback, cli_env, run_cli

EXE = "/usr/bin/true"
OLD = 1_000_000_000 * 10**9  # 2001-09-09, in ns: mtimes that a rewrite would change


def unit_names(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.is_file() and not p.is_symlink())


def age(*files: Path) -> None:
    for f in files:
        os.utime(f, ns=(OLD, OLD))


def snapshot(d: Path) -> dict[str, tuple[bytes, int, int, int]]:
    """name -> (content, mode, inode, mtime_ns) of every regular file."""
    out = {}
    for p in sorted(d.rglob("*")):
        if p.is_file() and not p.is_symlink():
            st = p.stat()
            out[str(p.relative_to(d))] = (p.read_bytes(), stat.S_IMODE(st.st_mode), st.st_ino,
                                          st.st_mtime_ns)
    return out


# --- writing ----------------------------------------------------------------------------------

def test_writes_a_pair_per_app(config_dir: Path, output_dir: Path,
                               write_app: Callable[..., Path]) -> None:
    write_app("web")
    write_app("db", '[image]\nref = "postgres:16"\n')
    result = generate(config_dir, output_dir, executable=EXE)
    assert unit_names(output_dir) == ["db-pull.service", "db.service", "web-pull.service",
                                      "web.service"]
    assert sorted(p.name for p in result.written) == unit_names(output_dir)
    assert result.errors == [] and result.removed == [] and result.changed
    assert [a.name for a in result.apps] == ["db", "web"]
    pull = (output_dir / "web-pull.service").read_text()
    assert f"ExecStart={EXE} pull --config-dir {config_dir} web\n" in pull


def test_files_are_0644_whatever_the_umask(config_dir: Path, output_dir: Path,
                                           write_app: Callable[..., Path]) -> None:
    write_app("web")
    old = os.umask(0o077)
    try:
        generate(config_dir, output_dir, executable=EXE)
    finally:
        os.umask(old)
    for name in ("web.service", "web-pull.service"):
        assert stat.S_IMODE((output_dir / name).stat().st_mode) == 0o644


def test_every_file_starts_with_the_marker(config_dir: Path, output_dir: Path,
                                           write_app: Callable[..., Path]) -> None:
    src = write_app("web")
    generate(config_dir, output_dir, executable=EXE)
    for name in ("web.service", "web-pull.service"):
        first = (output_dir / name).read_text().splitlines()[0]
        assert first == f"{paths.MARKER_PREFIX}{src}; do not edit, run 'pullunit generate'."
        assert marker_source(output_dir / name) == src


def test_writes_are_atomic_replacements(config_dir: Path, output_dir: Path,
                                        write_app: Callable[..., Path]) -> None:
    write_app("web")
    generate(config_dir, output_dir, executable=EXE)
    inode = (output_dir / "web.service").stat().st_ino
    write_app("web", MINIMAL + "[unit]\ndescription = 'changed'\n")
    generate(config_dir, output_dir, executable=EXE)
    assert (output_dir / "web.service").stat().st_ino != inode, "rename, not rewrite in place"
    assert "Description=changed\n" in (output_dir / "web.service").read_text()
    assert [p.name for p in output_dir.iterdir() if p.name.startswith(".")] == []


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(
        config_dir: Path, output_dir: Path, write_app: Callable[..., Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    write_app("web")
    generate(config_dir, output_dir, executable=EXE)
    before = (output_dir / "web.service").read_bytes()
    write_app("web", MINIMAL + "[unit]\ndescription = 'changed'\n")

    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    result = generate(config_dir, output_dir, executable=EXE)
    [error] = result.errors
    assert error.exit_code == ExitCode.CANTCREAT  # ENOSPC: 73, as for every file
    assert "No space left on device" in error.message
    assert result.apps == []  # not generated, so not enabled or started either
    assert (output_dir / "web.service").read_bytes() == before
    assert sorted(p.name for p in output_dir.iterdir()) == ["web-pull.service", "web.service"]


def test_a_unit_that_cannot_be_written_costs_only_its_own_app(
        config_dir: Path, output_dir: Path, write_app: Callable[..., Path]) -> None:
    """Defect 7: one app's OSError (here a directory where its unit goes) used to end the
    run with 74 before the apps after it got their units."""
    for name in ("a", "b", "c"):
        write_app(name)
    (output_dir / "b-pull.service").mkdir()
    proc = run_cli("generate", "--config-dir", config_dir, "--output-dir", output_dir)
    assert proc.returncode == ExitCode.IOERR, proc.stderr
    assert f"Cannot write {output_dir / 'b-pull.service'}: Is a directory" in proc.stderr
    assert unit_names(output_dir) == ["a-pull.service", "a.service", "c-pull.service",
                                      "c.service"]
    assert_no_traceback(proc.stderr)
    assert [p.name for p in output_dir.iterdir() if p.name.startswith(".")] == []


def test_write_errors_outrank_config_errors_in_the_exit_status(
        config_dir: Path, output_dir: Path, write_app: Callable[..., Path]) -> None:
    write_app("a", MINIMAL + "[run]\nportz = []\n")
    write_app("b")
    (output_dir / "b.service").mkdir()
    write_app("c")
    proc = run_cli("generate", "--config-dir", config_dir, "--output-dir", output_dir)
    assert proc.returncode == ExitCode.IOERR, proc.stderr
    assert "run.portz: unknown key" in proc.stderr
    assert unit_names(output_dir) == ["b-pull.service", "c-pull.service", "c.service"]


def test_the_longest_app_name_gets_its_units(config_dir: Path, output_dir: Path,
                                             write_app: Callable[..., Path]) -> None:
    """Defect 7: a 242-character name passed validate, but generate's temp file
    .NAME-pull.service.<12 hex>.new is 273 bytes: exit 74 and no app got units. The
    limit is now APP_NAME_MAX (223: the metrics file's temp name is the longest), and a
    name of exactly that length is written."""
    longest = "n" * APP_NAME_MAX
    write_app(longest, MINIMAL + "[run]\nname = 'long'\n")
    write_app("web")
    proc = run_cli("generate", "--config-dir", config_dir, "--output-dir", output_dir)
    assert proc.returncode == 0, proc.stderr
    assert unit_names(output_dir) == sorted([f"{longest}-pull.service", f"{longest}.service",
                                             "web-pull.service", "web.service"])
    write_app("n" * (APP_NAME_MAX + 1), MINIMAL + "[run]\nname = 'longer'\n")
    proc = run_cli("generate", "--config-dir", config_dir, "--output-dir", output_dir)
    assert proc.returncode == ExitCode.CONFIG, proc.stderr
    assert f"must be 1 to {APP_NAME_MAX} characters" in proc.stderr
    assert len(unit_names(output_dir)) == 4
    assert_no_traceback(proc.stderr)


def test_output_dir_is_created(config_dir: Path, tmp_path: Path,
                               write_app: Callable[..., Path]) -> None:
    write_app("web")
    out = tmp_path / "new" / "dir"
    generate(config_dir, out, executable=EXE)
    assert unit_names(out) == ["web-pull.service", "web.service"]


def test_unwritable_output_dir_is_an_io_error(config_dir: Path, tmp_path: Path,
                                              write_app: Callable[..., Path]) -> None:
    write_app("web")
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    proc = run_cli("generate", "--config-dir", config_dir, "--output-dir", not_a_dir)
    assert proc.returncode == ExitCode.IOERR
    assert f"Cannot write {not_a_dir}/" in proc.stderr
    assert_no_traceback(proc.stderr)


def test_newline_in_directory_name_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(PullunitError) as e:
        generate(tmp_path / "a\nb", tmp_path, executable=EXE)
    assert e.value.exit_code == ExitCode.USAGE


# --- idempotence ------------------------------------------------------------------------------

def test_second_run_rewrites_nothing(config_dir: Path, output_dir: Path,
                                     write_app: Callable[..., Path]) -> None:
    write_app("web")
    write_app("db", '[image]\nref = "postgres:16"\n')
    generate(config_dir, output_dir, executable=EXE)
    age(*output_dir.iterdir())
    before = snapshot(output_dir)
    result = generate(config_dir, output_dir, executable=EXE)
    assert result.written == [] and result.removed == [] and not result.changed
    assert len(result.unchanged) == 4
    assert snapshot(output_dir) == before  # same bytes, mode, inode and mtime


def test_only_the_changed_app_is_rewritten(config_dir: Path, output_dir: Path,
                                           write_app: Callable[..., Path]) -> None:
    write_app("web")
    write_app("db", '[image]\nref = "postgres:16"\n')
    generate(config_dir, output_dir, executable=EXE)
    age(*output_dir.iterdir())
    write_app("db", '[image]\nref = "postgres:17"\n')
    result = generate(config_dir, output_dir, executable=EXE)
    assert sorted(p.name for p in result.written) == ["db-pull.service", "db.service"]
    assert (output_dir / "web.service").stat().st_mtime_ns == OLD
    assert (output_dir / "db.service").stat().st_mtime_ns != OLD


def test_wrong_mode_is_repaired(config_dir: Path, output_dir: Path,
                                write_app: Callable[..., Path]) -> None:
    write_app("web")
    generate(config_dir, output_dir, executable=EXE)
    os.chmod(output_dir / "web.service", 0o600)
    result = generate(config_dir, output_dir, executable=EXE)
    assert [p.name for p in result.written] == ["web.service"]
    assert stat.S_IMODE((output_dir / "web.service").stat().st_mode) == 0o644


def test_hand_edited_unit_is_restored(config_dir: Path, output_dir: Path,
                                      write_app: Callable[..., Path]) -> None:
    write_app("web")
    generate(config_dir, output_dir, executable=EXE)
    good = (output_dir / "web.service").read_text()
    (output_dir / "web.service").write_text(good.replace("Restart=on-failure", "Restart=no"))
    generate(config_dir, output_dir, executable=EXE)
    assert (output_dir / "web.service").read_text() == good


# --- pruning ----------------------------------------------------------------------------------

HAND_WRITTEN = "[Unit]\nDescription=hand written\n[Service]\nExecStart=/usr/bin/true\n"


def test_prune_removes_units_whose_config_is_gone(config_dir: Path, output_dir: Path,
                                                  write_app: Callable[..., Path]) -> None:
    write_app("web")
    gone = write_app("old")
    generate(config_dir, output_dir, executable=EXE)
    wants = output_dir / "multi-user.target.wants"
    wants.mkdir()
    (wants / "old.service").symlink_to("../old.service")
    (wants / "web.service").symlink_to("../web.service")
    gone.unlink()
    result = generate(config_dir, output_dir, executable=EXE)
    assert sorted(p.name for p in result.removed) == ["old-pull.service", "old.service"]
    assert unit_names(output_dir) == ["web-pull.service", "web.service"]
    assert sorted(p.name for p in wants.iterdir()) == ["web.service"]


def test_prune_never_touches_hand_written_units(config_dir: Path, output_dir: Path,
                                                write_app: Callable[..., Path]) -> None:
    write_app("web")
    (output_dir / "mine.service").write_text(HAND_WRITTEN)
    # Mentions pullunit, but not as the first line: still the admin's file.
    (output_dir / "other.service").write_text(
        "# my notes\n# Generated by pullunit from /nonexistent/x.toml; do not edit\n"
        + HAND_WRITTEN)
    (output_dir / "notes.txt").write_text(f"{paths.MARKER_PREFIX}/nonexistent/x.toml\n")
    age(*output_dir.iterdir())
    before = snapshot(output_dir)
    generate(config_dir, output_dir, executable=EXE)
    after = snapshot(output_dir)
    for name in ("mine.service", "other.service", "notes.txt"):
        assert after[name] == before[name]


def test_prune_keeps_units_of_an_app_that_is_now_invalid(
        config_dir: Path, output_dir: Path, write_app: Callable[..., Path]) -> None:
    write_app("web")
    write_app("db", '[image]\nref = "postgres:16"\n')
    generate(config_dir, output_dir, executable=EXE)
    age(*output_dir.iterdir())
    before = snapshot(output_dir)
    write_app("db", '[image]\nref = "postgres:17"\n[run]\nportz = []\n')  # typo
    result = generate(config_dir, output_dir, executable=EXE)
    assert result.removed == []
    assert [e.message.split(": ", 2)[1] for e in result.errors] == ["run.portz"]
    assert snapshot(output_dir) == before


def test_prune_keeps_units_whose_source_lives_elsewhere(
        config_dir: Path, output_dir: Path, tmp_path: Path,
        write_app: Callable[..., Path]) -> None:
    other = tmp_path / "other-config"
    other.mkdir()
    (other / "side.toml").write_text(MINIMAL)
    generate(other, output_dir, executable=EXE)
    write_app("web")
    result = generate(config_dir, output_dir, executable=EXE)
    assert result.removed == []
    assert "side.service" in unit_names(output_dir)


def test_prune_skips_symlinks(config_dir: Path, output_dir: Path, tmp_path: Path,
                              write_app: Callable[..., Path]) -> None:
    gone = write_app("gone")
    generate(config_dir, output_dir, executable=EXE)
    (output_dir / "alias.service").symlink_to(output_dir / "gone.service")
    gone.unlink()
    generate(config_dir, output_dir, executable=EXE)
    assert (output_dir / "alias.service").is_symlink()


def test_selected_generate_does_not_prune(config_dir: Path, output_dir: Path,
                                          write_app: Callable[..., Path]) -> None:
    write_app("web")
    gone = write_app("old")
    generate(config_dir, output_dir, executable=EXE)
    gone.unlink()
    result = generate(config_dir, output_dir, selected=[config_dir / "web.toml"],
                      executable=EXE)
    assert result.removed == []
    assert "old.service" in unit_names(output_dir)
    proc = run_cli("generate", "--config-dir", config_dir, "--output-dir", output_dir, "web")
    assert proc.returncode == 0, proc.stderr
    assert "old.service" in unit_names(output_dir)
    proc = run_cli("generate", "--config-dir", config_dir, "--output-dir", output_dir)
    assert proc.returncode == 0, proc.stderr
    assert f"removed {output_dir / 'old.service'} (its config is gone)" in proc.stderr
    assert unit_names(output_dir) == ["web-pull.service", "web.service"]


# --- invalid apps -----------------------------------------------------------------------------

def test_invalid_app_is_reported_and_others_are_generated(
        config_dir: Path, output_dir: Path, write_app: Callable[..., Path]) -> None:
    write_app("a")
    bad = write_app("b", '[image]\nref = "Bad:1"\n')
    write_app("c")
    result = generate(config_dir, output_dir, executable=EXE)
    assert [e.message for e in result.errors] == [
        f"{bad}: image.ref: invalid image reference 'Bad:1' (repository names must be lower "
        "case); expected [HOST[:PORT]/]PATH[:TAG][@sha256:DIGEST]"]
    assert unit_names(output_dir) == ["a-pull.service", "a.service", "c-pull.service",
                                      "c.service"]

    proc = run_cli("generate", "--config-dir", config_dir, "--output-dir", output_dir)
    assert proc.returncode == 78
    assert f"{bad}: image.ref: invalid image reference 'Bad:1'" in proc.stderr
    assert unit_names(output_dir) == ["a-pull.service", "a.service", "c-pull.service",
                                      "c.service"]
    assert_no_traceback(proc.stderr)


def test_invalid_app_changes_none_of_its_files(config_dir: Path, output_dir: Path,
                                               write_app: Callable[..., Path]) -> None:
    write_app("web")
    generate(config_dir, output_dir, executable=EXE)
    age(*output_dir.iterdir())
    before = snapshot(output_dir)
    # Valid TOML, a changed description, and one bad key: nothing of web may change.
    write_app("web", MINIMAL + "[unit]\ndescription = 'new'\n[run]\nports = ['80:']\n")
    proc = run_cli("generate", "--config-dir", config_dir, "--output-dir", output_dir)
    assert proc.returncode == 78
    assert snapshot(output_dir) == before


def test_broken_admin_template_is_a_config_error_per_app(
        config_dir: Path, output_dir: Path, write_app: Callable[..., Path]) -> None:
    write_app("web")
    (config_dir / "templates").mkdir()
    (config_dir / "templates" / "run.service.j2").write_text("{% if %}\n")
    proc = run_cli("generate", "--config-dir", config_dir, "--output-dir", output_dir)
    assert proc.returncode == 78
    assert f"{config_dir / 'web.toml'}: cannot render units:" in proc.stderr
    assert unit_names(output_dir) == []
    assert_no_traceback(proc.stderr)


@pytest.mark.parametrize("broken", [
    "[run]\nrestart_sec = 1" + "0" * 400 + "\n",
    "[run]\ncommand = " + "[" * 1000 + "]" * 1000 + "\n",
], ids=["400-digit-duration", "nested-1000-deep"])
def test_generating_one_app_ignores_a_broken_neighbour(
        broken: str, config_dir: Path, output_dir: Path,
        write_app: Callable[..., Path]) -> None:
    """Defect 6: `generate web` reads the other configs for their container names; one
    that Python could not hold made it exit 70."""
    write_app("web")
    write_app("broken", MINIMAL + broken)
    proc = run_cli("generate", "--config-dir", config_dir, "--output-dir", output_dir, "web")
    assert proc.returncode == 0, proc.stderr
    assert unit_names(output_dir) == ["web-pull.service", "web.service"]


def test_unknown_app_on_the_command_line(config_dir: Path, output_dir: Path,
                                         write_app: Callable[..., Path]) -> None:
    write_app("web")
    proc = run_cli("generate", "--config-dir", config_dir, "--output-dir", output_dir,
                   "ghost", "web")
    assert proc.returncode == 78
    assert "No config for app 'ghost'" in proc.stderr
    assert unit_names(output_dir) == ["web-pull.service", "web.service"]


# --- dry run ----------------------------------------------------------------------------------

def test_dry_run_writes_nothing(config_dir: Path, tmp_path: Path,
                                write_app: Callable[..., Path]) -> None:
    write_app("web")
    out = tmp_path / "not-yet"
    units: list[UnitFile] = []
    result = generate(config_dir, out, dry_run=True, out=units, executable=EXE)
    assert not out.exists()
    assert [u.name for u in units] == ["web-pull.service", "web.service"]
    assert result.written == []

    proc = run_cli("generate", "--dry-run", "--config-dir", config_dir, "--output-dir", out)
    assert proc.returncode == 0, proc.stderr
    assert not out.exists()
    assert f"# --- {out / 'web.service'}\n{paths.MARKER_PREFIX}" in proc.stdout
    assert f"ExecStart={EXE} pull --config-dir {config_dir} web\n" in proc.stdout


def test_dry_run_prunes_nothing(config_dir: Path, output_dir: Path,
                                write_app: Callable[..., Path]) -> None:
    gone = write_app("gone")
    generate(config_dir, output_dir, executable=EXE)
    gone.unlink()
    before = snapshot(output_dir)
    result = generate(config_dir, output_dir, dry_run=True, executable=EXE)
    assert sorted(p.name for p in result.removed) == ["gone-pull.service", "gone.service"]
    assert snapshot(output_dir) == before
    proc = run_cli("generate", "--dry-run", "--config-dir", config_dir, "--output-dir",
                   output_dir)
    assert proc.returncode == 0
    assert snapshot(output_dir) == before


# --- the CLI ----------------------------------------------------------------------------------

def test_cli_reports_what_it_did(config_dir: Path, output_dir: Path,
                                 write_app: Callable[..., Path]) -> None:
    write_app("web")
    proc = run_cli("generate", "--config-dir", config_dir, "--output-dir", output_dir)
    assert proc.returncode == 0
    assert f"wrote {output_dir / 'web.service'}" in proc.stderr
    proc = run_cli("generate", "--config-dir", config_dir, "--output-dir", output_dir)
    assert proc.returncode == 0
    assert proc.stderr == f"1 app(s), units up to date in {output_dir}\n"


def test_config_dir_from_environment(config_dir: Path, output_dir: Path,
                                     write_app: Callable[..., Path]) -> None:
    write_app("web")
    proc = run_cli("generate", "--output-dir", output_dir,
                   env=cli_env(PULLUNIT_CONFIG_DIR=str(config_dir)))
    assert proc.returncode == 0, proc.stderr
    assert unit_names(output_dir) == ["web-pull.service", "web.service"]


def test_pull_unit_runs_this_pullunit_by_default(config_dir: Path, output_dir: Path,
                                                 write_app: Callable[..., Path]) -> None:
    write_app("web")
    env = cli_env()
    del env["PULLUNIT_EXECUTABLE"]
    proc = run_cli("generate", "--config-dir", config_dir, "--output-dir", output_dir, env=env)
    assert proc.returncode == 0, proc.stderr
    pull = (output_dir / "web-pull.service").read_text()
    assert f"ExecStart={BIN / 'pullunit'} pull --config-dir {config_dir} web\n" in pull


def test_relative_config_dir_is_made_absolute(config_dir: Path, output_dir: Path,
                                              write_app: Callable[..., Path]) -> None:
    """Units run with cwd=/ and prune runs from anywhere: a relative config dir must not
    leak into ExecStart= or the marker."""
    write_app("web")
    proc = run_cli("generate", "--config-dir", config_dir.name, "--output-dir", output_dir,
                   cwd=config_dir.parent)
    assert proc.returncode == 0, proc.stderr
    pull = (output_dir / "web-pull.service").read_text()
    assert f"ExecStart={EXE} pull --config-dir {config_dir} web\n" in pull
    assert marker_source(output_dir / "web.service") == config_dir / "web.toml"


def test_invalid_app_units_survive_a_run_from_another_directory(
        config_dir: Path, output_dir: Path, write_app: Callable[..., Path]) -> None:
    """Generated with a relative --config-dir, then (config now invalid) regenerated from
    another working directory: the units of the invalid app must be kept."""
    write_app("web")
    proc = run_cli("generate", "--config-dir", config_dir.name, "--output-dir", output_dir,
                   cwd=config_dir.parent)
    assert proc.returncode == 0, proc.stderr
    write_app("web", MINIMAL + "[run]\nportz = []\n")
    proc = run_cli("generate", "--config-dir", config_dir, "--output-dir", output_dir, cwd="/")
    assert proc.returncode == 78
    assert unit_names(output_dir) == ["web-pull.service", "web.service"]


def test_two_apps_with_one_container_name(config_dir: Path, output_dir: Path,
                                          write_app: Callable[..., Path]) -> None:
    """b would `docker rm --force` a's container: b is reported and not written; a and c
    are generated. Generating b alone is refused the same way."""
    same = '[image]\nref = "nginx:1.25"\n[run]\nname = "shared"\n'
    write_app("a", same)
    b = write_app("b", same)
    write_app("c")
    result = generate(config_dir, output_dir, executable=EXE)
    assert unit_names(output_dir) == ["a-pull.service", "a.service", "c-pull.service",
                                      "c.service"]
    assert [e.message.split(": ")[:2] for e in result.errors] == [[str(b), "run.name"]]
    assert "'shared' is already used by" in result.errors[0].message
    assert [a.name for a in result.apps] == ["a", "c"]
    alone = generate(config_dir, output_dir, executable=EXE, selected=[b])
    assert len(alone.errors) == 1 and not (output_dir / "b.service").exists()


# --- against systemd's own parser (defects 12 and 18) ---------------------------------------

needs_systemd = pytest.mark.skipif(not sdtools.HAVE_SYSTEMD_TEST,
                                   reason="needs /lib/systemd/systemd --test")
# systemd 252 parses time spans into a uint64 of microseconds and refuses the top of it
SYSTEMD_SECONDS_MAX = (2**64 - 1) // 10**6 - 1


def _systemd_usec(span: str) -> int:
    """A time span as systemd reads it (the dump shows e.g. "292y 3month 1w ...")."""
    proc = subprocess.run(["systemd-analyze", "timespan", span], capture_output=True,
                          text=True, timeout=30, check=True)
    [usec] = [ln.split(":", 1)[1] for ln in proc.stdout.splitlines()
              if ln.strip().startswith("\u03bcs:")]
    return int(usec)


def _generate_cli(config_dir: Path, output_dir: Path, **env: str) -> None:
    proc = run_cli("generate", "--config-dir", config_dir, "--output-dir", output_dir,
                   env=cli_env(**env))
    assert proc.returncode == 0, proc.stderr


@needs_systemd
def test_time_values_at_the_limit_load_in_systemd(config_dir: Path, output_dir: Path,
                                                  write_app: Callable[..., Path]) -> None:
    """The longest restart_sec and stop_timeout validate accepts reach systemd as exactly
    that span. Beyond systemd's own limit a unit's value is "Failed to parse" and ignored
    (what validate used to let through); pullunit's limit is lower still."""
    assert MAX_SECONDS < SYSTEMD_SECONDS_MAX
    write_app("web", MINIMAL + f"[run]\nrestart_sec = {MAX_SECONDS}\n"
              f"stop_timeout = '{MAX_SECONDS}s'\n")
    _generate_cli(config_dir, output_dir)
    # The check itself: a unit with a time just beyond systemd's limit.
    ignored = output_dir / "ignored.service"
    ignored.write_text("[Service]\nExecStart=/usr/bin/true\n"
                       f"RestartSec={SYSTEMD_SECONDS_MAX + 1}s\n")
    result = sdtools.load_units([output_dir / "web.service", output_dir / "web-pull.service",
                                 ignored])
    web = result.units["web.service"]
    assert web.load_state == "loaded"
    assert _systemd_usec(web.properties["RestartSec"][0]) == MAX_SECONDS * 10**6
    assert _systemd_usec(web.properties["TimeoutStopSec"][0]) == (MAX_SECONDS + 15) * 10**6
    [stop] = web.exec_lines["ExecStop"]
    assert sdtools.exec_argv(stop) == [paths.DOCKER, "stop", "--time", str(MAX_SECONDS), "web"]
    assert [c for c in result.complaints() if "web" in c] == []
    assert any("ignored.service" in c and "Failed to parse" in c for c in result.complaints())


def _exec_start_line(output_dir: Path) -> str:
    [line] = [ln for ln in (output_dir / "web.service").read_text().splitlines()
              if ln.startswith("ExecStart=")]
    return line


@needs_systemd
def test_a_line_at_systemds_limit_loads_and_one_byte_more_is_refused(
        config_dir: Path, output_dir: Path, write_app: Callable[..., Path]) -> None:
    """400 arguments of 3,000 characters made an ExecStart= line systemd refuses ("No
    buffer space available"): the unit did not load at all. A line of exactly
    UNIT_LINE_MAX bytes loads; one byte more is exit 78 from validate and generate."""
    words = ["x" * 100_000] * 10

    def write(pad: int) -> Path:
        return write_app("web", MINIMAL + "[run]\ncommand = " + json.dumps([*words, "y" * pad])
                         + "\n")

    write(1)
    _generate_cli(config_dir, output_dir)
    pad = 1 + UNIT_LINE_MAX - len(_exec_start_line(output_dir).encode())
    write(pad)
    _generate_cli(config_dir, output_dir)
    assert len(_exec_start_line(output_dir).encode()) == UNIT_LINE_MAX
    at_limit = output_dir / "web.service"
    # The check itself: the same unit with one byte more, written by hand.
    over = output_dir / "over.service"
    over.write_text(at_limit.read_text().replace("y" * pad, "y" * (pad + 1)))
    result = sdtools.load_units([at_limit, output_dir / "web-pull.service", over])
    web = result.units["web.service"]
    assert web.load_state == "loaded"
    [start] = web.exec_lines["ExecStart"]
    assert sdtools.exec_argv(start)[-11:] == [*words, "y" * pad]
    assert result.units["over.service"].load_state == "error"
    assert any("No buffer space available" in c for c in result.complaints())

    path = write(pad + 1)
    for command in (["validate"], ["generate", "--output-dir", str(output_dir)]):
        proc = run_cli(*command, "--config-dir", config_dir)
        assert proc.returncode == ExitCode.CONFIG, proc.stderr
        assert (f"{path}: run: ExecStart= of web.service would be a line of "
                f"{UNIT_LINE_MAX + 1} bytes; systemd reads at most {UNIT_LINE_MAX} bytes per "
                "line (LONG_LINE_MAX) and would not load the unit") in proc.stderr
        assert_no_traceback(proc.stderr)
    assert len(_exec_start_line(output_dir).encode()) == UNIT_LINE_MAX  # left as it was


def test_one_argument_at_the_kernels_limit_runs_and_one_byte_more_does_not(
        tmp_path: Path) -> None:
    """ARG_MAX_BYTES is Linux's MAX_ARG_STRLEN (32 pages with the NUL) on 4 KiB pages;
    validate refuses longer values, which would make docker run fail with E2BIG."""
    subprocess.run(["/bin/true", "x" * ARG_MAX_BYTES], check=True, timeout=30)
    if os.sysconf("SC_PAGE_SIZE") == 4096:
        with pytest.raises(OSError) as e:
            subprocess.run(["/bin/true", "x" * (ARG_MAX_BYTES + 1)], timeout=30)
        assert e.value.errno == errno.E2BIG


RELOCATED_RUNTIME = "/run/pu rt 100%n $x"
RELOCATED_STATE = "/var/lib/pu \"st\" \\ %i"


@needs_systemd
def test_relocated_dirs_are_baked_into_the_pull_unit(config_dir: Path, output_dir: Path,
                                                     write_app: Callable[..., Path]) -> None:
    """Defect 18: with PULLUNIT_RUNTIME_DIR set, the run unit read its env file there while
    the puller under systemd (no such variable) wrote /run/pullunit/APP.env. Now the pull
    unit's Environment= carries both relocated dirs, exactly, through systemd's parser, and
    the env file the puller writes under it is the one the run unit reads."""
    write_app("web")
    _generate_cli(config_dir, output_dir, PULLUNIT_RUNTIME_DIR=RELOCATED_RUNTIME,
                  PULLUNIT_STATE_DIR=RELOCATED_STATE)
    result = sdtools.load_units([output_dir / "web.service", output_dir / "web-pull.service"])
    assert result.complaints() == [], result.stderr
    pull, run = result.units["web-pull.service"], result.units["web.service"]
    environment = dict(a.split("=", 1) for a in pull.properties["Environment"])
    assert environment == {"PULLUNIT_RUNTIME_DIR": RELOCATED_RUNTIME,
                           "PULLUNIT_STATE_DIR": RELOCATED_STATE}
    [env_file] = run.properties["EnvironmentFile"]
    # What the puller computes with the environment systemd gives it:
    probe = subprocess.run(
        [sys.executable, "-c", "from pullunit import paths; print(paths.env_file('web'), "
         "paths.state_file('web'), sep='\\n')"],
        env={"PATH": os.environ["PATH"], **environment}, cwd="/", capture_output=True,
        text=True, timeout=60, check=True)
    assert probe.stdout.splitlines() == [env_file.split(" (ignore_errors=")[0],
                                         f"{RELOCATED_STATE}/web.json"]
    assert env_file.startswith(f"{RELOCATED_RUNTIME}/web.env")


def test_relative_relocated_dir_is_made_absolute(config_dir: Path, output_dir: Path,
                                                 write_app: Callable[..., Path]) -> None:
    write_app("web")
    proc = run_cli("generate", "--config-dir", config_dir, "--output-dir", output_dir,
                   cwd=config_dir.parent, env=cli_env(PULLUNIT_RUNTIME_DIR="rt"))
    assert proc.returncode == 0, proc.stderr
    runtime = config_dir.parent / "rt"
    assert f'Environment="PULLUNIT_RUNTIME_DIR={runtime}"\n' in (
        output_dir / "web-pull.service").read_text()
    assert f"EnvironmentFile={runtime}/web.env\n" in (output_dir / "web.service").read_text()


def test_default_dirs_add_no_environment(config_dir: Path, output_dir: Path,
                                         write_app: Callable[..., Path]) -> None:
    write_app("web")
    _generate_cli(config_dir, output_dir)
    assert "Environment=" not in (output_dir / "web-pull.service").read_text()
    assert "EnvironmentFile=/run/pullunit/web.env\n" in (output_dir / "web.service").read_text()


def test_control_character_in_a_relocated_dir_is_a_usage_error(
        config_dir: Path, output_dir: Path, write_app: Callable[..., Path]) -> None:
    write_app("web")
    proc = run_cli("generate", "--config-dir", config_dir, "--output-dir", output_dir,
                   env=cli_env(PULLUNIT_STATE_DIR="/var/lib/a\tb"))
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    assert "PULLUNIT_STATE_DIR contains control character '\\t'" in proc.stderr
    assert list(output_dir.iterdir()) == []


def test_a_unit_that_cannot_be_pruned_is_reported(
        config_dir: Path, output_dir: Path, write_app: Callable[..., Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An OSError removing one stale unit is reported (74 from the CLI) and costs nothing
    else: the other stale units are still pruned, the live ones still written."""
    write_app("web")
    gone, old = write_app("gone"), write_app("old")
    generate(config_dir, output_dir, executable=EXE)
    gone.unlink()
    old.unlink()
    real_unlink = Path.unlink

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if self.name == "gone.service":
            raise OSError(30, "Read-only file system")
        real_unlink(self, missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    result = generate(config_dir, output_dir, executable=EXE)
    assert [e.message for e in result.errors] == [
        f"Cannot remove {output_dir / 'gone.service'}: Read-only file system"]
    assert sorted(p.name for p in result.removed) == [
        "gone-pull.service", "old-pull.service", "old.service"]
    assert unit_names(output_dir) == ["gone.service", "web-pull.service", "web.service"]
