"""A TLS registry on a test host of our own (network namespace + veth).

dockerd treats every registry on 127.0.0.0/8 as insecure and skips certificate
checks there, so an x509 failure cannot be provoked on loopback. This registry
listens on ``10.231.N.2:5443`` inside a namespace, with a certificate from a
throw-away CA (SAN: DNS ``registry.pullunit.test`` and the IP). Pulling from it fails
with ``x509: certificate signed by unknown authority`` until :meth:`trust` writes
``/etc/docker/certs.d/10.231.N.2:5443/ca.crt`` (read by dockerd at every pull, no
restart needed); :meth:`untrust` removes it again.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
from pathlib import Path
from typing import Any

from . import _util as u
from .netns import Netns
from .registry import Registry

HOSTNAME = "registry.pullunit.test"
CERTS_D = Path("/etc/docker/certs.d")


def make_ca_and_cert(directory: Path, hostname: str, ip: str) -> tuple[Path, Path, Path]:
    """(ca.crt, tls.crt, tls.key) in *directory*: an EC CA and a server certificate
    it signed for *hostname* and *ip*, valid two days."""
    ossl = u.binary("openssl")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ca_key, ca_crt = directory / "ca.key", directory / "ca.crt"
    key, csr, crt = directory / "tls.key", directory / "tls.csr", directory / "tls.crt"
    u.sh([ossl, "req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca_crt),
          "-days", "2", "-subj", "/CN=pullunit test CA",
          "-addext", "basicConstraints=critical,CA:TRUE",
          "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    u.sh([ossl, "req", "-new", *ec, "-keyout", str(key), "-out", str(csr),
          "-subj", f"/CN={hostname}"])
    ext = directory / "ext.cnf"
    ext.write_text(f"subjectAltName=DNS:{hostname},IP:{ip}\nextendedKeyUsage=serverAuth\n"
                   "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n")
    u.sh([ossl, "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
          "-CAcreateserial", "-out", str(crt), "-days", "2", "-extfile", str(ext)])
    key.chmod(0o644)  # the registry reads it; the key protects nothing real
    return ca_crt, crt, key


class TlsRegistry:
    """docker-registry with TLS at ``10.231.N.2:5443`` in netns ``ptbN``.

    storage: share a loopback registry's storage to serve what was pushed there
    (pushing here needs trust() first, like any pull). users: as for Registry."""

    def __init__(self, *, storage: str | os.PathLike[str] | None = None,
                 users: dict[str, str] | None = None, hostname: str = HOSTNAME,
                 port: int = 5443, owner: int | str | None = None) -> None:
        self.owner = owner if owner is not None else os.getpid()
        self.hostname, self.port, self.storage, self.users = hostname, port, storage, users
        self.netns = Netns("ptb", veth=True, owner=self.owner)
        self.registry: Registry | None = None
        u.WORK_BASE.mkdir(parents=True, exist_ok=True)
        self.dir = Path(tempfile.mkdtemp(prefix="tls-", dir=u.WORK_BASE))
        self.rec = u.Record(id=f"tls-{secrets.token_hex(3)}", kind="tlsreg",
                            owner=self.owner, paths=[str(self.dir)])
        u.save_record(self.rec)
        self.ca_crt = self.cert = self.key = Path()

    @property
    def ip(self) -> str:
        return self.netns.ns_ip

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    @property
    def url(self) -> str:
        return f"https://{self.address}"

    def ref(self, repo: str, tag: str = "latest") -> str:
        return f"{self.address}/{repo}:{tag}"

    @property
    def certs_d(self) -> Path:
        return CERTS_D / self.address

    def start(self, timeout: float = 20) -> TlsRegistry:
        if self.registry is not None and self.registry.running():
            return self
        self.netns.create()
        self.ca_crt, self.cert, self.key = make_ca_and_cert(self.dir, self.hostname, self.ip)
        self.registry = Registry("tls", host=self.ip, port=self.port, users=self.users,
                                 storage=self.storage, tls=(str(self.cert), str(self.key)),
                                 netns=self.netns.name, owner=self.owner)
        # Readiness is checked over HTTPS against our CA: proves the cert chain too.
        self.registry.start(timeout, cafile=str(self.ca_crt))
        return self

    def stop(self) -> None:
        if self.registry is not None:
            self.registry.stop()

    def trust(self) -> Path:
        """Make every dockerd on this host trust the CA for this address."""
        self.certs_d.mkdir(parents=True, exist_ok=True)
        if str(self.certs_d) not in self.rec.paths:
            self.rec.paths.append(str(self.certs_d))
            u.save_record(self.rec)
        shutil.copyfile(self.ca_crt, self.certs_d / "ca.crt")
        return self.certs_d / "ca.crt"

    def untrust(self) -> None:
        if self.certs_d.exists():
            shutil.rmtree(self.certs_d)
        with contextlib.suppress(OSError):  # /etc/docker/certs.d, if now empty
            CERTS_D.rmdir()

    def close(self) -> None:
        self.untrust()
        if self.registry is not None:
            self.registry.close()
            self.registry = None
        self.netns.close()
        u.undo_record(self.rec)

    def __enter__(self) -> TlsRegistry:
        with u.closing_on_error(self):
            return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()
