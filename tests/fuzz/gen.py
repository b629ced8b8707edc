"""Seeded input generators for the fuzz tier.

Everything here takes a `random.Random` and nothing else random: the same seed gives the
same bytes. There is a small TOML writer because the interesting inputs are the ones no
TOML library writes: integers of 400 digits, arrays nested 1000 deep, raw bytes, a
truncated file.
"""

# Look-alike letters and digits (fullwidth, Arabic-Indic, Cyrillic) are the point here.
# ruff: noqa: RUF001

from __future__ import annotations

import copy
import json
import random
import re
from typing import Any

HUGE_INT = "1" + "0" * 400

# Pieces that stress each layer pullunit passes text through: systemd specifiers and
# $-expansion, unit-file syntax (newlines, sections, continuation), shell words, quotes,
# terminal escapes, Unicode letters and digits that regexes with \w / \d accept.
ODD_TEXT = [
    "%", "%n", "%%", "%h", "%i", "%u", "$", "$$", "${X}", "$HOME", "${PULLUNIT_IMAGE}",
    "`id`", "$(id)", ";", "&&", "|", "\\", "\\;", "\\n", '"', "'", "#", "=", " ", "",
    "\n", "\r", "\t", "\x00", "\x07", "\x1b[2J", "\x1b]0;pwned\x07", "\x1b[31m", "\x7f",
    "\x85", "\x9b", "\u2028", "\u202e", "\u200b", "\ufeff", "\u00a0",
    "é", "ténè", "٨٠٨٠", "１２３", "ѕ", "☃", "😀", "e\u0301", "\ufffe", "\U0010ffff",
    "\n[Service]\nExecStartPre=/bin/touch /tmp/pullunit-fuzz-injected\n",
    "\nEnvironment=LD_PRELOAD=/tmp/x.so", "-pull", "..", "/", "@",
]
DURATIONS = [
    HUGE_INT, HUGE_INT + "s", "99999999999999999999d", "1e400", "1e400s", "-1s", "0", "0s",
    "nan", "infinity", "inf", "5ѕ", "٥s", "５s", "5 s", "5s5s", "1us", "0.0000001s",
    "584542y", "292277026596y", "1h 30min " * 200, "%n", "5s\n", "", " ", "1.5.5s", "∞",
]
REFS = [
    "nginx:ténè", "nginx:1.25\n", "NGINX:1", "nginx", "nginx:" + "a" * 200, "a/" * 120 + "b:1",
    "ex.com:99999/x:1", "x@sha256:" + "0" * 63, "x:1@sha256:" + "A" * 64, "%n/x:1", "$x/y:1",
    "реестр.рф/x:1", "127.0.0.1:5000/x:1;rm", "x:1 ", "x:%n", "x:$$", "ex.com:٥٠٠٠/x:1",
    "[::1]:5000/x:1", "x:1\x1b[2J", "x" * 300 + ":1", "x:-1", "x:.1", "_x:1",
]
PORTS = [
    "٨٠٨٠:٨٠", "８０:８０", "80:80/tcp\n", "0:0", "65536:1", "[::1]:80:80", "1.2.3.4.5:80:80",
    "80-79:80", "1-65535:1-65535", "80:80/TCP", "-1:80", "80:80/udp/tcp", HUGE_INT,
    "1" + "0" * 30 + ":80", "127.0.0.1::80", "[::ffff:1.2.3.4]:1:1", "80:80%n",
]
VOLUMES = ["/a:/b:ro,rw,z", "vol:/d", "..:/x", "/a:/b:%n", "/a\n:/b", "ñ:/x", "/a:b",
           "/a:/b:c:d", "a" * 300 + ":/x", "/%n:/x", "/$HOME:/x"]
UNIT_NAMES = ["a.service\n[Service]", "x%n.service", "ñ.service", "a.service b.service",
              "@.service", "a" * 300 + ".service", "x.service;", "multi-user.target\n"]
ENUMS = ["ALWAYS", "always ", "alwayѕ", "", "on-failure\n", "never%n"]
USERS = ["0", "root:root", "٠:٠", "1000:1000\n", "a" * 300, "x$", "$x", "1:1:1"]
NAMES = ["ñame", "a" * 300, "-x", "x%n", "x y", "x\n", "٣"]
PLATFORMS = ["linux/amd64/v8/x", "LINUX/AMD64", "linux/ａｍｄ64", "linux/", "linux/%n"]
SIZES = ["512m", "1.5g", "1e9", "512 m", "٥m", "５m", "4m", "-1", "1g\n", HUGE_INT + "p",
         "0", "6291456", "1KiB", "%n", "$$", "nan"]
