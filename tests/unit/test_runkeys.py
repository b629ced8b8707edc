"""The [run] container keys (runkeys.py) and the docker run flags pullunit owns
(dockerflags.py): every bad value is exit 78 naming file and key, every good one reaches
`docker run` exactly as written, and no managed flag gets in through docker_args."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

from pullunit.config import RunConfig, parse_app
from pullunit.dockerflags import MANAGED, container_flags, managed_flag
from pullunit.errors import ConfigError
from pullunit.netkeys import Network, signal_number
from pullunit.printable import printable
from pullunit.render import docker_run_argv
from pullunit.runkeys import CAPABILITIES, SCHEMA, Ulimit, size_bytes
from pullunit.unitfiles import generate

from .conftest import assert_no_traceback, run_cli
from .test_config import Bad

BASE = '[image]\nref = "nginx:1.25"\n[run]\n'

BAD = [
    # resources
    Bad("memory-typo-unit", BASE + "memory = '512x'\n",
        "run.memory: invalid size '512x'; expected bytes or a number with a unit"),
    Bad("memory-below-docker-minimum", BASE + "memory = '4m'\n",
        "run.memory: '4m' must be at least 6291456 bytes"),
    Bad("memory-negative", BASE + "memory = -1\n", "run.memory: '-1' must be at least"),
    Bad("memory-bool", BASE + "memory = true\n", "run.memory: expected a size"),
    Bad("memory-space", BASE + "memory = '512 m'\n", "run.memory: invalid size '512 m'"),
    Bad("memory-huge", BASE + "memory = '9999999999p'\n", "run.memory: '9999999999p' must be"),
    Bad("memory-swap-without-memory", BASE + "memory_swap = '1g'\n",
        "run.memory_swap: needs run.memory"),
    Bad("memory-swap-below-memory", BASE + "memory = '1g'\nmemory_swap = '512m'\n",
        "run.memory_swap: '512m' is less than run.memory '1g'"),
    Bad("cpus-zero", BASE + "cpus = 0\n", "run.cpus: must be between 0.01 and 1024, got 0"),
    Bad("cpus-too-precise", BASE + "cpus = '0.0000000001'\n", "run.cpus: "),
    Bad("cpus-text", BASE + "cpus = 'two'\n", "run.cpus: invalid number of CPUs 'two'"),
    Bad("cpus-negative", BASE + "cpus = -1.5\n", "run.cpus: invalid number of CPUs '-1.5'"),
    Bad("cpus-nan", BASE + "cpus = nan\n", "run.cpus: invalid number of CPUs 'nan'"),
    Bad("pids-zero", BASE + "pids_limit = 0\n", "run.pids_limit: must be at least 1, or -1"),
    Bad("pids-string", BASE + "pids_limit = '100'\n",
        "run.pids_limit: expected an integer, got string"),
    Bad("shm-zero", BASE + "shm_size = 0\n", "run.shm_size: '0' must be at least 1 bytes"),
    Bad("ulimit-typo", BASE + "ulimits = { nofiles = 10 }\n",
        "run.ulimits.nofiles: unknown ulimit 'nofiles'; did you mean 'nofile'?"),
    Bad("ulimit-soft-above-hard", BASE + "ulimits = { nofile = { soft = 10, hard = 5 } }\n",
        "run.ulimits.nofile.soft: 10 must not be above the hard limit 5"),
    Bad("ulimit-missing-hard", BASE + "ulimits = { nofile = { soft = 10 } }\n",
        "run.ulimits.nofile: needs both soft and hard"),
    Bad("ulimit-key-typo", BASE + "ulimits = { nofile = { soft = 1, hrad = 2 } }\n",
        "run.ulimits.nofile.hrad: unknown key 'hrad'; did you mean 'hard'?"),
    Bad("ulimit-below-minus-one", BASE + "ulimits = { core = -2 }\n",
        "run.ulimits.core: must be between -1 and"),
    Bad("ulimits-not-table", BASE + "ulimits = ['nofile=1']\n", "run.ulimits: expected a table"),
    # logging
    Bad("log-driver-typo", BASE + "log_driver = 'jounrald'\n",
        "run.log_driver: unknown log driver 'jounrald'; did you mean 'journald'?"),
    Bad("log-driver-bad-name", BASE + "log_driver = 'a b'\n",
        "run.log_driver: invalid log driver name 'a b'"),
    Bad("log-opts-without-driver", BASE + "log_opts = { max-size = '1m' }\n",
        "run.log_opts: needs run.log_driver"),
    Bad("log-opt-typo", BASE + "log_driver = 'json-file'\nlog_opts = { max-szie = '1m' }\n",
        "run.log_opts.max-szie: unknown json-file log option 'max-szie'; did you mean "
        "'max-size'?"),
    Bad("log-opt-newline", BASE + "log_driver = 'gelf'\nlog_opts = { x = \"a\\nb\" }\n",
        "run.log_opts.x: value 'a\\nb' contains control character '\\n'"),
    # security
    Bad("read-only-string", BASE + "read_only = 'yes'\n",
        "run.read_only: expected true or false, got string"),
    Bad("tmpfs-relative", BASE + "tmpfs = ['tmp']\n", "run.tmpfs[0]: path 'tmp' must be absolute"),
    Bad("tmpfs-option-typo", BASE + "tmpfs = ['/tmp:sise=1m']\n",
        "run.tmpfs[0]: unknown tmpfs mount option 'sise=1m' in '/tmp:sise=1m'; did you mean "
        "'size='?"),
    Bad("tmpfs-specifier-path", BASE + "tmpfs = ['/tmp%n']\n",
        "run.tmpfs[0]: path '/tmp%n' must not contain '%', '$' or '\\'"),
    Bad("cap-typo", BASE + "cap_add = ['NET_ADMN']\n",
        "run.cap_add[0]: unknown capability 'NET_ADMN'; did you mean 'NET_ADMIN'?"),
    Bad("cap-drop-unknown", BASE + "cap_drop = ['CAP_X']\n",
        "run.cap_drop[0]: unknown capability 'CAP_X'"),
    Bad("security-opt-nnp", BASE + "security_opt = ['no-new-privileges']\n",
        "run.security_opt[0]: no-new-privileges has its own key"),
    Bad("security-opt-typo", BASE + "security_opt = ['apparmour=x']\n",
        "run.security_opt[0]: invalid security option 'apparmour=x'; did you mean 'apparmor'?"),
    Bad("security-opt-relative-seccomp", BASE + "security_opt = ['seccomp=p.json']\n",
        "run.security_opt[0]: seccomp profile 'p.json' must be \"unconfined\" or an absolute"),
    Bad("no-new-privileges-string", BASE + "no_new_privileges = 'true'\n",
        "run.no_new_privileges: expected true or false, got string"),
    Bad("privileged-int", BASE + "privileged = 1\n", "run.privileged: expected true or false"),
    Bad("device-relative", BASE + "devices = ['dev/fuse']\n",
        "run.devices[0]: device path 'dev/fuse' in 'dev/fuse' must be absolute"),
    Bad("device-perms", BASE + "devices = ['/dev/fuse:/dev/fuse:rwx']\n",
        "run.devices[0]: device permissions 'rwx' in '/dev/fuse:/dev/fuse:rwx' must be some"),
    Bad("group-space", BASE + "group_add = ['a b']\n", "run.group_add[0]: invalid group 'a b'"),
    Bad("sysctl-not-namespaced", BASE + "sysctls = { 'vm.swappiness' = 10 }\n",
        "run.sysctls.vm.swappiness: 'vm.swappiness' is not a sysctl a container has"),
    Bad("sysctl-net-with-host", BASE + "network = 'host'\n"
        "sysctls = { 'net.core.somaxconn' = 1024 }\n",
        "run.sysctls: net.* sysctls cannot be set with network 'host'"),
    Bad("sysctl-value-table", BASE + "sysctls = { 'net.core.somaxconn' = { a = 1 } }\n",
        "run.sysctls.net.core.somaxconn: is a table, not a value"),
    Bad("sysctl-unquoted-dots", BASE + "sysctls = { net.core.somaxconn = 1 }\n",
        "run.sysctls.net: is a table, not a value"),
    Bad("labels-unquoted-dots", BASE + "labels = { com.example.x = 'y' }\n",
        "run.labels.com: is a table, not a value"),
    Bad("add-hosts-unquoted-dots", BASE + "add_hosts = { db.local = '10.0.0.1' }\n",
        "run.add_hosts.db: is a table, not an address"),
    # identity and network
    Bad("hostname-underscore", BASE + "hostname = 'web_1'\n",
        "run.hostname: invalid host name 'web_1'"),
    Bad("hostname-too-long", BASE + "hostname = '" + "a." * 32 + "a'\n",
        "run.hostname: invalid host name"),
    Bad("hostname-with-container-network", BASE + "network = 'container:db'\nhostname = 'x'\n",
        "run.hostname: cannot be set with network 'container:db'"),
    Bad("ports-with-container-network", BASE + "ports = ['80']\nnetworks = ['container:db']\n",
        "run.ports: cannot be set with network 'container:db'"),
    Bad("dns-not-ip", BASE + "dns = ['dns.example.com']\n",
        "run.dns[0]: 'dns.example.com' is not an IP address"),
    Bad("dns-search-bad", BASE + "dns_search = ['a..b']\n",
        "run.dns_search[0]: invalid search domain 'a..b'"),
    Bad("add-hosts-bad-ip", BASE + "add_hosts = { db = '10.0.0' }\n",
        "run.add_hosts.db: '10.0.0' is not an IP address"),
    Bad("add-hosts-bad-name", BASE + "add_hosts = { 'a:b' = '10.0.0.1' }\n",
        "run.add_hosts.a:b: invalid host name 'a:b'"),
    Bad("add-hosts-list", BASE + "add_hosts = ['db:10.0.0.1']\n",
        "run.add_hosts: expected a table"),
    Bad("networks-and-network", BASE + "network = 'a'\nnetworks = ['b']\n",
        "run.networks: run.network is set too; use one of them"),
    Bad("networks-twice", BASE + "networks = ['a', 'a']\n",
        "run.networks[1]: network 'a' is listed twice"),
    Bad("networks-host-not-alone", BASE + "networks = ['host', 'b']\n",
        "run.networks[0]: 'host' is a network mode: it must be the only network"),
    Bad("networks-alias-on-bridge", BASE + "networks = [{ name = 'bridge', aliases = ['x'] }]\n",
        "run.networks[0]: 'bridge' takes no aliases or fixed address"),
    Bad("networks-key-typo", BASE + "networks = [{ name = 'a', alias = ['x'] }]\n",
        "run.networks[0].alias: unknown key 'alias'; did you mean 'aliases'?"),
    Bad("networks-no-name", BASE + "networks = [{ aliases = ['x'] }]\n",
        "run.networks[0].name: is required"),
    Bad("networks-ip-v6-in-ip", BASE + "networks = [{ name = 'a', ip = 'fd00::1' }]\n",
        "run.networks[0].ip: 'fd00::1' is not an IPv4 address"),
    Bad("networks-ip-not-canonical", BASE + "networks = [{ name = 'a', ip6 = 'FD00::1' }]\n",
        "run.networks[0].ip6: write 'FD00::1' as 'fd00::1'"),
    Bad("networks-bad-alias", BASE + "networks = [{ name = 'a', aliases = ['x y'] }]\n",
        "run.networks[0].aliases[0]: invalid host name 'x y'"),
    Bad("networks-bad-name", BASE + "networks = ['a b']\n", "run.networks[0]: invalid network"),
    Bad("labels-reserved", BASE + "labels = { 'pullunit.app' = 'other' }\n",
        "run.labels.pullunit.app: label 'pullunit.app': pullunit.* labels are pullunit's own"),
    Bad("labels-reserved-case", BASE + "labels = { 'PullUnit.x' = 'y' }\n",
        "run.labels.PullUnit.x: label 'PullUnit.x': pullunit.* labels"),
    Bad("labels-space-in-key", BASE + "labels = { 'a b' = 'y' }\n",
        "run.labels.a b: invalid name 'a b'"),
    Bad("labels-escape-in-key", BASE + "labels = { \"a\\u001b[2J\" = 'y' }\n",
        "run.labels.a\\x1b[2J: value 'a\\x1b[2J' contains control character '\\x1b'"),
    Bad("labels-newline-value", BASE + "labels = { a = \"x\\ny\" }\n",
        "run.labels.a: value 'x\\ny' contains control character '\\n'"),
    Bad("workdir-relative", BASE + "workdir = 'srv'\n",
        "run.workdir: working directory 'srv' must be an absolute path"),
    Bad("init-string", BASE + "init = 'true'\n", "run.init: expected true or false"),
    Bad("stop-signal-typo", BASE + "stop_signal = 'SIGTREM'\n",
        "run.stop_signal: unknown signal 'SIGTREM'"),
    Bad("stop-signal-out-of-range", BASE + "stop_signal = '65'\n",
        "run.stop_signal: unknown signal '65'"),
    Bad("key-typo", BASE + "memroy = '1g'\n", "run.memroy: unknown key 'memroy'; did you mean "
        "'memory'?"),
    Bad("key-typo-cap", BASE + "caps_add = ['X']\n",
        "run.caps_add: unknown key 'caps_add'; did you mean 'cap_add'?"),
]


@pytest.mark.parametrize("case", BAD, ids=[c.id for c in BAD])
def test_bad_value_is_exit_78_naming_the_key(case: Bad, config_dir: Path) -> None:
    path = config_dir / "web.toml"
    path.write_text(case.toml, encoding="utf-8")
    proc = run_cli("validate", path)
    assert proc.returncode == 78, proc.stderr
    assert f"{path}: {case.expected}" in proc.stderr
    assert proc.stderr.startswith("pullunit: error: ") and proc.stderr.count("\n") == 1
    assert proc.stdout == ""
    assert_no_traceback(proc.stderr)


def test_every_key_has_a_bad_case() -> None:
    tested = {c.toml.split("[run]\n", 1)[1].split(" =", 1)[0] for c in BAD}
    assert set(SCHEMA) - tested == set()


def test_a_bad_key_costs_only_its_own_app(config_dir: Path, output_dir: Path,
                                          write_app: Callable[..., Path]) -> None:
    """One bad value per new key, each in its own app: nothing of it is written, and
    the good app beside them is generated."""
    write_app("good", BASE + "memory = '1g'\ncap_drop = ['ALL']\n")
    bad = {f"bad{i:02d}": case for i, case in enumerate(BAD)}
    for name, case in bad.items():
        write_app(name, case.toml)
    result = generate(config_dir, output_dir, executable="/usr/bin/true")
    assert sorted(p.name for p in output_dir.iterdir()) == ["good-pull.service",
                                                            "good.service"]
    assert len(result.errors) == len(bad)
    for error in result.errors:
        name = Path(error.message.split(": ", 1)[0]).stem
        # as the CLI shows it: a key with control characters is written escaped
        shown = printable(error.message)
        assert shown.startswith(f"{config_dir / name}.toml: {bad[name].expected}"), shown


# --- what good values become -------------------------------------------------------------

def run_of(extra: str, tmp_path: Path) -> RunConfig:
    return parse_app("web", tomllib.loads(BASE + extra), tmp_path / "web.toml").run


def flags(extra: str, tmp_path: Path) -> list[str]:
    """container_flags() without the default log driver."""
    out = container_flags(run_of(extra, tmp_path))
    at = out.index("--log-driver")
    return out[:at] + out[at + 2:] if out[at + 1] == "none" else out


@pytest.mark.parametrize(("extra", "expected"), [
    ("memory = '512m'", ["--memory", "512m"]),
    ("memory = 104857600", ["--memory", "104857600"]),
    ("memory = '1.5GiB'", ["--memory", "1.5GiB"]),
    ("memory = '1g'\nmemory_swap = -1", ["--memory", "1g", "--memory-swap", "-1"]),
    ("memory = '1g'\nmemory_swap = '1g'", ["--memory", "1g", "--memory-swap", "1g"]),
    ("cpus = 1.5", ["--cpus", "1.5"]),
    ("cpus = 2", ["--cpus", "2"]),
    ("cpus = '0.25'", ["--cpus", "0.25"]),
    ("pids_limit = -1", ["--pids-limit", "-1"]),
    ("shm_size = '1k'", ["--shm-size", "1k"]),
    ("ulimits = { nofile = { soft = 1, hard = -1 }, core = -1 }",
     ["--ulimit", "nofile=1:-1", "--ulimit", "core=-1"]),
    ("read_only = true", ["--read-only"]),
    ("read_only = false\nprivileged = false", []),
    ("privileged = true", ["--privileged"]),
    ("no_new_privileges = false", ["--security-opt", "no-new-privileges=false"]),
    ("cap_add = ['cap_sys_admin', 'ALL', 'net_raw']",
     ["--cap-add", "cap_sys_admin", "--cap-add", "ALL", "--cap-add", "net_raw"]),
    ("security_opt = ['label=disable', 'seccomp=unconfined']",
     ["--security-opt", "label=disable", "--security-opt", "seccomp=unconfined"]),
    ("devices = ['/dev/a', '/dev/b:/dev/c', '/dev/d:r', '/dev/e:/dev/f:rwm']",
     ["--device", "/dev/a", "--device", "/dev/b:/dev/c", "--device", "/dev/d:r",
      "--device", "/dev/e:/dev/f:rwm"]),
    ("sysctls = { 'kernel.shmmax' = 100, 'net.ipv4.tcp_syncookies' = '1' }",
     ["--sysctl", "kernel.shmmax=100", "--sysctl", "net.ipv4.tcp_syncookies=1"]),
    ("log_driver = 'syslog'\nlog_opts = { syslog-address = 'udp://127.0.0.1:514' }",
     ["--log-driver", "syslog", "--log-opt", "syslog-address=udp://127.0.0.1:514"]),
    ("log_driver = 'local'\nlog_opts = { compress = false, max-file = 2 }",
     ["--log-driver", "local", "--log-opt", "compress=false", "--log-opt", "max-file=2"]),
    ("log_driver = 'loki'", ["--log-driver", "loki"]),
    ("add_hosts = { 'a.b' = '::1' }", ["--add-host", "a.b:::1"]),
    ("dns = ['::1', '127.0.0.53']\ndns_search = ['.', 'x.y.']",
     ["--dns", "::1", "--dns", "127.0.0.53", "--dns-search", ".", "--dns-search", "x.y."]),
    ("labels = { 'a=b' = 'c' }", None),
    ("init = false", ["--init=false"]),
    ("stop_signal = 'RTMIN+3'", ["--stop-signal", "RTMIN+3"]),
    ("stop_signal = '10'", ["--stop-signal", "10"]),
])
def test_values_reach_docker_as_written(extra: str, expected: list[str] | None,
                                        tmp_path: Path) -> None:
    if expected is None:
        with pytest.raises(ConfigError):
            run_of(extra, tmp_path)
        return
    assert flags(extra, tmp_path) == expected


def test_defaults_add_only_the_log_driver(tmp_path: Path) -> None:
    run = run_of("", tmp_path)
    assert container_flags(run) == ["--log-driver", "none"]
    assert run.networks == () and run.log_driver is None


def test_host_network_takes_hostname_dns_and_hosts(tmp_path: Path) -> None:
    """Checked with dockerd 20.10: only a container: network refuses these."""
    run = run_of("network = 'host'\nhostname = 'h'\ndns = ['10.0.0.2']\n"
                 "dns_search = ['a.b']\nadd_hosts = { a = '10.0.0.1' }\n"
                 "sysctls = { 'kernel.shmmax' = 1 }", tmp_path)
    assert (run.hostname, run.dns, run.add_hosts) == ("h", ("10.0.0.2",), (("a", "10.0.0.1"),))


def test_network_is_the_short_form_of_networks(tmp_path: Path) -> None:
    assert run_of("network = 'n'", tmp_path).networks == (Network("n"),)
    assert run_of("networks = ['n', {name = 'm', aliases = ['x'], ip6 = 'fd00::1'}]",
                  tmp_path).networks == (Network("n"), Network("m", ("x",), None, "fd00::1"))
    argv = docker_run_argv(parse_app("web", tomllib.loads(
        BASE + "network = 'container:db'\n"), Path("/x/web.toml")))
    assert argv[argv.index("--network") + 1] == "container:db"


def test_size_is_what_docker_computes() -> None:
    assert size_bytes("512m") == 512 * 2**20
    assert size_bytes("1.5g") == 3 * 2**29
    assert size_bytes("1KiB") == size_bytes("1kb") == size_bytes("1K") == 1024
    assert size_bytes("7") == 7
    assert size_bytes("1e3") is None and size_bytes("\u0665m") is None


def test_ulimit_words() -> None:
    assert Ulimit("nofile", 5).flag_value == "nofile=5"
    assert Ulimit("nofile", 5, 10).flag_value == "nofile=5:10"


def test_signals() -> None:
    assert signal_number("SIGTERM") == signal_number("term") == signal_number("15") == 15
    assert signal_number("SIGRTMIN+1") == signal_number("RTMIN") + 1  # type: ignore[operator]
    assert signal_number("RTMAX+1") is None and signal_number("0") is None
    assert signal_number("\u0661\u0665") is None


def test_every_capability_in_every_spelling(tmp_path: Path) -> None:
    names = [*CAPABILITIES, *(f"cap_{c.lower()}" for c in CAPABILITIES), "all"]
    run = run_of(f"cap_add = {names!r}", tmp_path)
    assert run.cap_add == tuple(names)


# --- docker_args --------------------------------------------------------------------------

SPELLINGS = [
    ("--memory=1g", "--memory", "run.memory"), ("--memory", "--memory", "run.memory"),
    ("-m", "--memory", "run.memory"), ("-m1g", "--memory", "run.memory"),
    ("-e", "--env", "run.env"), ("-eA=1", "--env", "run.env"), ("--env=A=1", "--env", "run.env"),
    ("-p", "--publish", "run.ports"), ("-itp", "--publish", "run.ports"),
    ("-v", "--volume", "run.volumes"), ("-u", "--user", "run.user"),
    ("-w", "--workdir", "run.workdir"), ("-h", "--hostname", "run.hostname"),
    ("-l", "--label", "run.labels"), ("-dit", "--detach", ""),
    ("--net=host", "--net", "run.networks"), ("--network-alias", "--network-alias", ""),
    ("--entrypoint=/x", "--entrypoint", "run.entrypoint"), ("--pull", "--pull", "image.policy"),
    ("--name", "--name", "run.name"), ("--rm", "--rm", ""), ("--privileged", "--privileged", ""),
    ("--cap-add=ALL", "--cap-add", "run.cap_add"), ("--log-opt", "--log-opt", "run.log_opts"),
    ("--health-cmd=x", "--health-cmd", "health.cmd"),
    ("--no-healthcheck", "--no-healthcheck", "health.cmd"),
    ("--restart=always", "--restart", "run.restart"), ("--platform", "--platform", ""),
    ("--stop-timeout=3", "--stop-timeout", "run.stop_timeout"),
]


@pytest.mark.parametrize(("word", "flag", "key"), SPELLINGS, ids=[s[0] for s in SPELLINGS])
def test_managed_flags_are_rejected_in_any_spelling(word: str, flag: str, key: str,
                                                    tmp_path: Path) -> None:
    assert managed_flag(word) == flag
    with pytest.raises(ConfigError) as e:
        run_of(f"docker_args = ['--tty', {word!r}, 'x']", tmp_path)
    assert "run.docker_args[1]: " in e.value.message
    assert "is managed by pullunit and cannot be passed in docker_args" in e.value.message
    assert f"({flag})" in e.value.message or f"'{flag}'" in e.value.message
    assert key in e.value.message


def test_every_managed_key_is_a_real_key() -> None:
    from pullunit.config import _SCHEMA

    for flag, owner in MANAGED.items():
        if owner.startswith("("):
            continue
        table, key = owner.split(" ", 1)[0].split(".")
        assert key in _SCHEMA[table], flag


@pytest.mark.parametrize("args", [
    ["--mount", "--memory"],  # the value of --mount, however it reads
    ["-a", "-e"], ["-it"], ["--cpu-shares", "-m"], ["--oom-score-adj=-100", "--expose=80"],
    ["-c512"], ["--tmpfs-size"], ["--"],
])
def test_values_of_other_flags_are_not_taken_for_flags(args: list[str], tmp_path: Path) -> None:
    assert run_of(f"docker_args = {args!r}", tmp_path).docker_args == tuple(args)


def test_validate_warns_about_privileged_and_journald(config_dir: Path) -> None:
    path = config_dir / "web.toml"
    path.write_text(BASE + "privileged = true\nlog_driver = 'journald'\n")
    proc = run_cli("validate", path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{path}: ok (web-pull.service, web.service)\n"
    assert f"pullunit: warning: {path}: run.privileged: the container gets every" in proc.stderr
    assert f"pullunit: warning: {path}: run.log_driver: \"journald\" stores" in proc.stderr
    path.write_text(BASE + "privileged = false\nlog_driver = 'local'\n")
    proc = run_cli("validate", path)
    assert (proc.returncode, proc.stderr) == (0, "")


@pytest.mark.parametrize(("extra", "key"), [
    (f"group_add = ['{'a' * 200_000}']", "run.group_add[0]"),
    (f"networks = [{{ name = 'n', aliases = ['{'a.' * 200 + 'a'}'] }}]",
     "run.networks[0].aliases[0]"),
    (f"dns_search = ['{'a.' * 200 + 'a'}']", "run.dns_search[0]"),
    (f"labels = {{ a = '{'x' * 140_000}' }}", "run.labels.a"),
    (f"memory = '{'1' * 140_000}'", "run.memory"),
    (f"tmpfs = ['/t:{'ro,' * 50_000}ro']", "run.tmpfs[0]"),
])
def test_sizes_are_bounded(extra: str, key: str, tmp_path: Path) -> None:
    """No value can make a docker run word longer than the kernel takes (E2BIG at every
    start) or a name longer than DNS allows."""
    with pytest.raises(ConfigError, match=rf"{key.replace('[', '.').replace(']', '.')}: "):
        run_of(extra, tmp_path)


@pytest.mark.parametrize(("value", "ok"), [
    ("0.01", True), ("1024", True), ("1024.000000000", True), ("0.000000001", False),
    ("0.009999999", False), ("1024.000000001", False), ("1.1234567891", False),
    ("0000001.5", True), ("1" * 5000, False), ("1." + "0" * 5000, True), ("1e2", False),
    (1e-5, False), (1e20, False), (float("inf"), False), (0.5, True), (3, True),
])
def test_cpus_bounds_and_precision(value: object, ok: bool, tmp_path: Path) -> None:
    toml = f"cpus = {value!r}" if not isinstance(value, float) else (
        f"cpus = {'inf' if value == float('inf') else repr(value)}")
    if ok:
        assert run_of(toml, tmp_path).cpus == (value if isinstance(value, str) else repr(value))
    else:
        with pytest.raises(ConfigError, match=r"run\.cpus: "):
            run_of(toml, tmp_path)


def test_a_size_of_thousands_of_digits_is_an_error_not_a_crash(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"run\.memory: .* must be at least"):
        run_of(f"memory = '{'9' * 5000}m'", tmp_path)
    assert run_of(f"memory = '0000000000000000000000000000000000001.{'5' * 5000}g'",
                  tmp_path).memory
