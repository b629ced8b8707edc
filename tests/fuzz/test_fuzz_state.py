"""Fuzz target "state": the files pullunit keeps for an app, damaged or replaced, under
status, status --json, validate, generate and pull.

The app's config is valid; what varies is what pullunit finds beside it: the state file
(/var/lib/pullunit/APP.json: wrong types, JSON that is not an object, deep nesting,
truncation, raw bytes, a symlink, a directory), the lock file (APP.lock.toml beside the
config: the same, plus an app config saved under its name), the flock file and the env
file in the runtime dir (symlinks to a file nobody may write, terminal escapes), and
rarely a runtime or state dir that is not a directory. The engine is a socket nobody
listens on and pull.deadline is 1 s, so every pull ends fast as daemon_unavailable.

The first cases are a fixed corpus (CORPUS: what issue 14 and earlier runs found), the
rest are seeded random. Beyond the common invariants: a control app with good state must
be shown as it is and keep its files; when validate passes, pull must not then fail as a
configuration error; no symlink is written through.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fuzz import gen
from tests.fuzz.harness import (
    QUICK,
    SLACK,
    CaseResult,
    Finding,
    Sandbox,
    check_run,
    check_tree,
    describe_input,
    leftover_processes,
    report,
    run_cases,
    run_cli,
    snapshot,
)

TARGET = "state"
CASES = 24  # the first len(CORPUS) of them are the fixed corpus
WORKERS = 3
CONTROL = "zzzz-control"
IMAGE = "127.0.0.1:9/fuzz/app:1.0"
DEADLINE = 1.0


def _config(auth: Path, policy: str) -> str:
    return (f'[image]\nref = "{IMAGE}"\npolicy = "{policy}"\nauth_file = "{auth}"\n\n'
            f'[pull]\ndeadline = "{DEADLINE}s"\ninitial_delay = "100ms"\n'
            'max_delay = "300ms"\nrefresh_timeout = "500ms"\nstall_timeout = "1s"\n')


def _place(path: Path, kind: str, data: bytes, victims: Path) -> str:
    """Put `data` at `path` as a file, or make path a symlink to a file of its own under
    `victims` (which then holds the data and must never change), or a directory.
    Returns a description for the report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "symlink":
        victim = victims / f"{path.name}.target"
        victim.write_bytes(data)
        path.symlink_to(victim)
        return f"{path.name} -> victim holding {data[:200]!r}"
    if kind == "dir":
        path.mkdir()
        return f"{path.name} is a directory"
    path.write_bytes(data)
    return describe_input(path.name, data, 300)


@dataclass(frozen=True)
class Plan:
    """What one case finds beside a valid app: files (path relative to the sandbox ->
    (file|symlink|dir, bytes)), and maybe a runtime or state dir that is a regular file."""

    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    dir_is_file: str | None = None  # "runtime" or "state"


def _random_plan(app: str, auth: Path, policy: str, control_ref: str,
                 rng: random.Random) -> Plan:
    files: dict[str, tuple[str, bytes]] = {}
    # the state file
    kind = rng.choices(["file", "symlink", "dir", "absent"], [80, 8, 4, 8])[0]
    if kind != "absent":
        files[f"state/{app}.json"] = (kind, gen.state_bytes(gen.valid_state(app, IMAGE, rng),
                                                            rng))
    # the lock file beside the config
    kind = rng.choices(["file", "symlink", "dir", "absent"], [55, 5, 3, 37])[0]
    if kind != "absent":
        files[f"cfg/{app}.lock.toml"] = (kind, gen.lock_bytes(
            gen.valid_lock(IMAGE, rng), _config(auth, policy), rng))
    # the flock file and the env file in the runtime dir
    kind = rng.choices(["file", "symlink", "absent"], [10, 20, 70])[0]
    if kind != "absent":
        files[f"run/{app}.lock"] = (kind, b"12345\n")
    kind = rng.choices(["file", "symlink", "absent"], [30, 10, 60])[0]
    if kind != "absent":
        value = gen.odd_string(rng) if rng.random() < 0.7 else control_ref
        files[f"run/{app}.env"] = (kind, f"PULLUNIT_IMAGE={value}\n".encode(
            "utf-8", errors="surrogateescape"))
    # rarely: a runtime or state dir that is a file
    r = rng.random()
    return Plan(files, "runtime" if r < 0.05 else "state" if r < 0.08 else None)


def _state_with(app: str, **changes: Any) -> bytes:
    data = gen.valid_state(app, IMAGE, random.Random(0))
    data.update(changes)
    return json.dumps(data).encode()


_LOCK = gen.valid_lock(IMAGE, random.Random(0))
# Fixed cases run before the seeded ones, whatever the seed (issue 14 and what the
# fuzz tier found): name, and a plan made from (app, auth file, policy).
CORPUS: list[Any] = [
    lambda app, auth, policy: ("state file holds JSON null", Plan(
        {f"state/{app}.json": ("file", b"null")})),
    lambda app, auth, policy: ("state file holds a list", Plan(
        {f"state/{app}.json": ("file", b"[]")})),
    lambda app, auth, policy: ("state file nested 100000 deep", Plan(
        {f"state/{app}.json": ("file", b"[" * 100000 + b"]" * 100000)})),
    lambda app, auth, policy: ("flock file is a symlink", Plan(
        {f"run/{app}.lock": ("symlink", b"precious\n")})),
    lambda app, auth, policy: ("lock file is an app config", Plan(
        {f"cfg/{app}.lock.toml": ("file", _config(auth, policy).encode())})),
    lambda app, auth, policy: ("lock file nested 1000 deep", Plan(
        {f"cfg/{app}.lock.toml": ("file", gen.toml_doc(_LOCK).encode()
                                  + f"x = {gen.deep_array(1000)}\n".encode())})),
    lambda app, auth, policy: ("last failure message with terminal escapes", Plan(
        {f"state/{app}.json": ("file", _state_with(app, last_failure={
            "at": 1.7e9, "cls": "not_found", "exit_code": 66,
            "message": "\x1b]0;pwned\x07\x1b[2Jmanifest unknown"}))})),
    lambda app, auth, policy: ("env file with terminal escapes", Plan(
        {f"run/{app}.env": ("file", b"PULLUNIT_IMAGE=\x1b]0;pwned\x07\x1b[2Jx\n")})),
    lambda app, auth, policy: ("runtime dir is a regular file", Plan({}, "runtime")),
]


