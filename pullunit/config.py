"""The app config schema (v1): TOML in, typed frozen dataclasses out, and where the app
configs live (the config dir, APP.toml, the names derived from an app name).

Pure logic apart from reading the file. Validation is strict: every table has an
allow-list of keys whose values are parsed by configvalues.py, and every error names the
file and the dotted key.
"""

from __future__ import annotations

import enum
import math
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .appsecrets import Secret, check_volumes, secrets_table
from .configvalues import (
    CONTAINER_NAME,
    Origins,
    Parser,
    Where,
    abs_path,
    boolean,
    container_name,
    description,
    docker_duration,
    duration,
    endpoint_list,
    env_table,
    health_cmd,
    image_ref,
    keep,
    list_of,
    multiplier,
    network,
    nonempty_string,
    one_of,
    one_word,
    platform_name,
    port,
    retries,
    strict_table,
    string,
    unit_name,
    unknown,
    user,
    volume,
)
from .dockerflags import docker_args
from .dropins import Merged, source_of
from .dropins import load as load_dropins
from .errors import ConfigError
from .netkeys import Network
from .reference import ImageRef
from .runkeys import SCHEMA as CONTAINER_KEYS
from .runkeys import Ulimit, effective_networks
from .runkeys import check as check_container_keys

DEFAULT_CONFIG_DIR = Path("/etc/pullunit")
LOCK_SUFFIX = ".lock.toml"
# The host-wide settings beside the app configs (hostconfig.py): not an app.
HOST_CONFIG_NAME = "pullunit.toml"
# Every file name pullunit derives from an app name, as it is written: most go first to a
# temp file ".NAME.<12 hex>.new" beside the target (fsutil.atomic_write). Each must fit the
# 255 bytes of a file name; the longest, the pull unit's temp file, sets APP_NAME_MAX.
_TEMP = ".{}.0123456789ab.new"
_DERIVED_NAMES = (
    _TEMP.format("{}-pull.service"), _TEMP.format("{}.service"),  # generate: the units
    ".{}.toml.01234567", _TEMP.format("{}.lock.toml"),  # config dir: init's temp, the lock
    _TEMP.format("{}.env"), "{}.lock",  # runtime dir: the env file, the per-app flock
    _TEMP.format("{}.json"), "{}.corrupt-0000000000",  # state dir: state, set-aside state
    "{}",  # the archive dir, STATE_DIR/cache/APP
    _TEMP.format("pullunit-{}.prom"),  # metrics dir: node_exporter's textfile (metrics.py)
)
NAME_MAX = 255
APP_NAME_MAX = NAME_MAX - max(len(n.format("")) for n in _DERIVED_NAMES)
_LONGEST = max(_DERIVED_NAMES, key=lambda n: len(n.format(""))).format("APP").replace(
    "0123456789ab", "<12 hex>")
# fullmatch() and re.ASCII, as every pattern in configvalues.py.
_APP_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]*", re.ASCII)


class Policy(enum.StrEnum):
    MISSING = "missing"
    ALWAYS = "always"
    NEVER = "never"


class Jitter(enum.StrEnum):
    FULL = "full"
    EQUAL = "equal"
    DECORRELATED = "decorrelated"
    NONE = "none"


class Restart(enum.StrEnum):
    NO = "no"
    ON_SUCCESS = "on-success"
    ON_FAILURE = "on-failure"
    ON_ABNORMAL = "on-abnormal"
    ON_WATCHDOG = "on-watchdog"
    ON_ABORT = "on-abort"
    ALWAYS = "always"


@dataclass(frozen=True)
class ImageConfig:
    ref: ImageRef
    platform: str | None = None
    policy: Policy = Policy.MISSING
    auth_file: Path | None = None
    verify: tuple[str, ...] = ()
    # This app's mirrors of its registry, replacing pullunit.toml's [[mirror]] endpoints
    # (an empty list: none); None: the host's.
    mirrors: tuple[str, ...] | None = None


@dataclass(frozen=True)
class PullConfig:
    initial_delay: float = 2.0
    max_delay: float = 300.0
    multiplier: float = 2.0
    jitter: Jitter = Jitter.FULL
    deadline: float = math.inf
    stall_timeout: float = 60.0
    refresh_timeout: float = 30.0
    rate_limit_delay: float = 60.0
    # while the registry is unavailable, probe (a manifest HEAD) at least this often;
    # 45 s: benchmarks/herd.py (README "Thundering herd")
    probe_interval: float = 45.0
    retry_permanent: bool = False
    keep: int = 3
    archive: bool = False


