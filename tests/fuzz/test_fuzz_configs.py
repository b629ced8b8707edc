"""Fuzz target "configs": mutated app configs (examples and the test corpora) through
validate, generate, status, status --json, pin --check and prefetch --json.

Each case's config dir holds the mutated app and a valid control app that sorts after
it, so "other apps are unaffected" is checked on every command. The engine is a unix
socket nobody listens on (commands that need it fail as daemon_unavailable at once), so
no registry is ever contacted. At the end, the units of every app that validated are
loaded by systemd itself (`systemd --test`), and what it read back must be exactly what
the config said: no directive, specifier or $-expansion crept in. The first cases are a
fixed corpus (CORPUS: what issue 14 and earlier runs found), the rest are seeded random.
"""

from __future__ import annotations

import json
import math
import random
import tomllib
from pathlib import Path
from typing import Any

import pytest

from pullunit import paths
from pullunit.config import AppConfig, Policy, load_app
from pullunit.errors import ConfigError
from pullunit.render import pull_argv, start_commands
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
from tests.unit import sdtools

TARGET = "configs"
CASES = 30  # the first len(CORPUS) of them are the fixed corpus
WORKERS = 3
REPO = Path(__file__).resolve().parents[2]
CORPORA = [REPO / "examples" / "web.toml", REPO / "examples" / "minimal.toml",
           REPO / "tests" / "unit" / "golden" / "tricky.toml"]
CONTROL = "zzzz-control"
CONTROL_TOML = ('[image]\nref = "127.0.0.1:9/fuzz/control:1.0"\n\n'
                '[pull]\ndeadline = "1s"\ninitial_delay = "100ms"\nmax_delay = "300ms"\n')
# Every corpus gets these, so a pull that is retried (prefetch) ends within a second.
FAST_PULL = {"initial_delay": "100ms", "max_delay": "300ms", "deadline": "1s",
             "stall_timeout": "1s", "refresh_timeout": "1s", "rate_limit_delay": "1s"}
LONGEST_PULL = 8.0  # a mutated deadline longer than this: prefetch is not run for the case
EXE = "/usr/bin/true"
RUNTIME_DIR_MISMATCH = ("with PULLUNIT_RUNTIME_DIR set, the run unit reads its env file from "
                        "that dir, but the pull unit, which writes it, is not told the dir")


def _base(path: Path, auth_file: Path) -> dict[str, Any]:
    data = tomllib.loads(path.read_text())
    data["pull"] = {**data.get("pull", {}), **FAST_PULL}
    if "auth_file" in data["image"] or path.name == "web.toml":
        data["image"]["auth_file"] = str(auth_file)
    return data


def _set(table: str, key: str, value: Any) -> Any:
    def change(data: dict[str, Any]) -> None:
        data.setdefault(table, {})[key] = value
    return change


# Fixed cases run before the seeded ones, whatever the seed (issue 14 and what the fuzz
# tier found): name, app name (None: the case's own), change to examples/web.toml.
CORPUS: list[tuple[str, str | None, Any]] = [
    ("restart_sec = 1 followed by 400 zeros", None, _set("run", "restart_sec", gen.Raw(
        gen.HUGE_INT))),
    ("an array nested 1000 deep", None, _set("run", "command", gen.deep_array(1000))),
    ("a 230-character app name", "a" * 230, lambda data: None),
    ("400 arguments of 3,000 characters", None, _set("run", "command", ["x" * 3000] * 400)),
    ("stop_timeout and restart_sec of 292277026596 years", None, lambda data: data["run"].update(
        stop_timeout="292277026596y", restart_sec="292277026596y")),
    ("tag ténè", None, _set("image", "ref", "registry.example.com:5000/shop/web:ténè")),
    ("Arabic-Indic digits in a port", None, _set("run", "ports", ["\u0668\u0660:\u0668\u0660"])),
    ("a table named with terminal escapes", None, lambda data: data.update(
        {"\x1b]0;pwned\x07\x1b[2J": {"x": 1}})),
    ("a file name with terminal escapes", "x\x1b[2Jy", lambda data: None),
]


def _docker_wants_ascii(app: AppConfig) -> list[str]:
    """Docker parses these with ASCII grammars: a value validate accepts must be ASCII,
    or the pull or the run fails later, as `unknown`, retried forever."""
    run = app.run
    values = {"image.ref": str(app.image.ref), "run.name": run.name,
              "run.network": run.network or "", "run.user": run.user or "",
              "run.memory": run.memory or "", "run.cpus": run.cpus or "",
              "run.hostname": run.hostname or "", "run.stop_signal": run.stop_signal or "",
              **{f"run.networks[{i}]": n.name + "".join(n.aliases)
                 for i, n in enumerate(run.networks)},
              **{f"run.cap_add[{i}]": c for i, c in enumerate(run.cap_add)},
              **{f"run.ports[{i}]": p for i, p in enumerate(run.ports)}}
    return [f"validate accepted {key} = {value!r}, which Docker cannot parse (not ASCII)"
            for key, value in values.items() if not value.isascii()]


