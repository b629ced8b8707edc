"""Drop-ins: CONFIG_DIR/APP.toml.d/*.toml merged over APP.toml, as systemd merges
UNIT.d/*.conf, so configuration management can set one host's memory limit without
owning the whole file.

The rule: files apply in lexical order of their names after APP.toml; a table merges key
by key, anything else (a string, a number, an array, an array of tables) replaces what was
there. Hidden files and names not ending in ".toml" are ignored. The merge records which
file set each key (`origins`, read by configvalues.Where) so an error names the file that
holds the bad value. Pure apart from listing the directory; the generator imports it, so
nothing heavy here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .escape import UnsafeValueError, check_text

SUFFIX = ".d"
FILE_SUFFIX = ".toml"


def dropin_dir(config: Path) -> Path:
    """APP.toml -> APP.toml.d beside it."""
    return config.with_name(config.name + SUFFIX)


def dropin_files(config: Path) -> list[Path]:
    """The drop-ins of one app config, in the order they apply."""
    d = dropin_dir(config)
    try:
        names = sorted(os.listdir(d))  # code point order = byte order of UTF-8, as systemd
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as e:
        raise ConfigError(f"Cannot read drop-in directory {d}: {e.strerror}") from e
    out = []
    for name in names:
        if name.startswith(".") or not name.endswith(FILE_SUFFIX):
            continue
        path = d / name
        try:
            # The unit files name their sources in a comment: a newline in a name would
            # end that comment and start a directive.
            check_text(name)
        except UnsafeValueError as e:
            raise ConfigError(f"{d}: drop-in file name {name!r} {e}") from None
        if path.is_file():
            out.append(path)
    return out


def orphan_dirs(config_dir: Path) -> list[Path]:
    """APP.toml.d directories with no APP.toml: their drop-ins apply to nothing."""
    try:
        entries = sorted(config_dir.iterdir())
    except OSError:
        return []
    return [p for p in entries
            if p.name.endswith(FILE_SUFFIX + SUFFIX) and not p.name.startswith(".")
            and p.is_dir() and not p.with_name(p.name[: -len(SUFFIX)]).exists()]


Key = tuple[str, ...]


@dataclass(frozen=True)
class Merged:
    """A config with its drop-ins applied. `origins` maps the path of each key a file set
    (a table it created, a value it replaced) to that file; a key not in it came from the
    same file as its table, and a top-level key from `files[0]`."""

    data: dict[str, Any]
    origins: dict[Key, str]
    files: tuple[Path, ...]

    def source(self, path: Key) -> str:
        """The file that set this key."""
        return source_of(self.origins, path, str(self.files[0]))

    def leaves(self) -> Iterator[tuple[Key, Any, str]]:
        """Every value that is not a table, with its path and the file that set it."""
        def walk(table: Mapping[str, Any], prefix: Key) -> Iterator[tuple[Key, Any, str]]:
            for key, value in table.items():
                path = (*prefix, key)
                if isinstance(value, dict):
                    yield from walk(value, path)
                else:
                    yield path, value, self.source(path)
        return walk(self.data, ())


def source_of(origins: Mapping[Key, str], path: Key, main: str) -> str:
    """The file that set the key at `path`: the longest recorded prefix of it, else the
    main file (configvalues.Where.child applies the same rule one key at a time)."""
    for n in range(len(path), 0, -1):
        found = origins.get(path[:n])
        if found is not None:
            return found
    return main


def merge(layers: Sequence[tuple[str, Mapping[str, Any]]]) -> tuple[dict[str, Any], dict[Key, str]]:
    """Merge decoded documents (file name, data), the first at the bottom. Pure: the
    inputs are not changed (values are shared, tables copied where they merge)."""
    data: dict[str, Any] = {}
    origins: dict[Key, str] = {}
    for file, doc in layers:
        data = _merged(data, doc, (), file, origins)
    return data, origins


def _merged(base: Mapping[str, Any], over: Mapping[str, Any], prefix: Key, file: str,
            origins: dict[Key, str]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        path = (*prefix, key)
        old = out.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            out[key] = _merged(old, value, path, file, origins)
            continue
        # Replaced whole: what a lower file said inside it no longer counts.
        for stale in [p for p in origins if p[: len(path)] == path]:
            del origins[stale]
        out[key] = value
        origins[path] = file
    return out


def load(config: Path, read: Callable[[Path], dict[str, Any]]) -> Merged:
    """APP.toml and its drop-ins, read with `read` (config.read_toml: every failure a
    ConfigError naming its file) and merged."""
    files = [config, *dropin_files(config)]
    if len(files) == 1:  # the common case: nothing to merge, nothing to record
        return Merged(read(config), {}, (config,))
    data, origins = merge([(str(f), read(f)) for f in files])
    return Merged(data, origins, tuple(files))


def orphan_warning(d: Path) -> str:
    return (f"{d}: there is no {d.name[: -len(SUFFIX)]} beside it, so its drop-ins apply "
            "to nothing")
