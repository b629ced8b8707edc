"""The [run] keys of the container's identity and networks (host name, DNS, /etc/hosts,
networks with aliases and fixed addresses, labels, working directory, stop signal) and the
table-of-options parser the other container keys share. Parsers as in configvalues.py,
each given a Where its errors name; runkeys.py merges them into [run]. Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from .configvalues import (
    ARG_MAX_BYTES,
    Parser,
    Where,
    list_of,
    network,
    nonempty_string,
    one_word,
    string,
    type_name,
    unknown,
)

# RFC 1123 host names, as Docker's network aliases, --hostname and --add-host take them.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*", re.ASCII)
_OPTION_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*", re.ASCII)
_LABEL_KEY = re.compile(r"[^\s=]+")

# Network modes: the container's only network, without aliases or a fixed address.
NETWORK_MODES = ("host", "none")
DEFAULT_BRIDGE = "bridge"


@dataclass(frozen=True)
class Network:
    """One network the container joins; the first is the one `docker run` creates it in."""

    name: str
    aliases: tuple[str, ...] = ()
    ip: str | None = None
    ip6: str | None = None

    @property
    def is_mode(self) -> bool:
        return self.name in NETWORK_MODES or self.name.startswith("container:")


def _text_word(value: object, where: Where) -> str:
    """A string, integer or boolean option value, as the word Docker gets."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return string(value, where)


def option_table(what: str, key_pattern: re.Pattern[str] = _OPTION_KEY) -> Parser:
    """A table NAME = value that becomes `--flag NAME=value` words (log_opts, sysctls)."""
    def parse(value: object, where: Where) -> tuple[tuple[str, str], ...]:
        if not isinstance(value, dict):
            raise where.error(f"expected a table of {what}, got {type_name(value)}")
        out = []
        for name, v in value.items():
            w = where.child(name)
            if isinstance(v, dict):  # what TOML makes of an unquoted net.core.x = 1
                raise w.error("is a table, not a value", "quote a name that has dots: "
                              "{ \"net.core.somaxconn\" = 1024 }")
            if not key_pattern.fullmatch(string(name, w)):  # string(): no control chars
                raise w.error(f"invalid name {name!r}")
            word = (name, _text_word(v, w))
            if len("=".join(word).encode()) > ARG_MAX_BYTES:
                raise w.error(f"is longer than one argument can be ({ARG_MAX_BYTES} bytes)")
            out.append(word)
        return tuple(out)
    return parse



def dns_name(limit: int = 253) -> Parser:
    """An RFC 1123 name: a network alias, an /etc/hosts name (253 at most, DNS's limit),
    or with limit=64 the container's host name (the kernel's HOST_NAME_MAX)."""
    def parse(value: object, where: Where) -> str:
        s = nonempty_string(value, where)
        if len(s) > limit or not _HOSTNAME.fullmatch(s):
            raise where.error(f"invalid host name {s!r}; expected letters, digits and '-' "
                              f"in labels of at most 63 separated by '.', {limit} at most "
                              "in all")
        return s
    return parse


hostname = dns_name(64)


def ip_address(version: int | None = None) -> Parser:
    def parse(value: object, where: Where) -> str:
        s = nonempty_string(value, where)
        try:
            addr = ipaddress.ip_address(s)
        except ValueError:
            raise where.error(f"{s!r} is not an IP address") from None
        if version and addr.version != version:
            raise where.error(f"{s!r} is not an IPv{version} address")
        if str(addr) != s:  # Docker compares addresses as text in places
            raise where.error(f"write {s!r} as {str(addr)!r}")
        return s
    return parse


def search_domain(value: object, where: Where) -> str:
    s = nonempty_string(value, where)
    if s != "." and (len(s) > 254 or not _HOSTNAME.fullmatch(s.removesuffix("."))):
        raise where.error(f"invalid search domain {s!r}")
    return s


