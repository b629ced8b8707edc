"""The app config schema (v1): TOML in, typed frozen dataclasses out.

Pure logic apart from reading the file. Validation is strict: every table has an
allow-list of keys, and every error names the file and the dotted key.
"""

from __future__ import annotations

import difflib
import enum
import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from . import platform
from .durations import DurationError, parse_duration
from .errors import ConfigError
from .escape import UnsafeValueError, check_text, unit_value
from .reference import BadReference, ImageRef, parse_reference

DEFAULT_CONFIG_DIR = Path("/etc/pullunit")
LOCK_SUFFIX = ".lock.toml"
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
)
NAME_MAX = 255
APP_NAME_MAX = NAME_MAX - max(len(n.format("")) for n in _DERIVED_NAMES)
# A program argument (one word of an Exec*= line) is at most MAX_ARG_STRLEN = 32 pages,
# 131072 bytes with its NUL, on Linux; a longer one fails execve() with E2BIG, so the run
# unit would fail at every start.
ARG_MAX_BYTES = 32 * 4096 - 1
# All patterns below are used with fullmatch() (a "$" would let a trailing newline through)
# and re.ASCII: Docker's grammars are ASCII, and Python's \d and \w are not.
_APP_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]*", re.ASCII)
_CONTAINER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", re.ASCII)
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_UNIT_NAME = re.compile(
    r"[A-Za-z0-9:_.\\-]+(@[A-Za-z0-9:_.\\-]*)?"
    r"\.(service|socket|device|mount|automount|swap|target|path|timer|slice|scope)", re.ASCII
)
_NETWORK = re.compile(r"(?:container:)?[a-zA-Z0-9][a-zA-Z0-9_.-]*", re.ASCII)
_USER = re.compile(r"[a-z_][a-z0-9_-]*\$?(?::[a-z_][a-z0-9_-]*\$?)?|[0-9]+(?::[0-9]+)?"
                   r"|[a-z_][a-z0-9_-]*:[0-9]+|[0-9]+:[a-z_][a-z0-9_-]*", re.ASCII)
_VOLUME_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+", re.ASCII)
_VOLUME_OPTS = frozenset({"ro", "rw", "z", "Z", "nocopy", "shared", "slave", "private",
                          "rshared", "rslave", "rprivate", "delegated", "cached", "consistent"})
_PORT_SPEC = re.compile(
    r"(?:(?P<ip>\[[0-9a-fA-F:.]+\]|[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}):)?"
    r"(?:(?P<host>[0-9]{1,5}(?:-[0-9]{1,5})?)?:)?"
    r"(?P<container>[0-9]{1,5}(?:-[0-9]{1,5})?)(?:/(?P<proto>tcp|udp|sctp))?", re.ASCII
)
# docker run flags that would break the contract of the run unit: it must stay in the
# foreground, be named as the unit expects, and never pull.
_FORBIDDEN_DOCKER_ARGS = ("--pull", "--name", "-d", "--detach", "--rm")


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


@dataclass(frozen=True)
class UnitConfig:
    description: str | None = None
    after: tuple[str, ...] = ()
    wants: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    wanted_by: tuple[str, ...] = ("multi-user.target",)


@dataclass(frozen=True)
class AppConfig:
    name: str
    path: Path
    image: ImageConfig
    pull: PullConfig = field(default_factory=PullConfig)
    run: RunConfig = field(default_factory=lambda: RunConfig(name="app"))
    unit: UnitConfig = field(default_factory=UnitConfig)

    @property
    def pull_unit(self) -> str:
        return f"{self.name}-pull.service"

    @property
    def run_unit(self) -> str:
        return f"{self.name}.service"

    @property
    def description(self) -> str:
        return self.unit.description or f"{self.name} container ({self.image.ref})"


# ---------------------------------------------------------------------------------------
# Validation helpers. Each takes the raw value and a `where` naming the dotted key.

T = TypeVar("T")


@dataclass(frozen=True)
class _Where:
    file: str
    key: str

    def child(self, name: str | int) -> _Where:
        if isinstance(name, int):
            return _Where(self.file, f"{self.key}[{name}]")
        return _Where(self.file, f"{self.key}.{name}" if self.key else name)

    def error(self, message: str, hint: str = "") -> ConfigError:
        prefix = f"{self.file}: {self.key}: " if self.key else f"{self.file}: "
        return ConfigError(prefix + message, hint)


def _type_name(value: object) -> str:
    return {str: "string", int: "integer", float: "float", bool: "boolean", list: "array",
            dict: "table"}.get(type(value), type(value).__name__)


def _string(value: object, where: _Where) -> str:
    if not isinstance(value, str):
        raise where.error(f"expected a string, got {_type_name(value)}")
    try:
        check_text(value)
    except UnsafeValueError as e:
        raise where.error(f"value {value!r} {e}") from None
    return value


