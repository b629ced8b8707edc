"""The container keys of [run] beyond the basics: resources, logging, security, and (from
netkeys.py) identity and networks. One parser per key (through configvalues' Where, so
every error names the file and the dotted key), SCHEMA (key -> parser, merged into
config's [run] table), check(), the rules between keys, and warnings(). Pure: no I/O.

Docker parses these with ASCII grammars and refuses at `docker run` what it cannot take,
which in a unit means a start that fails again and again; so each value is checked here
against Docker's own rules (docker/cli opts, go-units, the daemon's checks) and then
passed to Docker as written.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .configvalues import (
    INT64_MAX,
    Parser,
    Where,
    abs_path,
    boolean,
    close_matches,
    integer,
    list_of,
    nonempty_string,
    one_word,
    type_name,
    unknown,
)
from .netkeys import (
    Network,
    add_hosts,
    hostname,
    ip_address,
    labels,
    networks,
    option_table,
    search_domain,
    stop_signal,
    workdir,
)

if TYPE_CHECKING:
    from .config import RunConfig

# dockerd 20.10 refuses a smaller --memory: "Minimum memory limit allowed is 6MB".
MIN_MEMORY = 6 * 1024 * 1024
MAX_CPUS = 1024  # Docker checks against the host's CPUs at start; this only bounds typos
# go-units RAMInBytes, without the space it allows: a number and a 1024-based unit.
_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)([kmgtp]?)(?:i?b)?", re.ASCII | re.IGNORECASE)
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)
_LOG_DRIVER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]*", re.ASCII)
_GROUP = re.compile(r"[a-z_][a-z0-9_-]*\$?|[0-9]+", re.ASCII)
_SYSCTL = re.compile(r"[a-z0-9_]+(?:[./][a-z0-9_-]+)+", re.ASCII)
_TMPFS_OPTION = re.compile(r"[a-z0-9]+(?:=[A-Za-z0-9.%:+-]+)?", re.ASCII)

ULIMITS = ("core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
           "nproc", "rss", "rtprio", "rttime", "sigpending", "stack")
CAPABILITIES = (
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
    "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN",
    "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE",
    "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
    "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
    "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ",
    "PERFMON", "BPF", "CHECKPOINT_RESTORE",
)
# Docker's built-in log drivers; another name is a plugin's.
LOG_DRIVERS = ("none", "local", "json-file", "syslog", "journald", "gelf", "fluentd",
               "awslogs", "splunk", "etwlogs", "gcplogs", "logentries")
_ANY_DRIVER_OPTS = ("mode", "max-buffer-size")
# The options dockerd accepts for the drivers people use on one host (others unchecked).
LOG_OPTS = {
    "json-file": ("max-size", "max-file", "compress", "labels", "labels-regex", "env",
                  "env-regex", "tag"),
    "local": ("max-size", "max-file", "compress"),
    "journald": ("tag", "labels", "labels-regex", "env", "env-regex"),
}
_TMPFS_FLAGS = frozenset({
    "rw", "ro", "nosuid", "suid", "nodev", "dev", "noexec", "exec", "sync", "async",
    "dirsync", "atime", "noatime", "diratime", "nodiratime", "relatime", "norelatime",
    "strictatime", "nostrictatime", "mand", "nomand", "private", "rprivate", "shared",
    "rshared", "slave", "rslave", "tmpcopyup", "notmpcopyup"})
_TMPFS_VALUED = frozenset({"size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol"})
_SECURITY_OPTS = ("label", "apparmor", "seccomp", "systempaths")
# docker's ValidateSysctl: only sysctls of a namespace the container has of its own.
_SYSCTL_NAMES = frozenset({"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                           "kernel.shmall", "kernel.shmmax", "kernel.shmmni",
                           "kernel.shm_rmid_forced"})
_SYSCTL_PREFIXES = ("fs.mqueue.", "net.")


@dataclass(frozen=True)
class Ulimit:
    name: str
    soft: int
    hard: int | None = None  # None: the same as soft (docker --ulimit NAME=N)

    @property
    def flag_value(self) -> str:
        limit = str(self.soft) if self.hard is None else f"{self.soft}:{self.hard}"
        return f"{self.name}={limit}"


def size_bytes(text: str) -> int | None:
    """What Docker makes of a size string (go-units RAMInBytes), or None if it is not one.
    Integer arithmetic: no float rounding, and no int() of thousands of digits."""
    m = _SIZE.fullmatch(text)
    if not m:
        return None
    whole, _, frac = m.group(1).partition(".")
    whole = whole.lstrip("0") or "0"
    if len(whole) > 30:
        return INT64_MAX + 1  # far more than any size Docker takes
    frac = frac[:30]
    power = " kmgtp".index(m.group(2).lower() or " ")
    count: int = int(whole + frac) * 1024**power // 10 ** len(frac)
    return count


def size(minimum: int = 1, *, allow_unlimited: bool = False) -> Parser:
    """A byte size as `docker run --memory` takes it: an integer number of bytes or a
    string "512m", "1.5g" (units b, k, m, g, t, p; 1024-based), passed on as written."""
    def parse(value: object, where: Where) -> str:
        if allow_unlimited and value in (-1, "-1") and not isinstance(value, bool):
            return "-1"
        count: int | None
        if isinstance(value, int) and not isinstance(value, bool):
            count, text = value, str(value)
        elif isinstance(value, str):
            text = value
            count = size_bytes(value)
            if count is None:
                raise where.error(f"invalid size {value!r}; expected bytes or a number with "
                                  "a unit b, k, m, g, t (1024-based), e.g. \"512m\"")
        else:
            raise where.error(f"expected a size (\"512m\" or a number of bytes), got "
                              f"{type_name(value)}")
        if not minimum <= count <= INT64_MAX:
            unlimited = " (or -1 for unlimited)" if allow_unlimited else ""
            raise where.error(f"{text!r} must be at least {minimum} bytes{unlimited} and at "
                              f"most {INT64_MAX}")
        return text
    return parse


def cpus(value: object, where: Where) -> str:
    """docker run --cpus: a decimal number of CPUs, in steps of 1e-9 (NanoCpus)."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise where.error(f"expected a number of CPUs, got {type_name(value)}")
    text = value if isinstance(value, str) else repr(value)
    out_of_range = where.error(f"must be between 0.01 and {MAX_CPUS}, got {text}")
    if isinstance(value, float) and "e" in text and math.isfinite(value):
        raise out_of_range  # repr() writes only below 1e-4 or from 1e16 with an exponent
    if not _DECIMAL.fullmatch(text):
        raise where.error(f"invalid number of CPUs {text!r}; expected e.g. 1.5")
    whole, _, frac = text.partition(".")
    whole = whole.lstrip("0") or "0"
    finer = len(frac.rstrip("0")) > 9
    nano = int(whole) * 10**9 + int((frac + "0" * 9)[:9]) if len(whole) < 6 else None
    if nano is None or not 10**7 <= nano <= MAX_CPUS * 10**9 or (
            nano == MAX_CPUS * 10**9 and finer):
        raise out_of_range
    if finer:
        raise where.error(f"{text} is too precise; Docker takes CPUs in steps of 0.000000001")
    return text