CPUS = ["1.5", "0", "0.001", "1e3", "١.٥", "0.0000000001", "nan", "inf", "1,5", " 1"]
CAPS = ["ALL", "all", "CAP_ALL", "NET_ADMN", "cap_sys_admin", "CAP_ЅYS_ADMIN", "", "%n"]
SIGNALS = ["SIGTERM", "TERM", "SIGTREM", "15", "١٥", "RTMIN+3", "RTMAX+1", "0", "65", "sig"]
NETWORKS = ["host", "none", "bridge", "container:db", "a b", "ñet",
            {"name": "n", "aliases": ["a", "a b", "ñ"], "ip": "10.0.0.1", "ip6": "fd00::1"},
            {"name": "bridge", "aliases": ["x"]}, {"name": "n", "ip": "fd00::1"},
            {"aliases": ["x"]}, {"name": "n", "alias": ["x"]}, {"name": "n", "ip": "١.٢.٣.٤"}]
TMPFS = ["/tmp", "/tmp:size=64m,mode=1777", "/tmp:sise=1", "tmp", "/t%n", "/t:size=50%",
         "/t:rw,noexec\n", "/x:" + "a" * 5000]
PATHS = ["relative", "/a/../../b", "/x%n", "/" + "a" * 5000, "/x$y", "/x\\y", "/ñ", "/x\n"]

# Values a key's validator should see past the type check, so semantic validation runs.
_DURATION_KEYS = {("pull", k) for k in ("initial_delay", "max_delay", "deadline",
                                        "stall_timeout", "refresh_timeout",
                                        "rate_limit_delay")}
_DURATION_KEYS |= {("run", "restart_sec"), ("run", "stop_timeout")}
_SCHEMA_KEYS = {
    "image": ["ref", "verify"],
    "pull": ["stall_timeout", "refresh_timeout"],
    "run": ["command", "entrypoint", "env", "ports", "volumes", "docker_args", "restart_sec",
            "stop_timeout", "memory", "cpus", "labels", "log_opts", "sysctls", "networks",
            "tmpfs", "cap_add", "hostname", "add_hosts", "ulimits", "stop_signal"],
    "unit": ["description", "after", "wants", "requires", "wanted_by"],
}


class Raw(str):
    """TOML text written as it is (a number no library writes, deep nesting, ...)."""


def deep_array(depth: int) -> Raw:
    return Raw("[" * depth + "1" + "]" * depth)


def deep_table(depth: int) -> Raw:
    return Raw("{a = " * depth + "1" + "}" * depth)


