"""Just enough DER to describe a certificate doctor may not trust: subject, issuer,
validity and names, so a TLS failure can say what the server presented."""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

_CN = bytes([0x55, 0x04, 0x03])  # 2.5.4.3 commonName
_SAN = bytes([0x55, 0x1D, 0x11])  # 2.5.29.17 subjectAltName


@dataclass(frozen=True)
class CertInfo:
    subject: str
    issuer: str
    not_before: datetime | None
    not_after: datetime | None
    names: tuple[str, ...]  # subjectAltName DNS names and IP addresses

    @property
    def self_signed(self) -> bool:
        return bool(self.subject) and self.subject == self.issuer


def _der(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at pos."""
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return tag, pos, pos + length


def _children(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    while start < end:
        tag, s, e = _der(data, start)
        yield tag, s, e
        start = e


def _name_cn(data: bytes, start: int, end: int) -> str:
    for _, rs, re_ in _children(data, start, end):  # SET of AttributeTypeAndValue
        for _, as_, ae in _children(data, rs, re_):
            items = list(_children(data, as_, ae))
            if len(items) == 2 and data[items[0][1]:items[0][2]] == _CN:
                return data[items[1][1]:items[1][2]].decode(errors="replace")
    return ""


def _der_time(tag: int, raw: bytes) -> datetime | None:
    text = raw.decode("ascii", errors="replace").rstrip("Z")
    try:
        if tag == 0x17:  # UTCTime YYMMDDHHMM[SS]
            fmt = "%y%m%d%H%M%S" if len(text) >= 12 else "%y%m%d%H%M"
        else:  # GeneralizedTime
            fmt = "%Y%m%d%H%M%S"
            text = text.split(".")[0]
        return datetime.strptime(text, fmt).replace(tzinfo=UTC)
    except ValueError:
        return None


def cert_info(der: bytes) -> CertInfo:
    """Subject and issuer CN, validity and SANs of a DER certificate."""
    _, cs, _ = _der(der, 0)
    _, ts, te = _der(der, cs)  # tbsCertificate
    fields = list(_children(der, ts, te))
    if fields and fields[0][0] == 0xA0:  # [0] version
        fields = fields[1:]
    # serial, signature, issuer, validity, subject, subjectPublicKeyInfo, [1], [2], [3]
    issuer = _name_cn(der, fields[2][1], fields[2][2])
    times = list(_children(der, fields[3][1], fields[3][2]))
    not_before = _der_time(times[0][0], der[times[0][1]:times[0][2]])
    not_after = _der_time(times[1][0], der[times[1][1]:times[1][2]])
    subject = _name_cn(der, fields[4][1], fields[4][2])
    names: list[str] = []
    for tag, s, _ in fields[6:]:
        if tag != 0xA3:
            continue
        _, es, ee = _der(der, s)
        for _, xs, xe in _children(der, es, ee):
            parts = list(_children(der, xs, xe))
            if der[parts[0][1]:parts[0][2]] != _SAN:
                continue
            _, os_, _ = parts[-1]  # OCTET STRING holding GeneralNames
            _, gs, ge = _der(der, os_)
            for gtag, vs, ve in _children(der, gs, ge):
                if gtag == 0x82:
                    names.append(der[vs:ve].decode(errors="replace"))
                elif gtag == 0x87:
                    with contextlib.suppress(ValueError):
                        names.append(str(ipaddress.ip_address(der[vs:ve])))
    return CertInfo(subject, issuer, not_before, not_after, tuple(names))


def describe_cert(info: CertInfo, now: datetime) -> str:
    names = ", ".join(info.names[:4]) or f"CN={info.subject}"
    text = f"certificate for {names}"
    text += " (self-signed)" if info.self_signed else f", issued by {info.issuer or '?'}"
    if info.not_after is not None:
        days = (info.not_after - now).total_seconds() / 86400
        when = info.not_after.strftime("%Y-%m-%d")
        text += f", expired {when}" if days < 0 else f", expires {when} ({days:.0f} days)"
    return text