def _nonempty_string(value: object, where: _Where) -> str:
    s = _string(value, where)
    if not s:
        raise where.error("must not be empty")
    return s


def _bool(value: object, where: _Where) -> bool:
    if not isinstance(value, bool):
        raise where.error(f"expected true or false, got {_type_name(value)}")
    return value


def _list(item: Callable[[object, _Where], T]) -> Callable[[object, _Where], tuple[T, ...]]:
    def parse(value: object, where: _Where) -> tuple[T, ...]:
        if not isinstance(value, list):
            raise where.error(f"expected an array, got {_type_name(value)}")
        return tuple(item(v, where.child(i)) for i, v in enumerate(value))
    return parse


def _arg_size_error(size: int, where: _Where) -> ConfigError:
    return where.error(f"is {size} bytes; one argument of a command can be at most "
                       f"{ARG_MAX_BYTES} bytes (Linux MAX_ARG_STRLEN), so docker run "
                       "would fail at every start")


def _arg(item: Callable[[object, _Where], T]) -> Callable[[object, _Where], T]:
    """A value that becomes one word of the run unit's `docker run` command line."""
    def parse(value: object, where: _Where) -> T:
        parsed = item(value, where)
        size = len(str(parsed).encode())
        if size > ARG_MAX_BYTES:
            raise _arg_size_error(size, where)
        return parsed
    return parse


def _enum(cls: type[enum.StrEnum]) -> Callable[[object, _Where], Any]:
    def parse(value: object, where: _Where) -> Any:
        s = _string(value, where)
        try:
            return cls(s)
        except ValueError:
            allowed = ", ".join(m.value for m in cls)
            raise where.error(f"{s!r} is not a valid value; expected one of: {allowed}") from None
    return parse


def _duration(*, finite: bool = True, positive: bool = False) -> Callable[[object, _Where], float]:
    def parse(value: object, where: _Where) -> float:
        try:
            seconds = parse_duration(value)
        except DurationError as e:
            raise where.error(str(e)) from None
        if finite and math.isinf(seconds):
            raise where.error("must be finite (\"infinity\" is not allowed here)")
        if positive and seconds <= 0:
            raise where.error("must be greater than zero")
        return seconds
    return parse


def _abs_path(value: object, where: _Where) -> Path:
    s = _nonempty_string(value, where)
    if not s.startswith("/"):
        raise where.error(f"path {s!r} must be absolute")
    if "%" in s or "$" in s or "\\" in s:
        raise where.error(f"path {s!r} must not contain '%', '$' or '\\'")
    return Path(os.path.normpath(s))


def _image_ref(value: object, where: _Where) -> ImageRef:
    s = _nonempty_string(value, where)
    try:
        return parse_reference(s)
    except BadReference as e:
        raise where.error(str(e)) from None


def _platform(value: object, where: _Where) -> str:
    s = _nonempty_string(value, where)
    try:
        platform.parse(s)
    except ValueError as e:
        raise where.error(str(e)) from None
    return s


def _multiplier(value: object, where: _Where) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise where.error(f"expected a number, got {_type_name(value)}")
    if not (1.0 <= value <= 100.0):
        raise where.error(f"must be between 1.0 and 100.0, got {value}")
    return float(value)


def _keep(value: object, where: _Where) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise where.error(f"expected an integer, got {_type_name(value)}")
    if not 1 <= value <= 100:
        raise where.error(f"must be between 1 and 100, got {value}")
    return value


def _container_name(value: object, where: _Where) -> str:
    s = _nonempty_string(value, where)
    if not _CONTAINER_NAME.fullmatch(s):
        raise where.error(f"invalid container name {s!r}; use letters, digits, '_', '.', '-'"
                          " and start with a letter or digit")
    return s


def _env_table(value: object, where: _Where) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise where.error(f"expected a table of NAME = \"value\", got {_type_name(value)}")
    out = []
    for name, v in value.items():
        w = where.child(name)
        if not _ENV_NAME.fullmatch(name):
            raise w.error(f"invalid environment variable name {name!r}; "
                          "use letters, digits and '_', not starting with a digit")
        word = (name, _string(v, w))
        size = len("=".join(word).encode())  # one word: --env NAME=value
        if size > ARG_MAX_BYTES:
            raise _arg_size_error(size, w)
        out.append(word)
    return tuple(out)