@dataclass(frozen=True)
class RunConfig:
    name: str
    command: tuple[str, ...] = ()
    entrypoint: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    env_files: tuple[Path, ...] = ()
    ports: tuple[str, ...] = ()
    volumes: tuple[str, ...] = ()
    network: str | None = None
    user: str | None = None
    docker_args: tuple[str, ...] = ()
    restart: Restart = Restart.ON_FAILURE
    restart_sec: float = 5.0
    stop_timeout: float = 30.0
    secrets: tuple[Secret, ...] = ()
    # The container keys (runkeys.py); None or empty: Docker's default, as if not given.
    memory: str | None = None
    memory_swap: str | None = None
    cpus: str | None = None
    pids_limit: int | None = None
    shm_size: str | None = None
    ulimits: tuple[Ulimit, ...] = ()
    log_driver: str | None = None  # None: "none", the unit's journal holds the output
    log_opts: tuple[tuple[str, str], ...] = ()
    read_only: bool = False
    tmpfs: tuple[str, ...] = ()
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    security_opt: tuple[str, ...] = ()
    no_new_privileges: bool | None = None
    privileged: bool = False
    devices: tuple[str, ...] = ()
    group_add: tuple[str, ...] = ()
    sysctls: tuple[tuple[str, str], ...] = ()
    hostname: str | None = None
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    add_hosts: tuple[tuple[str, str], ...] = ()
    networks: tuple[Network, ...] = ()  # run.network, when set, is its only entry
    labels: tuple[tuple[str, str], ...] = ()
    workdir: str | None = None
    init: bool | None = None
    stop_signal: str | None = None


@dataclass(frozen=True)
class UnitConfig:
    description: str | None = None
    after: tuple[str, ...] = ()
    wants: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    wanted_by: tuple[str, ...] = ("multi-user.target",)


@dataclass(frozen=True)
class HealthConfig:
    """The readiness gate of the run unit and Docker's healthcheck options. None means
    "the image's own" (its HEALTHCHECK, or Docker's default for that option)."""

    enabled: bool = True
    cmd: tuple[str, ...] = ()
    interval: float | None = None
    timeout: float | None = None
    retries: int | None = None
    start_period: float | None = None
    start_timeout: float = 120.0

    @property
    def docker_options(self) -> bool:
        return bool(self.cmd) or any(v is not None for v in (
            self.interval, self.timeout, self.retries, self.start_period))


@dataclass(frozen=True)
class UpdateConfig:
    auto: bool = False


@dataclass(frozen=True)
class AppConfig:
    name: str
    path: Path
    image: ImageConfig
    pull: PullConfig = field(default_factory=PullConfig)
    run: RunConfig = field(default_factory=lambda: RunConfig(name="app"))
    unit: UnitConfig = field(default_factory=UnitConfig)
    health: HealthConfig = field(default_factory=HealthConfig)
    update: UpdateConfig = field(default_factory=UpdateConfig)
    # APP.toml.d/*.toml merged over `path`, in the order they applied, and which of them
    # set which key (dropins.merge), for messages about a value after validation
    dropins: tuple[Path, ...] = ()
    origins: tuple[tuple[tuple[str, ...], str], ...] = ()

    def file_of(self, *path: str) -> str:
        """The file that set the key at `path` (run, name): APP.toml or a drop-in."""
        return source_of(dict(self.origins), path, str(self.path))

    @property
    def pull_unit(self) -> str:
        return f"{self.name}-pull.service"

    @property
    def run_unit(self) -> str:
        return f"{self.name}.service"

    @property
    def description(self) -> str:
        return self.unit.description or f"{self.name} container ({self.image.ref})"


