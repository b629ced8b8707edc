"""pullunit.config: the app schema and its strict validation.

The table of bad configs runs the real CLI (`pullunit validate FILE`) on each and checks
the message names the file and the dotted key, the exit status is 78, and no traceback
escapes.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from pullunit.config import (
    AppConfig,
    HealthConfig,
    Jitter,
    Policy,
    Restart,
    UpdateConfig,
    app_files,
    config_dir_from_env,
    load_app,
    parse_app,
    resolve_app,
)
from pullunit.errors import ConfigError, ExitCode

from .conftest import EXAMPLES, assert_no_traceback, run_cli

BASE = '[image]\nref = "nginx:1.25"\n'
ARABIC_8080_80 = "\u0668\u0660\u0668\u0660:\u0668\u0660"  # "8080:80" in Arabic-Indic digits


@dataclass(frozen=True)
class Bad:
    id: str
    toml: str | bytes
    expected: str  # after "FILE: "
    name: str = "web"
    also: str = ""  # a second substring, e.g. the suggestion


BAD = [
    # unknown tables and keys, with suggestions
    Bad("unknown-table-suggest", BASE + "[units]\ndescription = 'x'\n",
        "units: unknown table 'units'; did you mean 'unit'?"),
    Bad("unknown-table-no-match", BASE + "[service]\nrestart = 'always'\n",
        "service: unknown table 'service'; valid: image, pull, run, unit, health, "
        "update"),
    Bad("unknown-key-suggest", BASE + "[run]\nportz = ['80']\n",
        "run.portz: unknown key 'portz'; did you mean 'ports'?"),
    Bad("unknown-key-image", '[image]\nrefs = "nginx:1"\n',
        "image.refs: unknown key 'refs'; did you mean 'ref'?"),
    Bad("unknown-key-no-match", BASE + "[pull]\nzzz = 1\n",
        "pull.zzz: unknown key 'zzz'; valid: initial_delay, max_delay,"),
    Bad("unknown-subtable", BASE + "[image.extra]\nx = 1\n",
        "image.extra: unknown key 'extra'"),
    # required
    Bad("missing-image", "[run]\nname = 'x'\n", "image: table [image] with 'ref' is required"),
    Bad("missing-ref", "[image]\npolicy = 'always'\n", "image.ref: is required"),
    # wrong types
    Bad("image-not-table", 'image = "nginx:1"\n', "image: expected a table [image], got string"),
    Bad("pull-not-table", "pull = 5\n" + BASE, "pull: expected a table [pull], got integer"),
    Bad("keep-string", BASE + "[pull]\nkeep = '3'\n",
        "pull.keep: expected an integer, got string"),
    Bad("ports-string", BASE + "[run]\nports = '80'\n",
        "run.ports: expected an array, got string"),
    Bad("bool-string", BASE + "[pull]\nretry_permanent = 'yes'\n",
        "pull.retry_permanent: expected true or false, got string"),
    Bad("command-item-int", BASE + "[run]\ncommand = ['a', 1]\n",
        "run.command[1]: expected a string, got integer"),
    Bad("env-value-int", BASE + "[run.env]\nA = 1\n", "run.env.A: expected a string, got integer"),
    Bad("env-not-table", BASE + "[run]\nenv = ['A=1']\n",
        "run.env: expected a table of NAME = \"value\", got array"),
    Bad("verify-string", '[image]\nref = "nginx:1"\nverify = "true"\n',
        "image.verify: expected an array, got string"),
    Bad("multiplier-string", BASE + "[pull]\nmultiplier = '2'\n",
        "pull.multiplier: expected a number, got string"),
    # ranges
    Bad("multiplier-range", BASE + "[pull]\nmultiplier = 0.5\n",
        "pull.multiplier: must be between 1.0 and 100.0, got 0.5"),
    Bad("keep-range", BASE + "[pull]\nkeep = 0\n", "pull.keep: must be between 1 and 100, got 0"),
    # durations
    Bad("bad-duration", BASE + "[pull]\ninitial_delay = '5 parsecs'\n",
        "pull.initial_delay: invalid duration '5 parsecs'"),
    Bad("negative-duration", BASE + "[run]\nrestart_sec = -1\n",
        "run.restart_sec: duration must be a non-negative number of seconds, got -1"),
    Bad("zero-positive-duration", BASE + "[pull]\ninitial_delay = 0\n",
        "pull.initial_delay: must be greater than zero"),
    Bad("infinite-max-delay", BASE + "[pull]\nmax_delay = 'infinity'\n",
        "pull.max_delay: must be finite"),
    Bad("duration-bool", BASE + "[run]\nstop_timeout = true\n",
        "run.stop_timeout: expected a duration such as \"2s\" or \"5min\", got a boolean"),
    Bad("max-delay-below-initial", BASE + "[pull]\ninitial_delay = '10s'\nmax_delay = '5s'\n",
        "pull.max_delay: must not be less than pull.initial_delay"),
    # enums
    Bad("bad-jitter", BASE + "[pull]\njitter = 'fast'\n",
        "pull.jitter: 'fast' is not a valid value; expected one of: full, equal, "
        "decorrelated, none"),
    Bad("bad-policy", '[image]\nref = "nginx:1"\npolicy = "sometimes"\n',
        "image.policy: 'sometimes' is not a valid value; expected one of: missing, always, "
        "never"),
    Bad("bad-restart", BASE + "[run]\nrestart = 'on-crash'\n",
        "run.restart: 'on-crash' is not a valid value; expected one of: no, on-success,"),
    # image references
    Bad("ref-uppercase", '[image]\nref = "Nginx:1.25"\n',
        "image.ref: invalid image reference 'Nginx:1.25' (repository names must be lower case)"),
    Bad("ref-bad-digest", '[image]\nref = "nginx@sha256:abc"\n',
        "image.ref: invalid image reference 'nginx@sha256:abc' (a digest is @sha256: "
        "followed by 64 lower-case hex digits)"),
    Bad("ref-no-tag", '[image]\nref = "nginx"\n',
        "image.ref: image reference 'nginx' has neither tag nor digest"),
    Bad("ref-empty", '[image]\nref = ""\n', "image.ref: must not be empty"),
    Bad("bad-platform", '[image]\nref = "nginx:1"\nplatform = "amd64"\n',
        "image.platform: invalid platform 'amd64'; expected OS/ARCH[/VARIANT]"),
    # paths
    Bad("relative-auth-file", '[image]\nref = "nginx:1"\nauth_file = "auth.json"\n',
        "image.auth_file: path 'auth.json' must be absolute"),
    Bad("relative-env-file", BASE + "[run]\nenv_files = ['/etc/ok.env', 'web.env']\n",
        "run.env_files[1]: path 'web.env' must be absolute"),
    Bad("env-file-specifier", BASE + "[run]\nenv_files = ['/etc/%n.env']\n",
        "run.env_files[0]: path '/etc/%n.env' must not contain '%', '$' or '\\'"),
    Bad("relative-volume-source", BASE + "[run]\nvolumes = ['./data:/data']\n",
        "run.volumes[0]: volume source './data' must be an absolute path or a volume name"),
    Bad("relative-volume-source-dir", BASE + "[run]\nvolumes = ['data/x:/data']\n",
        "run.volumes[0]: volume source 'data/x' must be an absolute path or a volume name"),
    Bad("relative-volume-dest", BASE + "[run]\nvolumes = ['/srv:data']\n",
        "run.volumes[0]: volume destination 'data' must be an absolute path"),
    Bad("volume-option", BASE + "[run]\nvolumes = ['/srv:/data:rx']\n",
        "run.volumes[0]: unknown volume option 'rx'"),
    Bad("volume-no-dest", BASE + "[run]\nvolumes = ['/srv']\n",
        "run.volumes[0]: malformed volume '/srv'; expected SOURCE:DEST[:OPTIONS]"),
    # environment names
    Bad("env-name-digit", BASE + "[run.env]\n1X = 'a'\n",
        "run.env.1X: invalid environment variable name '1X'"),
    Bad("env-name-dash", BASE + "[run.env]\nMY-VAR = 'a'\n",
        "run.env.MY-VAR: invalid environment variable name 'MY-VAR'"),
    Bad("env-name-space", BASE + "[run.env]\n\"A B\" = 'a'\n",
        "run.env.A B: invalid environment variable name 'A B'"),
    # ports
    Bad("port-trailing-colon", BASE + "[run]\nports = ['80', '80:']\n",
        "run.ports[1]: malformed port spec '80:'; expected [IP:][HOST_PORT:]CONTAINER_PORT"),
    Bad("port-out-of-range", BASE + "[run]\nports = ['70000:80']\n",
        "run.ports[0]: malformed port spec '70000:80': ports are 1-65535"),
    Bad("port-zero", BASE + "[run]\nports = ['0']\n",
        "run.ports[0]: malformed port spec '0': ports are 1-65535"),
    Bad("port-bad-ip", BASE + "[run]\nports = ['300.1.1.1:80:80']\n",
        "run.ports[0]: malformed port spec '300.1.1.1:80:80': '300.1.1.1' is not an IP address"),
    Bad("port-range-reversed", BASE + "[run]\nports = ['9000-8000:80']\n",
        "run.ports[0]: malformed port spec '9000-8000:80': ports are 1-65535, ranges low-high"),
    Bad("port-bad-proto", BASE + "[run]\nports = ['80/icmp']\n",
        "run.ports[0]: malformed port spec '80/icmp'"),
    Bad("port-name", BASE + "[run]\nports = ['http']\n",
        "run.ports[0]: malformed port spec 'http'"),
    # control characters and newlines
    Bad("control-char-command", BASE + '[run]\ncommand = ["a\\u0007"]\n',
        "run.command[0]: value 'a\\x07' contains control character '\\x07'"),
    Bad("newline-env-value", BASE + '[run.env]\nA = "x\\ny"\n',
        "run.env.A: value 'x\\ny' contains control character '\\n'"),
    Bad("newline-description", BASE + '[unit]\ndescription = """a\nb"""\n',
        "unit.description: value 'a\\nb' contains control character '\\n'"),
    Bad("tab-docker-arg", BASE + '[run]\ndocker_args = ["--cap-add\\tALL"]\n',
        "run.docker_args[0]: value '--cap-add\\tALL' contains control character '\\t'"),
    Bad("line-separator-entrypoint", BASE + '[run]\nentrypoint = "/bin/sh\\u2028x"\n',
        "run.entrypoint: value '/bin/sh\\u2028x' contains line separator or surrogate U+2028"),
    Bad("del-in-verify", '[image]\nref = "nginx:1"\nverify = ["ok", "a\\u007f"]\n',
        "image.verify[1]: value 'a\\x7f' contains control character '\\x7f'"),
    # description
    Bad("description-trailing-backslash", BASE + "[unit]\ndescription = 'ends with \\'\n",
        "unit.description: value 'ends with \\\\' ends with a backslash, which systemd reads "
        "as a line continuation"),
    Bad("description-leading-space", BASE + "[unit]\ndescription = ' web'\n",
        "unit.description: value ' web' has leading or trailing white space"),
    Bad("description-empty", BASE + "[unit]\ndescription = ''\n",
        "unit.description: must not be empty"),
    # docker_args owned by pullunit
    Bad("docker-args-pull", BASE + "[run]\ndocker_args = ['--pull=always']\n",
        "run.docker_args[0]: '--pull' is managed by pullunit and cannot be passed in "
        "docker_args"),
    Bad("docker-args-pull-split", BASE + "[run]\ndocker_args = ['--tty', '--pull', 'always']\n",
        "run.docker_args[1]: '--pull' is managed by pullunit"),
    Bad("docker-args-detach", BASE + "[run]\ndocker_args = ['-d']\n",
        "run.docker_args[0]: '-d' (--detach) is managed by pullunit"),
    Bad("docker-args-name", BASE + "[run]\ndocker_args = ['--name=other']\n",
        "run.docker_args[0]: '--name' is managed by pullunit"),
    Bad("docker-args-rm", BASE + "[run]\ndocker_args = ['--rm']\n",
        "run.docker_args[0]: '--rm' is managed by pullunit"),
    # names
    Bad("container-name", BASE + "[run]\nname = '-x'\n",
        "run.name: invalid container name '-x'"),
    Bad("app-name-not-container-name", BASE, "run.name: is required: the app name 'a:b' is not "
        "a valid container name", name="a:b"),
    Bad("unit-name-no-suffix", BASE + "[unit]\nafter = ['postgresql']\n",
        "unit.after[0]: invalid unit name 'postgresql'"),
    Bad("unit-name-specifier", BASE + "[unit]\nwanted_by = ['multi-user%n.target']\n",
        "unit.wanted_by[0]: invalid unit name 'multi-user%n.target'"),
    Bad("unit-name-space", BASE + "[unit]\nrequires = ['a b.service']\n",
        "unit.requires[0]: invalid unit name 'a b.service'"),
    Bad("bad-user", BASE + "[run]\nuser = 'root user'\n",
        "run.user: invalid user 'root user'; expected USER, UID, USER:GROUP or UID:GID"),
    Bad("bad-network", BASE + "[run]\nnetwork = 'my net'\n", "run.network: invalid network"),
    Bad("empty-entrypoint", BASE + "[run]\nentrypoint = ''\n",
        "run.entrypoint: must not be empty"),
    # file names
    Bad("file-name-space", BASE, "app name 'bad name' (the file name) is not a valid unit name "
        "prefix", name="bad name"),
    Bad("file-name-pull-suffix", BASE, "app name 'x-pull' must not end in '-pull': its run "
        "unit would clash with the pull unit of app 'x'", name="x-pull"),
    Bad("file-name-slash-like", BASE, "app name '-web' (the file name) is not a valid unit "
        "name prefix", name="-web"),
    Bad("file-name-too-long", BASE, f"app name '{'a' * 243}' must be 1 to 223 characters",
        name="a" * 243),
    # defect 7: every file named after the app must fit 255 bytes; the longest is the
    # metrics file's temp name (generate's .NAME-pull.service.<12 hex>.new is one shorter)
    Bad("file-name-224", BASE, f"app name '{'a' * 224}' must be 1 to 223 characters: the "
        "longest file named after it, '.pullunit-APP.prom.<12 hex>.new', must fit the 255 "
        "bytes of a file name", name="a" * 224),
    Bad("file-name-lock-suffix", BASE, "app name 'web.lock' must not end in '.lock': "
        "web.lock.toml is where 'pullunit pin' keeps the lock file of app 'web'",
        name="web.lock"),
    # defect 6: values Python cannot hold are config errors, not crashes (exit 70)
    Bad("restart-sec-400-digits", BASE + "[run]\nrestart_sec = 1" + "0" * 400 + "\n",
        "run.restart_sec: duration (a number of more than 38 digits) is too long: at most "
        "9223372036s (about 292 years)"),
    Bad("stop-timeout-400-digit-string", BASE + "[run]\nstop_timeout = '1" + "0" * 400 + "s'\n",
        "run.stop_timeout: duration '1000000000"),
    Bad("deadline-huge-float", BASE + "[pull]\ndeadline = 1e300\n",
        "pull.deadline: duration 1e+300 is too long: at most 9223372036s"),
    Bad("port-5000-digits", BASE + "[run]\nports = ['" + "8" * 5000 + "']\n",
        "run.ports[0]: malformed port spec '888"),
    # defect 12: what systemd would ignore ("Failed to parse time value") or refuse to load
    Bad("restart-sec-over-limit", BASE + "[run]\nrestart_sec = 9223372037\n",
        "run.restart_sec: duration 9223372037 is too long: at most 9223372036s"),
    Bad("stop-timeout-over-limit", BASE + "[run]\nstop_timeout = '292y 4month'\n",
        "run.stop_timeout: duration '292y 4month' is too long: at most 9223372036s"),
    Bad("stall-timeout-over-limit", BASE + "[pull]\nstall_timeout = 1e19\n",
        "pull.stall_timeout: duration 1e+19 is too long"),
    Bad("exec-line-too-long", BASE + "[run]\ncommand = [" + ", ".join([f"'{'x' * 3000}'"] * 400)
        + "]\n", "run: ExecStart= of web.service would be a line of 1200"),
    Bad("argument-too-long", BASE + "[run]\ncommand = ['a', '" + "x" * 131072 + "']\n",
        "run.command[1]: is 131072 bytes; one argument of a command can be at most 131071 "
        "bytes (Linux MAX_ARG_STRLEN)"),
    Bad("env-argument-too-long", BASE + "[run.env]\nA = '" + "x" * 131070 + "'\n",
        "run.env.A: is 131072 bytes; one argument of a command can be at most 131071 bytes"),
    Bad("description-line-too-long", BASE + "[unit]\ndescription = '" + "d" * (1 << 20) + "'\n",
        "unit.description: Description= of web.service would be a line of 1048588 bytes; "
        "systemd reads at most 1048575 bytes per line (LONG_LINE_MAX) and would not load"),
    Bad("after-line-too-long", BASE + "[unit]\nafter = [" + ", ".join(["'a.service'"] * 120000)
        + "]\n", "unit.after: After= of web.service would be a line of"),
    # defect 13: Docker's grammars are ASCII; Python's \d and \w are not
    Bad("tag-unicode", '[image]\nref = "nginx:t\u00e9n\u00e8"\n',
        "image.ref: invalid image reference 'nginx:t\u00e9n\u00e8'"),
    Bad("port-arabic-indic-digits", BASE + f'[run]\nports = ["{ARABIC_8080_80}"]\n',
        f"run.ports[0]: malformed port spec '{ARABIC_8080_80}'"),
    Bad("port-fullwidth-digits", BASE + '[run]\nports = ["\uff18\uff10"]\n',
        "run.ports[0]: malformed port spec '\uff18\uff10'"),
    Bad("duration-arabic-indic-digit", BASE + '[run]\nrestart_sec = "\u0665s"\n',
        "run.restart_sec: invalid duration '\u0665s'"),
    Bad("duration-no-break-space", BASE + '[run]\nrestart_sec = "5\u00a0s"\n',
        "run.restart_sec: invalid duration '5\\xa0s'"),
    Bad("duration-vertical-tab", BASE + '[run]\nrestart_sec = "5\\u000bs"\n',
        "run.restart_sec: invalid duration '5\\x0bs'"),
    Bad("container-name-unicode", BASE + "[run]\nname = 'w\u00e9b'\n",
        "run.name: invalid container name 'w\u00e9b'"),
    Bad("env-name-unicode", BASE + "[run.env]\n\"\u00c9T\u00c9\" = 'x'\n",
        "run.env.\u00c9T\u00c9: invalid environment variable name '\u00c9T\u00c9'"),
    Bad("user-unicode-digits", BASE + "[run]\nuser = '\u0661\u0660\u0660\u0660'\n",
        "run.user: invalid user '\u0661\u0660\u0660\u0660'"),
    Bad("network-unicode", BASE + "[run]\nnetwork = 'n\u00e9t'\n",
        "run.network: invalid network 'n\u00e9t'"),
    Bad("volume-name-unicode", BASE + "[run]\nvolumes = ['v\u00f6l:/data']\n",
        "run.volumes[0]: invalid volume name 'v\u00f6l'"),
    Bad("unit-name-unicode", BASE + "[unit]\nafter = ['d\u00e9p.service']\n",
        "unit.after[0]: invalid unit name 'd\u00e9p.service'"),
    Bad("app-name-unicode", BASE, "app name 'w\u00e9b' (the file name) is not a valid unit name",
        name="w\u00e9b"),
    # [health]
    Bad("health-unknown-key", BASE + "[health]\nintervall = '5s'\n",
        "health.intervall: unknown key 'intervall'; did you mean 'interval'?"),
    Bad("health-not-table", "health = true\n" + BASE,
        "health: expected a table [health], got boolean"),
    Bad("health-cmd-string", BASE + "[health]\ncmd = 'curl -f http://localhost/'\n",
        "health.cmd: expected an array, got string"),
    Bad("health-cmd-empty", BASE + "[health]\ncmd = []\n", "health.cmd: must name a command"),
    Bad("health-cmd-empty-word", BASE + "[health]\ncmd = ['']\n",
        "health.cmd: must name a command"),
    Bad("health-cmd-item-int", BASE + "[health]\ncmd = ['/bin/check', 3]\n",
        "health.cmd[1]: expected a string, got integer"),
    Bad("health-cmd-newline", BASE + "[health]\ncmd = ['/bin/check', \"a\\nb\"]\n",
        "health.cmd[1]: value 'a\\nb' contains control character '\\n'"),
    Bad("health-interval-zero", BASE + "[health]\ninterval = 0\n",
        "health.interval: must be greater than zero"),
    Bad("health-interval-submillisecond", BASE + "[health]\ninterval = '500us'\n",
        "health.interval: must be at least 1ms"),
    Bad("health-interval-infinity", BASE + "[health]\ninterval = 'infinity'\n",
        "health.interval: must be finite"),
    Bad("health-timeout-bad", BASE + "[health]\ntimeout = '3 fortnights'\n",
        "health.timeout: invalid duration '3 fortnights'"),
    Bad("health-start-period-overflow", BASE + "[health]\nstart_period = '300y'\n",
        "health.start_period: duration '300y' is too long: at most 9223372036s"),
    Bad("health-retries-zero", BASE + "[health]\nretries = 0\n",
        "health.retries: must be between 1 and 1000, got 0"),
    Bad("health-retries-float", BASE + "[health]\nretries = 2.5\n",
        "health.retries: expected an integer, got float"),
    Bad("health-retries-huge", BASE + "[health]\nretries = 9223372036854775807\n",
        "health.retries: must be between 1 and 1000"),
    Bad("health-enabled-string", BASE + "[health]\nenabled = 'no'\n",
        "health.enabled: expected true or false, got string"),
    Bad("health-start-timeout-zero", BASE + "[health]\nstart_timeout = 0\n",
        "health.start_timeout: must be greater than zero"),
    Bad("health-start-timeout-infinity", BASE + "[health]\nstart_timeout = 'infinity'\n",
        "health.start_timeout: must be finite"),
    Bad("health-start-timeout-below-interval",
        BASE + "[health]\ninterval = '30s'\nstart_timeout = '20s'\n",
        "health.start_timeout: must be longer than health.interval"),
    Bad("health-and-docker-args", BASE + "[health]\ncmd = ['/bin/check']\n"
        "[run]\ndocker_args = ['--tty', '--health-interval=5s']\n",
        "run.docker_args[1]: '--health-interval' is managed by pullunit and cannot be passed "
        "in docker_args; set health.interval instead"),
    # [update]
    Bad("update-unknown-key", BASE + "[update]\nautomatic = true\n",
        "update.automatic: unknown key 'automatic'; did you mean 'auto'?"),
    Bad("update-auto-string", BASE + "[update]\nauto = 'yes'\n",
        "update.auto: expected true or false, got string"),
    Bad("update-auto-without-gate", BASE + "[health]\nenabled = false\n[update]\nauto = true\n",
        "update.auto: needs the readiness gate"),
    Bad("update-auto-digest", '[image]\nref = "nginx@sha256:' + "a" * 64 + '"\n'
        "[update]\nauto = true\n", "update.auto: image.ref pins the digest sha256:aaaa"),
    Bad("update-auto-policy-never", '[image]\nref = "nginx:1"\npolicy = "never"\n'
        "[update]\nauto = true\n",
        "update.auto: image.policy is \"never\", but an update pulls"),
]

# TOML syntax: the message names the file and gives line and column.
SYNTAX = [
    ("missing-value", BASE + "[run]\nname = \n", "Invalid value (at line 4, column 8)"),
    ("duplicate-key", BASE + 'ref = "x:1"\n', "Cannot overwrite a value (at line 3, column 12)"),
    ("unclosed-table", "[image\nref = 'x:1'\n", "(at line 1, column 7)"),
    ("not-utf8", b'[image]\nref = "\xff"\n', "not valid UTF-8"),
    # defect 6: tomllib's recursion and Python's int() limit, not a crash (exit 70)
    ("array-nested-1000-deep", BASE + "[run]\ncommand = " + "[" * 1000 + "]" * 1000 + "\n",
     "arrays or tables are nested too deeply"),
    ("inline-table-nested-1000-deep", BASE + "x = " + "{a = " * 1000 + "1" + "}" * 1000 + "\n",
     "arrays or tables are nested too deeply"),
    ("integer-5000-digits", BASE + "[pull]\nkeep = 1" + "0" * 5000 + "\n",
     "a number has too many digits"),
]


def _write(config_dir: Path, name: str, content: str | bytes) -> Path:
    path = config_dir / f"{name}.toml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


@pytest.mark.parametrize("case", BAD, ids=[c.id for c in BAD])
def test_bad_config_cli(case: Bad, config_dir: Path) -> None:
    path = _write(config_dir, case.name, case.toml)
    proc = run_cli("validate", path)
    assert proc.returncode == 78, proc.stderr
    assert f"{path}: {case.expected}" in proc.stderr
    assert proc.stderr.startswith("pullunit: error: ")
    assert proc.stderr.count("\n") == 1, "one line per bad file"
    assert proc.stdout == ""
    assert_no_traceback(proc.stderr)


@pytest.mark.parametrize(("content", "expected"), [s[1:] for s in SYNTAX],
                         ids=[s[0] for s in SYNTAX])
def test_toml_syntax_error_cli(content: str | bytes, expected: str, config_dir: Path) -> None:
    path = _write(config_dir, "web", content)
    proc = run_cli("validate", path)
    assert proc.returncode == 78, proc.stderr
    assert f"Cannot read {path}: " in proc.stderr
    assert expected in proc.stderr
    assert_no_traceback(proc.stderr)


def test_message_format_matches_the_documented_example(config_dir: Path) -> None:
    """`web.toml: run.ports[1]: ...` when validate gets a bare file name."""
    _write(config_dir, "web", BASE + "[run]\nports = ['8080:80', '80:']\n")
    proc = run_cli("validate", "web.toml", cwd=config_dir)
    assert proc.returncode == 78
    assert proc.stderr == ("pullunit: error: web.toml: run.ports[1]: malformed port spec '80:';"
                           " expected [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp|sctp], "
                           "e.g. \"8080:80\"\n")


def test_validate_reports_every_bad_file_and_accepts_good_ones(config_dir: Path) -> None:
    good = _write(config_dir, "good", BASE)
    bad1 = _write(config_dir, "bad1", BASE + "[run]\nportz = []\n")
    bad2 = _write(config_dir, "bad2", '[image]\nref = "nginx"\n')
    proc = run_cli("validate", "--config-dir", config_dir)
    assert proc.returncode == 78
    assert f"{good}: ok (good-pull.service, good.service)" in proc.stdout
    assert f"{bad1}: run.portz: unknown key" in proc.stderr
    assert f"{bad2}: image.ref: image reference 'nginx' has neither tag nor digest" in proc.stderr


def test_validate_missing_file(config_dir: Path) -> None:
    proc = run_cli("validate", config_dir / "nope.toml")
    assert proc.returncode == 78
    assert f"Cannot read {config_dir / 'nope.toml'}: No such file or directory" in proc.stderr


def test_validate_app_name_that_does_not_exist(config_dir: Path) -> None:
    proc = run_cli("validate", "--config-dir", config_dir, "ghost")
    assert proc.returncode == 78
    assert f"No config for app 'ghost': {config_dir / 'ghost.toml'} does not exist" in proc.stderr


@pytest.mark.parametrize("arg", ["-td", "-dit", "--detach=true"])
def test_docker_args_detach_in_any_spelling_is_rejected(arg: str, tmp_path: Path) -> None:
    """docker parses combined short flags: '-td' detaches as surely as '-d'. A detached
    `docker run` exits at once and the run unit would restart-loop."""
    data = tomllib.loads(BASE + f"[run]\ndocker_args = [{arg!r}]\n")
    with pytest.raises(ConfigError, match=r"run\.docker_args\[0\]: "):
        parse_app("web", data, tmp_path / "web.toml")


# --- what a valid config becomes ----------------------------------------------------------

def test_minimal_defaults(tmp_path: Path) -> None:
    path = tmp_path / "web.toml"
    path.write_text(BASE)
    app = load_app(path)
    assert isinstance(app, AppConfig)
    assert (app.name, app.path, app.pull_unit, app.run_unit) == (
        "web", path, "web-pull.service", "web.service")
    assert str(app.image.ref) == "nginx:1.25"
    assert app.image.policy is Policy.MISSING
    assert (app.image.platform, app.image.auth_file, app.image.verify) == (None, None, ())
    p = app.pull
    assert (p.initial_delay, p.max_delay, p.multiplier, p.jitter) == (2.0, 300.0, 2.0,
                                                                      Jitter.FULL)
    assert p.deadline == math.inf
    assert (p.stall_timeout, p.refresh_timeout, p.rate_limit_delay) == (60.0, 30.0, 60.0)
    assert (p.retry_permanent, p.keep, p.archive) == (False, 3, False)
    r = app.run
    assert r.name == "web"
    assert (r.command, r.entrypoint, r.env, r.env_files, r.ports, r.volumes) == (
        (), None, (), (), (), ())
    assert (r.network, r.user, r.docker_args) == (None, None, ())
    assert (r.restart, r.restart_sec, r.stop_timeout) == (Restart.ON_FAILURE, 5.0, 30.0)
    assert app.unit.wanted_by == ("multi-user.target",)
    assert (app.unit.after, app.unit.wants, app.unit.requires) == ((), (), ())
    assert app.description == "web container (nginx:1.25)"
    assert app.health == HealthConfig(enabled=True, cmd=(), interval=None, timeout=None,
                                      retries=None, start_period=None, start_timeout=120.0)
    assert app.update == UpdateConfig(auto=False)


def test_full_example_parses_every_key() -> None:
    app = load_app(EXAMPLES / "web.toml")
    raw = tomllib.loads((EXAMPLES / "web.toml").read_text())
    from pullunit.config import _SCHEMA  # the allow-list: the example must show all of it

    # run.network is the one-network short form of run.networks: the example shows the
    # long form (and names the short one in a comment), as both cannot be set.
    assert {t: set(raw[t]) for t in raw} == {t: set(keys) - ({"network"} if t == "run" else set())
                                            for t, keys in _SCHEMA.items()}
    assert "`network = \"NAME\"`" in (EXAMPLES / "web.toml").read_text()
    assert str(app.image.ref) == "registry.example.com:5000/shop/web:1.4.2"
    assert app.image.ref.host == "registry.example.com"
    assert app.image.platform == "linux/amd64"
    assert app.image.policy is Policy.ALWAYS
    assert app.image.auth_file == Path("/etc/pullunit/auth/registry.json")
    assert app.image.verify == ("/usr/local/bin/web", "--self-test")
    assert app.image.mirrors == ("cache.dc1.example:5000",)
    assert app.pull.deadline == 3600.0
    assert app.pull.max_delay == 300.0
    assert app.run.env == (("TZ", "Europe/Berlin"), ("GREETING", "hello, world"))
    assert app.run.env_files == (Path("/etc/pullunit/web.env"),)
    assert app.run.ports == ("8080:80", "127.0.0.1:8443:443/tcp")
    assert app.run.command[-1] == '100% "quoted" $HOME stays literal'
    assert app.unit.description == "Shop front end (web)"
    assert app.unit.after == ("postgresql.service",)
    h = app.health
    assert (h.enabled, h.cmd) == (True, ("/usr/local/bin/web", "--health"))
    assert (h.interval, h.timeout, h.retries, h.start_period, h.start_timeout) == (
        5.0, 3.0, 3, 10.0, 120.0)
    assert app.update.auto is False


def test_minimal_example() -> None:
    app = load_app(EXAMPLES / "minimal.toml")
    assert app.name == "minimal"
    assert app.image.ref.domain == "docker.io"
    assert app.image.ref.remote_path == "library/nginx"


@pytest.mark.parametrize("spec", ["80", "8080:80", "8080:80/udp", "127.0.0.1:8080:80",
                                  "[::1]:8080:80/tcp", "127.0.0.1::80", "8000-8010:8000-8010",
                                  "53:53/sctp", "65535"])
def test_valid_port_specs(spec: str, tmp_path: Path) -> None:
    data = tomllib.loads(BASE + f"[run]\nports = [{spec!r}]\n")
    assert parse_app("web", data, tmp_path / "web.toml").run.ports == (spec,)


@pytest.mark.parametrize("volume", ["/srv/data:/data", "vol:/data", "/srv:/data:ro",
                                    "/srv:/data:ro,z", "my_vol-1.x:/d:nocopy"])
def test_valid_volumes(volume: str, tmp_path: Path) -> None:
    data = tomllib.loads(BASE + f"[run]\nvolumes = [{volume!r}]\n")
    assert parse_app("web", data, tmp_path / "web.toml").run.volumes == (volume,)


@pytest.mark.parametrize("user", ["root", "1000", "1000:1000", "www-data:www-data",
                                  "app:100", "100:app"])
def test_valid_users(user: str, tmp_path: Path) -> None:
    data = tomllib.loads(BASE + f"[run]\nuser = {user!r}\n")
    assert parse_app("web", data, tmp_path / "web.toml").run.user == user


def test_paths_are_normalised(tmp_path: Path) -> None:
    data = tomllib.loads(BASE + "[run]\nenv_files = ['/etc//pullunit/./x/../web.env']\n")
    assert parse_app("web", data, tmp_path / "web.toml").run.env_files == (
        Path("/etc/pullunit/web.env"),)


def test_durations_accept_numbers_and_infinity(tmp_path: Path) -> None:
    data = tomllib.loads(BASE + "[pull]\ninitial_delay = 0.5\nmax_delay = 10\n"
                         "deadline = 'infinity'\nstall_timeout = '2min'\n")
    pull = parse_app("web", data, tmp_path / "web.toml").pull
    assert (pull.initial_delay, pull.max_delay, pull.stall_timeout) == (0.5, 10.0, 120.0)
    assert pull.deadline == math.inf


def test_empty_wanted_by_is_allowed(tmp_path: Path) -> None:
    data = tomllib.loads(BASE + "[unit]\nwanted_by = []\n")
    assert parse_app("web", data, tmp_path / "web.toml").unit.wanted_by == ()


def test_app_name_with_dots_and_colons(tmp_path: Path) -> None:
    data = tomllib.loads(BASE + "[run]\nname = 'web'\n")
    app = parse_app("shop.web:blue", data, tmp_path / "shop.web:blue.toml")
    assert (app.pull_unit, app.run_unit) == ("shop.web:blue-pull.service",
                                             "shop.web:blue.service")


# --- the config dir -------------------------------------------------------------------------

def test_app_files_skips_locks_hidden_and_non_toml(config_dir: Path) -> None:
    for name in ("b.toml", "a.toml", "a.lock.toml", ".hidden.toml", "notes.txt",
                 "web.toml~", "c.toml.bak"):
        (config_dir / name).write_text(BASE)
    (config_dir / "dir.toml").mkdir()
    (config_dir / "templates").mkdir()
    assert [p.name for p in app_files(config_dir)] == ["a.toml", "b.toml"]


def test_app_files_of_missing_dir_is_empty(tmp_path: Path) -> None:
    assert app_files(tmp_path / "nope") == []


def test_resolve_app(config_dir: Path) -> None:
    (config_dir / "web.toml").write_text(BASE)
    assert resolve_app(config_dir, "web") == config_dir / "web.toml"
    assert resolve_app(config_dir, "other/web.toml") == Path("other/web.toml")
    with pytest.raises(ConfigError, match="No config for app 'ghost'"):
        resolve_app(config_dir, "ghost")


def test_config_dir_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert config_dir_from_env(None) == Path("/etc/pullunit")
    monkeypatch.setenv("PULLUNIT_CONFIG_DIR", "/srv/pu")
    assert config_dir_from_env(None) == Path("/srv/pu")
    assert config_dir_from_env("/x") == Path("/x")


def test_config_error_is_exit_78() -> None:
    assert ConfigError("x").exit_code is ExitCode.CONFIG
    assert int(ExitCode.CONFIG) == 78


def test_every_file_named_after_the_longest_app_name_can_be_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect 7: APP_NAME_MAX is set by the longest file name pullunit derives from an app
    name. Write each of them for a name of exactly that length: none may fail with
    ENAMETOOLONG (a 225-character name fails the first of them)."""
    from pullunit import applock, archive, paths, pinning, state
    from pullunit.config import APP_NAME_MAX
    from pullunit.fsutil import atomic_write
    from pullunit.unitfiles import generate

    name = "n" * APP_NAME_MAX
    monkeypatch.setenv("PULLUNIT_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("PULLUNIT_STATE_DIR", str(tmp_path / "state"))
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    (cfg / f"{name}.toml").write_text(BASE + "[run]\nname = 'x'\n")
    result = generate(cfg, tmp_path / "units", executable="/usr/bin/true")
    assert result.errors == [] and len(result.written) == 2
    app = load_app(cfg / f"{name}.toml")
    pinning.write(app, "sha256:" + "a" * 64, "pin")
    assert pinning.read(app) is not None
    state.save(state.AppState(name))
    state.write_env_file(name, "nginx@sha256:" + "a" * 64)
    with applock.app_lock(name, lambda _: None, timeout=5):
        pass
    paths.state_file(name).write_text("{")  # corrupt: set aside under a longer name
    state.load(name)
    assert not paths.state_file(name).exists()
    archive.archive_dir(name).mkdir(parents=True)
    atomic_write(archive.archive_dir(name) / "x", "x")
    # the metrics file, written through its temp name, in a configured metrics dir
    from pullunit import metrics
    from pullunit.hostconfig import MetricsConfig

    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    settings = MetricsConfig(dir=metrics_dir, enabled=True)
    assert metrics.publish(settings, name, state.AppState(name))
    assert (metrics_dir / f"pullunit-{name}.prom").exists()
    # init writes the config through a temp file of its own
    init_dir = tmp_path / "init"
    proc = run_cli("init", name, "--image", "nginx:1", "--config-dir", init_dir)
    assert proc.returncode == 0, proc.stderr
    assert (init_dir / f"{name}.toml").exists()


# --- lock files (defect 17) ----------------------------------------------------------------

DIGEST = "sha256:" + "a" * 64
GOOD_LOCK = f'[lock]\nref = "nginx:1.25"\ndigest = "{DIGEST}"\nsource = "pin"\nat = "2026"\n'
BAD_LOCKS = [
    ("not-toml", "[lock\n", "Cannot read {lock}: "),
    ("an-app-config", BASE, "{lock}: this is an app config, not a lock file: web.lock.toml "
     "is where 'pullunit pin' keeps the lock of app 'web'; rename it"),
    ("nested-1000-deep", "[lock]\nref = " + "[" * 1000 + "]" * 1000 + "\n",
     "Cannot read {lock}: arrays or tables are nested too deeply"),
    ("5000-digit-integer", "[lock]\nat = 1" + "0" * 5000 + "\n",
     "Cannot read {lock}: a number has too many digits"),
    ("not-utf8", b"[lock]\nref = '\xff'\n", "Cannot read {lock}: "),
    ("digest-trailing-newline", GOOD_LOCK.replace(f'"{DIGEST}"', f'"{DIGEST}\\n"'),
     "{lock}: lock.digest: "),
    ("unknown-key", GOOD_LOCK + "extra = 'x'\n", "{lock}: lock.extra: unknown key"),
    ("missing-key", GOOD_LOCK.replace('source = "pin"\n', ""),
     "{lock}: lock.source: required string"),
    ("two-tables", GOOD_LOCK + "[other]\n", "{lock}: expected exactly one table [lock]"),
]


@pytest.mark.parametrize(("content", "expected"), [c[1:] for c in BAD_LOCKS],
                         ids=[c[0] for c in BAD_LOCKS])
def test_validate_and_generate_name_a_bad_lock_file(content: str | bytes, expected: str,
                                                   config_dir: Path, tmp_path: Path) -> None:
    """Validate used to pass and the puller then exited 78; now validate fails on it, and
    generate writes the units (they never contain the digest) but names the lock file
    and exits 78, never 70. The other app is unaffected."""
    _write(config_dir, "web", BASE)
    _write(config_dir, "other", BASE + "[run]\nname = 'other'\n")
    lock = config_dir / "web.lock.toml"
    if isinstance(content, bytes):
        lock.write_bytes(content)
    else:
        lock.write_text(content)
    message = expected.format(lock=lock)
    proc = run_cli("validate", "--config-dir", config_dir)
    assert proc.returncode == 78, proc.stderr
    assert message in proc.stderr
    assert proc.stdout == f"{config_dir / 'other.toml'}: ok (other-pull.service, other.service)\n"
    assert_no_traceback(proc.stderr)
    proc = run_cli("validate", "--config-dir", config_dir, "web")
    assert proc.returncode == 78 and message in proc.stderr
    out = tmp_path / "units"
    proc = run_cli("generate", "--config-dir", config_dir, "--output-dir", out)
    assert proc.returncode == 78, proc.stderr
    assert message in proc.stderr
    assert_no_traceback(proc.stderr)
    assert sorted(p.name for p in out.iterdir()) == [
        "other-pull.service", "other.service", "web-pull.service", "web.service"]


def test_valid_lock_passes_validate(config_dir: Path) -> None:
    _write(config_dir, "web", BASE)
    (config_dir / "web.lock.toml").write_text(GOOD_LOCK)
    proc = run_cli("validate", "--config-dir", config_dir)
    assert (proc.returncode, proc.stderr) == (0, "")


def test_lock_file_without_its_app(config_dir: Path) -> None:
    """An app config named like a lock (web.lock.toml) is never seen as an app: validate
    says so. A valid lock left over from a removed app is only a warning."""
    bad = config_dir / "web.lock.toml"
    bad.write_text(BASE)
    (config_dir / "gone.lock.toml").write_text(GOOD_LOCK)
    proc = run_cli("validate", "--config-dir", config_dir)
    assert proc.returncode == 78, proc.stderr
    assert f"{bad}: this is an app config, not a lock file" in proc.stderr
    assert (f"{config_dir / 'gone.lock.toml'}: no app gone.toml for this lock file; it is "
            "unused") in proc.stderr
    bad.unlink()
    proc = run_cli("validate", "--config-dir", config_dir)
    assert proc.returncode == 0, proc.stderr