def odd_string(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.08:
        return rng.choice("x%$é\x1b") * rng.choice([256, 4096, 70000])
    if r < 0.2:
        return "".join(chr(_codepoint(rng)) for _ in range(rng.randint(1, 12)))
    return "".join(rng.choice(ODD_TEXT) for _ in range(rng.randint(1, 4)))


def _codepoint(rng: random.Random) -> int:
    while True:
        cp = rng.choice([rng.randrange(0x20, 0x7F), rng.randrange(0, 0x250),
                         rng.randrange(0x250, 0x30000)])
        if not 0xD800 <= cp <= 0xDFFF:  # a surrogate cannot be written as UTF-8
            return cp


def odd_number(rng: random.Random) -> Any:
    return rng.choice([0, -1, 1, 7, 2**31, 2**63 - 1, -(2**63), Raw(HUGE_INT),
                       Raw("-" + HUGE_INT), Raw("inf"), Raw("-inf"), Raw("nan"), Raw("1e400"),
                       Raw("-0.0"), Raw("1e-400"), 0.5, 1.7976931348623157e308, Raw("0x7fff"),
                       Raw("1_000_000")])


def odd_value(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.choice(["str", "str", "str", "num", "num", "bool", "date", "list", "table",
                       "deep"] if depth == 0 else ["str", "num", "bool"])
    if kind == "str":
        return odd_string(rng)
    if kind == "num":
        return odd_number(rng)
    if kind == "bool":
        return rng.choice([True, False])
    if kind == "date":
        return Raw(rng.choice(["1979-05-27T07:32:00Z", "07:32:00", "1979-05-27",
                               "1979-05-27T00:32:00.999999-07:00"]))
    if kind == "list":
        return [odd_value(rng, depth + 1) if depth < 2 else "x" for _ in range(rng.randint(0, 4))]
    if kind == "table":
        return {odd_key(rng): odd_value(rng, depth + 1) if depth < 2 else 1
                for _ in range(rng.randint(1, 3))}
    depth_n = rng.choice([1000, 1100, 3000])
    return deep_array(depth_n) if rng.random() < 0.6 else deep_table(depth_n)


def odd_key(rng: random.Random) -> str:
    return rng.choice(["x", "ref ", "Ref", "réf", "%n", "a" * 300, "", "1", "image.ref",
                       "\x1b[2J", odd_string(rng)[:40] or "k"])


def near_value(table: str, key: str, rng: random.Random) -> Any:
    """A value of the right type (mostly) that probes what the key's validator allows."""
    if (table, key) in _DURATION_KEYS:
        return rng.choice([*DURATIONS, Raw(HUGE_INT), Raw("1e400"), 10**20, -5, 1e308,
                           Raw("nan"), 0])
    lists = {"ports": PORTS, "volumes": VOLUMES, "after": UNIT_NAMES, "wants": UNIT_NAMES,
             "requires": UNIT_NAMES, "wanted_by": UNIT_NAMES, "env_files": PATHS,
             "networks": NETWORKS, "tmpfs": TMPFS, "cap_add": CAPS, "cap_drop": CAPS,
             "dns": [*REFS[:3], "::1", "1.2.3.4", "١.٢.٣.٤"], "devices": PATHS,
             "dns_search": NAMES, "group_add": USERS, "security_opt": ODD_TEXT}
    if key in lists:
        return [rng.choice(lists[key]) for _ in range(rng.randint(1, 3))]
    if key in ("command", "verify", "docker_args"):
        if rng.random() < 0.2:  # a huge argv: 400 words of 3,000 characters
            return [rng.choice("ab%$") * 3000 for _ in range(400)]
        return [odd_string(rng) for _ in range(rng.randint(1, 5))]
    if key == "env":
        return {rng.choice(["X", "ñ", "A B", "1X", "X\n", "PATH", "%n"]): odd_string(rng)
                for _ in range(rng.randint(1, 3))}
    if key in ("labels", "log_opts", "sysctls", "add_hosts", "ulimits"):
        names = ["x", "a b", "a=b", "pullunit.app", "net.core.somaxconn", "nofile", "max-size",
                 "%n", "ñ", "host", "vm.swappiness", "\x1b[2J"]
        return {rng.choice(names): rng.choice([odd_string(rng), odd_number(rng),
                                               {"soft": odd_number(rng), "hard": 1}])
                for _ in range(rng.randint(1, 3))}
    choices = {"ref": REFS, "platform": PLATFORMS, "policy": ENUMS, "jitter": ENUMS,
               "restart": ENUMS, "user": USERS, "name": NAMES, "network": NAMES,
               "auth_file": PATHS, "entrypoint": ODD_TEXT, "description": ODD_TEXT,
               "memory": SIZES, "memory_swap": SIZES, "shm_size": SIZES, "cpus": CPUS,
               "stop_signal": SIGNALS, "hostname": NAMES, "workdir": PATHS,
               "log_driver": ["jounrald", "journald", "a b", "loki:latest", "%n", ""]}
    if key in choices:
        return rng.choice(choices[key]) if rng.random() < 0.7 else odd_string(rng)
    if key in ("multiplier", "keep"):
        return rng.choice([odd_number(rng), 0, 101, 100.0000001, 1e-300])
    return odd_value(rng)


def _carriable(text: str) -> bool:
    return not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F or c in "\u2028\u2029"
                   or (ord(c) & 0xFFFE) == 0xFFFE for c in text)


CARRIABLE = [t for t in ODD_TEXT if _carriable(t)]
TRICKY_VALID = {
    "ref": ["127.0.0.1:5000/a/b:1", "a/b@sha256:" + "ab" * 32, "a.b.c:1/x-y_z:tag.1",
            "x:" + "a" * 128, "[::1]:5000/x:1", "x__y/z:1"],
    "ports": ["8080:80", "127.0.0.1:8443:443/tcp", "[::1]:80:80/udp", "1-10:1-10", "53/udp"],
    "volumes": ["/srv/a b:/data", "vol_1:/x:ro,z", "/%:/y"],
    "unit": ["a@b.service", "x\\x2dy.service", "foo.target", "a:b.service"],
    "duration": ["1h 30min", "500ms", "2s", 5, 1.5, "1min 0.5s", "3 d", "1y"],
}


def tricky_text(rng: random.Random, *, word: bool = False) -> str:
    """Text that must be carried into the units intact: specifiers, $, quotes, Unicode."""
    text = "".join(rng.choice(CARRIABLE) for _ in range(rng.randint(1, 5)))
    if word:
        return text
    text = text.strip()
    return (text.rstrip("\\") or "x") if rng.random() < 0.9 else text


def tricky_value(table: str, key: str, rng: random.Random) -> Any:
    """A value validation should accept (mostly) that is awkward to carry."""
    if (table, key) in _DURATION_KEYS:
        return rng.choice(TRICKY_VALID["duration"])
    if key in ("command", "verify", "docker_args"):
        return [tricky_text(rng, word=True) for _ in range(rng.randint(1, 5))]
    if key in ("entrypoint", "description"):
        return tricky_text(rng)
    if key == "env":
        return {rng.choice(["X", "_x", "A_1", "PATH", "LD_PRELOAD"]): tricky_text(rng, word=True)
                for _ in range(rng.randint(1, 3))}
    if key in ("ports", "volumes"):
        return [rng.choice(TRICKY_VALID[key]) for _ in range(rng.randint(1, 3))]
    if key in ("labels", "sysctls"):
        names = ["a", "com.example.x", "%n", "$X", "é"] if key == "labels" else [
            "net.core.somaxconn", "kernel.shmmax", "fs.mqueue.msg_max"]
        return {rng.choice(names): tricky_text(rng, word=True) for _ in range(rng.randint(1, 3))}
    if key in ("after", "wants", "requires", "wanted_by"):
        return [rng.choice(TRICKY_VALID["unit"]) for _ in range(rng.randint(0, 3))]
    if key == "ref":
        return rng.choice(TRICKY_VALID["ref"])
    return near_value(table, key, rng)


# ------------------------------------------------------------------ a TOML writer

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_key(k: str) -> str:
    return k if _BARE_KEY.match(k) else toml_string(k)


def toml_string(s: str) -> str:
    out = []
    for ch in s:
        cp = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif cp < 0x20 or cp == 0x7F:
            out.append(f"\\u{cp:04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(v: Any) -> str:
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return toml_string(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def toml_doc(data: dict[str, Any]) -> str:
    """Top-level scalars first, then one [table] per dict value."""
    lines = [f"{toml_key(k)} = {toml_value(v)}" for k, v in data.items()
             if not isinstance(v, dict)]
    for k, v in data.items():
        if isinstance(v, dict):
            lines.append(f"\n[{toml_key(k)}]")
            lines += [f"{toml_key(kk)} = {toml_value(vv)}" for kk, vv in v.items()]
    return "\n".join(lines) + "\n"


def text_mutation(text: str, rng: random.Random) -> bytes:
    """Damage the file itself: truncation, raw bytes, BOM, CRLF, duplicated lines."""
    raw = text.encode()
    op = rng.choice(["truncate", "bytes", "bom", "crlf", "dup", "drop", "nul", "deep"])
    if op == "truncate":
        return raw[: rng.randrange(0, max(1, len(raw)))]
    if op == "bytes":
        at = rng.randrange(0, len(raw) + 1)
        return raw[:at] + bytes(rng.randrange(256) for _ in range(rng.randint(1, 16))) + raw[at:]
    if op == "bom":
        return b"\xef\xbb\xbf" + raw
    if op == "crlf":
        return raw.replace(b"\n", b"\r\n")
    lines = text.split("\n")
    i = rng.randrange(len(lines))
    if op == "dup":
        lines.insert(i, lines[i])
    elif op == "drop":
        del lines[i]
    elif op == "nul":
        lines[i] += "\x00"
    else:
        lines.insert(i, f"deep = {deep_array(rng.choice([1000, 2000]))}")
    return "\n".join(lines).encode()


# ------------------------------------------------------------------ app configs

APP_NAMES = [
    "a" * 224, "a" * 225, "a" * 230, "a" * 242, "a" * 243, "a" * 250, "ñame", "app%n",
    "app$x", "x-pull", "app name", "a:b", "a.b", "-x", "_x", "x@y", "٣", "x\x1b[2Jy",
    "x\ny", "x\\y", "ex" * 20,
]


def mutate_config(base: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """1 to 3 structural or value changes to a parsed config."""
    data = copy.deepcopy(base)
    gentle = rng.random() < 0.4  # only values that should pass: the units must carry them
    for _ in range(rng.randint(1, 3)):
        tables = [t for t, v in data.items() if isinstance(v, dict)]
        op = "tricky" if gentle else rng.choice(
            ["tricky", "tricky", "near", "near", "near", "wrong_type", "drop_key",
             "unknown_key", "table_not_table", "unknown_table", "drop_table"])
        if not tables:
            op = "unknown_table"
        t = rng.choice(tables) if tables else "image"
        keys = list(data[t]) if t in data and isinstance(data[t], dict) else []
        if op == "tricky" and t in data:
            k = rng.choice(_SCHEMA_KEYS.get(t, keys) or ["x"])
            data[t][k] = tricky_value(t, k, rng)
        elif op == "near" and keys:
            k = rng.choice(keys)
            data[t][k] = near_value(t, k, rng)
        elif op == "wrong_type" and keys:
            data[t][rng.choice(keys)] = odd_value(rng)
        elif op == "drop_key" and keys:
            del data[t][rng.choice(keys)]
        elif op == "unknown_key" and t in data:
            data[t][odd_key(rng)] = odd_value(rng)
        elif op == "table_not_table":
            data[t] = odd_value(rng)
        elif op == "unknown_table":
            data[odd_key(rng) or "x"] = {"x": odd_value(rng)}
        elif op == "drop_table" and t in data:
            del data[t]
    return data


def config_bytes(data: dict[str, Any], rng: random.Random) -> bytes:
    text = toml_doc(data)
    if rng.random() < 0.1:
        return text_mutation(text, rng)
    return text.encode()


def app_name(rng: random.Random, default: str) -> str:
    return rng.choice(APP_NAMES) if rng.random() < 0.15 else default


# ------------------------------------------------------------------ state and locks


def valid_state(app: str, image: str, rng: random.Random) -> dict[str, Any]:
    def entry(i: int) -> dict[str, Any]:
        digest = "sha256:" + f"{rng.getrandbits(256):064x}"
        return {"reference": f"{image.rsplit(':', 1)[0]}@{digest}", "digest": digest,
                "image_id": "sha256:" + f"{rng.getrandbits(256):064x}",
                "first_ready": 1.7e9 + i, "last_ready": 1.7e9 + i + 1, "image": image}
    history = [entry(i) for i in range(rng.randint(1, 3))]
    return {"schema": 1, "app": app, "image": image, "current": history[0],
            "history": history, "verified": [history[0]["image_id"]],
            "last_failure": {"at": 1.7e9, "cls": "server_error", "exit_code": 69,
                             "message": "received unexpected HTTP status: 503"},
            "prefetched": None, "updated": 1.7e9}


def _json_paths(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _json_paths(v, (*path, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _json_paths(v, (*path, i))
    return out


def odd_json(rng: random.Random, depth: int = 0) -> Any:
    kind = rng.choice(["null", "bool", "int", "float", "str", "list", "dict"])
    if kind == "null":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.choice([0, -1, 2**63, 10**30, -(10**30)])
    if kind == "float":
        return rng.choice([0.5, -1e308, 1e308, 1e-320])
    if kind == "str":
        return odd_string(rng)
    if kind == "list" and depth < 2:
        return [odd_json(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if kind == "dict" and depth < 2:
        return {odd_string(rng)[:20]: odd_json(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    return "x"


_DEEP = "@@deep@@"  # replaced by a deeply nested array in the JSON text


def state_bytes(valid: dict[str, Any], rng: random.Random) -> bytes:
    """A state file: the valid one with 1-3 values changed, or something else entirely."""
    r = rng.random()
    if r < 0.15:  # valid JSON, but not an object
        return json.dumps(rng.choice([None, [], [valid], "state", 42, True, 1.5])).encode()
    if r < 0.22:
        n = rng.choice([1000, 5000, 100000])
        return (rng.choice(["[", '{"a":']) * n).encode() + b"1" + (b"]" * n)
    if r < 0.3:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 300)))
    if r < 0.35:
        return rng.choice([b"", b"NaN", b"Infinity", b'{"schema": 1e400}', b'{"schema": '
                           + HUGE_INT.encode() * 12 + b"}", b"\xef\xbb\xbf{}", b'{"a":1,"a":2}'])
    data = copy.deepcopy(valid)
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in _json_paths(data) if p]
        if not paths:
            break
        p = rng.choice(paths)
        parent = data
        for k in p[:-1]:
            parent = parent[k]
        op = rng.random()
        if op < 0.2 and isinstance(parent, dict):
            del parent[p[-1]]
        elif op < 0.35:
            parent[p[-1]] = _DEEP
        else:
            parent[p[-1]] = odd_json(rng)
    text = json.dumps(data, ensure_ascii=rng.random() < 0.5)
    n = rng.choice([1000, 3000])
    text = text.replace(json.dumps(_DEEP), "[" * n + "1" + "]" * n)
    if rng.random() < 0.15:
        return text_mutation(text, rng)
    return text.encode()


def valid_lock(ref: str, rng: random.Random) -> dict[str, Any]:
    return {"lock": {"ref": ref, "digest": "sha256:" + f"{rng.getrandbits(256):064x}",
                     "source": rng.choice(["pin", "rollback"]), "at": "2024-01-01T00:00:00+00:00"}}


def lock_bytes(valid: dict[str, Any], app_config: str, rng: random.Random) -> bytes:
    r = rng.random()
    if r < 0.12:
        return app_config.encode()  # an app config saved under the lock's name
    if r < 0.2:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
    data = copy.deepcopy(valid)
    table = data["lock"]
    for _ in range(rng.randint(1, 3)):
        op = rng.random()
        if op < 0.5:
            k = rng.choice(list(table) or ["ref"])
            table[k] = odd_value(rng) if rng.random() < 0.5 else rng.choice(
                [*REFS, "sha256:" + "0" * 63, "sha512:" + "0" * 128, "pin ", "ROLLBACK"])
        elif op < 0.65:
            table[odd_key(rng)] = odd_value(rng)
        elif op < 0.8:
            data[odd_key(rng) or "x"] = odd_value(rng)
        elif table:
            del table[rng.choice(list(table))]
    text = toml_doc(data)
    if rng.random() < 0.2:
        return text_mutation(text, rng)
    return text.encode()


# ------------------------------------------------------------------ registry responses
# Every URL a reply names (Bearer realm, Location) is this registry (SELF) or another
# loopback address: the test bed contacts nothing else, and neither may pullunit.

ERROR_CODES = ["MANIFEST_UNKNOWN", "NAME_UNKNOWN", "UNAUTHORIZED", "DENIED", "TOOMANYREQUESTS",
               "BLOB_UNKNOWN", "UNSUPPORTED", "", "\x1b[2J", "x" * 300]
MESSAGES = [
    "manifest unknown", "\x1b]0;pwned\x07\x1b[2J\x1b[31mRED", "no space left on device",
    "x509: certificate signed by unknown authority", "lookup evil: no such host",
    "toomanyrequests: slow down", "\r\rfake: all good\n", "\u202egnp.exe", "é☃😀\u2028",
    "%n $HOME `id` ${PULLUNIT_IMAGE}", "password=hunter2 Authorization: Basic Zm9vOmJhcg==",
    "A" * 200000, "\\u001b[2J", "\x00\x07\x08\x7f\x9b",
]


def _realm(sch: str) -> str:
    return {
        "bearer": 'Bearer realm="@@SELF@@/token",service="fuzz",scope="repository:'
                  'pullunit-fuzz/app:pull"',
        "basic": 'Basic realm="fuzz"',
        "bearer-closed": 'Bearer realm="http://127.0.0.1:1/token",service="fuzz"',
        "bearer-norealm": 'Bearer service="fuzz"',
        "bearer-odd": 'Bearer realm="@@SELF@@/token?\x1b[2J",service="\u202e"',
        "negotiate": "Negotiate",
        "garbage": 'Bearer realm=,,,=="',
        "huge": 'Bearer realm="@@SELF@@/token",service="' + "s" * 60000 + '"',
    }[sch]


def _headers(rng: random.Random) -> list[tuple[str, str]]:
    pool: list[tuple[str, str]] = [
        ("WWW-Authenticate", _realm(rng.choice(["bearer", "basic", "bearer-closed",
                                                  "bearer-norealm", "bearer-odd", "negotiate",
                                                  "garbage", "huge"]))),
        ("Content-Type", rng.choice(["text/html", "application/json; charset=\x1b",
                                     "application/vnd.oci.image.index.v1+json",
                                     "application/vnd.docker.distribution.manifest.v1+prettyjws",
                                     "", "x/" + "y" * 3000])),
        ("Retry-After", rng.choice(["7", "-1", HUGE_INT, "Wed, 21 Oct 2015 07:28:00 GMT",
                                    "nan", "1e400", "\u0661"])),
        ("Docker-Content-Digest", rng.choice(["sha256:" + "0" * 64, "sha256:zz", "md5:x", "",
                                              "sha256:" + "a" * 6000])),
        ("Location", rng.choice(["@@SELF@@/v2/", "http://127.0.0.1:1/x", "/relative",
                                 "garbage", "@@SELF@@/" + "x" * 5000, "@@SELF@@/v2/\x1b[2J"])),
        ("Content-Length", rng.choice(["-1", "abc", HUGE_INT, "0", "1, 2"])),
        ("Date", rng.choice(["Wed, 21 Oct 2015 07:28:00 GMT", "Sat, 01 Jan 2150 00:00:00 GMT",
                             "garbage", ""])),
        ("X-Fuzz", "v" * 70000),  # longer than a header line may be for http.client
    ]
    out = rng.sample(pool, rng.randint(0, 3))
    if rng.random() < 0.05:
        out += [(f"X-Many-{i}", "1") for i in range(150)]  # more headers than http.client allows
    return out


def _error_body(rng: random.Random, echo: bool) -> bytes:
    message = rng.choice(MESSAGES) + ("@@ECHO@@" if echo else "")
    r = rng.random()
    if r < 0.55:
        doc = {"errors": [{"code": rng.choice(ERROR_CODES), "message": message,
                           "detail": rng.choice([None, message, {"x": [1, 2]}])}]}
        return json.dumps(doc, ensure_ascii=rng.random() < 0.5).encode()
    if r < 0.65:
        return b"<html><body><h1>" + message.encode() + b"</h1></body></html>"
    if r < 0.75:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 400)))
    if r < 0.85:
        n = rng.choice([1000, 100000])
        return b'{"errors": ' + b"[" * n + b"]" * n + b"}"
    if r < 0.92:
        return json.dumps({"errors": [{"code": "X", "message": message}]}).encode()[:20]
    return b""


def _bad_manifest(rng: random.Random) -> bytes:
    digest = "sha256:" + f"{rng.getrandbits(256):064x}"
    doc: Any = rng.choice([
        {"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
         "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 10,
                    "digest": digest}, "layers": []},
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
         "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "digest": digest, "size": 1,
                        "platform": {"os": rng.choice(["linux", "\x1b[2J", ""]),
                                     "architecture": rng.choice(["arm64", "s390x", "é"])}}]},
        {"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": [], "signatures": []},
        {"schemaVersion": rng.choice([3, -1, HUGE_INT, None])},
        [], "manifest", None,
    ])
    return json.dumps(doc).encode()


