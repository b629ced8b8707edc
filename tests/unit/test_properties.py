"""Property: an arbitrary string in an env value, a command argument, the entrypoint, the
description, a label (name or value), a log option or a sysctl value either fails
validation cleanly (a ConfigError naming file and key, and only when the value really
cannot be carried) or ends up in units that `systemd-analyze verify` accepts and that
systemd's own loader reads back intact.

Each example is a batch of apps, checked with one verify and one `systemd --test` call.
"""

from __future__ import annotations

import tempfile
import unicodedata
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pullunit.config import AppConfig
from pullunit.unitfiles import generate

from . import sdtools
from .test_systemd_verify import EXE, assert_loaded_as_meant

pytestmark = pytest.mark.skipif(not (sdtools.HAVE_VERIFY and sdtools.HAVE_SYSTEMD_TEST),
                                reason="needs systemd-analyze and /lib/systemd/systemd")

# Pieces that stress each layer: specifiers, $-expansion, quoting, C escapes, the lone
# semicolon, white space systemd strips or does not, and characters no unit can carry.
TRICKY = [
    "%", "%n", "%%", "%i", "$", "$$", "${X}", "$X", "${PULLUNIT_IMAGE}", '"', "'", "\\",
    "\\\\", "\\;", ";", "\\n", "\\x41", "\\101", " ", "  ", "`id`", "*", "#", "=", ":", "-",
    "é", "☃", "😀", "e\u0301", "\u00a0", "\u200b", "\ufeff", "\u3000", "\u061c",
    "\n", "\t", "\r", "\x00", "\x1b", "\x7f", "\x85", "\u2028", "\u2029",
    "\ufffe", "\uffff", "\ufdd0", "\U0001fffe", "\U0010ffff",
]
text_values = st.one_of(
    st.text(max_size=12),
    st.lists(st.one_of(st.sampled_from(TRICKY), st.text(max_size=3)), max_size=6).map("".join),
)
env_names = st.builds(lambda head, tail: head + tail,
                      st.sampled_from("ABCXYZ_abz"),
                      st.text(alphabet="ABZ09_az", max_size=6))
# The container keys: label names (valid and not), and sizes, by the documented rules.
LABEL_NAMES = {"a": True, "com.example.x-y_z": True, "%n": True, "$X": True, "${X}": True,
               "é☃": True, "\\;": True, '"q"': True, "a b": False, "a=b": False, "": False,
               "pullunit.app": False, "PULLUNIT.x": False, "a\u00a0b": False,
               "a\x1bb": False, "a\x7f": False, "\ufffe": False, "\u2028": False}
SIZES = {"512m": True, "1.5GiB": True, "6291456": True, "100k": False, "1e9": False,
         "512 m": False, "%n": False, "-1": False, "1g\n": False, "\u0665m": False}
app_specs = st.fixed_dictionaries({
    "command": st.lists(text_values, max_size=4),
    "env": st.dictionaries(env_names, text_values, max_size=3),
    "entrypoint": st.none() | text_values,
    "description": st.none() | text_values,
    "labels": st.dictionaries(st.sampled_from(sorted(LABEL_NAMES)), text_values, max_size=3),
    "log_opts": st.dictionaries(st.sampled_from(["tag", "x.y", "a-b"]), text_values,
                                max_size=2),
    "sysctls": st.dictionaries(st.sampled_from(["net.core.somaxconn", "kernel.shmmax"]),
                               text_values, max_size=2),
    "memory": st.none() | st.sampled_from(sorted(SIZES)),
})


def _uncarriable(ch: str) -> bool:
    cp = ord(ch)
    return (cp < 0x20 or 0x7F <= cp <= 0x9F  # C0, DEL, C1
            or unicodedata.category(ch) in ("Zl", "Zp", "Cs")
            or 0xFDD0 <= cp <= 0xFDEF or (cp & 0xFFFE) == 0xFFFE)  # noncharacters


def bad_keys(spec: dict[str, Any]) -> set[str]:
    """The dotted keys whose value validation must reject, by the documented rules."""
    keys = set()
    for i, word in enumerate(spec["command"]):
        if any(map(_uncarriable, word)):
            keys.add(f"run.command[{i}]")
    for name, value in spec["env"].items():
        if any(map(_uncarriable, value)):
            keys.add(f"run.env.{name}")
    ep = spec["entrypoint"]
    if ep is not None and (ep == "" or any(map(_uncarriable, ep))):
        keys.add("run.entrypoint")
    for table in ("labels", "log_opts", "sysctls"):
        for name, value in spec[table].items():
            if any(map(_uncarriable, value)) or not LABEL_NAMES.get(name, True):
                keys.add(f"run.{table}.{name}")
    if spec["memory"] is not None and not SIZES[spec["memory"]]:
        keys.add("run.memory")
    d = spec["description"]
    # systemd strips white space around a value and reads a trailing \ as a continuation;
    # pullunit rejects what Python calls white space there, a superset.
    if d is not None and (d == "" or any(map(_uncarriable, d)) or d != d.strip()
                          or d.endswith("\\")):
        keys.add("unit.description")
    return keys


