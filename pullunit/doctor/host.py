"""Checks of the host around the daemon: Docker's disk, docker.service's proxies."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ..boundedhttp import human_bytes, with_timeout
from ..classify import FailureClass
from ..dockerconf import (
    is_loopback,
    parse_env_file,
    parse_environment,
    proxy_env,
    proxy_for,
    redact_proxies,
    redact_url,
    registry_port,
)
from .context import Context
from .model import Check, Status, short
from .verdicts import disk_status


def disk(ctx: Context) -> Check:
    root = ctx.data_root or "/var/lib/docker"
    note = "" if ctx.data_root else " (the daemon did not say; assumed)"
    path = Path(root)
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        # a hung network filesystem must not hang doctor
        st = with_timeout(lambda: os.statvfs(path), ctx.deadline.remaining(), f"statfs {path}")
    except OSError as e:
        return Check("disk", Status.SKIP, f"cannot stat {root}: {e.strerror or e}")
    free, total = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
    ifree, itotal = st.f_favail, st.f_files
    ctx.free_bytes = free
    status = disk_status(free, total, ifree, itotal)
    inodes = (f", {ifree:,} of {itotal:,} inodes free ({100 * ifree / itotal:.0f} %)"
              if itotal else ", no inode limit")
    shown = root if str(path) == root else f"{root} (on {path})"
    detail = (f"data root {shown}{note}: {human_bytes(free)} of {human_bytes(total)} free"
              f"{inodes}")
    hint = ""
    if status is not Status.PASS:
        hint = ctx.hint(FailureClass.DISK_FULL, data_root=root, free_bytes=free)
    return Check("disk", status, detail, hint)


def _docker_service_env() -> tuple[dict[str, str] | None, list[str]]:
    """docker.service's Environment= plus its EnvironmentFile= contents (D-Bus)."""
    from pystemd.systemd1 import Unit

    with Unit(b"docker.service") as u:
        state = u.Unit.LoadState
        state = state.decode() if isinstance(state, bytes) else str(state or "")
        if state != "loaded":
            return None, [state]
        svc = u.Service
        env = parse_environment(svc.Environment or [])
        files: list[str] = []
        for entry in svc.EnvironmentFiles or []:
            raw = entry[0] if isinstance(entry, list | tuple) else entry
            name = raw.decode() if isinstance(raw, bytes) else str(raw)
            with contextlib.suppress(OSError):
                env.update(parse_env_file(Path(name).read_text()))
                files.append(name)
        return env, files


def proxy(ctx: Context) -> Check:
    from ..systemd import booted

    if not booted():
        return Check("proxy", Status.SKIP, "systemd is not PID 1 here: cannot read "
                     "docker.service's environment (daemon_config shows what the running "
                     "daemon uses)")
    try:
        env, files = with_timeout(_docker_service_env, ctx.deadline.remaining(),
                                  "reading docker.service over D-Bus")
    except Exception as e:
        return Check("proxy", Status.SKIP, f"cannot read docker.service: {short(str(e))}")
    if env is None:
        state = files[0] if files else "not loaded"
        return Check("proxy", Status.SKIP, f"docker.service is {state} (dockerd is not "
                     "run by systemd here)")
    proxies = proxy_env(env)
    ctx.service_proxies = proxies
    shown = redact_proxies(proxies)
    source = "docker.service" + (f" (and {', '.join(files)})" if files else "")
    if not proxies:
        detail = f"no HTTP_PROXY/HTTPS_PROXY/NO_PROXY in {source}"
    else:
        detail = f"{source}: " + ", ".join(f"{k}={v}" for k, v in shown.items())
    warn: list[str] = []
    hints: list[str] = []
    # compared redacted: the daemon masks the credentials it reports ("xxxxx:xxxxx@")
    if ctx.daemon is not None and redact_proxies(ctx.daemon.proxies()) != shown:
        warn.append("the running daemon's proxies differ from docker.service's")
        hints.append("'systemctl daemon-reload && systemctl restart docker' to apply them")
    if ctx.ref is not None and proxies:
        scheme = "http" if is_loopback(ctx.api_host) else "https"
        port = registry_port(ctx.registry) or 443
        p = proxy_for(scheme, ctx.api_host, port, proxies)
        if p:
            p = redact_url(p)
            warn.append(f"dockerd reaches {ctx.registry} through {p}; doctor's network "
                        "checks connect directly (proxy_path and blob go through it)")
            hints.append(f"test the proxy path: curl -x {p} https://{ctx.registry}/v2/; "
                         f"if {ctx.api_host} should be reached directly add it to "
                         "NO_PROXY in a docker.service drop-in")
    if warn:
        return Check("proxy", Status.WARN, "; ".join([*warn, detail]), "; ".join(hints))
    return Check("proxy", Status.PASS, detail)