def pids_limit(value: object, where: Where) -> int:
    n = integer(value, where, -1)
    if n == 0:
        raise where.error("must be at least 1, or -1 for unlimited")
    return n


def _limit(value: object, where: Where) -> int:
    return integer(value, where, -1)


def ulimits(value: object, where: Where) -> tuple[Ulimit, ...]:
    if not isinstance(value, dict):
        raise where.error(f"expected a table of NAME = limit or NAME = {{ soft, hard }}, got "
                          f"{type_name(value)}")
    out = []
    for name, limit in value.items():
        w = where.child(name)
        if name not in ULIMITS:
            raise unknown(name, list(ULIMITS), w, "ulimit")
        if isinstance(limit, dict):
            for k in limit:
                if k not in ("soft", "hard"):
                    raise unknown(k, ["soft", "hard"], w.child(k), "key")
            if "soft" not in limit or "hard" not in limit:
                raise w.error("needs both soft and hard")
            soft, hard = _limit(limit["soft"], w.child("soft")), _limit(limit["hard"],
                                                                      w.child("hard"))
            if hard != -1 and (soft == -1 or soft > hard):
                raise w.child("soft").error(f"{soft} must not be above the hard limit {hard}")
            out.append(Ulimit(name, soft, hard))
        else:
            out.append(Ulimit(name, _limit(limit, w)))
    return tuple(out)


