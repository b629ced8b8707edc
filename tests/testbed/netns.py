"""Test hosts of our own: network namespaces, optionally joined to the host by a veth
pair with addresses 10.231.N.1/30 (host side) and 10.231.N.2/30 (namespace side).

Those addresses exist only on our own veth, so traffic to them never leaves the
machine. ``ip netns exec`` also bind-mounts /etc/netns/NAME/resolv.conf over
/etc/resolv.conf for what runs inside, which is how a daemon in the namespace gets
our stub DNS server instead of the real one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Any

from . import _util as u

MAX_INDEX = 64  # 10.231.0.0 .. 10.231.63.0


def _netns_exists(name: str) -> bool:
    return Path(f"/run/netns/{name}").exists()


def _link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


class Netns:
    """A namespace ``{prefix}{N}`` (N the first free index). With *veth*, a link
    ``{prefix}{N}h`` on the host and ``{prefix}{N}n`` inside, and the /30 above."""

    def __init__(self, prefix: str = "ptb", *, veth: bool = True,
                 owner: int | str | None = None) -> None:
        if len(prefix) > 10:
            raise ValueError("prefix too long for an interface name (15 bytes)")
        self.prefix, self.veth = prefix, veth
        self.owner = owner if owner is not None else os.getpid()
        self.index: int | None = None
        self.rec = u.Record(id=f"netns-{prefix}-{secrets.token_hex(3)}", kind="netns",
                            owner=self.owner)

    @property
    def name(self) -> str:
        return f"{self.prefix}{self.index}"

    @property
    def host_if(self) -> str:
        return f"{self.name}h"

    @property
    def ns_if(self) -> str:
        return f"{self.name}n"

    @property
    def host_ip(self) -> str:
        return f"10.231.{self.index}.1"

    @property
    def ns_ip(self) -> str:
        """The test host's address, reachable from the host through the veth."""
        return f"10.231.{self.index}.2"

    @property
    def etc_dir(self) -> Path:
        return Path("/etc/netns") / self.name

    def _free_index(self) -> int:
        used = u.sh(["ip", "-o", "-4", "addr", "show"]).stdout
        for i in range(MAX_INDEX):
            name = f"{self.prefix}{i}"
            if (not _netns_exists(name) and not _link_exists(f"{name}h")
                    and f" 10.231.{i}." not in used):
                return i
        raise u.TestbedError(f"no free {self.prefix}N netns / 10.231.N.0/30 (N<{MAX_INDEX})")

    def create(self) -> Netns:
        if self.index is not None:
            return self
        with u.host_lock():
            self.index = self._free_index()
            self._create()
        return self

    def _create(self) -> None:
        ip = u.binary("ip")
        self.rec.netns, self.rec.paths = [self.name], [str(self.etc_dir)]
        if self.veth:
            self.rec.links = [self.host_if]
        u.save_record(self.rec)  # first, so a half-made namespace is still undone
        u.sh([ip, "netns", "add", self.name])
        u.sh([ip, "-n", self.name, "link", "set", "lo", "up"])
        if self.veth:
            u.sh([ip, "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if,
                  "netns", self.name])
            u.sh([ip, "addr", "add", f"{self.host_ip}/30", "dev", self.host_if])
            u.sh([ip, "link", "set", self.host_if, "up"])
            u.sh([ip, "-n", self.name, "addr", "add", f"{self.ns_ip}/30", "dev", self.ns_if])
            u.sh([ip, "-n", self.name, "link", "set", self.ns_if, "up"])
            # The veth answers as soon as both ends are up; wait for that (no DAD on v4).
            u.wait_for(lambda: "UP" in u.sh([ip, "-br", "link", "show", self.host_if]).stdout,
                       5, 0.05, f"{self.host_if} up")

    def write_etc(self, name: str, text: str) -> Path:
        """/etc/netns/NAME/<name>: seen as /etc/<name> by `ip netns exec` children
        (only files that exist in /etc on the host can be overridden)."""
        self.etc_dir.mkdir(parents=True, exist_ok=True)
        path = self.etc_dir / name
        path.write_text(text)
        return path

    def exec_argv(self, argv: list[str]) -> list[str]:
        return [u.binary("ip"), "netns", "exec", self.name, *argv]

    def pids(self) -> list[int]:
        return u.netns_pids(self.name) if self.index is not None else []

    def close(self) -> None:
        """Stop whatever still runs inside, delete the namespace (which deletes both
        veth ends) and /etc/netns/NAME."""
        if self.index is not None:
            u.undo_record(self.rec)
            self.index = None
        with contextlib.suppress(OSError):  # /etc/netns itself, if we left it empty
            self.etc_dir.parent.rmdir()

    def __enter__(self) -> Netns:
        return self.create()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Netns({self.name if self.index is not None else '-'}, veth={self.veth})"
