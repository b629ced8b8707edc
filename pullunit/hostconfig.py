"""Host-wide settings: CONFIG_DIR/pullunit.toml (/etc/pullunit/pullunit.toml).

Validated exactly like an app config (configvalues.py's parsers): strict keys per table with a
suggestion for a typo, every error naming the file and the dotted key (exit 78), frozen
dataclasses out. No file means the defaults.

One table of keys drives parsing and the unknown-key error, so a setting is declared
once. Today: [metrics], [[mirror]] (mirrors.py) and max_parallel_pulls. To grow it, add
a row to _SCHEMA and a field to HostConfig.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import HOST_CONFIG_NAME, read_toml
from .configvalues import (
    Parser,
    Where,
    abs_path,
    boolean,
    integer,
    strict_table,
    unknown,
)
from .errors import ConfigError
from .mirrors import Mirror, parse_mirrors

# Where Debian's prometheus-node-exporter reads *.prom files (its textfile collector).
DEFAULT_METRICS_DIR = Path("/var/lib/prometheus/node-exporter")


@dataclass(frozen=True)
class MetricsConfig:
    enabled: bool = True
    dir: Path | None = None  # None: DEFAULT_METRICS_DIR, written only when it exists

    @property
    def directory(self) -> Path:
        return self.dir or DEFAULT_METRICS_DIR

    @property
    def configured(self) -> bool:
        """A directory named on purpose is created when missing; the default one is
        used only when it exists (node_exporter's package, or our tmpfiles, made it)."""
        return self.dir is not None


# Layer pulls at once on this host (pullslots.py); 0: no limit. 3: dockerd fetches 3 layers
# of each pull at once, so 3 pulls keep up to 9 transfers going, which fills a link; more
# only split it further and make every app wait for the slowest (README).
DEFAULT_MAX_PARALLEL_PULLS = 3


def max_pulls(value: object, where: Where) -> int:
    return integer(value, where, 0, 64, low_means="no limit")


@dataclass(frozen=True)
class HostConfig:
    path: Path
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    mirrors: tuple[Mirror, ...] = ()  # [[mirror]]: endpoints per origin registry
    max_parallel_pulls: int = DEFAULT_MAX_PARALLEL_PULLS


def _table(cls: type, keys: Mapping[str, Parser]) -> Parser:
    """A [table] with exactly these keys, into `cls` (field names = key names)."""
    def parse(value: object, where: Where) -> Any:
        return cls(**strict_table(value, dict(keys), where, where.key))
    return parse


# top-level key (a table or a value) -> (HostConfig field, parser)
_SCHEMA: dict[str, tuple[str, Parser]] = {
    "metrics": ("metrics", _table(MetricsConfig, {"enabled": boolean, "dir": abs_path})),
    "mirror": ("mirrors", parse_mirrors),
    "max_parallel_pulls": ("max_parallel_pulls", max_pulls),
}


def parse_host(data: Mapping[str, Any], path: Path) -> HostConfig:
    root = Where(str(path), "")
    values: dict[str, Any] = {}
    for key, raw in data.items():
        if key not in _SCHEMA:
            raise unknown(key, list(_SCHEMA), root.child(key), "table or key")
        name, parse = _SCHEMA[key]
        values[name] = parse(raw, root.child(key))
    return HostConfig(path=path, **values)


def host_config_path(config_dir: Path) -> Path:
    return config_dir / HOST_CONFIG_NAME


def load_host(config_dir: Path) -> HostConfig:
    """CONFIG_DIR/pullunit.toml, validated; the defaults when there is none."""
    path = host_config_path(config_dir)
    try:
        data = read_toml(path)  # the one reader: deep nesting or huge numbers are 78, too
    except ConfigError as e:
        if isinstance(e.__cause__, FileNotFoundError):
            return HostConfig(path)
        raise
    return parse_host(data, path)
