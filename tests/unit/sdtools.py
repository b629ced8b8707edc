"""Checking rendered units with systemd itself, without a running systemd.

Two tools:

* verify(): `systemd-analyze verify --man=no` on copies of the units in a temp dir.
* load_units(): systemd's own unit loader (`systemd --test --system`), run as an
  unprivileged user, dumps every loaded unit: the Description= after specifier
  expansion and, per Exec line, a "Command Line:" with the argv after unquoting and
  specifier expansion, before $-expansion, re-quoted by shell_maybe_quote().
  parse_command_line() reverses that quoting and expand_exec_env() applies the
  exec-time $-expansion, so a test sees exactly the argv the process would get.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SYSTEMD = Path("/lib/systemd/systemd")
BATCH_TARGET = "pullunit-test-batch.target"
# What ${NAME} turns into after expand_exec_env(): NUL cannot occur in a valid value.
VAR = "\0VAR:{}\0"

HAVE_VERIFY = shutil.which("systemd-analyze") is not None
HAVE_SYSTEMD_TEST = SYSTEMD.exists() and (os.geteuid() != 0 or shutil.which("setpriv") is not None)


@dataclass
class UnitDump:
    name: str
    description: str | None = None
    load_state: str | None = None
    fragment_path: str | None = None
    exec_lines: dict[str, list[str]] = field(default_factory=dict)  # "ExecStart" -> [cmdline]
    # every other "Key: value" line of the dump, e.g. "RestartSec" -> ["5s"]
    properties: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class LoadResult:
    units: dict[str, UnitDump]
    stderr: str
    returncode: int

    def complaints(self) -> list[str]:
        """Lines of systemd's log that mention our unit files or units."""
        return [line for line in self.stderr.splitlines()
                if "<unitdir>" in line or any(f"{n}:" in line for n in self.units)]


def verify(unit_files: Iterable[Path], *, extra_env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
    """systemd-analyze verify on copies of unit_files (all in one temp dir)."""
    with tempfile.TemporaryDirectory(prefix="pullunit-verify-") as d:
        names = []
        for i, f in enumerate(unit_files):
            if ":" in f.name:
                # verify reads "SRC:NAME" as "load SRC as NAME", so a unit name with a colon
                # (valid in systemd) must be passed through that alias syntax.
                src = f"colon-alias-{i}{f.suffix}"
                shutil.copy2(f, Path(d) / src)
                names.append(f"./{src}:{f.name}")
            else:
                shutil.copy2(f, Path(d) / f.name)
                names.append(f"./{f.name}")
        env = dict(os.environ, **(extra_env or {}))
        env.pop("SYSTEMD_UNIT_PATH", None)
        return subprocess.run(["systemd-analyze", "verify", "--man=no", *sorted(names)],
                              cwd=d, capture_output=True, text=True, env=env, timeout=120)


def _world_readable_tmpdir() -> str:
    d = tempfile.mkdtemp(prefix="pullunit-sdtest-", dir="/tmp")
    os.chmod(d, 0o755)
    return d


def load_units(unit_files: Sequence[Path], *, wanted: Sequence[str] | None = None
               ) -> LoadResult:
    """Load unit_files with `systemd --test` and return the dump of each of them.

    The files are copied into a world-readable dir with a target that Wants= all of them
    (or `wanted`), so one invocation loads them all.
    """
    d = _world_readable_tmpdir()
    try:
        unit_dir = Path(d)
        for f in unit_files:
            dst = unit_dir / f.name
            shutil.copyfile(f, dst)
            os.chmod(dst, 0o644)
        names = list(wanted) if wanted is not None else [f.name for f in unit_files]
        target = unit_dir / BATCH_TARGET
        target.write_text("[Unit]\nDescription=pullunit test batch\nWants="
                          + " ".join(names) + "\n")
        os.chmod(target, 0o644)
        cmd = ["env", f"SYSTEMD_UNIT_PATH={unit_dir}", str(SYSTEMD), "--test", "--system",
               f"--unit={BATCH_TARGET}", "--no-pager", "--log-target=console",
               "--log-color=no"]
        if os.geteuid() == 0:  # systemd --test refuses to run as root
            cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *cmd]
        proc = subprocess.run(cmd, cwd="/", capture_output=True, timeout=120)
        stdout = proc.stdout.decode("utf-8", errors="surrogateescape")
        stderr = proc.stderr.decode("utf-8", errors="replace")
        if proc.returncode != 0:
            raise RuntimeError(f"systemd --test failed ({proc.returncode}): {stderr}")
        units = parse_dump(stdout, set(names))
        # Keep paths in messages meaningful after the dir is gone.
        return LoadResult(units, stderr.replace(d, "<unitdir>"), proc.returncode)
    finally:
        shutil.rmtree(d, ignore_errors=True)