def to_toml(spec: dict[str, Any]) -> str:
    doc: dict[str, Any] = {"image": {"ref": "nginx:1.25"}, "run": {}}
    if spec["command"]:
        doc["run"]["command"] = spec["command"]
    if spec["env"]:
        doc["run"]["env"] = spec["env"]
    if spec["entrypoint"] is not None:
        doc["run"]["entrypoint"] = spec["entrypoint"]
    if spec["description"] is not None:
        doc["unit"] = {"description": spec["description"]}
    for table in ("labels", "log_opts", "sysctls"):
        if spec[table]:
            doc["run"][table] = spec[table]
    if spec["log_opts"]:
        doc["run"]["log_driver"] = "gelf"  # a driver whose options pullunit does not check
    if spec["memory"] is not None:
        doc["run"]["memory"] = spec["memory"]
    return tomli_w.dumps(doc)


def check_batch(specs: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory(prefix="pullunit-prop-") as d:
        cfg, out = Path(d) / "cfg", Path(d) / "out"
        cfg.mkdir()
        for i, spec in enumerate(specs):
            (cfg / f"p{i}.toml").write_text(to_toml(spec), encoding="utf-8")
        result = generate(cfg, out, executable=EXE)

        errors = {Path(e.message.split(": ", 1)[0]).name: e.message for e in result.errors}
        good: list[AppConfig] = []
        apps = {a.name: a for a in result.apps}
        for i, spec in enumerate(specs):
            name, path = f"p{i}", cfg / f"p{i}.toml"
            expected_bad = bad_keys(spec)
            if expected_bad:
                assert name not in apps, f"{name}: accepted {expected_bad} of {spec!r}"
                message = errors[path.name]
                assert message.startswith(f"{path}: ")
                key = message[len(f"{path}: "):].split(": ", 1)[0]
                assert key in expected_bad, (message, expected_bad)
                assert not (out / f"{name}.service").exists()
            else:
                assert path.name not in errors, f"{spec!r}: {errors.get(path.name)}"
                good.append(apps[name])
        if not good:
            return
        units = sorted(out.glob("*.service"))
        proc = sdtools.verify(units)
        assert proc.returncode == 0 and proc.stdout + proc.stderr == "", proc.stdout + proc.stderr
        assert_loaded_as_meant(sdtools.load_units(units), good, cfg)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(app_specs, min_size=1, max_size=8))
def test_values_fail_cleanly_or_reach_systemd_intact(specs: list[dict[str, Any]]) -> None:
    check_batch(specs)


# Deterministic companions of the property, one value per field and app.
KNOWN = ["plain", "", " ", ";", "\\;", "%n", "100%", "$HOME", "$$", "${X}", '"q"', "'s'",
         "\\", "back\\slash", "é ☃ 😀", "\u00a0", "\ufeff", "a b  c", "${PULLUNIT_IMAGE}",
         "\ufffe", "\U0010ffff", "\n", "\x85", "\u2028"]


@pytest.mark.parametrize("field", ["command", "env", "entrypoint", "description", "labels",
                                   "log_opts", "sysctls"])
def test_known_tricky_values(field: str) -> None:
    specs = []
    for value in KNOWN:
        spec: dict[str, Any] = {"command": [], "env": {}, "entrypoint": None,
                                "description": None, "labels": {}, "log_opts": {},
                                "sysctls": {}, "memory": None}
        if field == "command":
            spec["command"] = ["echo", value]
        elif field == "env":
            spec["env"] = {"V": value}
        elif field in ("labels", "log_opts"):
            spec[field] = {"tag": value}
        elif field == "sysctls":
            spec[field] = {"net.core.somaxconn": value}
        else:
            spec[field] = value
        specs.append(spec)
    check_batch(specs)



def test_known_label_names_and_sizes() -> None:
    empty: dict[str, Any] = {"command": [], "env": {}, "entrypoint": None, "description": None,
                             "labels": {}, "log_opts": {}, "sysctls": {}, "memory": None}
    check_batch([{**empty, "labels": {name: "v"}} for name in LABEL_NAMES]
                + [{**empty, "memory": size} for size in SIZES])
