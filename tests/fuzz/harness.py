"""The fuzz tier's runner and its invariants.

A *target* (configs, state files, registry responses) makes N cases from a fixed base seed.
Case K of target T draws everything from ``random.Random(f"{seed}/{T}/{K}")``, so one
case can be replayed alone: ``PULLUNIT_FUZZ_SEED=S PULLUNIT_FUZZ_CASE=K pytest tests/fuzz``.
Each case gets its own directory tree and runs the real CLI (``python -m pullunit``) as
subprocesses, each with a hard time bound (its process group is killed when it is over).

What every run must hold (check_run):
  * it ends within its bound (the documented one where there is one)
  * its exit code is in README's table and is not 70 (73 only for "no space left")
  * no traceback, no raw control bytes (ESC, BEL, CR, C1 ...) on stdout or stderr
  * no credential (the password of the case's docker config, or its base64 form)
What every case must hold (check_tree): no file outside the apps' own paths was created,
changed or removed; no file written holds a credential; no process is left behind.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import hashlib
import json
import os
import random
import re
import signal
import stat
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SEED_ENV = "PULLUNIT_FUZZ_SEED"
CASE_ENV = "PULLUNIT_FUZZ_CASE"
REPORT_ENV = "PULLUNIT_FUZZ_REPORT"  # a file to write every finding to, as JSON
DEFAULT_SEED = 14  # issue 14; any fixed number does

# README.md, "Exit status"
EXIT_TABLE = frozenset({0, 1, 64, 65, 66, 68, 69, 72, 73, 74, 75, 76, 77, 78, 130, 143})
QUICK = 20.0  # bound for a command that only reads files (no documented one; generous)
SLACK = 6.0  # interpreter start-up, imports, and a loaded 2-core machine

USER = "fuzzuser"
_ENV_DROP = ("PULLUNIT_CONFIG_DIR", "PULLUNIT_RUNTIME_DIR", "PULLUNIT_STATE_DIR",
             "PULLUNIT_EXECUTABLE", "PULLUNIT_DOCKER_DAEMON_JSON", "PULLUNIT_DOCKER_CERTS_D",
             "SYSTEMD_LOG_LEVEL", "JOURNAL_STREAM", "NOTIFY_SOCKET", "DOCKER_HOST",
             "DOCKER_CONFIG", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY", "http_proxy",
             "https_proxy", "no_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
             "ALL_PROXY")


def base_seed() -> int:
    return int(os.environ.get(SEED_ENV) or DEFAULT_SEED)


def case_numbers(n: int) -> list[int]:
    only = os.environ.get(CASE_ENV)
    return [int(only)] if only else list(range(n))


def case_rng(target: str, case: int) -> random.Random:
    return random.Random(f"{base_seed()}/{target}/{case}")


# ------------------------------------------------------------------ one case's sandbox


@dataclass
class Sandbox:
    """The directories of one case, and the environment the CLI runs in."""

    root: Path
    password: str
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for d in ("cfg", "home", "victim", "out"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        # A file no command may ever touch: symlinks in the cases point here.
        (self.root / "victim" / "keep.txt").write_text("nobody writes here\n")

    @property
    def cfg(self) -> Path:
        return self.root / "cfg"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def out(self) -> Path:
        return self.root / "out"

    @property
    def victim(self) -> Path:
        return self.root / "victim" / "keep.txt"

    @property
    def auth_b64(self) -> str:
        return base64.b64encode(f"{USER}:{self.password}".encode()).decode()

    def secrets(self) -> list[str]:
        return [self.password, self.auth_b64]

    def docker_config(self, registry: str) -> dict[str, Any]:
        return {"auths": {registry: {"auth": self.auth_b64}}}

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _ENV_DROP}
        env.update({
            "HOME": str(self.root / "home"), "NO_COLOR": "1", "LC_ALL": "C.UTF-8",
            "PULLUNIT_STATE_DIR": str(self.state), "PULLUNIT_RUNTIME_DIR": str(self.run),
            "PULLUNIT_EXECUTABLE": "/usr/bin/true",
            "PULLUNIT_DOCKER_DAEMON_JSON": str(self.root / "daemon.json"),
            "PULLUNIT_DOCKER_CERTS_D": str(self.root / "certs.d"),
            # nothing listens here: commands that need the engine fail fast and classified
            "DOCKER_HOST": f"unix://{self.root}/no-docker.sock",
            "PYTHONDONTWRITEBYTECODE": "1",
        })
        env.update(self.extra_env)
        env.update(extra)
        return env


# ------------------------------------------------------------------------ one command


@dataclass
class Run:
    argv: list[str]
    code: int | None  # None: killed at its bound
    seconds: float
    bound: float
    stdout: bytes
    stderr: bytes

    @property
    def name(self) -> str:
        return " ".join(a for a in self.argv if not a.startswith("/"))[:80]

    @property
    def text(self) -> str:
        return (self.stdout + b"\n" + self.stderr).decode("utf-8", errors="replace")

    def json(self) -> Any:
        try:
            return json.loads(self.stdout)
        except ValueError:
            return None


def run_cli(args: Sequence[str | Path], sandbox: Sandbox, bound: float,
            env: dict[str, str] | None = None) -> Run:
    """`python -m pullunit ARGS` in its own process group, killed after `bound` seconds.
    Output goes to anonymous files, not pipes, so the time measured is pullunit's own:
    a helper it leaves behind holding stdout open does not count here (leftover_processes
    finds it)."""
    argv = [sys.executable, "-m", "pullunit", *map(str, args)]
    t = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                             env=env or sandbox.env(), cwd=sandbox.root, start_new_session=True)
        code: int | None
        try:
            code = p.wait(timeout=bound)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)  # the group we made for it: nothing else
            p.wait()
            code = None
        seconds = time.monotonic() - t
        out.seek(0)
        err.seek(0)
        return Run(argv[3:], code, seconds, bound, out.read(), err.read())


_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]")
_C1 = re.compile("[\u0080-\u009f]")


def _control_chars(label: str, data: bytes) -> str | None:
    m = _CONTROL_BYTES.search(data)
    if m:
        at = m.start()
        return (f"raw control byte {data[at:at + 1]!r} on {label} "
                f"(…{data[max(0, at - 60):at + 20]!r}…)")
    text = data.decode("utf-8", errors="replace")
    m2 = _C1.search(text)
    if m2:
        at = m2.start()
        return f"raw C1 control {m2.group()!r} on {label} (…{text[max(0, at - 60):at + 20]!r}…)"
    return None


def check_run(run: Run, secrets: Iterable[str], codes: frozenset[int] = EXIT_TABLE
              ) -> list[str]:
    bad: list[str] = []
    if run.code is None:
        bad.append(f"did not end within its bound of {run.bound:.0f} s (killed)")
    elif run.code == 70:
        bad.append("exit 70 (internal error)")
    elif run.code not in codes:
        bad.append(f"exit {run.code}, expected one of {sorted(codes)}")
    elif run.code == 73 and "no space left on device" not in run.text.lower():
        bad.append("exit 73, which README reserves for 'no space left on device'")
    if "Traceback (most recent call last)" in run.text:
        bad.append("traceback in the output")
    for label, data in (("stdout", run.stdout), ("stderr", run.stderr)):
        problem = _control_chars(label, data)
        if problem:
            bad.append(problem)
    text = run.text
    for s in secrets:
        at = text.find(s) if s else -1
        if at >= 0:
            context = text[max(0, at - 100):at + len(s) + 40].replace(s, "<CREDENTIAL>")
            bad.append(f"credential {s[:4]}… appears in the output: …{context!r}…")
    return bad


# ------------------------------------------------------------------ the file tree


Entry = tuple[Any, ...]


def snapshot(root: Path) -> dict[str, Entry]:
    """Every path under root (symlinks not followed): type, mode, and content hash."""
    out: dict[str, Entry] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", st.st_mode & 0o7777)
            elif stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
                out[rel] = ("file", st.st_mode & 0o7777, st.st_size, h.hexdigest())
            else:
                out[rel] = ("other", stat.S_IFMT(st.st_mode))
    return out


def changed_paths(before: dict[str, Entry], after: dict[str, Entry]) -> list[str]:
    return sorted(p for p in set(before) | set(after)
                  if before.get(p) != after.get(p) and not (
                      before.get(p, ("?",))[0] == after.get(p, ("?",))[0] == "dir"))


def app_path_patterns(apps: Iterable[str]) -> list[re.Pattern[str]]:
    """What pullunit may create, change or remove for these apps (paths relative to the
    sandbox root): its units, state (and a corrupt copy set aside), archive, env file,
    flock file and lock file; and the host's pull slots (pullslots.py: one file per slot
    of max_parallel_pulls, at most 64), which every puller shares."""
    pats = [re.compile(r"^(state|run|out|state/cache)$"),
            re.compile(r"^run/pull-slots(/[0-9]|/[1-5][0-9]|/6[0-3])?$")]
    for app in apps:
        a = re.escape(app)
        pats += [re.compile(p) for p in (
            rf"^out/{a}(-pull)?\.service$",
            rf"^state/{a}\.(json|corrupt)[^/]*$",
            rf"^state/{a}\.json\.[^/]*$",
            rf"^state/cache/{a}(/.*)?$",
            rf"^run/{a}\.(env|lock)$",
            rf"^cfg/{a}\.lock\.toml$",
        )]
    return pats


def check_tree(sandbox: Sandbox, before: dict[str, Entry], after: dict[str, Entry],
               apps: Iterable[str]) -> list[str]:
    bad = []
    pats = app_path_patterns(apps)
    for p in changed_paths(before, after):
        if not any(pat.match(p) for pat in pats):
            what = "created" if p not in before else "removed" if p not in after else "changed"
            bad.append(f"{what} {p!r}, which is none of the apps' own paths")
        elif p in after and after[p][0] == "file":
            data = (sandbox.root / p).read_bytes()
            for s in sandbox.secrets():
                if s.encode() in data:
                    bad.append(f"credential {s[:4]}… written to {p}")
    return bad


def leftover_processes(sandbox: Sandbox) -> list[str]:
    """Processes whose command line names this case's directory (helpers it started).
    Killed by pid, after checking that their command line really names our tree."""
    mark = str(sandbox.root).encode()
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            cmd = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if mark in cmd:
            words = cmd.replace(b"\0", b" ")[:120]
            found.append(f"process {d.name} left behind: {words!r}")
            with contextlib.suppress(OSError):
                os.kill(int(d.name), signal.SIGKILL)
    return found


# ---------------------------------------------------------------- findings and report


@dataclass
class Finding:
    case: int
    command: str
    problems: list[str]
    inputs: str = ""
    output: str = ""


@dataclass
class CaseResult:
    case: int
    findings: list[Finding] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)

    def check(self, run: Run, problems: list[str], inputs: str) -> None:
        self.notes[run.name.split(" ")[0] + (" --json" if "--json" in run.argv else "")] = (
            f"exit {run.code} in {run.seconds:.1f} s")
        if problems:
            out = run.text
            self.findings.append(Finding(self.case, run.name, problems, inputs,
                                         out[:600] + (" …" if len(out) > 600 else "")))


def describe_input(label: str, data: bytes | str, limit: int = 500) -> str:
    raw = data.encode("utf-8", errors="surrogateescape") if isinstance(data, str) else data
    text = repr(raw[:limit]) + (f" … ({len(raw)} bytes)" if len(raw) > limit else "")
    return f"{label}: {text}"


def run_cases(target: str, n: int, one: Callable[[int, random.Random], CaseResult],
              workers: int) -> list[CaseResult]:
    """Run the cases of a target on a small thread pool (each case's CLI runs are
    subprocesses, so threads only wait); a harness error fails the test as an error."""
    cases = case_numbers(n)
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(one, c, case_rng(target, c)): c for c in cases}
        results = []
        for fut in concurrent.futures.as_completed(futures):
            try:
                results.append(fut.result())
            except Exception as e:
                raise AssertionError(f"fuzz harness error in {target} case {futures[fut]} "
                                     f"(seed {base_seed()}):\n{traceback.format_exc()}") from e
    return sorted(results, key=lambda r: r.case)


def report(target: str, results: list[CaseResult], extra: Sequence[Finding] = ()
           ) -> str | None:
    """The failure message (None when every case held); every finding also goes to the
    file named by PULLUNIT_FUZZ_REPORT, one JSON object a line."""
    findings = [f for r in results for f in r.findings] + list(extra)
    path = os.environ.get(REPORT_ENV)
    if path:
        with open(path, "a") as f:
            for r in results:
                f.write(json.dumps({"target": target, "seed": base_seed(), "case": r.case,
                                    "notes": r.notes}) + "\n")
            for fd in findings:
                f.write(json.dumps({"target": target, "seed": base_seed(), **fd.__dict__}) + "\n")
    if not findings:
        return None
    failed = sorted({f.case for f in findings})
    lines = [f"fuzz target {target!r}: {len(failed)} of {len(results)} cases failed "
             f"(base seed {base_seed()}; replay one with {SEED_ENV}={base_seed()} "
             f"{CASE_ENV}=K)"]
    for fd in sorted(findings, key=lambda x: x.case):
        lines.append(f"\n--- case {fd.case}: pullunit {fd.command}")
        lines += [f"    ! {p}" for p in fd.problems]
        if fd.inputs:
            lines.append(f"    input  {fd.inputs}")
        if fd.output:
            lines.append(f"    output {fd.output!r}")
    return "\n".join(lines)