_UNIT_HEADER = re.compile(r"^\t?-> Unit (?P<name>.+):$")


def parse_dump(text: str, names: set[str]) -> dict[str, UnitDump]:
    """Pick the units in `names` out of a `systemd --test` dump."""
    units: dict[str, UnitDump] = {}
    current: UnitDump | None = None
    exec_kind: str | None = None
    for line in text.split("\n"):
        m = _UNIT_HEADER.match(line)
        if m:
            name = m.group("name")
            current = units.setdefault(name, UnitDump(name)) if name in names else None
            exec_kind = None
            continue
        if current is None:
            continue
        stripped = line.strip("\t")
        if line.startswith("\t\t-> "):
            exec_kind = stripped[3:].rstrip(":")
            current.exec_lines.setdefault(exec_kind, [])
        elif line.startswith("\t\t\tCommand Line: ") and exec_kind is not None:
            current.exec_lines[exec_kind].append(line[len("\t\t\tCommand Line: "):])
        elif line.startswith("\t\t") and not line.startswith("\t\t\t"):
            exec_kind = None
            key, _, value = stripped.partition(": ")
            current.properties.setdefault(key, []).append(value)
            if key == "Description" and current.description is None:
                current.description = value
            elif key == "Unit Load State":
                current.load_state = value
            elif key == "Fragment Path":
                current.fragment_path = value
    return units


_C_ESCAPES = {"a": 7, "b": 8, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11, "'": 39}


def parse_command_line(line: str) -> list[str]:
    """Undo systemd's quote_command_line(argv, SHELL_ESCAPE_EMPTY).

    Words are joined with single spaces. A word that needs no quoting is printed as is
    (it holds no ASCII white space and none of "\\`$'()<>|&;!*?[]); otherwise it is
    wrapped in double quotes with \\ " ` $ backslash-escaped, control characters and
    invalid UTF-8 C-escaped (\\n, \\ooo), and other characters raw.
    """
    words: list[str] = []
    i, n = 0, len(line)
    while i < n:
        if line[i] == '"':
            buf = bytearray()
            i += 1
            while True:
                if i >= n:
                    raise ValueError(f"unterminated quote in {line!r}")
                c = line[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\":
                    e = line[i + 1]
                    if e in '"\\`$':
                        buf += e.encode()
                        i += 2
                    elif e in _C_ESCAPES:
                        buf.append(_C_ESCAPES[e])
                        i += 2
                    elif e in "01234567":
                        buf.append(int(line[i + 1:i + 4], 8))
                        i += 4
                    else:
                        raise ValueError(f"unknown escape \\{e} in {line!r}")
                else:
                    buf += c.encode("utf-8", errors="surrogateescape")
                    i += 1
            words.append(buf.decode("utf-8", errors="surrogateescape"))
            if i < n:
                if line[i] != " ":
                    raise ValueError(f"junk after a quoted word in {line!r}")
                i += 1
        else:
            j = line.find(" ", i)
            j = n if j < 0 else j
            word = line[i:j]
            if any(ch in word for ch in "\"\\`$'()<>|&;!*?[\t"):
                raise ValueError(f"unquoted word {word!r} holds a special character")
            words.append(word)
            i = j + 1
    return words


_VAR_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_exec_env(word: str) -> str:
    """systemd's exec-time expansion of one argv word: "$$" -> "$", "${NAME}" -> VAR
    sentinel (the value is only known at run time), any other "$" literal."""
    out = []
    i = 0
    while i < len(word):
        if word.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        m = _VAR_REF.match(word, i)
        if m:
            out.append(VAR.format(m.group(1)))
            i = m.end()
            continue
        out.append(word[i])
        i += 1
    return "".join(out)


def exec_argv(command_line: str) -> list[str]:
    """The argv the process gets, with ${NAME} references as VAR sentinels."""
    return [expand_exec_env(w) for w in parse_command_line(command_line)]
