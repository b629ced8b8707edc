"""The `docker run` flags of the run unit: which ones pullunit owns (MANAGED, so that
run.docker_args cannot set them a second time, differently), and the [run] container keys
as flags. Pure: no I/O.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import paths
from .configvalues import Where, list_of, one_word, string

if TYPE_CHECKING:
    from .config import RunConfig
    from .netkeys import Network

# docker run flag -> the config key that sets it, or (in parentheses) why pullunit owns it.
MANAGED: dict[str, str] = {
    "--name": "run.name",
    "--rm": "(pullunit runs the container with --rm and removes a leftover itself)",
    "--detach": "(the run unit keeps docker run in the foreground)",
    "--pull": "image.policy (the run unit never pulls)",
    "--platform": "image.platform",
    "--entrypoint": "run.entrypoint",
    "--env": "run.env", "--env-file": "run.env_files",
    "--publish": "run.ports", "--volume": "run.volumes",
    "--network": "run.networks", "--net": "run.networks",
    "--network-alias": "run.networks (aliases)", "--net-alias": "run.networks (aliases)",
    "--ip": "run.networks (ip)", "--ip6": "run.networks (ip6)",
    "--user": "run.user", "--restart": "run.restart (systemd restarts the unit)",
    "--stop-timeout": "run.stop_timeout",
    "--memory": "run.memory", "--memory-swap": "run.memory_swap", "--cpus": "run.cpus",
    "--pids-limit": "run.pids_limit", "--shm-size": "run.shm_size", "--ulimit": "run.ulimits",
    "--log-driver": "run.log_driver", "--log-opt": "run.log_opts",
    "--read-only": "run.read_only", "--tmpfs": "run.tmpfs",
    "--cap-add": "run.cap_add", "--cap-drop": "run.cap_drop",
    "--security-opt": "run.security_opt (no-new-privileges: run.no_new_privileges)",
    "--privileged": "run.privileged", "--device": "run.devices",
    "--group-add": "run.group_add", "--sysctl": "run.sysctls",
    "--hostname": "run.hostname", "--dns": "run.dns", "--dns-search": "run.dns_search",
    "--add-host": "run.add_hosts", "--label": "run.labels", "--workdir": "run.workdir",
    "--init": "run.init", "--stop-signal": "run.stop_signal",
    "--health-cmd": "health.cmd", "--health-interval": "health.interval",
    "--health-timeout": "health.timeout", "--health-retries": "health.retries",
    "--health-start-period": "health.start_period",
    "--no-healthcheck": "health.cmd (or the image's HEALTHCHECK)",
}
# Short forms: docker (pflag) lets boolean ones combine (-it, -dit) and a value follow
# its letter directly (-eX=1, -m512m).
_SHORT = {"d": "--detach", "e": "--env", "h": "--hostname", "l": "--label", "m": "--memory",
          "p": "--publish", "u": "--user", "v": "--volume", "w": "--workdir"}
_SHORT_BOOL = frozenset("itPq")
_SHORT_VALUE = frozenset("ac")  # --attach, --cpu-shares: not pullunit's
# docker run flags pullunit does not own that take a value: in "--flag value" form the
# next word is that value, not a flag.
_VALUE_FLAGS = frozenset({
    "--attach", "--blkio-weight", "--blkio-weight-device", "--cgroup-parent", "--cgroupns",
    "--cidfile", "--cpu-count", "--cpu-percent", "--cpu-period", "--cpu-quota",
    "--cpu-rt-period", "--cpu-rt-runtime", "--cpu-shares", "--cpuset-cpus", "--cpuset-mems",
    "--detach-keys", "--device-cgroup-rule", "--device-read-bps", "--device-read-iops",
    "--device-write-bps", "--device-write-iops", "--dns-option", "--dns-opt",
    "--domainname", "--expose", "--gpus", "--io-maxbandwidth", "--io-maxiops", "--ipc",
    "--isolation", "--kernel-memory", "--label-file", "--link", "--link-local-ip",
    "--mac-address", "--memory-reservation", "--memory-swappiness", "--mount",
    "--oom-score-adj", "--pid", "--runtime", "--storage-opt", "--userns", "--uts",
    "--volume-driver", "--volumes-from",
})


def managed_flag(word: str) -> str | None:
    """The long name of the pullunit-owned flag `word` is, in any spelling, or None."""
    if word.startswith("--"):
        name = word.split("=", 1)[0]
        return name if name in MANAGED else None
    if word.startswith("-") and len(word) > 1:
        for letter in word[1:]:
            if letter in _SHORT:
                return _SHORT[letter]
            if letter not in _SHORT_BOOL:
                return None  # a value flag's letter: the rest is its value
    return None


def _takes_next_word(word: str) -> bool:
    if word.startswith("--"):
        return "=" not in word and word in _VALUE_FLAGS
    if word.startswith("-") and len(word) > 1:
        letters = word[1:]
        for i, letter in enumerate(letters):
            if letter in _SHORT_VALUE:
                return i == len(letters) - 1
            if letter not in _SHORT_BOOL:
                return False
    return False


def docker_args(value: object, where: Where) -> tuple[str, ...]:
    """run.docker_args: extra docker run words, none of them a flag pullunit owns."""
    words = list_of(one_word(string))(value, where)
    value_next = False
    for i, word in enumerate(words):
        if value_next:  # the value of the flag before, whatever it reads
            value_next = False
            continue
        flag = managed_flag(word)
        if flag is not None:
            owner = MANAGED[flag]
            use = f"; {owner[1:-1]}" if owner.startswith("(") else f"; set {owner} instead"
            shown = word.split("=", 1)[0] if word.startswith("--") else None
            if shown is None:
                letter = next(k for k in word[1:] if _SHORT.get(k) == flag)
                shown = f"-{letter}"
            spelled = repr(shown) if shown == flag else f"{shown!r} ({flag})"
            raise where.child(i).error(
                f"{spelled} is managed by pullunit and cannot be passed in docker_args{use}")
        value_next = _takes_next_word(word)
    return words


def network_flags(net: Network) -> list[str]:
    argv = ["--network", net.name]
    for alias in net.aliases:
        argv += ["--network-alias", alias]
    if net.ip:
        argv += ["--ip", net.ip]
    if net.ip6:
        argv += ["--ip6", net.ip6]
    return argv


def connect_argv(net: Network, container: str) -> list[str]:
    """`docker network connect` of a further network, between create and start."""
    argv = [paths.DOCKER, "network", "connect"]
    for alias in net.aliases:
        argv += ["--alias", alias]
    if net.ip:
        argv += ["--ip", net.ip]
    if net.ip6:
        argv += ["--ip6", net.ip6]
    return [*argv, net.name, container]


def container_flags(run: RunConfig) -> list[str]:
    """The [run] container keys as docker run flags, each value one word as written."""
    argv: list[str] = []

    def add(flag: str, values: tuple[str, ...] | list[str]) -> None:
        for v in values:
            argv.extend((flag, v))

    add("--memory", [run.memory] if run.memory else [])
    add("--memory-swap", [run.memory_swap] if run.memory_swap else [])
    add("--cpus", [run.cpus] if run.cpus else [])
    add("--pids-limit", [str(run.pids_limit)] if run.pids_limit is not None else [])
    add("--shm-size", [run.shm_size] if run.shm_size else [])
    add("--ulimit", [u.flag_value for u in run.ulimits])
    # By default the attached docker run copies the container's output into the unit's
    # journal, so Docker keeps no second copy (its default json-file would).
    add("--log-driver", [run.log_driver or "none"])
    add("--log-opt", [f"{k}={v}" for k, v in run.log_opts])
    if run.read_only:
        argv.append("--read-only")
    add("--tmpfs", run.tmpfs)
    add("--cap-add", run.cap_add)
    add("--cap-drop", run.cap_drop)
    add("--security-opt", run.security_opt)
    if run.no_new_privileges is not None:
        add("--security-opt", [f"no-new-privileges={str(run.no_new_privileges).lower()}"])
    if run.privileged:
        argv.append("--privileged")
    add("--device", run.devices)
    add("--group-add", run.group_add)
    add("--sysctl", [f"{k}={v}" for k, v in run.sysctls])
    add("--hostname", [run.hostname] if run.hostname else [])
    add("--dns", run.dns)
    add("--dns-search", run.dns_search)
    add("--add-host", [f"{host}:{ip}" for host, ip in run.add_hosts])
    add("--label", [f"{k}={v}" for k, v in run.labels])
    add("--workdir", [run.workdir] if run.workdir else [])
    if run.init is not None:
        argv.append("--init" if run.init else "--init=false")
    add("--stop-signal", [run.stop_signal] if run.stop_signal else [])
    return argv