# key -> (parser, dataclass field). Order is the documented order.
_SCHEMA: dict[str, dict[str, Parser]] = {
    "image": {
        "ref": image_ref,
        "platform": platform_name,
        "policy": one_of(Policy),
        "auth_file": abs_path,
        "verify": list_of(string),
        "mirrors": endpoint_list,
    },
    "pull": {
        "initial_delay": duration(positive=True),
        "max_delay": duration(positive=True),
        "multiplier": multiplier,
        "jitter": one_of(Jitter),
        "deadline": duration(finite=False, positive=True),
        "stall_timeout": duration(finite=False, positive=True),
        "refresh_timeout": duration(positive=True),
        "rate_limit_delay": duration(),
        "probe_interval": duration(positive=True),
        "retry_permanent": boolean,
        "keep": keep,
        "archive": boolean,
    },
    "run": {
        "name": one_word(container_name),
        "command": list_of(one_word(string)),
        "entrypoint": one_word(nonempty_string),
        "env": env_table,
        "env_files": list_of(one_word(abs_path)),
        "ports": list_of(port),
        "volumes": list_of(one_word(volume)),
        "network": one_word(network),
        "user": one_word(user),
        "docker_args": docker_args,
        "restart": one_of(Restart),
        "restart_sec": duration(),
        "stop_timeout": duration(),
        "secrets": secrets_table,
        **CONTAINER_KEYS,
    },
    "unit": {
        "description": description,
        "after": list_of(unit_name),
        "wants": list_of(unit_name),
        "requires": list_of(unit_name),
        "wanted_by": list_of(unit_name),
    },
    "health": {
        "enabled": boolean,
        "cmd": health_cmd,
        "interval": docker_duration,
        "timeout": docker_duration,
        "retries": retries,
        "start_period": docker_duration,
        "start_timeout": duration(positive=True),
    },
    "update": {
        "auto": boolean,
    },
}
REQUIRED = {("image", "ref")}


def _parse_table(table: str, raw: object, where: Where) -> dict[str, Any]:
    out = strict_table(raw, _SCHEMA[table], where, table)
    for t, k in REQUIRED:
        if t == table and k not in out:
            raise where.child(k).error("is required")
    return out


def validate_app_name(name: str, file: str) -> str:
    w = Where(file, "")
    if not name or len(name) > APP_NAME_MAX:
        raise w.error(f"app name {name!r} must be 1 to {APP_NAME_MAX} characters: the "
                      f"longest file named after it, {_LONGEST!r}, must "
                      f"fit the {NAME_MAX} bytes of a file name")
    if not _APP_NAME.fullmatch(name):
        raise w.error(f"app name {name!r} (the file name) is not a valid unit name prefix; "
                      "use letters, digits, '-', '_', '.', ':' and start with a letter, "
                      "digit or '_'")
    if name + ".toml" == HOST_CONFIG_NAME:
        raise w.error(f"app name {name!r} is reserved: {HOST_CONFIG_NAME} in the config "
                      "directory holds the host-wide settings")
    if name.endswith("-pull"):
        raise w.error(f"app name {name!r} must not end in '-pull': its run unit would clash "
                      f"with the pull unit of app {name[:-5]!r}")
    if name.endswith(".lock"):
        raise w.error(f"app name {name!r} must not end in '.lock': {name}.toml is where "
                      f"'pullunit pin' keeps the lock file of app {name[:-5]!r}")
    return name


def parse_app(name: str, data: Mapping[str, Any], path: Path, *,
              origins: Origins | None = None, dropins: tuple[Path, ...] = ()) -> AppConfig:
    """Validate a decoded TOML document into an AppConfig. `origins` (dropins.merge)
    says which drop-in set which key, so that errors name it."""
    file = str(path)
    validate_app_name(name, file)
    root = Where(file, "", (), origins or {})
    for table in data:
        if table not in _SCHEMA:
            raise unknown(table, list(_SCHEMA), root.child(table), "table")
    if "image" not in data:
        raise root.child("image").error("table [image] with 'ref' is required")
    tables = {t: _parse_table(t, data.get(t, {}), root.child(t)) for t in _SCHEMA}

    pull = PullConfig(**tables["pull"])
    if pull.max_delay < pull.initial_delay:
        raise root.child("pull").child("max_delay").error(
            "must not be less than pull.initial_delay")

    run_values = tables["run"]
    if "name" not in run_values:
        if not CONTAINER_NAME.fullmatch(name):
            raise root.child("run").child("name").error(
                f"is required: the app name {name!r} is not a valid container name")
        run_values["name"] = name
    check_container_keys(run_values, root.child("run"))
    run_values["networks"] = effective_networks(run_values)
    run = RunConfig(**run_values)
    check_volumes(run.secrets, run.volumes, root.child("run"))
    image = ImageConfig(**tables["image"])
    health = HealthConfig(**tables["health"])
    update = UpdateConfig(**tables["update"])
    _check_health(health, root)
    _check_update(update, image, health, root.child("update"))
    return AppConfig(
        name=name,
        path=path,
        image=image,
        pull=pull,
        run=run,
        unit=UnitConfig(**tables["unit"]),
        health=health,
        update=update,
        dropins=dropins,
        origins=tuple((origins or {}).items()),
    )


