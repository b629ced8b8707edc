"""pullunit doctor [APP | IMAGE_REF] [--json] [--repeat N [--interval TIME]]: the incident
checklist (pullunit.doctor); pullunit doctor --compare A.json B.json ...: what differs
between the host fingerprints of several hosts.

The target is an app name (its config gives the reference, image.platform and
image.auth_file; a lock file's pinned digest applies, as for the pull unit), a path to an
APP.toml, or an image reference (checked with the defaults: the daemon's platform and the
running user's docker config). Without a target, every app in the config dir is checked;
with no apps, only the host checks run (daemon, disk, daemon_config, proxy).

--json prints one JSON array with one object per target, always, even for one target:

  [{"app": "web" | null, "target": "registry.example.com/team/app:1.2.3" | null,
    "platform": "linux/amd64" | null, "ok": true | false,
    "checks": [{"check": ID, "status": "pass" | "warn" | "fail" | "skip",
                "detail": "...", "hint": "..." (empty when there is nothing to do),
                "data": {...} (rate_limit only: the registry's quota, numbers)}],
    "host": {fingerprint}, "repeat": {...} (only with --repeat)}]

"app" is null for an image reference; "target" is null for the host-only run; "platform"
is image.platform when the config sets one, else null (the daemon's platform is used).
Check ids are pullunit.doctor.CHECKS in that order (checks that need an image are left
out of the host-only run) plus "config" for an app whose config does not load (only when
checking every app; a named app with a broken config is a configuration error, exit 78).
"host" is this host's fingerprint (doctor/fingerprint.py), the same in every object;
"repeat" is {"rounds", "interval", "checks": [{"check", "rounds", "ran", "failed",
"verdict": "ok"|"flapping"|"steady"|"skipped", "failures": [{"detail", "count"}]}]}.
Keys and ids are only ever added, never renamed. See docs/doctor.md.

Exit status: 0 when no check failed (warnings and skips are fine), 1 otherwise (with
--repeat: a check failed in any round). --compare: 0 when nothing differs, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any, TextIO

from ..cli import config_dir
from ..config import AppConfig, app_files, app_name_of, load_app
from ..doctor import (
    CONFIG_CHECK,
    Check,
    Options,
    Status,
    Tally,
    Target,
    Verdict,
    diagnose,
    diagnose_repeated,
    failed,
)
from ..durations import DurationError, human, parse_duration
from ..errors import ConfigError, ExitCode, PullunitError
from ..hostconfig import load_host
from ..log import use_color
from ..mirrors import Mirror, endpoints_for
from ..reference import BadReference, ImageRef, parse_reference

log = logging.getLogger("pullunit")
_BARE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]*$")
_COLORS = {Status.PASS: "32", Status.WARN: "33", Status.FAIL: "1;31", Status.SKIP: "2"}


def _app_target(app: AppConfig, host: tuple[Mirror, ...] = ()) -> Target:
    from .. import pinning

    pin = pinning.answer(app)
    pinned_by = None
    if pin.pinned and pin.lock is not None:
        pinned_by = f"{pinning.lock_path(app)}, from 'pullunit {pin.lock.source}'"
    return Target(reference=str(pin.ref), app=app.name, platform=app.image.platform,
                  auth_file=app.image.auth_file, policy=str(app.image.policy),
                  pinned_by=pinned_by, mirrors=_mirrors(pin.ref, host, app.image.mirrors))


def _mirrors(ref: ImageRef, host: tuple[Mirror, ...],
             override: tuple[str, ...] | None = None) -> tuple[str, ...]:
    return tuple(e.host for e in endpoints_for(ref, host, override))


def _host_mirrors(cfg: Path) -> tuple[Mirror, ...]:
    """pullunit.toml's [[mirror]]; a broken file is said, and the checks go on without
    it (doctor is for finding out what is wrong)."""
    try:
        return load_host(cfg).mirrors
    except ConfigError as e:
        log.error("%s; its mirrors are not checked", e.message)
        return ()


def _targets(args: argparse.Namespace) -> list[tuple[str | None, Target | None, Check | None]]:
    """(app name, target, config failure) for each thing to check."""
    cfg = config_dir(args)
    target: str | None = args.target
    host = _host_mirrors(cfg)
    if target is None:
        out: list[tuple[str | None, Target | None, Check | None]] = []
        for path in app_files(cfg):
            try:
                out.append((app_name_of(path), _app_target(load_app(path), host), None))
            except ConfigError as e:
                out.append((app_name_of(path), None,
                            Check(CONFIG_CHECK, Status.FAIL, e.message,
                                  e.hint or f"'pullunit validate {app_name_of(path)}'")))
        return out or [(None, None, None)]
    if target.endswith(".toml"):
        app = load_app(Path(target))
        return [(app.name, _app_target(app, host), None)]
    path = cfg / f"{target}.toml"
    if "/" not in target and path.exists():
        app = load_app(path)
        return [(app.name, _app_target(app, host), None)]
    if _BARE_NAME.match(target):
        # A bare word is an app name or a tagless reference; neither can be checked.
        raise ConfigError(f"{target!r} is neither an app ({path} does not exist) nor an image "
                          "reference with a tag or digest",
                          f"name an app in {cfg}, or write {target}:TAG")
    try:
        mirrors = _mirrors(parse_reference(target), host)
    except BadReference:
        mirrors = ()  # the reference check says what is wrong with it
    return [(None, Target(reference=target, mirrors=mirrors), None)]


def _result(app: str | None, target: Target | None, checks: list[Check],
            tallies: list[Tally] | None = None,
            repeat: tuple[int, float] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "app": app, "target": target.reference if target else None,
        "platform": target.platform if target else None,
        "ok": not failed(checks) and all(t.verdict in (Verdict.OK, Verdict.SKIPPED)
                                         for t in tallies or []),
        "checks": [c.to_json() for c in checks]}
    if repeat is not None:
        out["repeat"] = {"rounds": repeat[0], "interval": repeat[1],
                         "checks": [t.to_json() for t in tallies or []]}
    return out


_INTERMITTENT_HINT = ("an intermittent failure (field guide 12.6): compare the failing "
                      "rounds' details; usual causes are a resolver that answers differently, "
                      "MTU on one path, a proxy or load balancer member, or rate limits")


def _print_repeat(r: dict[str, Any], out: TextIO, width: int) -> None:
    rep = r.get("repeat")
    if not rep:
        return
    out.write(f"  the network checks {rep['rounds']} times, {human(rep['interval'])} apart:\n")
    for t in rep["checks"]:
        if t["verdict"] == "skipped":
            line = f"never ran ({t['rounds']} rounds skipped)"
        else:
            line = f"{t['failed']} of {t['ran']} failed"
            if t["ran"] < t["rounds"]:
                line += f" ({t['rounds'] - t['ran']} skipped)"
            if t["verdict"] != "ok":
                line += f": {t['verdict'].upper()}"
        out.write(f"  {'':<4}  {t['check']:<{width}}  {line}\n")
        for f in t["failures"][:3]:
            out.write(f"  {'':<4}  {'':<{width}}    {f['count']}x {f['detail']}\n")
    if any(t["verdict"] == "flapping" for t in rep["checks"]):
        out.write(f"  {'':<4}  {'':<{width}}  fix: {_INTERMITTENT_HINT}\n")


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
        _print_repeat(r, out, width)
        counts = {s: sum(1 for c in r["checks"] if c["status"] == s) for s in Status}
        summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        out.write(f"  {'ok' if r['ok'] else 'FAILED'}: {summary}\n")


def _interval(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except DurationError as e:
        raise PullunitError(f"--interval: {e}", ExitCode.USAGE) from None
    if seconds > 3600:
        raise PullunitError("--interval: at most 1h", ExitCode.USAGE)
    return seconds


def _compare(files: list[str]) -> int:
    from ..doctor.fingerprint import compare, fingerprint_of

    if len(files) < 2:
        raise PullunitError("--compare needs at least two files", ExitCode.USAGE)
    fingerprints = []
    for name in files:
        try:
            data = json.loads(Path(name).read_text())
        except FileNotFoundError:
            raise PullunitError(f"Cannot read {name}: no such file", ExitCode.NOINPUT) from None
        except OSError as e:
            raise PullunitError(f"Cannot read {name}: {e.strerror}", ExitCode.NOINPUT) from e
        except ValueError as e:
            raise PullunitError(f"{name}: not JSON ({e})", ExitCode.DATAERR) from e
        fp = fingerprint_of(data)
        if fp is None:
            raise PullunitError(f"{name}: no host fingerprint in it", ExitCode.DATAERR,
                                "save it with 'pullunit doctor --json > FILE' (pullunit "
                                "0.2 or later) on each host")
        fingerprints.append(fp)
    diffs = compare(fingerprints)
    labels = [f"{Path(f).name} ({fp.get('hostname') or '?'})" for f, fp in
              zip(files, fingerprints, strict=True)]
    width = max(len(x) for x in labels)
    if not diffs:
        print(f"no differences between {', '.join(labels)}")
        return int(ExitCode.OK)
    print(f"{len(diffs)} difference(s), most suspicious first:")
    for d in diffs:
        print(f"\n{d.key}" + (f"  ({d.why})" if d.why else ""))
        for label, value in zip(labels, d.values, strict=True):
            shown = "(not set)" if value is None else json.dumps(value)
            print(f"  {label:<{width}}  {shown}")
    return int(ExitCode.FAILURE)


def run(args: argparse.Namespace) -> int:
    if args.compare:
        return _compare(args.compare)
    options = Options.from_env()
    interval = _interval(args.interval)
    results = []
    for app, target, broken in _targets(args):
        if broken is not None:
            results.append(_result(app, target, [broken]))
        elif target is not None and args.repeat > 1:
            checks, tallies = diagnose_repeated(target, options, args.repeat, interval)
            results.append(_result(app, target, checks, tallies, (args.repeat, interval)))
        else:
            results.append(_result(app, target, diagnose(target, options)))
    if args.json:
        from ..doctor.fingerprint import collect

        host = collect(options)
        for r in results:
            r["host"] = host
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_human(results, sys.stdout)
    return int(ExitCode.FAILURE) if any(not r["ok"] for r in results) else int(ExitCode.OK)
