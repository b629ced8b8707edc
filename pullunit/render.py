"""Render an AppConfig into its pair of unit files through Jinja2 templates.

All escaping happens here, in Python, before a template sees a value: an overridden
template gets ready-to-paste strings and cannot forget to quote.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import jinja2

from . import dockerflags, health, paths
from .config import DEFAULT_CONFIG_DIR, AppConfig
from .durations import format_timespan
from .errors import ConfigError
from .escape import environment_assignment, exec_line, path_value, unit_value
from .netkeys import signal_number

PULL_TEMPLATE = "pull.service.j2"
RUN_TEMPLATE = "run.service.j2"
SYSTEM_TEMPLATE_DIR = Path("/usr/share/pullunit/templates")
IMAGE_VARIABLE = "${PULLUNIT_IMAGE}"
# systemd 252 reads unit files with read_line(f, LONG_LINE_MAX = 1 MiB): a line of 1 MiB or
# more (without its newline) fails the whole unit, "No buffer space available" (ENOBUFS).
UNIT_LINE_MAX = 1024 * 1024 - 1
# The config key (or table) each directive is made of, for the message when a line is too long.
_SOURCES = {
    "Description": "unit.description", "ExecStart": "run", "ExecStartPre": "run",
    "Requires": "unit.requires",
    "Wants": "unit.wants", "After": "unit.after", "WantedBy": "unit.wanted_by",
}
# The gate starts while docker run starts the container; on a busy host its interpreter
# start-up would compete with docker and dockerd for the CPU and delay the app itself.
GATE_NICE = ("/usr/bin/nice", "-n", "10")


@dataclass(frozen=True)
class UnitFile:
    name: str
    text: str


def builtin_template_dir() -> Path:
    try:
        import pullunit.templates as t  # type: ignore[import-not-found]  # installed: templates ship as package data

        return Path(t.__file__).parent
    except ImportError:  # running from a source checkout
        return Path(__file__).resolve().parent.parent / "templates"


def template_dirs(config_dir: Path) -> list[Path]:
    """Lookup order: admin overrides, then the copy shipped with the code, then the distro's."""
    return [config_dir / "templates", builtin_template_dir(), SYSTEM_TEMPLATE_DIR]


def make_environment(config_dir: Path) -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(d) for d in template_dirs(config_dir)]),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # unit files, not HTML; values are escaped by pullunit.escape
        trim_blocks=False,
    )


def marker(app: AppConfig) -> str:
    """The first line names the main file (unitfiles.marker_source prunes by it); the
    drop-ins that applied follow, one comment line each."""
    first = f"{paths.MARKER_PREFIX}{app.path}; do not edit, run 'pullunit generate'."
    return "\n".join([first, *(f"# with drop-in {p}" for p in app.dropins)])


def docker_run_argv(app: AppConfig, verb: str = "run") -> list[str]:
    """`docker run` of the container (`docker create` with the same flags, see
    start_commands), ending in the image slot and the command."""
    run = app.run
    argv = [paths.DOCKER, verb, "--rm", "--name", run.name, "--pull=never",
            "--label", f"pullunit.app={app.name}"]
    if run.entrypoint is not None:
        argv += ["--entrypoint", run.entrypoint]
    for name, value in run.env:
        argv += ["--env", f"{name}={value}"]
    for f in run.env_files:
        argv += ["--env-file", str(f)]
    for p in run.ports:
        argv += ["--publish", p]
    for v in run.volumes:
        argv += ["--volume", v]
    for secret in run.secrets:  # the contents stay out of argv: a mount of systemd's copy
        argv += ["--mount", secret.mount(app.run_unit)]
    if run.networks:
        argv += dockerflags.network_flags(run.networks[0])
    if run.user:
        argv += ["--user", run.user]
    argv += dockerflags.container_flags(run)
    argv += list(run.docker_args)
    argv += health.docker_flags(app.health)
    argv.append(IMAGE_VARIABLE)
    argv += list(run.command)
    return argv