def _port(value: object, where: _Where) -> str:
    s = _nonempty_string(value, where)
    m = _PORT_SPEC.fullmatch(s)
    if not m:
        raise where.error(f"malformed port spec {s!r}; expected "
                          "[IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp|sctp], e.g. \"8080:80\"")
    if m.group("ip"):
        try:
            ipaddress.ip_address(m.group("ip").strip("[]"))
        except ValueError:
            raise where.error(f"malformed port spec {s!r}: {m.group('ip')!r} "
                              "is not an IP address") from None
    for part in ("host", "container"):
        if m.group(part):
            numbers = [int(n) for n in m.group(part).split("-")]
            if any(not 1 <= n <= 65535 for n in numbers) or numbers != sorted(numbers):
                raise where.error(f"malformed port spec {s!r}: ports are 1-65535, "
                                  "ranges low-high")
    return s


def _volume(value: object, where: _Where) -> str:
    s = _nonempty_string(value, where)
    parts = s.split(":")
    if len(parts) not in (2, 3):
        raise where.error(f"malformed volume {s!r}; expected SOURCE:DEST[:OPTIONS]")
    src, dst = parts[0], parts[1]
    if src.startswith("/"):
        pass
    elif "/" in src or src.startswith("."):
        raise where.error(f"volume source {src!r} must be an absolute path or a volume name "
                          "(relative paths are not allowed)")
    elif not _VOLUME_NAME.fullmatch(src):
        raise where.error(f"invalid volume name {src!r}")
    if not dst.startswith("/"):
        raise where.error(f"volume destination {dst!r} must be an absolute path")
    if len(parts) == 3:
        bad = [o for o in parts[2].split(",") if o not in _VOLUME_OPTS]
        if bad:
            raise where.error(f"unknown volume option {bad[0]!r}; expected some of: "
                              + ", ".join(sorted(_VOLUME_OPTS)))
    return s


def _network(value: object, where: _Where) -> str:
    s = _nonempty_string(value, where)
    if not _NETWORK.fullmatch(s):
        raise where.error(f"invalid network {s!r}")
    return s


def _user(value: object, where: _Where) -> str:
    s = _nonempty_string(value, where)
    if not _USER.fullmatch(s):
        raise where.error(f"invalid user {s!r}; expected USER, UID, USER:GROUP or UID:GID")
    return s


def _short_flags_detach(arg: str) -> bool:
    """-dit, -td ...: combined short flags that include -d (only boolean flags combine)."""
    if not arg.startswith("-") or arg.startswith("--") or len(arg) < 2:
        return False
    for letter in arg[1:]:
        if letter == "d":
            return True
        if letter not in "itPq":
            return False
    return False


def _docker_arg(value: object, where: _Where) -> str:
    s = _string(value, where)
    flag = s.split("=", 1)[0]
    if _short_flags_detach(s):
        flag = "-d"
    if flag in _FORBIDDEN_DOCKER_ARGS:
        raise where.error(f"{flag!r} is managed by pullunit and cannot be passed in docker_args",
                          "the run unit never pulls, always runs in the foreground, and names "
                          "the container from run.name")
    return s


def _unit_name(value: object, where: _Where) -> str:
    s = _nonempty_string(value, where)
    if not _UNIT_NAME.fullmatch(s):
        raise where.error(f"invalid unit name {s!r}; expected e.g. \"postgresql.service\" "
                          "(no specifiers, no white space)")
    return s


def _description(value: object, where: _Where) -> str:
    s = _nonempty_string(value, where)
    try:
        unit_value(s)
    except UnsafeValueError as e:
        raise where.error(f"value {s!r} {e}") from None
    return s


# key -> (parser, dataclass field). Order is the documented order.
_Parser = Callable[[object, _Where], Any]
_SCHEMA: dict[str, dict[str, _Parser]] = {
    "image": {
        "ref": _image_ref,
        "platform": _platform,
        "policy": _enum(Policy),
        "auth_file": _abs_path,
        "verify": _list(_string),
    },
    "pull": {
        "initial_delay": _duration(positive=True),
        "max_delay": _duration(positive=True),
        "multiplier": _multiplier,
        "jitter": _enum(Jitter),
        "deadline": _duration(finite=False, positive=True),
        "stall_timeout": _duration(finite=False, positive=True),
        "refresh_timeout": _duration(positive=True),
        "rate_limit_delay": _duration(),
        "retry_permanent": _bool,
        "keep": _keep,
        "archive": _bool,
    },
    "run": {
        "name": _arg(_container_name),
        "command": _list(_arg(_string)),
        "entrypoint": _arg(_nonempty_string),
        "env": _env_table,
        "env_files": _list(_arg(_abs_path)),
        "ports": _list(_port),
        "volumes": _list(_arg(_volume)),
        "network": _arg(_network),
        "user": _arg(_user),
        "docker_args": _list(_arg(_docker_arg)),
        "restart": _enum(Restart),
        "restart_sec": _duration(),
        "stop_timeout": _duration(),
    },
    "unit": {
        "description": _description,
        "after": _list(_unit_name),
        "wants": _list(_unit_name),
        "requires": _list(_unit_name),
        "wanted_by": _list(_unit_name),
    },
}
REQUIRED = {("image", "ref")}