def _oracle(path: Path) -> AppConfig | ConfigError | Exception:
    """What pullunit's own validation says about the file (in this process)."""
    try:
        return load_app(path)
    except Exception as e:  # ConfigError, or the bug the CLI is about to show as well
        return e


def _lines(run_stdout: bytes) -> list[bytes]:
    return run_stdout.splitlines()


def one_case(tmp: Path, units: list[tuple[int, AppConfig, Path]]
             ) -> Any:
    def case_fn(case: int, rng: random.Random) -> CaseResult:
        res = CaseResult(case)
        box = Sandbox(tmp / f"c{case:03d}", password=f"FzPw-{case}-{rng.getrandbits(48):x}")
        auth = box.root / "auth" / "config.json"
        auth.parent.mkdir()
        auth.write_text(json.dumps(box.docker_config("registry.example.com:5000")))
        if case < len(CORPUS):
            what, corpus_name, change = CORPUS[case]
            name = corpus_name or f"fz{case:03d}"
            data = _base(CORPORA[0], auth)
            change(data)
            raw = gen.toml_doc(data).encode()
            inputs = f"corpus case {what!r}; "
        else:
            base = _base(rng.choice(CORPORA), auth)
            name = gen.app_name(rng, f"fz{case:03d}")
            data = gen.mutate_config(base, rng)
            raw = gen.config_bytes(data, rng)
            inputs = ""
        path = box.cfg / f"{name}.toml"
        path.write_bytes(raw)
        (box.cfg / f"{CONTROL}.toml").write_text(CONTROL_TOML)
        inputs += describe_input(f"cfg/{name!r}.toml", raw)
        oracle = _oracle(path)
        apps = [name, CONTROL]

        before = snapshot(box.root)
        secrets = box.secrets()
        cfg = ["--config-dir", str(box.cfg)]

        validate = run_cli(["validate", *cfg], box, QUICK)
        res.check(validate, check_run(validate, secrets, frozenset({0, 78})), inputs)
        fz_ok = f"{path}: ok".encode() in validate.stdout
        if f"{box.cfg / CONTROL}.toml: ok".encode() not in validate.stdout:
            res.check(validate, ["the control app was not reported valid"], inputs)
        # validate is load_app plus rendering (systemd's line limit, argument sizes): it may
        # reject what load_app takes (then generate must write no units: checked below),
        # never the other way round.
        if fz_ok and not isinstance(oracle, AppConfig) and validate.code is not None:
            res.check(validate, [f"validate accepted the app, load_app says "
                                 f"{type(oracle).__name__}"], inputs)
        if fz_ok and isinstance(oracle, AppConfig):
            res.check(validate, _docker_wants_ascii(oracle), inputs)

        generate = run_cli(["generate", *cfg, "--output-dir", str(box.out)], box, QUICK)
        problems = check_run(generate, secrets)
        control_units = [box.out / f"{CONTROL}.service", box.out / f"{CONTROL}-pull.service"]
        fz_units = [box.out / f"{name}.service", box.out / f"{name}-pull.service"]
        if not all(u.exists() for u in control_units):
            problems.append("the control app got no units")
        if fz_ok and not all(u.exists() for u in fz_units):
            problems.append("validate accepted the app, but generate wrote no units for it")
        if fz_ok and generate.code != 0:
            problems.append(f"validate accepted everything, but generate exited {generate.code}")
        if not fz_ok and any(u.exists() for u in fz_units):
            problems.append("units were written for an app that validate rejected")
        if all(u.exists() for u in control_units):
            run_text, pull_text = (u.read_text(errors="replace") for u in control_units)
            # the same in every case: reported once, by the test (RUNTIME_DIR_MISMATCH)
            res.notes["runtime dir"] = str(box.run) in run_text and str(box.run) not in pull_text
        res.check(generate, problems, inputs)
        if fz_ok and isinstance(oracle, AppConfig) and all(u.exists() for u in fz_units):
            units.append((case, oracle, box.cfg))

        status = run_cli(["status", *cfg], box, QUICK)
        problems = check_run(status, secrets, frozenset({0, 1}))
        if CONTROL.encode() not in status.stdout:
            problems.append("status does not show the control app")
        res.check(status, problems, inputs)

        status_json = run_cli(["status", *cfg, "--json"], box, QUICK)
        problems = check_run(status_json, secrets, frozenset({0, 1}))
        doc = status_json.json()
        rows = {a.get("app"): a for a in doc.get("apps", [])} if isinstance(doc, dict) else {}
        if not isinstance(doc, dict):
            problems.append("status --json printed no JSON object")
        elif CONTROL not in rows or rows[CONTROL].get("error") is not None:
            problems.append("status --json: the control app is missing or has an error")
        res.check(status_json, problems, inputs)

        pin = run_cli(["pin", *cfg, "--check"], box, QUICK)
        problems = check_run(pin, secrets)
        if CONTROL not in pin.text:
            problems.append("pin --check never got to the control app")
        res.check(pin, problems, inputs)

        pull_bound = 0.0
        if isinstance(oracle, AppConfig) and oracle.image.policy is Policy.ALWAYS:
            pull_bound = min(oracle.pull.deadline, 600.0)
        if math.isfinite(pull_bound) and pull_bound <= LONGEST_PULL:
            prefetch = run_cli(["prefetch", *cfg, "--json"], box, QUICK + pull_bound + SLACK)
            problems = check_run(prefetch, secrets)
            rows_list = prefetch.json()
            if not (isinstance(rows_list, list)
                    and any(isinstance(r, dict) and r.get("app") == CONTROL for r in rows_list)):
                problems.append("prefetch --json has no row for the control app")
            res.check(prefetch, problems, inputs)
        else:
            res.notes["prefetch"] = f"not run: pull.deadline {pull_bound} s"

        tree = check_tree(box, before, snapshot(box.root), apps) + leftover_processes(box)
        if tree:
            res.findings.append(Finding(case, "(all commands)", tree, inputs))
        return res
    return case_fn