def one_case(tmp: Path) -> Any:
    def case_fn(case: int, rng: random.Random) -> CaseResult:
        res = CaseResult(case)
        box = Sandbox(tmp / f"c{case:03d}", password=f"FzPw-{case}-{rng.getrandbits(48):x}")
        auth = box.root / "auth" / "config.json"
        auth.parent.mkdir()
        auth.write_text(json.dumps(box.docker_config("127.0.0.1:9")))
        app = f"fz{case:03d}"
        policy = rng.choice(["missing", "always"])
        (box.cfg / f"{app}.toml").write_text(_config(auth, policy))
        (box.cfg / f"{CONTROL}.toml").write_text(_config(auth, "missing"))
        box.state.mkdir()
        box.run.mkdir()
        control_state = gen.valid_state(CONTROL, IMAGE, rng)
        (box.state / f"{CONTROL}.json").write_text(json.dumps(control_state))
        control_ref = control_state["current"]["reference"]
        (box.run / f"{CONTROL}.env").write_text(f"PULLUNIT_IMAGE={control_ref}\n")
        if case < len(CORPUS):
            name, plan = CORPUS[case](app, auth, policy)
            inputs = [f"corpus case {name!r}", f"policy={policy}"]
        else:
            plan = _random_plan(app, auth, policy, control_ref, rng)
            inputs = [f"policy={policy}"]
        victims = box.victim.parent
        for rel, (kind, data) in plan.files.items():
            inputs.append(_place(box.root / rel, kind, data, victims))
        env_extra: dict[str, str] = {}
        if plan.dir_is_file:
            var = f"PULLUNIT_{plan.dir_is_file.upper()}_DIR"
            (box.root / f"{plan.dir_is_file}-file").write_text("not a dir\n")
            env_extra[var] = str(box.root / f"{plan.dir_is_file}-file")
            inputs.append(f"{var} is a regular file")
        env = box.env(**env_extra)
        described = "; ".join(inputs)

        before = snapshot(box.root)
        secrets = box.secrets()
        cfg = ["--config-dir", str(box.cfg)]

        validate = run_cli(["validate", *cfg], box, QUICK, env)
        res.check(validate, check_run(validate, secrets, frozenset({0, 78})), described)

        generate = run_cli(["generate", *cfg, "--output-dir", str(box.out)], box, QUICK, env)
        problems = check_run(generate, secrets)
        if not (box.out / f"{CONTROL}.service").exists():
            problems.append("the control app got no units")
        res.check(generate, problems, described)

        # a state dir that is a file is every app's problem: then 74 is fair
        status_codes = frozenset({0, 1, 74} if "PULLUNIT_STATE_DIR" in env_extra else {0, 1})
        status = run_cli(["status", *cfg], box, QUICK, env)
        problems = check_run(status, secrets, status_codes)
        if status.code != 74 and control_ref.encode() not in status.stdout:
            problems.append("status does not show the control app's image in use")
        res.check(status, problems, described)

        status_json = run_cli(["status", *cfg, "--json"], box, QUICK, env)
        problems = check_run(status_json, secrets, status_codes)
        doc = status_json.json()
        rows = {a.get("app"): a for a in doc.get("apps", [])} if isinstance(doc, dict) else {}
        row = rows.get(CONTROL)
        if not isinstance(doc, dict):
            if status_json.code != 74:
                problems.append("status --json printed no JSON object")
        elif row is None or row.get("error") is not None:
            problems.append("status --json: the control app is missing or has an error")
        elif "PULLUNIT_STATE_DIR" not in env_extra and (
                (row.get("current") or {}).get("reference") != control_ref):
            problems.append("status --json: the control app's current image is not its own")
        res.check(status_json, problems, described)

        pull = run_cli(["pull", *cfg, app, "--json"], box, DEADLINE + SLACK, env)
        problems = check_run(pull, secrets)
        if validate.code == 0 and pull.code == 78:
            problems.append("validate passed, then pull failed as a configuration error")
        res.check(pull, problems, described)

        after = snapshot(box.root)
        tree = check_tree(box, before, after, [app, CONTROL]) + leftover_processes(box)
        for p in (f"state/{CONTROL}.json", f"run/{CONTROL}.env"):
            if before.get(p) != after.get(p):
                tree.append(f"the control app's {p} changed")
        if tree:
            res.findings.append(Finding(case, "(all commands)", tree, described))
        return res
    return case_fn


@pytest.mark.timeout(600)
def test_fuzz_state_and_lock_files(tmp_path: Path) -> None:
    results = run_cases(TARGET, CASES, one_case(tmp_path), WORKERS)
    message = report(TARGET, results)
    if message:
        pytest.fail(message, pytrace=False)
