"""pullunit doctor [APP | IMAGE_REF] [--json]: the incident checklist (pullunit.doctor).

The target is an app name (its config gives the reference, image.platform and
image.auth_file; a lock file's pinned digest applies, as for the pull unit), a path to an
APP.toml, or an image reference (checked with the defaults: the daemon's platform and the
running user's docker config). Without a target, every app in the config dir is checked;
with no apps, only the host checks run (daemon, disk, daemon_config, proxy).

--json prints one JSON array with one object per target, always, even for one target:

  [{"app": "web" | null, "target": "registry.example.com/team/app:1.2.3" | null,
    "platform": "linux/amd64" | null, "ok": true | false,
    "checks": [{"check": ID, "status": "pass" | "warn" | "fail" | "skip",
                "detail": "...", "hint": "..." (empty when there is nothing to do)}]}]

"app" is null for an image reference; "target" is null for the host-only run; "platform"
is image.platform when the config sets one, else null (the daemon's platform is used).
Check ids are pullunit.doctor.CHECKS in that order (checks that need an image are left
out of the host-only run) plus "config" for an app whose config does not load (only when
checking every app; a named app with a broken config is a configuration error, exit 78).
Keys and ids are only ever added, never renamed. See docs/doctor.md.

Exit status: 0 when no check failed (warnings and skips are fine), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any, TextIO

from ..cli import config_dir
from ..config import AppConfig, app_files, app_name_of, load_app
from ..doctor import CONFIG_CHECK, Check, Options, Status, Target, diagnose, failed
from ..errors import ConfigError, ExitCode
from ..log import use_color

_BARE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
_COLORS = {Status.PASS: "32", Status.WARN: "33", Status.FAIL: "1;31", Status.SKIP: "2"}


def _app_target(app: AppConfig) -> Target:
    from .. import lockfile

    pin = lockfile.answer(app)
    pinned_by = None
    if pin.pinned and pin.lock is not None:
        pinned_by = f"{lockfile.lock_path(app)}, from 'pullunit {pin.lock.source}'"
    return Target(reference=str(pin.ref), app=app.name, platform=app.image.platform,
                  auth_file=app.image.auth_file, policy=str(app.image.policy),
                  pinned_by=pinned_by)


def _targets(args: argparse.Namespace) -> list[tuple[str | None, Target | None, Check | None]]:
    """(app name, target, config failure) for each thing to check."""
    cfg = config_dir(args)
    target: str | None = args.target
    if target is None:
        out: list[tuple[str | None, Target | None, Check | None]] = []
        for path in app_files(cfg):
            try:
                out.append((app_name_of(path), _app_target(load_app(path)), None))
            except ConfigError as e:
                out.append((app_name_of(path), None,
                            Check(CONFIG_CHECK, Status.FAIL, e.message,
                                  e.hint or f"'pullunit validate {app_name_of(path)}'")))
        return out or [(None, None, None)]
    if target.endswith(".toml"):
        app = load_app(Path(target))
        return [(app.name, _app_target(app), None)]
    path = cfg / f"{target}.toml"
    if "/" not in target and path.exists():
        app = load_app(path)
        return [(app.name, _app_target(app), None)]
    if _BARE_NAME.match(target):
        # A bare word is an app name or a tagless reference; neither can be checked.
        raise ConfigError(f"{target!r} is neither an app ({path} does not exist) nor an image "
                          "reference with a tag or digest",
                          f"name an app in {cfg}, or write {target}:TAG")
    return [(None, Target(reference=target), None)]


def _result(app: str | None, target: Target | None, checks: list[Check]) -> dict[str, Any]:
    return {"app": app, "target": target.reference if target else None,
            "platform": target.platform if target else None, "ok": not failed(checks),
            "checks": [c.to_json() for c in checks]}


def _print_human(results: list[dict[str, Any]], out: TextIO) -> None:
    color = use_color(out)
    width = max(len(c["check"]) for r in results for c in r["checks"]) if results else 12
    for i, r in enumerate(results):
        if i:
            out.write("\n")
        title = " ".join(x for x in (r["app"], r["target"]) if x) or "this host"
        if r["platform"]:
            title += f" ({r['platform']})"
        out.write(f"{title}\n")
        for c in r["checks"]:
            label = f"{c['status']:<4}"
            if color:
                label = f"\033[{_COLORS[Status(c['status'])]}m{label}\033[0m"
            out.write(f"  {label}  {c['check']:<{width}}  {c['detail']}\n")
            if c["hint"] and c["status"] != "pass":
                out.write(f"  {'':<4}  {'':<{width}}  fix: {c['hint']}\n")
        counts = {s: sum(1 for c in r["checks"] if c["status"] == s) for s in Status}
        summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        out.write(f"  {'ok' if r['ok'] else 'FAILED'}: {summary}\n")


def run(args: argparse.Namespace) -> int:
    options = Options.from_env()
    results = []
    for app, target, broken in _targets(args):
        checks = [broken] if broken is not None else diagnose(target, options)
        results.append(_result(app, target, checks))
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_human(results, sys.stdout)
    return int(ExitCode.FAILURE) if any(not r["ok"] for r in results) else int(ExitCode.OK)