def _check_health(health: HealthConfig, root: Where) -> None:
    if (health.interval is not None and health.enabled
            and health.start_timeout <= health.interval):
        raise root.child("health").child("start_timeout").error(
            "must be longer than health.interval: Docker runs the first check one interval "
            "after the container starts")


def _check_update(update: UpdateConfig, image: ImageConfig, health: HealthConfig,
                  where: Where) -> None:
    if not update.auto:
        return
    w = where.child("auto")
    if not health.enabled:
        raise w.error("needs the readiness gate: an unattended update that cannot tell a "
                      "broken image from a good one would never roll back",
                      "remove 'enabled = false' from [health]")
    if image.ref.digest:
        raise w.error(f"image.ref pins the digest {image.ref.digest}: there is nothing to "
                      "update to", "use a tag in image.ref to follow it")
    if image.policy is Policy.NEVER:
        raise w.error("image.policy is \"never\", but an update pulls")


def read_toml(path: Path) -> dict[str, Any]:
    """Decode a TOML file pullunit reads (an app config, a lock file). Every way it can fail
    is a ConfigError naming the file, never a crash: not even a number too long for
    Python's int() or nesting too deep for tomllib's recursion."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"Cannot read {path}: {e}") from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"Cannot read {path}: not valid UTF-8 ({e.reason})") from e
    except ValueError as e:  # int("1" + 5000 zeros): Python's integer string limit
        raise ConfigError(f"Cannot read {path}: a number has too many digits") from e
    except RecursionError as e:
        raise ConfigError(f"Cannot read {path}: arrays or tables are nested too deeply") from e
    except OSError as e:
        raise ConfigError(f"Cannot read {path}: {e.strerror}") from e


def load_app(path: Path, *, dropins: bool = True) -> AppConfig:
    """Read and validate one APP.toml with its drop-ins (APP.toml.d/*.toml) merged over
    it: every command reads an app through here, so all see the same config. Raises
    ConfigError naming the file that holds the bad value."""
    if not dropins:
        return parse_app(app_name_of(path), read_toml(path), path)
    merged = load_merged(path)
    return parse_app(app_name_of(path), merged.data, path, origins=merged.origins,
                     dropins=merged.files[1:])


def load_merged(path: Path) -> Merged:
    """APP.toml and its drop-ins merged, not validated (what `pullunit cat` shows)."""
    return load_dropins(path, read_toml)


def app_name_of(path: Path) -> str:
    return path.name[: -len(".toml")] if path.name.endswith(".toml") else path.stem


def config_dir_from_env(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    env = os.environ.get("PULLUNIT_CONFIG_DIR")
    return Path(env) if env else DEFAULT_CONFIG_DIR


def app_files(config_dir: Path) -> list[Path]:
    """APP.toml files of a config dir, sorted; lock files, hidden files and the host-wide
    pullunit.toml excluded."""
    try:
        entries = sorted(config_dir.iterdir())
    except FileNotFoundError:
        return []
    except OSError as e:
        raise ConfigError(f"Cannot read config directory {config_dir}: {e.strerror}") from e
    return [p for p in entries
            if p.name.endswith(".toml") and not p.name.endswith(LOCK_SUFFIX)
            and p.name != HOST_CONFIG_NAME and not p.name.startswith(".") and p.is_file()]


def resolve_app(config_dir: Path, app_or_file: str) -> Path:
    """An argument that is an app name or a path to a TOML file."""
    if app_or_file.endswith(".toml") or "/" in app_or_file:
        return Path(app_or_file)
    path = config_dir / f"{app_or_file}.toml"
    if not path.exists():
        raise ConfigError(f"No config for app {app_or_file!r}: {path} does not exist")
    return path
