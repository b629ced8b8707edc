"""Docker registries: Debian's ``docker-registry serve CONFIG`` (distribution 2.8).

Each :class:`Registry` has its own work dir (config, htpasswd, logs) and listens on
one port that it keeps across stop()/start(), so "registry down, then up again on the
same address" is two calls. Several registries may share one storage directory
(e.g. the same images served plain, with auth, and over TLS).

The access log (combined log format, the registry's stdout) goes to ``access.log``;
the registry's own log (stderr) to ``registry.log``.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from . import _util as u

# Same for every registry so that ones sharing storage accept each other's upload
# state (the secret signs it).
HTTP_SECRET = "pullunit-testbed-secret"

_COMBINED = re.compile(
    r'^(?P<addr>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<method>\S+) (?P<path>\S+) '
    r'[^"]*" (?P<status>\d{3}) (?P<size>\d+|-)')


@dataclass(frozen=True)
class AccessEntry:
    """One request seen by a server (registry or nginx)."""

    time: float  # unix time; whole seconds for the registry, ms for nginx
    method: str
    path: str  # path and query as requested
    status: int
    size: int
    user: str = "-"


def parse_combined(line: str) -> AccessEntry | None:
    m = _COMBINED.match(line)
    if not m:
        return None
    t = datetime.strptime(m["time"], "%d/%b/%Y:%H:%M:%S %z").timestamp()
    size = 0 if m["size"] == "-" else int(m["size"])
    return AccessEntry(t, m["method"], m["path"], int(m["status"]), size, m["user"])


def htpasswd_line(user: str, password: str) -> str:
    """A bcrypt htpasswd entry (the only hash distribution's htpasswd accepts)."""
    return u.sh([u.binary("htpasswd"), "-Bbn", user, password]).stdout.strip()


class Registry:
    """A registry on ``host:port``.

    users: {user: password} turns on htpasswd basic auth (realm "pullunit-test").
    storage: a directory to share with other registries (default: its own).
    tls: (certificate, key) paths to serve HTTPS. netns: run inside that network
    namespace (``ip netns exec``), e.g. a test host with a non-loopback address.
    workdir: use this directory (kept path, record id ``registry-NAME``) instead of
    a temp dir. proxy: an origin's URL (``http://127.0.0.1:PORT``) makes this a
    pull-through cache of it (distribution's proxy mode, ``proxy.remoteurl``; pushes
    to it fail with "unsupported"); proxy_auth: (user, password) for the origin.
    """

    def __init__(self, name: str = "plain", *, host: str = "127.0.0.1",
                 port: int | None = None, users: dict[str, str] | None = None,
                 storage: str | os.PathLike[str] | None = None,
                 tls: tuple[str, str] | None = None, netns: str | None = None,
                 workdir: str | os.PathLike[str] | None = None,
                 owner: int | str | None = None, proxy: str | None = None,
                 proxy_auth: tuple[str, str] | None = None) -> None:
        u.assert_allowed_address(host)
        if proxy is not None:
            u.assert_allowed_address(proxy.split("://", 1)[-1].rsplit(":", 1)[0])
        self.proxy, self.proxy_auth = proxy, proxy_auth
        self.name, self.host, self.netns, self.tls = name, host, netns, tls
        self.users = dict(users or {})
        # In a netns the host side cannot bind-test the port; callers pass one.
        self.port = port or (5443 if netns else u.free_port(host))
        u.WORK_BASE.mkdir(parents=True, exist_ok=True)
        # workdir: a fixed place (the CLI's demo registry, found again by its record
        # id); otherwise a fresh temp dir.
        if workdir:
            self.dir = Path(workdir)
            self.dir.mkdir(parents=True, exist_ok=True)
        else:
            self.dir = Path(tempfile.mkdtemp(prefix=f"registry-{name}-", dir=u.WORK_BASE))
        rec_id = f"registry-{name}" if workdir else f"registry-{name}-{secrets.token_hex(3)}"
        self.rec = u.Record(id=rec_id, kind="registry",
                            owner=owner if owner is not None else os.getpid(),
                            paths=[str(self.dir)], markers=[str(self.dir)])
        self.own_storage = storage is None
        self.storage = Path(storage) if storage else self.dir / "storage"
        self.storage.mkdir(parents=True, exist_ok=True)
        self.config_path = self.dir / "config.yml"
        self.access_log = self.dir / "access.log"
        self.log = self.dir / "registry.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._write_config()
        u.save_record(self.rec)

    # ------------------------------------------------------------------ config

    def _write_config(self) -> None:
        cfg: dict[str, Any] = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": False}},
            # No blob descriptor cache (storage.cache): registries sharing storage
            # must see each other's writes and deletes at once. No upload purging:
            # nothing of ours lives long enough, and it walks the storage at start.
            "storage": {"filesystem": {"rootdirectory": str(self.storage)},
                        "delete": {"enabled": True},
                        "maintenance": {"uploadpurging": {"enabled": False}}},
            "http": {"addr": f"{self.host}:{self.port}", "secret": HTTP_SECRET,
                     "headers": {"X-Content-Type-Options": ["nosniff"]}},
        }
        if self.users:
            pw = self.dir / "htpasswd"
            pw.write_text("".join(htpasswd_line(k, v) + "\n" for k, v in self.users.items()))
            cfg["auth"] = {"htpasswd": {"realm": "pullunit-test", "path": str(pw)}}
        if self.tls:
            cfg["http"]["tls"] = {"certificate": self.tls[0], "key": self.tls[1]}
        if self.proxy:
            cfg["proxy"] = {"remoteurl": self.proxy}
            if self.proxy_auth:
                cfg["proxy"].update(username=self.proxy_auth[0], password=self.proxy_auth[1])
        # YAML is a superset of JSON: no YAML library needed.
        self.config_path.write_text(json.dumps(cfg, indent=1) + "\n")

    # ------------------------------------------------------------------ control

    @property
    def address(self) -> str:
        """host:port, the registry part of an image reference."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.address}"

    def ref(self, repo: str, tag: str = "latest") -> str:
        return f"{self.address}/{repo}:{tag}"

    @property
    def auth(self) -> tuple[str, str] | None:
        """The first user's (user, password), for HTTP API calls."""
        return next(iter(self.users.items()), None)

    @property
    def auth_config(self) -> dict[str, str] | None:
        """The first user's credentials in docker SDK ``auth_config`` form."""
        a = self.auth
        return {"username": a[0], "password": a[1]} if a else None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @staticmethod
    def probe(url: str, cafile: str | None = None) -> bool:
        """True if a registry answers GET {url}/v2/ (200, or 401 with auth on)."""
        try:
            r = u.http("GET", f"{url}/v2/", timeout=2, cafile=cafile)
        except OSError:
            return False
        return r.status in (200, 401)

    def ready(self, cafile: str | None = None) -> bool:
        return self.probe(self.url, cafile)

    def start(self, timeout: float = 20, cafile: str | None = None) -> Registry:
        """Start (idempotent) and wait until GET /v2/ answers. *cafile* lets a TLS
        registry's readiness probe verify its certificate."""
        if self.running():
            return self
        if not self.netns and not u.port_is_free(self.port, self.host):
            raise u.TestbedError(f"registry {self.name}: port {self.address} is taken")
        argv = [u.binary("docker-registry"), "serve", str(self.config_path)]
        if self.netns:
            argv = [u.binary("ip"), "netns", "exec", self.netns, *argv]
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.access_log, "ab") as out, open(self.log, "ab") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=err, start_new_session=True,
                                         env=u.clean_env())
        self.rec.pids = [(self.proc.pid, str(self.config_path))]
        u.save_record(self.rec)

        def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise u.TestbedError(f"registry {self.name} exited {self.proc.returncode}:"
                                     f"\n{u.log_tail(self.log)}")
            return self.ready(cafile)

        try:
            u.wait_for(up, timeout, 0.05, f"registry {self.name} at {self.url}/v2/")
        except TimeoutError as e:
            self.stop()
            raise u.TestbedError(f"{e}\n{u.log_tail(self.log)}") from e
        return self

    def stop(self) -> None:
        """Stop the process; storage, port and logs stay for a later start()."""
        if self.proc is not None:
            u.stop_pid(self.proc.pid, str(self.config_path), 10)
            self.proc.wait(5)
            self.proc = None
        self.rec.pids = []
        u.save_record(self.rec)

    def restart(self, down_for: float = 0.0) -> Registry:
        self.stop()
        if down_for:
            time.sleep(down_for)
        return self.start()

    def close(self) -> None:
        """Stop and delete the work dir (and storage, if it was the registry's own)."""
        self.stop()
        u.undo_record(self.rec)

    def __enter__(self) -> Registry:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ logs

    def requests(self) -> list[AccessEntry]:
        """Every request in the access log so far, oldest first."""
        try:
            text = self.access_log.read_text(errors="replace")
        except FileNotFoundError:
            return []
        return [e for e in map(parse_combined, text.splitlines()) if e is not None]

    def count(self, pattern: str, method: str | None = None) -> int:
        """How many requests had a path matching the regex *pattern* (re.search)."""
        rx = re.compile(pattern)
        return sum(1 for e in self.requests()
                   if rx.search(e.path) and (method is None or e.method == method))

    def __repr__(self) -> str:
        return f"Registry({self.name!r}, {self.url}, running={self.running()})"


def pull_through_cache(origin: Registry, name: str = "cache", **kw: Any) -> Registry:
    """A registry in proxy mode in front of *origin* (not started): it fetches what it
    is asked for from the origin and keeps it, and serves a tag it has kept while the
    origin is down. The origin's first user's credentials go upstream."""
    return Registry(name, proxy=origin.url, proxy_auth=origin.auth, **kw)
