"""What a config value may be: one parser per kind of value (a string safe for a unit file,
a duration, a port spec, a volume, a docker run word, ...). Each takes the raw TOML value
and a `Where` naming the file and the dotted key, and returns the typed value or raises a
ConfigError that names both. Pure: no I/O. The app schema (config.py) and the host-wide
settings (hostconfig.py) are tables of these.
"""

from __future__ import annotations

import enum
import ipaddress
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from . import platform
from .durations import DurationError, parse_duration
from .errors import ConfigError
from .escape import UnsafeValueError, check_text, unit_value
from .reference import BadReference, ImageRef, parse_reference, parse_registry

# A program argument (one word of an Exec*= line) is at most MAX_ARG_STRLEN = 32 pages,
# 131072 bytes with its NUL, on Linux; a longer one fails execve() with E2BIG, so the run
# unit would fail at every start.
ARG_MAX_BYTES = 32 * 4096 - 1
# All patterns below are used with fullmatch() (a "$" would let a trailing newline through)
# and re.ASCII: Docker's grammars are ASCII, and Python's \d and \w are not.
CONTAINER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*", re.ASCII)
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
T = TypeVar("T")


# Which file set each value of a merged config (dropins.py): key path -> file. A path not
# in it came from the same file as its parent table.
Origins = Mapping[tuple[str, ...], str]
_NO_ORIGINS: Origins = MappingProxyType({})


@dataclass(frozen=True)
class Where:
    """The file and the dotted key (run.ports[0]) a value came from; its errors name both.

    With drop-ins, `file` is the file that set this key: child() looks the key's path up
    in `origins`, so every parser's `where.child(key).error(...)` names the drop-in that
    holds a bad value, and no parser needs to know about drop-ins."""

    file: str
    key: str
    path: tuple[str, ...] = ()
    origins: Origins = field(default_factory=lambda: _NO_ORIGINS, repr=False, compare=False)

    def child(self, name: str | int) -> Where:
        if isinstance(name, int):
            # An array is replaced whole by a drop-in: its items come from its file.
            return Where(self.file, f"{self.key}[{name}]", self.path, self.origins)
        path = (*self.path, name)
        return Where(self.origins.get(path, self.file),
                     f"{self.key}.{name}" if self.key else name, path, self.origins)

    def error(self, message: str, hint: str = "") -> ConfigError:
        prefix = f"{self.file}: {self.key}: " if self.key else f"{self.file}: "
        return ConfigError(prefix + message, hint)


# Every parser's type: (raw value, where) -> typed value.
Parser = Callable[[object, Where], Any]


def type_name(value: object) -> str:
    return {str: "string", int: "integer", float: "float", bool: "boolean", list: "array",
            dict: "table"}.get(type(value), type(value).__name__)


def string(value: object, where: Where) -> str:
    if not isinstance(value, str):
        raise where.error(f"expected a string, got {type_name(value)}")
    try:
        check_text(value)
    except UnsafeValueError as e:
        raise where.error(f"value {value!r} {e}") from None
    return value


def nonempty_string(value: object, where: Where) -> str:
    s = string(value, where)
    if not s:
        raise where.error("must not be empty")
    return s


def boolean(value: object, where: Where) -> bool:
    if not isinstance(value, bool):
        raise where.error(f"expected true or false, got {type_name(value)}")
    return value


def list_of(item: Callable[[object, Where], T]) -> Callable[[object, Where], tuple[T, ...]]:
    def parse(value: object, where: Where) -> tuple[T, ...]:
        if not isinstance(value, list):
            raise where.error(f"expected an array, got {type_name(value)}")
        return tuple(item(v, where.child(i)) for i, v in enumerate(value))
    return parse


def _arg_size_error(size: int, where: Where) -> ConfigError:
    return where.error(f"is {size} bytes; one argument of a command can be at most "
                       f"{ARG_MAX_BYTES} bytes (Linux MAX_ARG_STRLEN), so docker run "
                       "would fail at every start")


def one_word(item: Callable[[object, Where], T]) -> Callable[[object, Where], T]:
    """A value that becomes one word of the run unit's `docker run` command line."""
    def parse(value: object, where: Where) -> T:
        parsed = item(value, where)
        size = len(str(parsed).encode())
        if size > ARG_MAX_BYTES:
            raise _arg_size_error(size, where)
        return parsed
    return parse


def one_of(cls: type[enum.StrEnum]) -> Callable[[object, Where], Any]:
    def parse(value: object, where: Where) -> Any:
        s = string(value, where)
        try:
            return cls(s)
        except ValueError:
            allowed = ", ".join(m.value for m in cls)
            raise where.error(f"{s!r} is not a valid value; expected one of: {allowed}") from None
    return parse


def duration(*, finite: bool = True, positive: bool = False) -> Callable[[object, Where], float]:
    def parse(value: object, where: Where) -> float:
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


def abs_path(value: object, where: Where) -> Path:
    s = nonempty_string(value, where)
    if not s.startswith("/"):
        raise where.error(f"path {s!r} must be absolute")
    if "%" in s or "$" in s or "\\" in s:
        raise where.error(f"path {s!r} must not contain '%', '$' or '\\'")
    return Path(os.path.normpath(s))


def image_ref(value: object, where: Where) -> ImageRef:
    s = nonempty_string(value, where)
    try:
        return parse_reference(s)
    except BadReference as e:
        raise where.error(str(e)) from None


def platform_name(value: object, where: Where) -> str:
    s = nonempty_string(value, where)
    try:
        platform.parse(s)
    except ValueError as e:
        raise where.error(str(e)) from None
    return s


