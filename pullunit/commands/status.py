"""pullunit status: what systemd and the puller know about each app.

--json prints {"schema": 1, "apps": [APP...]} where APP is
  {"app", "config", "image", "policy",
   "units": {"pull": UNIT|null, "run": UNIT|null}, "systemd": null | "reason it is unknown",
   "in_use": "repo@sha256:..."|null,
   "lock": {"file", "digest", "source": "pin"|"rollback", "at", "applies": bool,
            "why": null | "why it does not apply"}
           | {"error"} | null,
   "current": ENTRY|null, "history": [ENTRY...],
   "last_failure": {"class", "message", "exit_code", "at", "fix"}|null,
   "failures": [{"at", "class", "message", "attempt"}...],
   "health": {"gate": bool, "container": "running"|"exited"|...|null,
              "status": "healthy"|"unhealthy"|"starting"|"none"|null, "check": str|null,
              "error": null | "why Docker could not be asked"},
   "limits": {"memory": BYTES|null, "memory_swap": BYTES|-1|null, "cpus": NUMBER|null,
              "pids": N|null} | null,
   "last_update": {"at", "from", "to", "result", "cause", "auto"}|null,
   "last_rollback": the same shape | null,
   "healthy": bool, "error": null | "config error text"}
UNIT is {"name", "load_state", "active_state", "sub_state", "result", "exec_main_status",
"n_restarts", "status_text"}; ENTRY is {"reference", "digest", "image_id", "first_ready",
"last_ready"} with times in seconds since the epoch. health.gate says whether the run unit
waits for readiness; health.status is Docker's healthcheck state ("none": no healthcheck;
null: no container). last_update is the newest `pullunit update` of the app: result
"updated", "rolled_back" (an automatic rollback; cause says why the new image was not
ready), "not_ready", "rollback_failed" or "interrupted"; auto is true when the timer
ran it.
limits are the effective limits of the running container, as the engine reports its
HostConfig (null for each limit it does not have; the whole object null when no container
runs); they come from the same one inspect as health.
last_rollback is the newest update that was rolled back automatically ("rolled_back" or
"rollback_failed"), whether or not a later update went well.
"failures" is the failure history: the last 20 failed attempts of pulls and prefetches,
newest first, kept after the app recovered ("attempt" is the n-th attempt of that run).
The human output shows the last three. Keys are only ever added.
Exit status: 0 when every app is healthy (both units active, and the container not
"unhealthy"), 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from typing import Any

from .. import appsecrets, pinning, state
from ..classify import FailureClass
from ..cli import config_dir
from ..config import AppConfig, app_files, app_name_of, load_app, resolve_app
from ..errors import ConfigError, ExitCode, PullunitError
from ..hints import HintContext, fix_for
from ..log import use_color
from ..printable import printable

SCHEMA = 1
RECENT = 3  # failures the human output shows


def _units(app: AppConfig) -> tuple[dict[str, Any], str | None]:
    from .. import systemd

    try:
        pull = systemd.unit_state(app.pull_unit).to_json()
        run = systemd.unit_state(app.run_unit).to_json()
    except PullunitError as e:
        return {"pull": None, "run": None}, e.message
    for unit in (pull, run):
        unit["status_text"] = printable(unit["status_text"] or "")
    return {"pull": pull, "run": run}, None


def _fix(app: AppConfig, cls: str) -> str:
    try:
        fc = FailureClass(cls)
    except ValueError:
        return ""
    return fix_for(fc, HintContext(ref=app.image.ref, platform=app.image.platform,
                                   auth_file_configured=app.image.auth_file is not None))


def _lock(app: AppConfig) -> dict[str, Any] | None:
    try:
        pin = pinning.answer(app)
    except ConfigError as e:
        return {"error": e.message}
    lock = pin.lock
    if lock is None:
        return None
    return {"file": str(pinning.lock_path(app)), "digest": lock.digest, "source": lock.source,
            "at": lock.at, "applies": pin.pinned, "why": pin.why or None}


_docker_down: list[str] = []  # once the engine did not answer, the other apps do not wait


def _inspect(app: AppConfig) -> tuple[dict[str, Any] | None, str | None]:
    """The app's container as the engine inspects it (None: there is none), asked with a
    bound; or why the engine could not be asked."""
    from .. import gate

    if _docker_down:
        return None, _docker_down[0]
    try:
        return gate.Engine.from_env().container(app.run.name), None
    except gate.EngineError as e:
        _docker_down.append(f"the Docker daemon does not answer: {e}")
        return None, _docker_down[0]


def _health(app: AppConfig, container: dict[str, Any] | None,
            error: str | None) -> dict[str, Any]:
    """The container's state and Docker's healthcheck verdict."""
    from ..health import last_check

    out: dict[str, Any] = {"gate": app.health.enabled, "container": None, "status": None,
                           "check": None, "error": error}
    if container is None:
        return out
    st = container.get("State") or {}
    out["container"] = st.get("Status")
    out["status"] = (st.get("Health") or {}).get("Status") or "none"
    out["check"] = last_check(st) or None
    return out


def _positive(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 \
        else None


def limits(container: dict[str, Any] | None) -> dict[str, Any] | None:
    """The limits the running container has (its HostConfig as the engine reports it, so
    also what docker_args or the daemon set): memory and memory_swap in bytes (-1:
    unlimited swap), cpus, pids; null for no limit. None when it does not run."""
    if not container or (container.get("State") or {}).get("Status") != "running":
        return None
    host = container.get("HostConfig") or {}
    cpus = None
    if nano := _positive(host.get("NanoCpus")):
        cpus = nano / 1e9
    elif quota := _positive(host.get("CpuQuota")):
        cpus = quota / (_positive(host.get("CpuPeriod")) or 100_000)
    swap = host.get("MemorySwap")
    return {"memory": _positive(host.get("Memory")),
            "memory_swap": -1 if swap == -1 else _positive(swap),
            "cpus": cpus, "pids": _positive(host.get("PidsLimit"))}


def _update(u: state.Update | None) -> dict[str, Any] | None:
    if u is None:
        return None
    return {"at": u.at, "from": u.from_ref, "to": u.to_ref, "result": u.result,
            "cause": u.cause, "auto": u.auto}


def _last_rollback(st: state.AppState) -> state.Update | None:
    return next((u for u in st.updates if u.result in ("rolled_back", "rollback_failed")),
                None)


def app_status(app: AppConfig) -> dict[str, Any]:
    st = state.load(app.name)
    units, why = _units(app)
    lf = st.last_failure
    container, engine_error = _inspect(app)
    health = _health(app, container, engine_error)
    healthy = bool(units["pull"] and units["run"]
                   and units["pull"]["active_state"] == "active"
                   and units["run"]["active_state"] == "active"
                   and health["status"] != "unhealthy")
    return {
        "app": app.name,
        "config": str(app.path),
        "image": str(app.image.ref),
        "policy": str(app.image.policy),
        "units": units,
        "systemd": why,
        "in_use": _printable_or_none(state.read_env_file(app.name)),
        "lock": _lock(app),
        "current": asdict(st.current) if st.current else None,
        "history": [asdict(e) for e in st.history],
        "last_failure": {"class": lf.cls, "message": printable(lf.message),
                         "exit_code": lf.exit_code, "at": lf.at,
                         "fix": _fix(app, lf.cls)} if lf else None,
        "failures": [{"at": f.at, "class": f.cls, "message": printable(f.message),
                      "attempt": f.attempt} for f in st.failures],
        "health": health,
        "limits": limits(container),
        "last_update": _update(st.updates[0] if st.updates else None),
        "last_rollback": _update(_last_rollback(st)),
        "healthy": healthy,
        "secrets": appsecrets.start_failure(
            app.run.secrets, (units["run"] or {}).get("exec_main_status")),
        "error": None,
    }


def _printable_or_none(text: str | None) -> str | None:
    return None if text is None else printable(text)


def _broken(name: str, path: str, error: ConfigError) -> dict[str, Any]:
    return {"app": name, "config": path, "image": None, "policy": None,
            "units": {"pull": None, "run": None}, "systemd": None, "in_use": None, "lock": None,
            "current": None, "history": [], "last_failure": None, "failures": [],
            "health": None, "limits": None, "last_update": None, "last_rollback": None,
            "healthy": False, "secrets": None, "error": error.message}


def _ago(t: float) -> str:
    s = max(0, int(time.time() - t))
    for unit, n in (("d", 86400), ("h", 3600), ("min", 60)):
        if s >= n:
            return f"{s // n}{unit} ago"
    return f"{s}s ago"


def _short(text: str, limit: int = 100) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _unit_line(u: dict[str, Any] | None) -> str:
    if u is None:
        return "unknown"
    text = f"{u['active_state']} ({u['sub_state']})"
    if u["result"] not in ("", "success"):
        text += f" result={u['result']} status={u['exec_main_status']}"
    if u["n_restarts"]:
        text += f" restarts={u['n_restarts']}"
    return text


def _line(text: str) -> None:
    # state files and units' StatusText= may hold what a registry sent: never print it raw
    sys.stdout.write(printable(text) + "\n")


_UPDATE_WORDS = {"updated": "updated", "rolled_back": "not ready, rolled back",
                 "not_ready": "not ready, not rolled back",
                 "rollback_failed": "not ready, and neither was the rollback",
                 "interrupted": "interrupted while restarting"}


def _health_line(h: dict[str, Any]) -> str:
    gate = "" if h["gate"] else " (readiness gate off)"
    if h["error"]:
        return f"unknown: {h['error']}{gate}"
    if h["container"] is None:
        return f"no container{gate}"
    if h["status"] == "none":
        return f"{h['container']}, no healthcheck{gate}"
    check = f" ({h['check']})" if h["check"] and h["status"] != "healthy" else ""
    return f"{h['status']}{check}{gate}"


def _size(n: int) -> str:
    for unit, power in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << power:
            return f"{n / (1 << power):.4g} {unit}"
    return f"{n} B"


def _limits_line(lim: dict[str, Any]) -> str:
    swap = lim["memory_swap"]
    parts = [
        f"memory {_size(lim['memory']) if lim['memory'] else 'unlimited'}"
        + (f" (with swap {'unlimited' if swap == -1 else _size(swap)})" if swap else ""),
        f"cpus {lim['cpus']:g}" if lim["cpus"] else "cpus unlimited",
        f"pids {lim['pids']}" if lim["pids"] else "pids unlimited"]
    return ", ".join(parts)


def _print_human(apps: list[dict[str, Any]]) -> None:
    color = use_color(sys.stdout)
    for a in apps:
        mark = "●" if a["healthy"] else "○"
        if color:
            sys.stdout.write(f"\033[{'32' if a['healthy'] else '31'}m{mark}\033[0m")
        else:
            sys.stdout.write(mark)
        _line(f" {a['app']}  {a['image'] or ''}")
        if a["error"]:
            _line(f"    config:   {a['error']}")
            continue
        units = a["units"]
        _line(f"    pull:     {_unit_line(units['pull'])}")
        if units["pull"] and units["pull"]["status_text"]:
            _line(f"              {units['pull']['status_text']}")
        _line(f"    run:      {_unit_line(units['run'])}")
        if a.get("secrets"):
            _line(f"    secrets:  {a['secrets']}")
        if a["systemd"]:
            _line(f"    systemd:  {a['systemd']}")
        _line(f"    health:   {_health_line(a['health'])}")
        if a["limits"]:
            _line(f"    limits:   {_limits_line(a['limits'])}")
        _line(f"    in use:   {a['in_use'] or '-'}")
        lock = a["lock"]
        if lock and "error" in lock:
            _line(f"    lock:     {lock['error']}")
        elif lock:
            note = "" if lock["applies"] else f" (not applied: {lock['why']})"
            _line(f"    pinned:   {lock['digest']} by {lock['source']} at {lock['at']}{note}")
        for i, e in enumerate(a["history"]):
            label = "history:" if i == 0 else ""
            _line(f"    {label:<9} {e['reference']}  (ready {_ago(e['last_ready'])})")
        lf = a["last_failure"]
        if lf:
            _line(f"    failed:   {lf['class']} (exit {lf['exit_code']}, {_ago(lf['at'])}): "
                  f"{lf['message']}")
            if lf["fix"]:
                _line(f"    fix:      {lf['fix']}")
        for i, f in enumerate(a["failures"][:RECENT]):
            label = "recent:" if i == 0 else ""
            _line(f"    {label:<9} {f['class']} ({_ago(f['at'])}, attempt {f['attempt']}): "
                  f"{_short(f['message'])}")
        if len(a["failures"]) > RECENT:
            _line(f"              ... {len(a['failures']) - RECENT} more in --json")
        u = a["last_update"]
        if u:
            words = _UPDATE_WORDS.get(u["result"], u["result"])
            _line(f"    updated:  {u['from'] or '-'} -> {u['to']}: {words}"
                  f"{' (timer)' if u['auto'] else ''}, {_ago(u['at'])}")
            if u["result"] == "rolled_back":
                _line(f"    rolled back automatically: {u['cause']}")
            elif u["cause"]:
                _line(f"    cause:    {u['cause']}")
        rb = a["last_rollback"]
        if rb and rb != u:
            _line(f"    rolled back automatically from {rb['to']} {_ago(rb['at'])}: "
                  f"{rb['cause']}")


def run(args: argparse.Namespace) -> int:
    cfg = config_dir(args)
    paths = [resolve_app(cfg, a) for a in args.apps] if args.apps else app_files(cfg)
    apps = []
    for p in paths:
        try:
            apps.append(app_status(load_app(p)))
        except ConfigError as e:
            apps.append(_broken(app_name_of(p), str(p), e))
    if args.json:
        json.dump({"schema": SCHEMA, "apps": apps}, sys.stdout, indent=2, sort_keys=True)
        sys.stdout.write("\n")
    else:
        if not apps:
            print(f"no apps configured in {cfg}")
        _print_human(apps)
    return 0 if all(a["healthy"] for a in apps) else int(ExitCode.FAILURE)
