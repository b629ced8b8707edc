"""pullunit.render: unit files compared byte for byte with golden files.

Regenerate after an intended change with
    PULLUNIT_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/unit/test_render_golden.py
and review the diff of tests/unit/golden/.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest

from pullunit import paths
from pullunit.config import DEFAULT_CONFIG_DIR, AppConfig, parse_app
from pullunit.errors import ConfigError
from pullunit.render import (
    IMAGE_VARIABLE,
    UnitFile,
    docker_run_argv,
    make_environment,
    pull_argv,
    render_app,
    start_commands,
)

from .conftest import EXAMPLES

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("PULLUNIT_UPDATE_GOLDEN") == "1"
EXECUTABLE = "/usr/bin/pullunit"

# (golden name, source toml, config dir written into the pull unit)
CASES = [
    ("web", EXAMPLES / "web.toml", DEFAULT_CONFIG_DIR),
    ("minimal", EXAMPLES / "minimal.toml", DEFAULT_CONFIG_DIR),
    ("tricky", GOLDEN / "tricky.toml", Path("/srv/pullunit conf")),
]


def load_as_installed(source: Path, config_dir: Path) -> AppConfig:
    """The app as if its file were config_dir/NAME.toml (the path goes into the marker)."""
    name = source.name.removesuffix(".toml")
    return parse_app(name, tomllib.loads(source.read_text()), config_dir / source.name)


def render(source: Path, config_dir: Path, tmp_path: Path) -> list[UnitFile]:
    app = load_as_installed(source, config_dir)
    # Templates from the code only: tmp_path/templates does not exist.
    return render_app(app, make_environment(tmp_path), config_dir, EXECUTABLE)


@pytest.mark.parametrize(("name", "source", "config_dir"), CASES, ids=[c[0] for c in CASES])
def test_golden(name: str, source: Path, config_dir: Path, tmp_path: Path) -> None:
    units = render(source, config_dir, tmp_path)
    assert [u.name for u in units] == [f"{name}-pull.service", f"{name}.service"]
    for unit in units:
        golden = GOLDEN / unit.name
        if UPDATE:
            golden.write_text(unit.text, encoding="utf-8")
        assert golden.exists(), f"missing {golden}; run with PULLUNIT_UPDATE_GOLDEN=1"
        assert unit.text == golden.read_text(encoding="utf-8"), unit.name


@pytest.mark.parametrize(("name", "source", "config_dir"), CASES, ids=[c[0] for c in CASES])
def test_marker_is_the_first_line(name: str, source: Path, config_dir: Path,
                                  tmp_path: Path) -> None:
    for unit in render(source, config_dir, tmp_path):
        first = unit.text.splitlines()[0]
        assert first == (f"{paths.MARKER_PREFIX}{config_dir / source.name}; do not edit, "
                         "run 'pullunit generate'.")
        assert "do not edit" in first


def test_golden_units_have_no_stray_lines() -> None:
    for golden in sorted(GOLDEN.glob("*.service")):
        text = golden.read_text()
        assert text.endswith("\n") and not text.endswith("\n\n"), golden.name
        for line in text.splitlines():
            assert line == line.rstrip(), f"{golden.name}: trailing white space: {line!r}"
            assert "{{" not in line and "{%" not in line, golden.name


def test_docker_run_argv_of_the_full_example() -> None:
    app = load_as_installed(EXAMPLES / "web.toml", DEFAULT_CONFIG_DIR)
    assert docker_run_argv(app) == [
        "/usr/bin/docker", "run", "--rm", "--name", "web", "--pull=never",
        "--label", "pullunit.app=web",
        "--entrypoint", "/usr/local/bin/web",
        "--env", "TZ=Europe/Berlin", "--env", "GREETING=hello, world",
        "--env-file", "/etc/pullunit/web.env",
        "--publish", "8080:80", "--publish", "127.0.0.1:8443:443/tcp",
        "--volume", "/srv/web/data:/data", "--volume", "web-cache:/var/cache/web:rw",
        "--mount", "type=bind,source=/run/credentials/web.service/db_password,"
        "target=/run/secrets/db_password,readonly",
        "--mount", "type=bind,source=/run/credentials/web.service/tls_key,"
        "target=/run/secrets/tls_key,readonly",
        "--network", "shop-front", "--network-alias", "web", "--network-alias", "www",
        "--ip", "172.30.0.10", "--user", "1000:1000",
        "--memory", "512m", "--memory-swap", "1g", "--cpus", "1.5", "--pids-limit", "200",
        "--shm-size", "128m", "--ulimit", "nofile=4096:8192", "--ulimit", "core=0",
        "--log-driver", "local", "--log-opt", "max-size=10m", "--log-opt", "max-file=3",
        "--read-only", "--tmpfs", "/tmp:size=64m,mode=1777", "--tmpfs", "/run",
        "--cap-add", "NET_BIND_SERVICE", "--cap-drop", "ALL",
        "--security-opt", "apparmor=docker-default",
        "--security-opt", "no-new-privileges=true", "--device", "/dev/fuse",
        "--group-add", "audio", "--group-add", "1001",
        "--sysctl", "net.ipv4.ip_unprivileged_port_start=80", "--hostname", "web-1",
        "--dns", "10.0.0.2", "--dns-search", "shop.internal",
        "--add-host", "db.shop.internal:10.0.0.5", "--add-host", "host.internal:host-gateway",
        "--label", "com.example.team=shop", "--label", "com.example.tier=front",
        "--workdir", "/srv/web", "--init", "--stop-signal", "SIGTERM",
        "--cpu-shares", "512", "--oom-score-adj=-100",
        "--health-cmd", "exec /usr/local/bin/web --health", "--health-interval=5s",
        "--health-timeout=3s", "--health-start-period=10s", "--health-retries=3",
        IMAGE_VARIABLE,
        "--port", "8080", "--greeting", '100% "quoted" $HOME stays literal',
    ]
    # Two networks: created with the first, connected to the second before it starts.
    commands = start_commands(app)
    assert commands.pre == [docker_run_argv(app, "create"),
                            ["/usr/bin/docker", "network", "connect", "--alias", "web-api",
                             "shop-back", "web"]]
    assert commands.start == ["/usr/bin/docker", "start", "--attach", "web"]


def test_one_network_or_none_is_a_plain_docker_run(tmp_path: Path) -> None:
    for extra in ("", "[run]\nnetwork = 'n1'\n",
                  "[run]\nnetworks = [{name = 'n1', aliases = ['a'], ip = '10.1.2.3'}]\n"):
        app = parse_app("a", tomllib.loads('[image]\nref = "a:1"\n' + extra),
                        tmp_path / "a.toml")
        commands = start_commands(app)
        assert commands.pre == [] and commands.start == docker_run_argv(app)
        run = render_app(app, make_environment(tmp_path), tmp_path, EXECUTABLE)[1].text
        assert run.count("ExecStartPre=") == 1 and "ExecStart=/usr/bin/docker run " in run


def test_pull_argv_names_the_config_dir_only_when_not_default() -> None:
    app = load_as_installed(EXAMPLES / "minimal.toml", DEFAULT_CONFIG_DIR)
    assert pull_argv(app, DEFAULT_CONFIG_DIR, "/usr/bin/pullunit") == [
        "/usr/bin/pullunit", "pull", "minimal"]
    assert pull_argv(app, Path("/srv/cfg"), "/opt/pu/bin/pullunit") == [
        "/opt/pu/bin/pullunit", "pull", "--config-dir", "/srv/cfg", "minimal"]


def test_stop_timeouts(tmp_path: Path) -> None:
    data = tomllib.loads('[image]\nref = "a:1"\n[run]\nstop_timeout = "1.2s"\n'
                         'restart_sec = "250ms"\n')
    app = parse_app("a", data, tmp_path / "a.toml")
    run = render_app(app, make_environment(tmp_path), tmp_path, EXECUTABLE)[1].text
    assert "ExecStop=/usr/bin/docker stop --time 2 a\n" in run  # docker wants whole seconds
    assert "TimeoutStopSec=17s\n" in run  # docker's grace plus a 15 s backstop
    assert "RestartSec=250ms\n" in run


def test_runtime_dir_override_moves_the_env_file(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULLUNIT_RUNTIME_DIR", "/run/other")
    app = load_as_installed(EXAMPLES / "minimal.toml", DEFAULT_CONFIG_DIR)
    run = render_app(app, make_environment(tmp_path), DEFAULT_CONFIG_DIR, EXECUTABLE)[1].text
    assert "EnvironmentFile=/run/other/minimal.env\n" in run


def test_admin_template_override(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "run.service.j2").write_text(
        "{{ marker }}\n[Unit]\nDescription={{ description }}\n[Service]\n"
        "ExecStart={{ run_exec }}\nMemoryMax=1G\n")
    app = load_as_installed(GOLDEN / "tricky.toml", tmp_path)
    pull, run = render_app(app, make_environment(tmp_path), tmp_path, EXECUTABLE)
    assert "MemoryMax=1G\n" in run.text
    assert run.text.startswith(paths.MARKER_PREFIX)
    assert "Description=Tricky \"app\" 100%% $HOME ${X} \\ backslash\n" in run.text
    assert "Type=notify\n" in pull.text  # the pull template is still the shipped one


def test_command_word_equal_to_the_image_variable_stays_literal(tmp_path: Path) -> None:
    """Only the image slot may carry ${PULLUNIT_IMAGE} unescaped. A user's command word,
    entrypoint or docker_arg that happens to read "${PULLUNIT_IMAGE}" is data and must be
    written as "$${PULLUNIT_IMAGE}", or systemd substitutes the image reference into it."""
    data = tomllib.loads('[image]\nref = "a:1"\n[run]\n'
                         'entrypoint = "${PULLUNIT_IMAGE}"\n'
                         'docker_args = ["${PULLUNIT_IMAGE}"]\n'
                         'command = ["echo", "${PULLUNIT_IMAGE}"]\n')
    app = parse_app("a", data, tmp_path / "a.toml")
    run = render_app(app, make_environment(tmp_path), tmp_path, EXECUTABLE)[1].text
    [exec_start] = [line for line in run.splitlines() if line.startswith("ExecStart=")]
    assert exec_start.count("${PULLUNIT_IMAGE}") == 4
    assert exec_start.count('"$${PULLUNIT_IMAGE}"') == 3, exec_start


def test_gate_is_rendered_unless_disabled(tmp_path: Path) -> None:
    on = parse_app("a", tomllib.loads('[image]\nref = "a:1"\n[health]\n'
                                      'start_timeout = "90s"\n[run]\nstop_timeout = "10s"\n'),
                   tmp_path / "a.toml")
    run = render_app(on, make_environment(tmp_path), tmp_path, EXECUTABLE)[1].text
    assert ("ExecStartPost=/usr/bin/nice -n 10 /usr/bin/pullunit ready --container a "
            "--start-timeout 90s --stop-timeout 10s a\n") in run
    assert "NotifyAccess=exec\n" in run
    assert "TimeoutStartSec=130s\n" in run  # start_timeout + the stop grace + 30 s
    assert "Type=simple\n" in run  # docker run stays the main process

    off = parse_app("a", tomllib.loads('[image]\nref = "a:1"\n[health]\nenabled = false\n'
                                       'cmd = ["/bin/check"]\n'), tmp_path / "a.toml")
    run = render_app(off, make_environment(tmp_path), tmp_path, EXECUTABLE)[1].text
    assert "ExecStartPost" not in run and "NotifyAccess" not in run
    assert "TimeoutStartSec" not in run
    assert '--health-cmd "exec /bin/check"' in run  # Docker still runs the check


def test_an_override_without_create_execs_is_refused_for_several_networks(
        tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "run.service.j2").write_text(
        "{{ marker }}\n[Unit]\nDescription={{ description }}\n[Service]\n"
        "ExecStart={{ run_exec }}\n")
    env = make_environment(tmp_path)
    one = parse_app("a", tomllib.loads('[image]\nref = "a:1"\n[run]\nnetworks = ["n1"]\n'),
                    tmp_path / "a.toml")
    assert "docker run" in render_app(one, env, tmp_path, EXECUTABLE)[1].text
    two = parse_app("b", tomllib.loads('[image]\nref = "a:1"\n[run]\n'
                                       'networks = ["n1", "n2"]\n'), tmp_path / "b.toml")
    with pytest.raises(ConfigError, match=r"b\.toml: run\.networks: 2 networks need the run "
                       r"unit to create the container first, but the template .*"
                       r"templates/run\.service\.j2 does not render create_execs"):
        render_app(two, env, tmp_path, EXECUTABLE)
