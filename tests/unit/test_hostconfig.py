"""The host-wide CONFIG_DIR/pullunit.toml: validated like an app config (strict keys with
suggestions, file and key named, exit 78), absent = defaults, never taken for an app."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from pullunit.config import app_files, load_app
from pullunit.errors import ConfigError
from pullunit.hostconfig import (
    DEFAULT_MAX_PARALLEL_PULLS,
    DEFAULT_METRICS_DIR,
    HostConfig,
    MetricsConfig,
    load_host,
)

from .conftest import MINIMAL, assert_no_traceback, cli_env, run_cli


def test_absent_file_is_the_defaults(config_dir: Path) -> None:
    host = load_host(config_dir)
    assert host == HostConfig(config_dir / "pullunit.toml")
    assert host.metrics.enabled and not host.metrics.configured
    assert host.metrics.directory == DEFAULT_METRICS_DIR
    assert Path("/var/lib/prometheus/node-exporter") == DEFAULT_METRICS_DIR


def test_metrics_table(config_dir: Path) -> None:
    (config_dir / "pullunit.toml").write_text('[metrics]\ndir = "/srv/prom//textfile/"\n'
                                              "enabled = false\n")
    host = load_host(config_dir)
    assert host.metrics == MetricsConfig(enabled=False, dir=Path("/srv/prom/textfile"))
    assert host.metrics.configured and host.metrics.directory == Path("/srv/prom/textfile")
    with pytest.raises(AttributeError):
        host.metrics.enabled = True  # type: ignore[misc]


def test_max_parallel_pulls(config_dir: Path) -> None:
    assert load_host(config_dir).max_parallel_pulls == DEFAULT_MAX_PARALLEL_PULLS == 3
    for n in (0, 1, 64):
        (config_dir / "pullunit.toml").write_text(f"max_parallel_pulls = {n}\n")
        assert load_host(config_dir).max_parallel_pulls == n


@dataclass(frozen=True)
class Bad:
    id: str
    toml: str | bytes
    expected: str


BAD = [
    Bad("unknown-table", "[metric]\ndir = '/x'\n",
        "metric: unknown table or key 'metric'; did you mean 'metrics'?"),
    Bad("unknown-key", "[metrics]\ndirectory = '/x'\n",
        "metrics.directory: unknown key 'directory'; valid: enabled, dir"),
    Bad("typo-key", "[metrics]\nenabeld = true\n",
        "metrics.enabeld: unknown key 'enabeld'; did you mean 'enabled'?"),
    Bad("relative-dir", "[metrics]\ndir = 'prom'\n",
        "metrics.dir: path 'prom' must be absolute"),
    Bad("dir-with-specifier", "[metrics]\ndir = '/var/%n'\n",
        "metrics.dir: path '/var/%n' must not contain '%', '$' or '\\'"),
    Bad("enabled-not-bool", "[metrics]\nenabled = 'yes'\n",
        "metrics.enabled: expected true or false, got string"),
    Bad("metrics-not-table", "metrics = 3\n", "metrics: expected a table [metrics], got integer"),
    Bad("max-pulls-negative", "max_parallel_pulls = -1\n",
        "max_parallel_pulls: must be between 0 (no limit) and 64, got -1"),
    Bad("max-pulls-string", "max_parallel_pulls = '2'\n",
        "max_parallel_pulls: expected an integer, got string"),
    Bad("max-pulls-typo", "max_parallel_pull = 2\n",
        "did you mean 'max_parallel_pulls'?"),
    Bad("syntax", "[metrics\n", "(at line 1, column 9)"),
    Bad("not-utf8", b"[metrics]\ndir = '\xff'\n", "not valid UTF-8"),
]


@pytest.mark.parametrize("case", BAD, ids=[c.id for c in BAD])
def test_bad_host_config(case: Bad, config_dir: Path, write_app: object) -> None:
    path = config_dir / "pullunit.toml"
    if isinstance(case.toml, bytes):
        path.write_bytes(case.toml)
    else:
        path.write_text(case.toml)
    with pytest.raises(ConfigError) as e:
        load_host(config_dir)
    assert e.value.exit_code == 78
    assert str(path) in e.value.message and case.expected in e.value.message
    # validate checks it with the apps: one line naming the file, exit 78
    (config_dir / "web.toml").write_text(MINIMAL)
    proc = run_cli("validate", "--config-dir", config_dir)
    assert proc.returncode == 78, proc.stderr
    assert case.expected in proc.stderr and str(path) in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert f"{config_dir / 'web.toml'}: ok" in proc.stdout
    assert_no_traceback(proc.stderr)
    # and the commands that read it refuse to run on it (nothing pulled)
    proc = run_cli("pull", "--config-dir", config_dir, "web",
                   env=cli_env(PULLUNIT_STATE_DIR=str(config_dir.parent / "state"),
                               PULLUNIT_RUNTIME_DIR=str(config_dir.parent / "run")))
    assert proc.returncode == 78, proc.stderr
    assert case.expected in proc.stderr
    assert_no_traceback(proc.stderr)
    assert not (config_dir.parent / "state").exists()


def test_validate_says_ok_for_a_good_host_config(config_dir: Path) -> None:
    (config_dir / "pullunit.toml").write_text("[metrics]\nenabled = false\n")
    proc = run_cli("validate", "--config-dir", config_dir)
    assert proc.returncode == 0, proc.stderr
    assert f"{config_dir / 'pullunit.toml'}: ok (host-wide settings)" in proc.stdout
    proc = run_cli("validate", config_dir / "pullunit.toml")
    assert proc.returncode == 0 and "ok (host-wide settings)" in proc.stdout


def test_host_config_is_not_an_app(config_dir: Path, output_dir: Path) -> None:
    (config_dir / "pullunit.toml").write_text("[metrics]\nenabled = true\n")
    (config_dir / "web.toml").write_text(MINIMAL)
    assert [p.name for p in app_files(config_dir)] == ["web.toml"]
    proc = run_cli("generate", "--config-dir", config_dir, "--output-dir", output_dir)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in output_dir.iterdir()) == ["web-pull.service", "web.service"]


def test_an_app_cannot_be_called_pullunit(tmp_path: Path) -> None:
    path = tmp_path / "pullunit.toml"
    path.write_text(MINIMAL)
    with pytest.raises(ConfigError) as e:
        load_app(path)
    assert "app name 'pullunit' is reserved" in e.value.message


@pytest.mark.parametrize("text", ["[metrics]\nx = " + "[" * 2000 + "]" * 2000 + "\n",
                                  "[metrics]\nenabled = 1" + "0" * 5000 + "\n"])
def test_a_host_config_nobody_could_write_is_a_config_error(tmp_path: Path, text: str) -> None:
    """The same reader as app configs: nesting too deep or a number too long is exit 78
    naming the file, never an internal error."""
    (tmp_path / "pullunit.toml").write_text(text)
    with pytest.raises(ConfigError) as e:
        load_host(tmp_path)
    assert str(tmp_path / "pullunit.toml") in e.value.message
