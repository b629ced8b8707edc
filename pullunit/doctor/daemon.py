"""Checks of the Docker daemon: does it answer, and what is it configured with."""

from __future__ import annotations

import re
from typing import Any

from ..boundedhttp import with_timeout
from ..classify import FailureClass
from ..dockerconf import (
    LOOPBACK_CIDR,
    DaemonJson,
    DaemonJsonError,
    RegistryConfig,
    is_insecure,
    is_loopback,
    parse_daemon_json,
    redact_proxies,
    registry_config_from_entries,
    registry_config_from_info,
)
from ..engine import platform_of
from ..enginehttp import docker_host
from ..reference import DEFAULT_REGISTRY
from .context import Context, Daemon
from .model import Check, Status, short


def _ask_daemon(timeout: float) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    from .. import dockerapi

    api = dockerapi.connect(timeout=timeout)
    return api, dict(api.version()), dict(api.info())


def daemon(ctx: Context) -> Check:
    host = docker_host()
    try:
        api, version, info = with_timeout(lambda: _ask_daemon(ctx.deadline.remaining()),
                                          ctx.deadline.remaining(), "asking the Docker daemon")
    except Exception as e:
        text = str(e)
        hint = ctx.hint(FailureClass.DAEMON_UNAVAILABLE)
        if "permission denied" in text.lower():
            hint = (f"this user may not use {host}: run doctor as root (as the pull unit "
                    "runs) or as a member of the docker group")
        if not text.startswith("cannot talk to the Docker daemon"):
            text = f"cannot talk to the Docker daemon at {host}: {text}"
        return Check("daemon", Status.FAIL, short(text), hint)
    ctx.daemon = Daemon(api, version, info, platform_of(version))
    ctx.data_root = str(info.get("DockerRootDir") or "/var/lib/docker")
    ctx.registry_config = registry_config_from_info(info)
    return Check("daemon", Status.PASS,
                 f"Docker {version.get('Version', '?')} (API {version.get('ApiVersion', '?')}"
                 f", {ctx.daemon.platform}, storage {info.get('Driver', '?')}) at {host}")


def daemon_config(ctx: Context) -> Check:
    path = ctx.options.daemon_json
    notes: list[str] = []
    warn: list[str] = []
    hints: list[str] = []
    try:
        text = path.read_text()
    except FileNotFoundError:
        text = None
    except OSError as e:
        return Check("daemon_config", Status.WARN, f"cannot read {path}: {e.strerror}",
                     "run doctor as root")
    if text is None:
        dj = DaemonJson()
        notes.append(f"no {path} (dockerd defaults)")
    else:
        try:
            dj = parse_daemon_json(text, str(path))
        except DaemonJsonError as e:
            return Check("daemon_config", Status.FAIL, str(e),
                         f"fix {path} ('python3 -m json.tool {path}'), then "
                         "'systemctl restart docker'")
        notes.append(f"{path}: mirrors {list(dj.mirrors) or 'none'}, insecure registries "
                     f"{list(dj.insecure) or 'none'}"
                     + (f", proxies {redact_proxies(dict(dj.proxies))}" if dj.proxies else ""))
    declared = registry_config_from_entries(dj.insecure, dj.mirrors)
    running = ctx.registry_config  # None: the daemon did not answer
    if running is None or ctx.daemon is None:
        ctx.registry_config = declared
    else:
        # 8.2: daemon.json edited but dockerd not restarted (flags can only add)
        missing = [str(n) for n in declared.cidrs if n not in running.cidrs]
        missing += [n for n, secure in declared.index
                    if not secure and running.secure_of(n) is not False]
        missing += [m for m in dj.mirrors if m.rstrip("/") not in
                    [r.rstrip("/") for r in running.mirrors]]
        if missing:
            warn.append(f"the running daemon does not have {', '.join(missing)} from "
                        f"{path.name}")
            hints.append("restart docker to apply daemon.json ('systemctl restart docker')")
        if ctx.daemon.proxies():
            notes.append(f"the running daemon uses proxies {redact_proxies(ctx.daemon.proxies())}")
        major = _major(str(ctx.daemon.version.get("Version", "")))
        if dj.proxies and major is not None and major < 23:
            warn.append(f"'proxies' in {path.name} needs Docker 23 or newer; this daemon "
                        "will refuse to start with it")
            hints.append("set the proxies in a docker.service drop-in (Environment=) "
                         "instead")
    rc = ctx.registry_config
    assert rc is not None
    if ctx.ref is not None:
        if ctx.registry == DEFAULT_REGISTRY and (dj.mirrors or rc.mirrors):
            notes.append("Docker Hub pulls try the mirrors first")
        if _insecure_by_name(ctx, rc):
            notes.append(f"{ctx.registry} is listed as an insecure registry")
    status = Status.WARN if warn else Status.PASS
    return Check("daemon_config", status, "; ".join(warn + notes), "; ".join(hints))


def _insecure_by_name(ctx: Context, rc: RegistryConfig) -> bool:
    """Insecure by an explicit entry (not merely by being on loopback)."""
    if is_loopback(ctx.api_host):
        return False
    no_loopback = RegistryConfig(tuple(n for n in rc.cidrs if n != LOOPBACK_CIDR),
                                 rc.index, rc.mirrors)
    return is_insecure(ctx.registry, [], no_loopback)


def _major(version: str) -> int | None:
    m = re.match(r"(\d+)\.", version)
    return int(m.group(1)) if m else None