def _systemd_reads_back(units: list[tuple[int, AppConfig, Path]]) -> list[Finding]:
    """systemd's own loader on every unit generated from a valid mutated config: loaded,
    no complaint, and Description= and every argv exactly as configured."""
    seen: set[str] = set()
    batch: list[tuple[int, AppConfig, Path]] = []
    for case, app, cfg in units:
        if app.run_unit not in seen and app.pull_unit not in seen:
            seen |= {app.run_unit, app.pull_unit}
            batch.append((case, app, cfg))
    if not batch:
        return []
    files = [cfg.parent / "out" / u for _, app, cfg in batch for u in (app.run_unit,
                                                                        app.pull_unit)]
    result = sdtools.load_units(files)
    findings = []
    for case, app, cfg in batch:
        problems = [line for line in result.stderr.splitlines()
                    if f"{app.run_unit}:" in line or f"{app.pull_unit}:" in line]
        run = result.units.get(app.run_unit)
        pull = result.units.get(app.pull_unit)
        if run is None or pull is None or run.load_state != "loaded" \
                or pull.load_state != "loaded":
            problems.append("systemd did not load the units")
        else:
            if run.description != app.description:
                problems.append(f"Description= read back as {run.description!r}")
            # docker run, or (several networks) docker create + network connect + start
            commands = start_commands(app)
            want = [_with_image(app, argv) for argv in [*commands.pre, commands.start]]
            try:
                [start] = run.exec_lines["ExecStart"]
                [pull_start] = pull.exec_lines["ExecStart"]
                got = [sdtools.exec_argv(c) for c in
                       [*run.exec_lines.get("ExecStartPre", [])[1:], start]]
                if got != want:
                    problems.append("ExecStart= of the run unit does not read back as "
                                    "the configured argv")
                if sdtools.exec_argv(pull_start) != pull_argv(app, cfg, EXE):
                    problems.append("ExecStart= of the pull unit does not read back as "
                                    "configured")
                # ExecStartPre= removes a container left by an unclean stop: the script
                # (render.rm_argv) gets the marker, docker and the container name as words
                pre = run.exec_lines.get("ExecStartPre")
                if pre:
                    argv = sdtools.exec_argv(pre[0])
                    if (argv[:2] != ["/bin/sh", "-c"] or argv[-2:] != [paths.DOCKER, app.run.name]
                            or not argv[-3].endswith(f"/{app.name}.stopped")):
                        problems.append("ExecStartPre= does not read back as configured")
            except (ValueError, KeyError) as e:
                problems.append(f"unexpected Exec lines: {e}")
        if problems:
            text = (cfg / f"{app.name}.toml").read_bytes()
            findings.append(Finding(case, "generate, then systemd --test", problems,
                                    describe_input(f"cfg/{app.name!r}.toml", text)))
    return findings


def _with_image(app: AppConfig, argv: list[str]) -> list[str]:
    if argv[1] in ("run", "create"):
        argv = list(argv)
        argv[len(argv) - len(app.run.command) - 1] = sdtools.VAR.format("PULLUNIT_IMAGE")
    return argv


@pytest.mark.timeout(600)
def test_fuzz_configs(tmp_path: Path) -> None:
    units: list[tuple[int, AppConfig, Path]] = []
    results = run_cases(TARGET, CASES, one_case(tmp_path, units), WORKERS)
    extra = _systemd_reads_back(units) if sdtools.HAVE_SYSTEMD_TEST else []
    mismatched = [r.case for r in results if r.notes.get("runtime dir")]
    if mismatched:
        extra.append(Finding(mismatched[0], "generate", [
            f"{RUNTIME_DIR_MISMATCH} (in {len(mismatched)} of {len(results)} cases)"]))
    message = report(TARGET, results, extra)
    if message:
        pytest.fail(message, pytrace=False)