def multiplier(value: object, where: Where) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise where.error(f"expected a number, got {type_name(value)}")
    if not (1.0 <= value <= 100.0):
        raise where.error(f"must be between 1.0 and 100.0, got {value}")
    return float(value)


INT64_MAX = 2**63 - 1


def integer(value: object, where: Where, low: int, high: int = INT64_MAX,
            low_means: str = "") -> int:
    """An integer from low to high (a TOML bool is not one); `low_means` says what the
    lowest value does, e.g. "no limit"."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise where.error(f"expected an integer, got {type_name(value)}")
    if not low <= value <= high:
        shown = f"{low} ({low_means})" if low_means else str(low)
        raise where.error(f"must be between {shown} and {high}, got {value}")
    return value


def keep(value: object, where: Where) -> int:
    return integer(value, where, 1, 100)


def container_name(value: object, where: Where) -> str:
    s = nonempty_string(value, where)
    if not CONTAINER_NAME.fullmatch(s):
        raise where.error(f"invalid container name {s!r}; use letters, digits, '_', '.', '-'"
                          " and start with a letter or digit")
    return s


def env_table(value: object, where: Where) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise where.error(f"expected a table of NAME = \"value\", got {type_name(value)}")
    out = []
    for name, v in value.items():
        w = where.child(name)
        if not _ENV_NAME.fullmatch(name):
            raise w.error(f"invalid environment variable name {name!r}; "
                          "use letters, digits and '_', not starting with a digit")
        word = (name, string(v, w))
        size = len("=".join(word).encode())  # one word: --env NAME=value
        if size > ARG_MAX_BYTES:
            raise _arg_size_error(size, w)
        out.append(word)
    return tuple(out)


def port(value: object, where: Where) -> str:
    s = nonempty_string(value, where)
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


def volume(value: object, where: Where) -> str:
    s = nonempty_string(value, where)
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


def network(value: object, where: Where) -> str:
    s = nonempty_string(value, where)
    if not _NETWORK.fullmatch(s):
        raise where.error(f"invalid network {s!r}")
    return s


def user(value: object, where: Where) -> str:
    s = nonempty_string(value, where)
    if not _USER.fullmatch(s):
        raise where.error(f"invalid user {s!r}; expected USER, UID, USER:GROUP or UID:GID")
    return s


# Docker keeps healthcheck durations as Go time.Duration: int64 nanoseconds, at least 1ms.
_DOCKER_DURATION_MAX = (2**63 - 1) / 1e9


def docker_duration(value: object, where: Where) -> float:
    seconds = duration(positive=True)(value, where)
    if seconds < 0.001:
        raise where.error("must be at least 1ms (Docker's smallest healthcheck duration)")
    if seconds > _DOCKER_DURATION_MAX:
        raise where.error("is too long for Docker (at most about 292 years)")
    return seconds


def health_cmd(value: object, where: Where) -> tuple[str, ...]:
    words = list_of(string)(value, where)
    if not words or not words[0]:
        raise where.error("must name a command, e.g. [\"/bin/check\", \"--quick\"]",
                          "remove the key to use the image's own HEALTHCHECK")
    return words


def retries(value: object, where: Where) -> int:
    return integer(value, where, 1, 1000)


def unit_name(value: object, where: Where) -> str:
    s = nonempty_string(value, where)
    if not _UNIT_NAME.fullmatch(s):
        raise where.error(f"invalid unit name {s!r}; expected e.g. \"postgresql.service\" "
                          "(no specifiers, no white space)")
    return s


def description(value: object, where: Where) -> str:
    s = nonempty_string(value, where)
    try:
        unit_value(s)
    except UnsafeValueError as e:
        raise where.error(f"value {s!r} {e}") from None
    return s


def endpoint(value: object, where: Where) -> str:
    """A registry host, as in an image reference: HOST[:PORT] (a mirror endpoint, or the
    origin a [[mirror]] table is for)."""
    s = string(value, where)
    try:
        return parse_registry(s)
    except BadReference as e:
        raise where.error(str(e)) from None


def endpoint_list(value: object, where: Where) -> tuple[str, ...]:
    hosts = list_of(endpoint)(value, where)
    seen: set[str] = set()
    for i, host in enumerate(hosts):
        if host.lower() in seen:
            raise where.child(i).error(f"endpoint {host!r} is listed twice")
        seen.add(host.lower())
    return hosts


def close_matches(name: str, valid: Sequence[str], cutoff: float = 0.6) -> list[str]:
    """The one valid name `name` was probably meant to be (a typo's suggestion). difflib
    is imported only when there is a typo: the generator's start path, run at every boot
    and daemon-reload, does not pay for it."""
    import difflib

    return difflib.get_close_matches(name, valid, n=1, cutoff=cutoff)


def unknown(name: str, valid: list[str], where: Where, what: str) -> ConfigError:
    close = close_matches(name, valid)
    suggestion = f"; did you mean {close[0]!r}?" if close else f"; valid: {', '.join(valid)}"
    return where.error(f"unknown {what} {name!r}{suggestion}")


def strict_table(raw: object, keys: dict[str, Parser], where: Where, name: str) -> dict[str, Any]:
    """A [name] table with only these keys, each through its parser: the one strict-table
    rule for app configs and pullunit.toml (an unknown key names the closest valid one)."""
    if not isinstance(raw, dict):
        raise where.error(f"expected a table [{name}], got {type_name(raw)}")
    out: dict[str, Any] = {}
    for key, value in raw.items():
        w = where.child(key)
        if key not in keys:
            raise unknown(key, list(keys), w, "key")
        out[key] = keys[key](value, w)
    return out