def add_hosts(value: object, where: Where) -> tuple[tuple[str, str], ...]:
    """A table HOST = IP (or "host-gateway") for /etc/hosts: docker run --add-host."""
    if not isinstance(value, dict):
        raise where.error(f"expected a table of \"host.name\" = \"IP\", got {type_name(value)}")
    out = []
    for name, ip in value.items():
        w = where.child(name)
        if isinstance(ip, dict):
            raise w.error("is a table, not an address", "quote a name that has dots: "
                          "{ \"db.example.com\" = \"10.0.0.5\" }")
        dns_name()(name, w)
        addr = "host-gateway" if ip == "host-gateway" else ip_address()(ip, w)
        out.append((name, addr))
    return tuple(out)


def _network_entry(value: object, where: Where) -> Network:
    if isinstance(value, str):
        return Network(network(value, where))
    if not isinstance(value, dict):
        raise where.error(f"expected a network name or a table {{ name, aliases, ip, ip6 }}, "
                          f"got {type_name(value)}")
    keys: dict[str, Parser] = {"name": network, "aliases": list_of(dns_name()),
                               "ip": ip_address(4), "ip6": ip_address(6)}
    parsed = {}
    for k, v in value.items():
        if k not in keys:
            raise unknown(k, list(keys), where.child(k), "key")
        parsed[k] = keys[k](v, where.child(k))
    if "name" not in parsed:
        raise where.child("name").error("is required")
    return Network(**parsed)


def networks(value: object, where: Where) -> tuple[Network, ...]:
    nets = list_of(one_word(_network_entry))(value, where)
    seen = set()
    for i, net in enumerate(nets):
        w = where.child(i)
        if net.name in seen:
            raise w.error(f"network {net.name!r} is listed twice")
        seen.add(net.name)
        special = net.is_mode or net.name == DEFAULT_BRIDGE
        if special and (net.aliases or net.ip or net.ip6):
            raise w.error(f"{net.name!r} takes no aliases or fixed address: Docker allows "
                          "them on user-defined networks only")
        if net.is_mode and len(nets) > 1:
            raise w.error(f"{net.name!r} is a network mode: it must be the only network")
    return nets


def labels(value: object, where: Where) -> tuple[tuple[str, str], ...]:
    out = option_table("\"label\" = \"value\"", _LABEL_KEY)(value, where)
    for name, _ in out:
        if name.lower().startswith("pullunit."):
            raise where.child(name).error(f"label {name!r}: pullunit.* labels are pullunit's "
                                          "own (pullunit.app names the app)")
    return tuple(out)


def workdir(value: object, where: Where) -> str:
    s = nonempty_string(value, where)
    if not s.startswith("/"):
        raise where.error(f"working directory {s!r} must be an absolute path")
    return s


def signal_number(name: str) -> int | None:
    """The number of a signal as `docker run --stop-signal` takes it (SIGTERM, TERM, 15,
    RTMIN+3), or None."""
    import signal  # only for a config that sets stop_signal: off the generator's start path

    if name.isdigit() and name.isascii():
        return int(name) if 1 <= int(name) <= signal.SIGRTMAX else None
    bare = name.upper().removeprefix("SIG")
    for base in ("RTMIN", "RTMAX"):
        if bare.startswith(base):
            offset = bare[len(base):]
            start = int(getattr(signal, f"SIG{base}"))
            if not offset:
                return start
            if re.fullmatch(r"[+-][0-9]{1,2}", offset, re.ASCII):
                n = start + int(offset)
                return n if signal.SIGRTMIN <= n <= signal.SIGRTMAX else None
            return None
    try:
        return int(signal.Signals[f"SIG{bare}"])
    except KeyError:
        return None


def stop_signal(value: object, where: Where) -> str:
    s = nonempty_string(value, where)
    if signal_number(s) is None:
        raise where.error(f"unknown signal {s!r}; expected e.g. \"SIGTERM\", \"SIGINT\" "
                          "or a number")
    return s
