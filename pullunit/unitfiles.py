"""Turn a config dir into unit files: validate each app, render its pair, write atomically,
and prune pairs whose config is gone. An invalid app changes nothing of its own and
nothing of anyone else's, and a unit that cannot be written costs only its own app."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from . import paths
from .config import AppConfig, app_files, load_app
from .errors import ConfigError, ExitCode, PullunitError
from .escape import UnsafeValueError, check_text
from .fsutil import CannotWrite, write_if_changed
from .render import UnitFile, make_environment, render_app


@dataclass
class Result:
    written: list[Path] = field(default_factory=list)
    unchanged: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    apps: list[AppConfig] = field(default_factory=list)
    # ConfigError for an invalid app; exit code IOERR for one whose units cannot be written
    errors: list[PullunitError] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.written or self.removed)


def exit_status(errors: Iterable[PullunitError]) -> ExitCode:
    """74 when a unit could not be written or removed, else 78 for an invalid app, else 0."""
    codes = {e.exit_code for e in errors}
    if ExitCode.IOERR in codes:
        return ExitCode.IOERR
    return ExitCode.CONFIG if codes else ExitCode.OK


@dataclass(frozen=True)
class Rendered:
    app: AppConfig
    units: list[UnitFile]


def render_one(path: Path, config_dir: Path, executable: str,
               env: jinja2.Environment) -> Rendered:
    """Load and render one app; every way that can fail is a ConfigError naming its file."""
    app = load_app(path)
    try:
        return Rendered(app, render_app(app, env, config_dir, executable))
    except PullunitError:
        raise
    except Exception as e:  # a broken admin template must not hide other apps' units
        raise ConfigError(f"{path}: cannot render units: {e}") from e


def render_all(config_dir: Path, files: Iterable[Path], executable: str,
               result: Result) -> list[Rendered]:
    """Load and render every file; a failing app lands in result.errors, not in the output."""
    env = None
    out = []
    for path in files:
        try:
            if env is None:
                env = make_environment(config_dir)
            rendered = render_one(path, config_dir, executable, env)
        except ConfigError as e:
            result.errors.append(e)
            continue
        out.append(rendered)
        result.apps.append(rendered.app)
    return out


def _unique_container_names(rendered: list[Rendered], config_dir: Path, files: list[Path],
                            result: Result) -> list[Rendered]:
    """Two apps with one run.name would `docker rm --force` each other's container. The
    app whose file sorts first keeps the name; the other is reported and not written."""
    owners: dict[str, Path] = {}
    for path in app_files(config_dir):  # apps not being generated now still own their names
        if Path(os.path.abspath(path)) not in files:
            with contextlib.suppress(ConfigError):
                owners.setdefault(load_app(path).run.name, path)
    kept = []
    for r in sorted(rendered, key=lambda r: str(r.app.path)):
        owner = owners.setdefault(r.app.run.name, r.app.path)
        if owner != r.app.path:
            result.errors.append(ConfigError(
                f"{r.app.file_of('run', 'name')}: run.name: container name "
                f"{r.app.run.name!r} is already used "
                f"by {owner}; each app needs its own"))
            result.apps.remove(r.app)
            continue
        kept.append(r)
    return kept


def marker_source(path: Path) -> Path | None:
    """The config a generated unit came from, or None for a file pullunit did not write."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            first = f.readline()
    except OSError:
        return None
    if not first.startswith(paths.MARKER_PREFIX):
        return None
    rest = first[len(paths.MARKER_PREFIX):]
    return Path(rest.split("; do not edit", 1)[0])


def prune(output_dir: Path, keep: set[str], result: Result, dry_run: bool) -> None:
    """Remove pullunit-generated units whose source config no longer exists."""
    try:
        candidates = sorted(output_dir.glob("*.service"))
    except OSError:
        return
    for unit in candidates:
        if unit.name in keep or unit.is_symlink():
            continue
        source = marker_source(unit)
        if source is None or source.exists():
            continue  # hand-written, or its config is still there (maybe invalid right now)
        if not dry_run:
            try:
                # Links first: once the unit is gone, glob() no longer sees dangling links.
                for wants in output_dir.glob("*.wants"):
                    link = wants / unit.name
                    if link.is_symlink():
                        link.unlink()
                unit.unlink()
            except OSError as e:  # the next unit, and the apps already written, stand
                result.errors.append(PullunitError(f"Cannot remove {unit}: {e.strerror or e}",
                                                   ExitCode.IOERR))
                continue
        result.removed.append(unit)


def generate(config_dir: Path, output_dir: Path, *, selected: list[Path] | None = None,
             executable: str | None = None, dry_run: bool = False, durable: bool = True,
             out: list[UnitFile] | None = None) -> Result:
    """Write units for `selected` files (or every app). Pruning happens only for a full run,
    so `pullunit generate web` never removes another app's units."""
    if "\n" in str(config_dir) or "\n" in str(output_dir):
        raise PullunitError("directory names must not contain newlines", ExitCode.USAGE)
    for var, value in paths.relocations():  # baked into every pull unit: check it once
        try:
            check_text(value)
        except UnsafeValueError as e:
            raise PullunitError(f"{var} {e}", ExitCode.USAGE) from None
    result = Result()
    # Units run with cwd /: a relative --config-dir would mean something else there, and
    # the marker must name the source file unambiguously for pruning.
    config_dir = Path(os.path.abspath(config_dir))
    files = [Path(os.path.abspath(p))
             for p in (selected if selected is not None else app_files(config_dir))]
    rendered = render_all(config_dir, files, executable or paths.pullunit_executable(), result)
    rendered = _unique_container_names(rendered, config_dir, files, result)
    names: set[str] = set()
    for r in rendered:
        names.update(unit.name for unit in r.units)
        if dry_run:
            if out is not None:
                out.extend(r.units)
            continue
        for unit in r.units:
            target = output_dir / unit.name
            try:
                changed = write_if_changed(target, unit.text, durable=durable)
            except OSError as e:
                # This app is not generated (nor enabled or started); the others still are.
                result.errors.append(CannotWrite(target, e))
                result.apps.remove(r.app)
                break
            (result.written if changed else result.unchanged).append(target)
    if selected is None:
        # Units of an app whose config is merely invalid survive: prune() only removes
        # those whose source file is gone, so a typo never takes a running app's units away.
        prune(output_dir, names, result, dry_run)
    return result
