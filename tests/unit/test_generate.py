"""pullunit.generate and `pullunit generate`: writing, idempotence, pruning, isolation of
invalid apps, dry runs."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from pullunit import paths
from pullunit.errors import ExitCode, PullunitError
from pullunit.generate import generate, marker_source
from pullunit.render import UnitFile

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
    with pytest.raises(PullunitError) as e:
        generate(config_dir, output_dir, executable=EXE)
    assert e.value.exit_code == ExitCode.CANTCREAT  # ENOSPC: 73, as for every file
    assert "No space left on device" in e.value.message
    assert (output_dir / "web.service").read_bytes() == before
    assert sorted(p.name for p in output_dir.iterdir()) == ["web-pull.service", "web.service"]


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