@dataclass(frozen=True)
class StartCommands:
    """The run unit's ExecStartPre= commands after the cleanup, and its ExecStart=."""

    pre: list[list[str]]
    start: list[str]


def start_commands(app: AppConfig) -> StartCommands:
    """`docker run` stays the main process unless the container joins more than one
    network: Docker 20.10 (API 1.41) attaches a container to one network when it creates
    it, so then it is `docker create`, `docker network connect` for each further network,
    and `docker start --attach` as the main process, which exits as docker run does (the
    container's status; --rm still removes it)."""
    nets = app.run.networks
    if len(nets) <= 1:
        return StartCommands([], docker_run_argv(app))
    pre = [docker_run_argv(app, "create")]
    pre += [dockerflags.connect_argv(net, app.run.name) for net in nets[1:]]
    return StartCommands(pre, [paths.DOCKER, "start", "--attach", app.run.name])


def _exec_with_image(app: AppConfig, argv: list[str]) -> str:
    """exec_line() of a command whose image slot is ${PULLUNIT_IMAGE}, if it has one."""
    if argv[1] not in ("run", "create"):
        return exec_line(argv)
    image_at = len(argv) - len(app.run.command) - 1
    assert argv[image_at] == IMAGE_VARIABLE
    return exec_line(argv, raw_at=frozenset({image_at}))


def success_exit_status(app: AppConfig) -> str:
    """docker run exits 128+N when the container dies of signal N: SIGTERM (systemd's, or
    docker stop's), or the container's stop_signal."""
    codes = [143]
    if app.run.stop_signal:
        number = signal_number(app.run.stop_signal)
        if number is not None and 128 + number not in codes:
            codes.append(128 + number)
    return " ".join(map(str, codes))


def pull_argv(app: AppConfig, config_dir: Path, executable: str) -> list[str]:
    argv = [executable, "pull"]
    if config_dir != DEFAULT_CONFIG_DIR:
        argv += ["--config-dir", str(config_dir)]
    return [*argv, app.name]


# A leftover container with the app's name would make `docker run` fail, so a start
# removes it first (docker rm --force). After a clean stop there is none (docker run
# --rm returns once the container is removed), and that rm would only lengthen every
# switch by a docker client start (pullunit update's downtime): a clean stop leaves a
# marker that lets the next start skip it. At boot /run is empty, so the first start
# always cleans up; after a failed start or stop, ExecStopPost= removes at once.
_RM_UNLESS_CLEAN = 'rm "$1" 2>/dev/null || exec "$2" rm --force "$3"'
_MARK_OR_RM = ('if [ "$SERVICE_RESULT" = success ]; then : > "$1"; '
               'else exec "$2" rm --force "$3"; fi')


def stopped_marker(app: AppConfig) -> str:
    return os.path.abspath(paths.runtime_dir() / f"{app.name}.stopped")


def rm_argv(app: AppConfig) -> list[str]:
    return ["/bin/sh", "-c", _RM_UNLESS_CLEAN, "sh", stopped_marker(app), paths.DOCKER,
            app.run.name]


def stop_post_argv(app: AppConfig) -> list[str]:
    return ["/bin/sh", "-c", _MARK_OR_RM, "sh", stopped_marker(app), paths.DOCKER,
            app.run.name]


def gate_argv(app: AppConfig, executable: str) -> list[str]:
    """The readiness gate (ExecStartPost=): everything it needs is on its command line."""
    return [*GATE_NICE, executable, "ready", "--container", app.run.name,
            "--start-timeout", format_timespan(app.health.start_timeout),
            "--stop-timeout", format_timespan(app.run.stop_timeout), app.name]


