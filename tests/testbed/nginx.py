"""nginx (nginx-light) in front of a registry, to inject real HTTP faults.

Each :class:`NginxProxy` is its own nginx master (``daemon off``) with config, pid,
temp dirs and logs under a private prefix, on its own loopback port. The fault can
be changed while it runs (:meth:`NginxProxy.set_fault` rewrites the config and
reloads), e.g. answer 429 first and pass through later.

The access log is JSON lines (``access.jsonl``), read with :meth:`requests`. nginx
writes a line when a request *ends*: a stalled transfer shows up once the client
gives up (status 499) or the connection is closed.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import subprocess
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from . import _util as u
from .registry import AccessEntry, Registry

# Registry-style error body (what Docker Hub and distribution send with a 429).
TOOMANY_JSON = json.dumps({"errors": [{
    "code": "TOOMANYREQUESTS",
    "message": "You have reached your pull rate limit. (pullunit test bed)",
    "detail": "test bed rate limit: try again later"}]})
TOOMANY_HTML = ("<html>\n<head><title>429 Too Many Requests</title></head>\n<body>\n"
                "<center><h1>429 Too Many Requests</h1></center>\n<hr><center>nginx</center>\n"
                "</body>\n</html>\n")

# Which requests a fault applies to (nginx regex locations).
PATHS = {
    "manifests": r"^/v2/.+/manifests/",
    "blobs": r"^/v2/.+/blobs/sha256:",  # downloads only, not /blobs/uploads/
    "v2": r"^/v2/",  # everything, including the /v2/ ping
    "ping": r"^/v2/$",  # only the /v2/ ping (the API version check)
}


@dataclass(frozen=True)
class Fault:
    """What the proxy does. kind:

    * ``pass``: plain reverse proxy (still logs every request).
    * ``429``: every matching request gets 429 with a registry-style JSON body
      (``html=True``: nginx's HTML page instead, which dockerd cannot parse).
    * ``ratelimit``: requests pass until nginx's ``limit_req`` (``rate``, ``burst``)
      rejects them with 429 and the JSON (or HTML) body.
    * ``status``: every matching request gets ``status`` (e.g. 500, 502, 503) with
      a registry-style JSON body.
    * ``stall``: matching responses are sent at ``bytes_per_s`` after the first
      ``after_bytes`` (nginx ``limit_rate_after``/``limit_rate``): a pull stops
      making progress. Use a blob bigger than ``after_bytes``.
    """

    kind: str = "pass"
    on: str = "manifests"  # a key of PATHS
    html: bool = False
    status: int = 503
    retry_after: int | None = None  # seconds, sent as Retry-After with 429
    # added to every response (proxied or not, any status), e.g. Docker Hub's
    # ("RateLimit-Limit", "100;w=21600"), ("RateLimit-Remaining", "0;w=21600")
    headers: tuple[tuple[str, str], ...] = ()
    rate: str = "1r/m"
    burst: int = 0
    after_bytes: int = 64 * 1024
    bytes_per_s: int = 1


class NginxProxy:
    """nginx on 127.0.0.1:PORT proxying to *upstream* (a Registry or "host:port")."""

    def __init__(self, upstream: Registry | str, fault: Fault | None = None, *,
                 name: str = "nginx", port: int | None = None,
                 owner: int | str | None = None) -> None:
        self.upstream = upstream.address if isinstance(upstream, Registry) else upstream
        u.assert_allowed_address(self.upstream.rsplit(":", 1)[0])
        self.fault = fault or Fault()
        self.name = name
        self.port = port or u.free_port()
        u.WORK_BASE.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix=f"nginx-{name}-", dir=u.WORK_BASE))
        for d in ("tmp", "logs"):
            (self.dir / d).mkdir()
        self.conf = self.dir / "nginx.conf"
        self.access_log = self.dir / "logs" / "access.jsonl"
        self.error_log = self.dir / "logs" / "error.log"
        self.pidfile = self.dir / "nginx.pid"
        self.generation = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.rec = u.Record(id=f"nginx-{name}-{secrets.token_hex(3)}", kind="nginx",
                            owner=owner if owner is not None else os.getpid(),
                            paths=[str(self.dir)], markers=[str(self.conf)])
        u.save_record(self.rec)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def ref(self, repo: str, tag: str = "latest") -> str:
        return f"{self.address}/{repo}:{tag}"

    # ------------------------------------------------------------------ config

    def _fault_block(self, f: Fault) -> tuple[str, str]:
        """(http-level lines, server-level locations) for fault *f*."""
        path = PATHS[f.on]
        extra = _extra_headers(f)
        proxy = f"{extra} proxy_pass http://{self.upstream};"
        if f.kind == "pass":
            return "", ""
        body, ctype = (TOOMANY_HTML, "text/html") if f.html else (TOOMANY_JSON,
                                                                   "application/json")
        retry = f"add_header Retry-After {f.retry_after} always;" if f.retry_after else ""
        toomany = f"default_type {ctype}; {retry} {extra} return 429 {_q(body)};"
        if f.kind == "429":
            return "", f"location ~ {path} {{ {toomany} }}"
        if f.kind == "ratelimit":
            burst = f" burst={f.burst} nodelay" if f.burst else ""
            return (f"limit_req_zone $server_port zone=tb:1m rate={f.rate};",
                    f"location ~ {path} {{ limit_req zone=tb{burst}; "
                    f"limit_req_status 429; error_page 429 = @toomany; {proxy} }}\n"
                    f"location @toomany {{ {toomany} }}")
        if f.kind == "status":
            err = json.dumps({"errors": [{"code": "UNAVAILABLE", "message":
                              f"test bed says {f.status}", "detail": None}]})
            return "", (f"location ~ {path} {{ default_type application/json; {extra} "
                        f"return {f.status} {_q(err)}; }}")
        if f.kind == "stall":
            return "", (f"location ~ {path} {{ limit_rate_after {f.after_bytes}; "
                        f"limit_rate {f.bytes_per_s}; {proxy} }}")
        raise ValueError(f"unknown fault kind {f.kind!r}")

    def _write_config(self) -> None:
        http_extra, locations = self._fault_block(self.fault)
        d = self.dir
        self.conf.write_text(f"""# pullunit test bed: {self.name} -> {self.upstream}
# {self.fault}
daemon off;
master_process on;
worker_processes 1;
# root: temp files live under this prefix; no need for a worker user's permissions.
user root;
pid {self.pidfile};
error_log {self.error_log} info;
# A reload must not wait for stalled transfers held by the old worker.
worker_shutdown_timeout 2s;
events {{ worker_connections 512; }}
http {{
    log_format tb escape=json '{{"time":$msec,"method":"$request_method","uri":"$request_uri",'
        '"status":$status,"bytes":$bytes_sent,"request_time":$request_time,'
        '"upstream_status":"$upstream_status","user":"$remote_user"}}';
    access_log {self.access_log} tb;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    client_max_body_size 0;
    proxy_http_version 1.1;
    proxy_set_header Host $http_host;
    proxy_read_timeout 600s;
    proxy_send_timeout 600s;
    send_timeout 600s;
    {http_extra}
    server {{
        listen 127.0.0.1:{self.port};
        location = /__testbed/generation {{ access_log off; return 200 "{self.generation}"; }}
        {locations}
        location / {{ {_extra_headers(self.fault)} proxy_pass http://{self.upstream}; }}
    }}
}}
""")
        r = u.sh([u.binary("nginx"), "-t", "-q", "-p", str(d), "-e", str(self.error_log),
                  "-c", str(self.conf)], check=False)
        if r.returncode != 0:
            raise u.TestbedError(f"nginx config {self.conf} invalid: {r.stderr.strip()}")

    # ------------------------------------------------------------------ control

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _serving_generation(self) -> bool:
        try:
            r = u.http("GET", f"{self.url}/__testbed/generation", timeout=2)
        except OSError:
            return False
        return r.status == 200 and r.body.decode() == str(self.generation)

    def start(self, timeout: float = 15) -> NginxProxy:
        if self.running():
            return self
        if not u.port_is_free(self.port):
            raise u.TestbedError(f"nginx {self.name}: port {self.port} is taken")
        self._write_config()
        self.proc = u.spawn([u.binary("nginx"), "-p", str(self.dir), "-e", str(self.error_log),
                             "-c", str(self.conf)], self.dir / "logs" / "stderr.log")
        self.rec.pids = [(self.proc.pid, str(self.conf))]
        u.save_record(self.rec)
        self._wait_generation(timeout)
        return self

    def _wait_generation(self, timeout: float) -> None:
        def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise u.TestbedError(f"nginx {self.name} exited {self.proc.returncode}:\n"
                                     f"{u.log_tail(self.error_log)}")
            return self._serving_generation()

        u.wait_for(up, timeout, 0.05, f"nginx {self.name} generation {self.generation}")

    def set_fault(self, fault: Fault | None = None, timeout: float = 15, **changes: Any) -> None:
        """Switch to *fault* (or the current one with *changes*) without a restart:
        rewrite the config, SIGHUP the master, wait until new workers answer."""
        self.fault = replace(fault or self.fault, **changes)
        if not self.running():
            return
        self.generation += 1
        self._write_config()
        assert self.proc is not None
        old_workers = _children(self.proc.pid)
        os.kill(self.proc.pid, signal.SIGHUP)
        self._wait_generation(timeout)
        # Old workers may still accept a connection or two until they see the
        # master's QUIT: only when all are gone does every request get the new fault.
        u.wait_for(lambda: not any(u.pid_alive(p) for p in old_workers), timeout, 0.05,
                   f"nginx {self.name} old workers to exit")

    def stop(self) -> None:
        if self.proc is not None:
            u.stop_pid(self.proc.pid, str(self.conf), 10)
            self.proc.wait(5)
            self.proc = None
        self.rec.pids = []
        u.save_record(self.rec)

    def close(self) -> None:
        self.stop()
        u.undo_record(self.rec)

    def __enter__(self) -> NginxProxy:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ logs

    def requests(self) -> list[AccessEntry]:
        """Completed requests so far, oldest first (time has millisecond precision)."""
        out = []
        try:
            lines = self.access_log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []
        for line in lines:
            try:
                d = json.loads(line)
            except ValueError:
                continue
            out.append(AccessEntry(float(d["time"]), d["method"], d["uri"], int(d["status"]),
                                   int(d["bytes"]), d.get("user") or "-"))
        return out

    def count(self, pattern: str, method: str | None = None,
              status: int | None = None) -> int:
        rx = re.compile(pattern)
        return sum(1 for e in self.requests() if rx.search(e.path)
                   and (method is None or e.method == method)
                   and (status is None or e.status == status))

    def __repr__(self) -> str:
        return f"NginxProxy({self.name!r}, {self.url} -> {self.upstream}, {self.fault.kind})"


def _children(pid: int) -> list[int]:
    """Direct children of *pid* (the nginx workers of a master)."""
    kids = []
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                stat = Path(f"/proc/{e}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(e))
    return kids


def _extra_headers(f: Fault) -> str:
    """add_header lines for Fault.headers (in every location: nginx inherits add_header
    only into locations that have none of their own)."""
    for name, _ in f.headers:
        if not name.replace("-", "").isalnum():
            raise ValueError(f"bad header name {name!r}")
    return " ".join(f"add_header {name} {_q(value)} always;" for name, value in f.headers)


def _q(s: str) -> str:
    """Quote a string for nginx.conf (single quotes; escape backslash and quote)."""
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


# Convenience constructors -------------------------------------------------


def rate_limited(upstream: Registry | str, *, html: bool = False,
                 retry_after: int | None = None, **kw: Any) -> NginxProxy:
    return NginxProxy(upstream, Fault("429", html=html, retry_after=retry_after), **kw)


def stalled(upstream: Registry | str, *, after_bytes: int = 64 * 1024,
            bytes_per_s: int = 1, **kw: Any) -> NginxProxy:
    return NginxProxy(upstream, Fault("stall", on="blobs", after_bytes=after_bytes,
                                      bytes_per_s=bytes_per_s), **kw)


def server_error(upstream: Registry | str, status: int = 503, on: str = "manifests",
                 **kw: Any) -> NginxProxy:
    return NginxProxy(upstream, Fault("status", status=status, on=on), **kw)
