"""A Docker engine whose DNS we control, for "no such host" without leaking queries.

The host's resolver is not on loopback, so asking the main dockerd to pull from
``no-such-host.invalid`` would send a DNS query off the machine. Instead
:class:`DnsDockerd` runs an extra dockerd inside a network namespace of our own whose
/etc/resolv.conf names a stub server (dnsstub.py) on the namespace's loopback: every
name is NXDOMAIN unless mapped with :meth:`DnsDockerd.set_hosts`. Through the veth
the daemon reaches the host at ``host_ip`` (10.231.N.1), where a registry can listen
(``Registry(host=dd.host_ip)``): a name can first fail, then resolve.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from . import _util as u
from .dockerd import DockerdProcess
from .netns import Netns
from .pulls import PullOutcome, try_pull

STUB = Path(__file__).with_name("dnsstub.py")


class DnsDockerd:
    """dockerd in its own netns with a stub DNS. insecure_registries: registries it
    may use over plain HTTP (by itself it trusts only 127.0.0.0/8 that way); the
    default CIDR covers every name mapped to a test-net address such as host_ip."""

    def __init__(self, hosts: dict[str, str] | None = None, *,
                 insecure_registries: tuple[str, ...] = ("10.231.0.0/16",),
                 owner: int | str | None = None) -> None:
        self.owner = owner if owner is not None else os.getpid()
        self.insecure_registries = insecure_registries
        self.netns = Netns("ptbd", veth=True, owner=self.owner)
        u.WORK_BASE.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="dns-", dir=u.WORK_BASE))
        self.hosts_file = self.dir / "hosts.json"
        self.stub_log = self.dir / "dnsstub.log"
        self.rec = u.Record(id=f"dns-{secrets.token_hex(3)}", kind="dnsstub",
                            owner=self.owner, paths=[str(self.dir)])
        u.save_record(self.rec)
        self.set_hosts(hosts or {})
        self.stub: subprocess.Popen[bytes] | None = None
        self.dockerd: DockerdProcess | None = None

    @property
    def host_ip(self) -> str:
        """Where this daemon reaches the host (the host end of the veth)."""
        return self.netns.host_ip

    @property
    def socket(self) -> str:
        assert self.dockerd is not None
        return self.dockerd.socket

    def set_hosts(self, hosts: dict[str, str]) -> None:
        """Replace the name -> IPv4 map (takes effect on the next query)."""
        tmp = self.hosts_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(hosts))
        tmp.rename(self.hosts_file)

    def start(self, timeout: float = 60) -> DnsDockerd:
        if self.dockerd is not None and self.dockerd.answers():
            return self
        self.netns.create()
        self.netns.write_etc("resolv.conf", "nameserver 127.0.0.1\n")
        self.stub = u.spawn(self.netns.exec_argv(
            [sys.executable, str(STUB), "127.0.0.1", "53", str(self.hosts_file)]),
            self.stub_log)
        self.rec.pids = [(self.stub.pid, str(self.hosts_file))]
        u.save_record(self.rec)
        u.wait_for(lambda: "listening" in u.log_tail(self.stub_log) or self._stub_died(),
                   10, 0.05, "dnsstub to listen")
        if self._stub_died():
            raise u.TestbedError(f"dnsstub exited:\n{u.log_tail(self.stub_log)}")
        args = tuple(f"--insecure-registry={r}" for r in self.insecure_registries)
        self.dockerd = DockerdProcess("dns", netns=self.netns.name, extra_args=args,
                                      owner=self.owner)
        self.dockerd.start(timeout)
        return self

    def _stub_died(self) -> bool:
        return self.stub is not None and self.stub.poll() is not None

    def api(self, timeout: int = 120) -> Any:
        assert self.dockerd is not None
        return self.dockerd.api(timeout)

    def client(self, timeout: int = 120) -> Any:
        assert self.dockerd is not None
        return self.dockerd.client(timeout)

    def try_pull(self, ref: str, **kw: Any) -> PullOutcome:
        """pulls.try_pull on this daemon; host names are fine here (our stub DNS)."""
        with self.api() as api:
            return try_pull(api, ref, names_ok=True, **kw)

    def close(self) -> None:
        if self.dockerd is not None:
            self.dockerd.close()
            self.dockerd = None
        if self.stub is not None:
            u.stop_pid(self.stub.pid, str(self.hosts_file), 5)
            self.stub.wait(5)
            self.stub = None
        u.undo_record(self.rec)
        self.netns.close()

    def __enter__(self) -> DnsDockerd:
        with u.closing_on_error(self):
            return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()