def context(app: AppConfig, config_dir: Path, executable: str) -> dict[str, object]:
    stop_seconds = math.ceil(app.run.stop_timeout)
    commands = start_commands(app)
    return {
        "app": app,  # raw config, for admin templates; escape with the values below
        "marker": marker(app),
        "pull_unit": app.pull_unit,
        "run_unit": app.run_unit,
        "description": unit_value(app.description),
        "pull_description": unit_value(f"Pull image for {app.name}: {app.image.ref}"),
        "pull_exec": exec_line(pull_argv(app, config_dir, executable)),
        # What the puller writes (its Environment= below moves it with the runtime dir).
        "env_file": path_value(os.path.abspath(paths.env_file(app.name))),
        "environment": [environment_assignment(var, value)
                        for var, value in paths.relocations()],
        "rm_exec": exec_line(rm_argv(app)),
        "stop_post_exec": exec_line(stop_post_argv(app)),
        "create_execs": [_exec_with_image(app, argv) for argv in commands.pre],
        "run_exec": _exec_with_image(app, commands.start),
        "success_exit_status": success_exit_status(app),
        "stop_exec": exec_line([paths.DOCKER, "stop", "--time", str(stop_seconds),
                                app.run.name]),
        "load_credentials": [s.directive() for s in app.run.secrets],
        "restart": app.run.restart.value,
        "restart_sec": format_timespan(app.run.restart_sec),
        # docker stop gets its grace period; systemd's own timeout is only a backstop.
        "timeout_stop_sec": format_timespan(stop_seconds + 15),
        # The gate bounds start-up itself (health.start_timeout) and then stops a failed
        # container with its grace period; systemd's start timeout is only a backstop.
        "gate_exec": exec_line(gate_argv(app, executable)) if app.health.enabled else "",
        "timeout_start_sec": format_timespan(
            math.ceil(app.health.start_timeout) + stop_seconds + 30),
        "after": list(app.unit.after),
        "wants": list(app.unit.wants),
        "requires": list(app.unit.requires),
        "wanted_by": list(app.unit.wanted_by),
    }


def render_app(app: AppConfig, env: jinja2.Environment, config_dir: Path,
               executable: str) -> list[UnitFile]:
    ctx = context(app, config_dir, executable)
    units = []
    for name, template in ((app.pull_unit, PULL_TEMPLATE), (app.run_unit, RUN_TEMPLATE)):
        text = env.get_template(template).render(ctx)
        if not text.endswith("\n"):
            text += "\n"
        check_line_lengths(app, name, text)
        if template == RUN_TEMPLATE:
            _check_creates(app, ctx, text, env)
        units.append(UnitFile(name, text))
    return units


def _check_creates(app: AppConfig, ctx: dict[str, object], text: str,
                   env: jinja2.Environment) -> None:
    """With several networks ExecStart= only starts the container that ExecStartPre=
    created: a run template (an admin's older override) without create_execs would give
    a unit that can never start."""
    creates = ctx["create_execs"]
    assert isinstance(creates, list)
    lines = text.split("\n")
    if any(f"ExecStartPre={c}" not in lines for c in creates):
        source = env.get_template(RUN_TEMPLATE).filename
        raise ConfigError(
            f"{app.path}: run.networks: {len(app.run.networks)} networks need the run unit to "
            f"create the container first, but the template {source} does not render "
            "create_execs", "add the create_execs loop of the shipped run.service.j2")


def check_line_lengths(app: AppConfig, unit: str, text: str) -> None:
    """A unit systemd would refuse to load is a config error, found before it is written."""
    for line in text.split("\n"):
        size = len(line.encode())
        if size > UNIT_LINE_MAX:
            directive = line.split("=", 1)[0][:40]
            key = _SOURCES.get(directive)
            where = f"{app.file_of(*key.split('.'))}: {key}" if key else str(app.path)
            raise ConfigError(
                f"{where}: {directive}= of {unit} would be a line of {size} bytes; systemd "
                f"reads at most {UNIT_LINE_MAX} bytes per line (LONG_LINE_MAX) and would "
                "not load the unit")