def registry_reply(kind: str, rng: random.Random) -> Any:
    from tests.testbed.fakeregistry import Reply

    mode = rng.choices(["answer", "hang", "trickle", "slowbody", "truncate", "close"],
                       [70, 7, 6, 5, 6, 6])[0]
    delay = rng.uniform(0.0, 1.5) if rng.random() < 0.2 else 0.0
    reason = None if rng.random() < 0.8 else rng.choice(
        ["\x1b]0;pwned\x07Not Found", "r" * 2000, "ä", ""])
    headers = tuple(_headers(rng)) if rng.random() < 0.5 else ()
    echo = rng.random() < 0.3
    r = rng.random()
    if r < 0.25:  # the real content, with odd headers or a misbehaviour
        return Reply(200, reason, headers, None, delay, mode, echo_auth=echo)
    if r < 0.35 and kind == "manifest":
        return Reply(200, reason, headers, _bad_manifest(rng), delay, mode)
    if r < 0.4 and kind in ("config", "layer"):  # bytes that do not match the digest
        return Reply(200, reason, headers, bytes(rng.randrange(256) for _ in range(64)),
                     delay, mode)
    status = rng.choice([400, 401, 403, 404, 404, 405, 409, 416, 429, 429, 500, 502, 503, 504,
                         599, 418, 207, 302, 307, 999, 600, 103])
    if status in (302, 307):
        headers += (("Location", rng.choice(["@@SELF@@/v2/", "@@SELF@@/token",
                                             "http://127.0.0.1:1/", "garbage"])),)
    if status == 401 and not any(k == "WWW-Authenticate" for k, _ in headers):
        headers += (("WWW-Authenticate", _realm(rng.choice(["bearer", "basic"]))),)
    return Reply(status, reason, headers, _error_body(rng, echo), delay, mode, echo_auth=echo)