def _unknown(name: str, valid: list[str], where: _Where, what: str) -> ConfigError:
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    suggestion = f"; did you mean {close[0]!r}?" if close else f"; valid: {', '.join(valid)}"
    return where.error(f"unknown {what} {name!r}{suggestion}")


def _parse_table(table: str, raw: object, where: _Where) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise where.error(f"expected a table [{table}], got {_type_name(raw)}")
    schema = _SCHEMA[table]
    out: dict[str, Any] = {}
    for key, value in raw.items():
        w = where.child(key)
        if key not in schema:
            raise _unknown(key, list(schema), w, "key")
        out[key] = schema[key](value, w)
    for t, k in REQUIRED:
        if t == table and k not in out:
            raise where.child(k).error("is required")
    return out


def validate_app_name(name: str, file: str) -> str:
    w = _Where(file, "")
    if not name or len(name) > APP_NAME_MAX:
        raise w.error(f"app name {name!r} must be 1 to {APP_NAME_MAX} characters: the "
                      "longest file named after it, '.APP-pull.service.<12 hex>.new', must "
                      f"fit the {NAME_MAX} bytes of a file name")
    if not _APP_NAME.fullmatch(name):
        raise w.error(f"app name {name!r} (the file name) is not a valid unit name prefix; "
                      "use letters, digits, '-', '_', '.', ':' and start with a letter, "
                      "digit or '_'")
    if name.endswith("-pull"):
        raise w.error(f"app name {name!r} must not end in '-pull': its run unit would clash "
                      f"with the pull unit of app {name[:-5]!r}")
    if name.endswith(".lock"):
        raise w.error(f"app name {name!r} must not end in '.lock': {name}.toml is where "
                      f"'pullunit pin' keeps the lock file of app {name[:-5]!r}")
    return name


def parse_app(name: str, data: Mapping[str, Any], path: Path) -> AppConfig:
    """Validate a decoded TOML document into an AppConfig."""
    file = str(path)
    validate_app_name(name, file)
    root = _Where(file, "")
    for table in data:
        if table not in _SCHEMA:
            raise _unknown(table, list(_SCHEMA), root.child(table), "table")
    if "image" not in data:
        raise root.child("image").error("table [image] with 'ref' is required")
    tables = {t: _parse_table(t, data.get(t, {}), root.child(t)) for t in _SCHEMA}

    pull = PullConfig(**tables["pull"])
    if pull.max_delay < pull.initial_delay:
        raise root.child("pull").child("max_delay").error(
            "must not be less than pull.initial_delay")

    run_values = tables["run"]
    if "name" not in run_values:
        if not _CONTAINER_NAME.fullmatch(name):
            raise root.child("run").child("name").error(
                f"is required: the app name {name!r} is not a valid container name")
        run_values["name"] = name
    run = RunConfig(**run_values)
    return AppConfig(
        name=name,
        path=path,
        image=ImageConfig(**tables["image"]),
        pull=pull,
        run=run,
        unit=UnitConfig(**tables["unit"]),
    )


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


def load_app(path: Path) -> AppConfig:
    """Read and validate one APP.toml. Raises ConfigError naming the file."""
    return parse_app(app_name_of(path), read_toml(path), path)


def app_name_of(path: Path) -> str:
    return path.name[: -len(".toml")] if path.name.endswith(".toml") else path.stem


def config_dir_from_env(arg: str | None) -> Path:
    if arg:
        return Path(arg)
    env = os.environ.get("PULLUNIT_CONFIG_DIR")
    return Path(env) if env else DEFAULT_CONFIG_DIR


def app_files(config_dir: Path) -> list[Path]:
    """APP.toml files of a config dir, sorted; lock files and hidden files excluded."""
    try:
        entries = sorted(config_dir.iterdir())
    except FileNotFoundError:
        return []
    except OSError as e:
        raise ConfigError(f"Cannot read config directory {config_dir}: {e.strerror}") from e
    return [p for p in entries
            if p.name.endswith(".toml") and not p.name.endswith(LOCK_SUFFIX)
            and not p.name.startswith(".") and p.is_file()]


def resolve_app(config_dir: Path, app_or_file: str) -> Path:
    """An argument that is an app name or a path to a TOML file."""
    if app_or_file.endswith(".toml") or "/" in app_or_file:
        return Path(app_or_file)
    path = config_dir / f"{app_or_file}.toml"
    if not path.exists():
        raise ConfigError(f"No config for app {app_or_file!r}: {path} does not exist")
    return path