def log_driver(value: object, where: Where) -> str:
    s = nonempty_string(value, where)
    if not _LOG_DRIVER.fullmatch(s):
        raise where.error(f"invalid log driver name {s!r}")
    if s not in LOG_DRIVERS:
        # A plugin's name is free, but one a letter away from a built-in is a typo.
        close = close_matches(s, LOG_DRIVERS, 0.8)
        if close:
            raise where.error(f"unknown log driver {s!r}; did you mean {close[0]!r}?")
    return s


def tmpfs(value: object, where: Where) -> str:
    s = nonempty_string(value, where)
    path, _, options = s.partition(":")
    abs_path(path, where)
    if options:
        for opt in options.split(","):
            name = opt.split("=", 1)[0]
            if not _TMPFS_OPTION.fullmatch(opt) or not (
                    (opt in _TMPFS_FLAGS) or ("=" in opt and name in _TMPFS_VALUED)):
                valid = sorted(_TMPFS_FLAGS) + [f"{v}=" for v in sorted(_TMPFS_VALUED)]
                close = close_matches(name, valid, 0.6)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise where.error(f"unknown tmpfs mount option {opt!r} in {s!r}{hint}")
    return s


def capability(value: object, where: Where) -> str:
    """A capability as Docker takes it: any case, with or without CAP_, or ALL."""
    s = nonempty_string(value, where)
    name = s.upper()
    bare = name[4:] if name.startswith("CAP_") else name
    if name != "ALL" and bare not in CAPABILITIES:
        close = close_matches(bare, CAPABILITIES, 0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise where.error(f"unknown capability {s!r}{hint}", "see capabilities(7); ALL for all")
    return s


def security_opt(value: object, where: Where) -> str:
    s = nonempty_string(value, where)
    name, sep, rest = s.partition("=")
    if name == "no-new-privileges":
        raise where.error("no-new-privileges has its own key", "set run.no_new_privileges")
    if name not in _SECURITY_OPTS or not sep or not rest:
        close = close_matches(name, _SECURITY_OPTS, 0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise where.error(f"invalid security option {s!r}{hint}; expected "
                          "label=..., apparmor=PROFILE, seccomp=unconfined|/PATH.json or "
                          "systempaths=unconfined")
    if name == "seccomp" and rest != "unconfined" and not rest.startswith("/"):
        raise where.error(f"seccomp profile {rest!r} must be \"unconfined\" or an absolute "
                          "path (the docker client reads it from the run unit's /)")
    if name == "systempaths" and rest != "unconfined":
        raise where.error(f"{s!r}: systempaths takes only \"unconfined\"")
    return s


def device(value: object, where: Where) -> str:
    """HOST[:CONTAINER][:PERMISSIONS] as docker run --device takes it."""
    s = nonempty_string(value, where)
    parts = s.split(":")
    if len(parts) > 3:
        raise where.error(f"malformed device {s!r}; expected HOST[:CONTAINER][:rwm]")
    perms = parts.pop() if len(parts) > 1 and not parts[-1].startswith("/") else None
    for p in parts:
        if not p.startswith("/"):
            raise where.error(f"device path {p!r} in {s!r} must be absolute")
    if perms is not None and (not perms or not set(perms) <= set("rwm") or len(perms) > 3):
        raise where.error(f"device permissions {perms!r} in {s!r} must be some of r, w, m")
    return s


def group(value: object, where: Where) -> str:
    s = nonempty_string(value, where)
    if not _GROUP.fullmatch(s):
        raise where.error(f"invalid group {s!r}; expected a group name or a GID")
    return s


def sysctl_name(name: str) -> bool:
    return bool(_SYSCTL.fullmatch(name)) and (
        name in _SYSCTL_NAMES or name.startswith(_SYSCTL_PREFIXES))


def sysctls(value: object, where: Where) -> tuple[tuple[str, str], ...]:
    out = option_table("sysctl = value", _SYSCTL)(value, where)
    for name, _ in out:
        if not sysctl_name(name):
            raise where.child(name).error(
                f"{name!r} is not a sysctl a container has of its own; Docker allows "
                "net.*, fs.mqueue.*, kernel.shm*, kernel.msg* and kernel.sem")
    return tuple(out)


SCHEMA: dict[str, Parser] = {
    # resources
    "memory": one_word(size(MIN_MEMORY)),
    "memory_swap": one_word(size(MIN_MEMORY, allow_unlimited=True)),
    "cpus": cpus,
    "pids_limit": pids_limit,
    "shm_size": one_word(size()),
    "ulimits": ulimits,
    # logging
    "log_driver": one_word(log_driver),
    "log_opts": option_table("option = \"value\""),
    # security
    "read_only": boolean,
    "tmpfs": list_of(one_word(tmpfs)),
    "cap_add": list_of(capability),
    "cap_drop": list_of(capability),
    "security_opt": list_of(one_word(security_opt)),
    "no_new_privileges": boolean,
    "privileged": boolean,
    "devices": list_of(one_word(device)),
    "group_add": list_of(one_word(group)),
    "sysctls": sysctls,
    # identity and network
    "hostname": hostname,
    "dns": list_of(ip_address()),
    "dns_search": list_of(search_domain),
    "add_hosts": add_hosts,
    "networks": networks,
    "labels": labels,
    "workdir": one_word(workdir),
    "init": boolean,
    "stop_signal": stop_signal,
}


def check(values: dict[str, Any], where: Where) -> None:
    """The rules between [run] keys, on the parsed values (a key that is absent is unset)."""
    swap = values.get("memory_swap")
    if swap is not None:
        memory = values.get("memory")
        if memory is None:
            raise where.child("memory_swap").error("needs run.memory: Docker sets swap only "
                                                   "together with a memory limit")
        if swap != "-1" and _bytes(swap) < _bytes(memory):
            raise where.child("memory_swap").error(
                f"{swap!r} is less than run.memory {memory!r}; it is memory plus swap")
    driver = values.get("log_driver", "none")
    opts = values.get("log_opts", ())
    if opts and driver == "none":
        raise where.child("log_opts").error(
            "needs run.log_driver: by default the container logs only to the journal of "
            "its unit (log driver \"none\"), which takes no options")
    allowed = LOG_OPTS.get(driver)
    for name, _ in opts:
        if allowed is not None and name not in allowed + _ANY_DRIVER_OPTS:
            raise unknown(name, [*allowed, *_ANY_DRIVER_OPTS],
                          where.child("log_opts").child(name), f"{driver} log option")
    if "network" in values and "networks" in values:
        raise where.child("networks").error("run.network is set too; use one of them",
                                            "network = \"x\" is networks = [\"x\"]")
    nets = effective_networks(values)
    if nets and nets[0].name.startswith("container:"):
        # dockerd: "conflicting options: hostname and the network mode", and so on
        for key in ("hostname", "dns", "dns_search", "add_hosts", "ports"):
            if values.get(key):
                raise where.child(key).error(f"cannot be set with network {nets[0].name!r}: "
                                             "the container shares that container's")
    shared_netns = nets and (nets[0].name == "host" or nets[0].name.startswith("container:"))
    if shared_netns and any(n.startswith("net.") for n, _ in values.get("sysctls", ())):
        raise where.child("sysctls").error(
            f"net.* sysctls cannot be set with network {nets[0].name!r}: the network "
            "namespace is not the container's own")


def _bytes(text: str) -> int:
    n = size_bytes(text)
    return int(text) if n is None else n


def effective_networks(values: dict[str, Any]) -> tuple[Network, ...]:
    """run.networks, or run.network as its one-network shorthand."""
    if values.get("networks"):
        return tuple(values["networks"])
    if values.get("network"):
        return (Network(values["network"]),)
    return ()


def warnings(run: RunConfig) -> list[str]:
    """What is valid but deserves a second look (`pullunit validate` says it)."""
    out = []
    if run.privileged:
        out.append("run.privileged: the container gets every device and capability of the "
                    "host and no confinement; root in it is root on the host")
    if run.log_driver == "journald":
        out.append("run.log_driver: \"journald\" stores each line twice in the journal "
                   "(once from the unit, once from dockerd); leave it unset for one copy")
    return out