def registry_scenario(rng: random.Random) -> tuple[Any, str]:
    """Per endpoint kind, what the registry does; and a description for the report."""
    from tests.testbed.fakeregistry import Reply, Scenario

    replies: dict[str, tuple[Any, ...]] = {}
    auth = rng.choices(["none", "basic", "bearer"], [50, 25, 25])[0]
    if auth != "none":  # the first GET /v2/ challenges; clients then authenticate
        replies["v2"] = (Reply(401, headers=(("WWW-Authenticate", _realm(auth)),),
                               body=b'{"errors":[{"code":"UNAUTHORIZED","message":"auth"}]}'),
                         Reply())
    kinds = ["v2", "token", "manifest", "manifest", "config", "layer"]
    for kind in rng.sample(kinds, rng.choice([1, 1, 1, 2, 2, 3])):
        if kind == "token" and auth != "bearer":
            continue
        seq = tuple(registry_reply(kind, rng) for _ in range(rng.choice([1, 1, 2])))
        replies[kind] = replies.get(kind, ())[:1] + seq if kind == "v2" else seq
    if auth != "none" and "manifest" not in replies and rng.random() < 0.4:
        # a registry (or a debugging proxy) that reflects the credentials it was sent
        body = json.dumps({"errors": [{"code": rng.choice(["MANIFEST_UNKNOWN", "DENIED"]),
                                       "message": "rejected@@ECHO@@"}]}).encode()
        replies["manifest"] = (Reply(rng.choice([404, 403, 500]), body=body, echo_auth=True),)
    text = f"auth={auth}; " + "; ".join(
        f"{k}: " + ", ".join(_describe_reply(r) for r in seq) for k, seq in replies.items())
    return Scenario(replies), text


def _describe_reply(r: Any) -> str:
    parts = [r.mode if r.mode != "answer" else str(r.status)]
    if r.mode != "answer":
        parts.append(f"status {r.status}")
    if r.delay:
        parts.append(f"after {r.delay:.1f}s")
    if r.reason is not None:
        parts.append(f"reason {r.reason[:40]!r}")
    if r.headers:
        parts.append("headers " + ", ".join(f"{k}: {v[:60]!r}" for k, v in r.headers[:4]))
    if r.body is not None:
        parts.append(f"body {r.body[:120]!r}" + (f"…({len(r.body)} B)" if len(r.body) > 120
                                                  else ""))
    if r.echo_auth:
        parts.append("echoes Authorization")
    return "(" + " ".join(parts) + ")"


def registry_corpus() -> list[tuple[str, Any, str]]:
    """Fixed cases run before the random ones, whatever the seed: the misbehaviours every
    documented bound must survive, and the leaks and escapes found before.
    Each is (name, Scenario, credentials: "auths" | "helper-hangs")."""
    from tests.testbed.fakeregistry import Reply, Scenario

    basic = Reply(401, headers=(("WWW-Authenticate", _realm("basic")),),
                  body=b'{"errors":[{"code":"UNAUTHORIZED","message":"auth"}]}')
    echo = json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN",
                                   "message": "rejected@@ECHO@@"}]}).encode()
    escapes = json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN",
                                      "message": "\x1b]0;pwned\x07\x1b[2Jgone"}]}).encode()
    return [
        ("manifest never answers", Scenario({"manifest": (Reply(mode="hang"),)}), "auths"),
        ("manifest trickles", Scenario({"manifest": (Reply(mode="trickle"),)}), "auths"),
        ("/v2/ trickles", Scenario({"v2": (Reply(mode="trickle"),)}), "auths"),
        ("layer trickles", Scenario({"layer": (Reply(mode="slowbody"),)}), "auths"),
        ("credential helper hangs", Scenario(), "helper-hangs"),
        ("Basic auth echoed back", Scenario({"v2": (basic, Reply()),
                                             "manifest": (Reply(404, body=echo,
                                                                echo_auth=True),)}), "auths"),
        ("404 with an HTML body", Scenario({"manifest": (Reply(
            404, body=b"<html><body>404 Not Found</body></html>",
            headers=(("Content-Type", "text/html"),)),)}), "auths"),
        ("404 with terminal escapes", Scenario({"manifest": (Reply(404, body=escapes),)}),
         "auths"),
    ]
