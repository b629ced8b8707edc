"""Fuzz target "registry": a registry that answers with seeded random status codes,
headers (WWW-Authenticate, Content-Type, Retry-After, Docker-Content-Digest, Location),
bodies (JSON errors with odd, huge or escape-laden messages, non-JSON, truncated, wrong
digests), delays, and that sometimes accepts a request and never answers or trickles
its answer a byte a second (tests/testbed/fakeregistry.py).

Two kinds of case, each against a fresh fake registry of its own:
  * ``pull APP --json`` through the real dockerd, with a small stall_timeout and deadline;
    credentials from image.auth_file, sometimes through a credential helper that answers,
    hangs, fails or prints junk. Bound: pull.deadline + slack.
  * ``doctor REF --json``, which talks to the registry itself; credentials from
    ~/.docker/config.json, and sometimes a daemon.json whose proxy URLs hold the password.
    Bound: 3 s (its per-operation limit) for each of its checks, + slack.
The first cases of each are a fixed corpus (gen.registry_corpus: a manifest or /v2/ that
never answers or trickles, a trickling layer, a hanging credential helper, a registry that
echoes the Authorization header, 404s with HTML or terminal escapes), so every documented
bound is tried against both misbehaviours whatever the seed; the rest are seeded random.
Beyond the common invariants: a successful pull leaves an env file holding exactly
``repo@sha256:<64 hex>`` of this registry; a registry that answers every manifest request
with a plain 404 makes the pull fail as not_found (66).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pullunit.boundedhttp import TIMEOUT
from pullunit.doctor import CHECKS
from tests import testbed as tb
from tests.fuzz import gen
from tests.fuzz.harness import (
    SLACK,
    USER,
    CaseResult,
    Finding,
    Sandbox,
    check_run,
    check_tree,
    leftover_processes,
    report,
    run_cases,
    run_cli,
    snapshot,
)
from tests.testbed.fakeregistry import FakeRegistry

pytestmark = pytest.mark.integration
PULL_CASES = 24  # the first len(CORPUS) of them are the fixed corpus
DOCTOR_CASES = 28
WORKERS = 5
DEADLINE = 4.0
PULL_BOUND = DEADLINE + SLACK
DOCTOR_BOUND = len(CHECKS) * TIMEOUT + SLACK
REPO = "pullunit-fuzz/app"


@pytest.fixture(scope="module")
def engine() -> Iterator[Any]:
    """The main dockerd (reused if it runs; stopped at the end only if started here, not
    by another tier's fixture in the same session)."""
    earlier = tb.main_dockerd_started_here()
    try:
        sock = tb.ensure_dockerd()
    except Exception as e:
        pytest.fail(f"the fuzz tier's registry target needs dockerd: {e}", pytrace=False)
    started_here = earlier is None and tb.main_dockerd_started_here() is not None
    import docker

    client = docker.DockerClient(base_url=f"unix://{sock}", version="auto", timeout=60)
    _remove_fuzz_images(client)
    yield client
    _remove_fuzz_images(client)
    client.close()
    if started_here:
        tb.stop_main_dockerd_if_started()


def _remove_fuzz_images(client: Any, address: str | None = None) -> None:
    """Images pulled from fake registries (all of them, or those of one address). The
    low-level list: other cases remove their images at the same time."""
    host = re.escape(address) if address else r"127\.0\.0\.1:\d+"
    pat = re.compile(rf"^{host}/{REPO}[:@]")
    for img in client.api.images(all=True):
        names = (img.get("RepoTags") or []) + (img.get("RepoDigests") or [])
        if any(pat.match(n) for n in names):
            with contextlib.suppress(Exception):
                client.api.remove_image(img["Id"], force=True)


def _helper(box: Sandbox, rng: random.Random, kind: str | None) -> tuple[str, str]:
    """A docker-credential-NAME script on PATH: answers, hangs, fails or prints junk.
    Every loop in it is bounded; its command line names the sandbox (leftover check)."""
    name = f"fuzz{rng.getrandbits(24):x}"
    kind = kind or rng.choice(["answers", "hangs", "fails", "junk", "escapes"])
    body = {
        "answers": f"printf '%s' '{json.dumps({'Username': USER, 'Secret': box.password})}'",
        "hangs": "i=0; while [ $i -lt 60 ]; do sleep 1; i=$((i+1)); done",
        "fails": "printf 'credentials not found \\033[2J\\n' >&2; exit 1",
        "junk": "head -c 300 /dev/urandom",
        "escapes": "printf '\\033]0;pwned\\007\\033[2J{\"Username\": 1}'",
    }[kind]
    bindir = box.root / "bin"
    bindir.mkdir(exist_ok=True)
    script = bindir / f"docker-credential-{name}"
    script.write_text(f"#!/bin/sh\n# {box.root}\ncat >/dev/null\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return name, kind


def _docker_config(box: Sandbox, reg: FakeRegistry, rng: random.Random,
                   forced: str | None) -> tuple[dict[str, Any], str]:
    r = rng.random()
    if forced == "auths":
        r = 1.0
    if r < 0.4 or forced == "helper-hangs":
        name, kind = _helper(box, rng, "hangs" if forced == "helper-hangs" else None)
        return {"credHelpers": {reg.address: name}}, f"credential helper that {kind}"
    if r < 0.5:
        return {}, "no credentials"
    return box.docker_config(reg.address), "auths with a password"


def _daemon_json(box: Sandbox, rng: random.Random) -> str:
    """Proxy URLs in every form that holds a password (doctor's daemon_config shows them)."""
    pw = box.password
    url = rng.choice([f"http://{USER}:{pw}@127.0.0.1:3128", f"socks5://{USER}:{pw}@127.0.0.1:1",
                      f"{USER}:{pw}@127.0.0.1:3128", f"http://{pw}@127.0.0.1:3128",
                      f"http://{USER}:a/{pw}@127.0.0.1:3128", f"http://{USER}:a@{pw}@127.0.0.1:1",
                      f"http://{USER}:{pw} x@127.0.0.1:3128"])
    doc = {"proxies": {"http-proxy": url, "https-proxy": url, "no-proxy": "127.0.0.0/8"}}
    (box.root / "daemon.json").write_text(json.dumps(doc))
    return f"daemon.json proxies {url!r}"


CORPUS = gen.registry_corpus()


def _scenario(case: int, rng: random.Random) -> tuple[Any, str, str | None]:
    """Cases 0..len(CORPUS)-1 are the fixed corpus (started first: they are the slow
    ones); the rest are drawn from the seed."""
    if case < len(CORPUS):
        name, scenario, creds = CORPUS[case]
        return scenario, f"corpus case {name!r}", creds
    scenario, described = gen.registry_scenario(rng)
    return scenario, described, None


def _not_found_body(body: bytes | None) -> bool:
    """A 404 body that says nothing else: not a registry error naming another code."""
    try:
        doc = json.loads(body or b"")
        codes = {e.get("code") for e in doc["errors"]}
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return True
    return codes <= {"MANIFEST_UNKNOWN", "NAME_UNKNOWN", ""}


def _only_404(scenario: Any) -> bool:
    """Every manifest request answered at once with a plain 404, nothing else odd."""
    seq = scenario.replies.get("manifest", ())
    others = [k for k in scenario.replies if k not in ("manifest", "v2")]
    v2_ok = all(r.mode == "answer" and r.status in (200, 401) and not r.delay
                for r in scenario.replies.get("v2", ()))
    return bool(seq) and not others and v2_ok and all(
        r.status == 404 and r.mode == "answer" and not r.headers and not r.delay
        and r.reason is None and _not_found_body(r.body) for r in seq)


def pull_case(tmp: Path, client: Any) -> Any:
    def case_fn(case: int, rng: random.Random) -> CaseResult:
        res = CaseResult(case)
        box = Sandbox(tmp / f"p{case:03d}", password=f"FzPw-{case}-{rng.getrandbits(48):x}")
        scenario, described, forced = _scenario(case, rng)
        policy = rng.choice(["always", "missing"])
        with FakeRegistry(scenario, repo=REPO, seed=f"{case}-{rng.getrandbits(32)}") as reg:
            config, how = _docker_config(box, reg, rng, forced)
            auth = box.root / "auth.json"
            auth.write_text(json.dumps(config))
            app = f"fz{case:03d}"
            (box.cfg / f"{app}.toml").write_text(
                f'[image]\nref = "{reg.ref}"\npolicy = "{policy}"\nauth_file = "{auth}"\n\n'
                f'[pull]\ndeadline = "{DEADLINE}s"\nstall_timeout = "1500ms"\n'
                'initial_delay = "200ms"\nmax_delay = "500ms"\nrefresh_timeout = "2s"\n'
                'rate_limit_delay = "500ms"\n')
            inputs = f"policy={policy}; {how}; {described}"
            env = box.env(PATH=f"{box.root / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}")
            env.pop("DOCKER_HOST")  # the real engine, on /run/docker.sock
            before = snapshot(box.root)
            try:
                pull = run_cli(["pull", "--config-dir", str(box.cfg), app, "--json"], box,
                               PULL_BOUND, env)
                problems = check_run(pull, box.secrets())
                if pull.code == 0:
                    env_file = box.run / f"{app}.env"
                    want = re.compile(rf"PULLUNIT_IMAGE={re.escape(reg.address)}/{REPO}"
                                      r"@sha256:[0-9a-f]{64}\n")
                    text = env_file.read_text() if env_file.exists() else ""
                    if not want.fullmatch(text):
                        problems.append(f"pull succeeded, but the env file holds {text!r}")
                if _only_404(scenario) and pull.code is not None and pull.code != 66:
                    problems.append(f"every manifest request got a 404, but pull exited "
                                    f"{pull.code}, not 66 (not_found)")
                res.check(pull, problems, inputs)
                after = snapshot(box.root)
            finally:
                _remove_fuzz_images(client, reg.address)
            res.notes["requests"] = reg.kinds_seen()
        tree = check_tree(box, before, after, [app]) + leftover_processes(box)
        if tree:
            res.findings.append(Finding(case, "pull (files, processes)", tree, inputs))
        return res
    return case_fn


def doctor_case(tmp: Path) -> Any:
    def case_fn(case: int, rng: random.Random) -> CaseResult:
        res = CaseResult(case)
        box = Sandbox(tmp / f"d{case:03d}", password=f"FzPw-{case}-{rng.getrandbits(48):x}")
        scenario, described, forced = _scenario(case, rng)
        with FakeRegistry(scenario, repo=REPO, seed=f"d{case}") as reg:
            config, how = _docker_config(box, reg, rng, forced)
            (box.root / "home" / ".docker").mkdir()
            (box.root / "home" / ".docker" / "config.json").write_text(json.dumps(config))
            extra = _daemon_json(box, rng) if rng.random() < 0.3 else "no daemon.json"
            inputs = f"{how}; {extra}; {described}"
            env = box.env(PATH=f"{box.root / 'bin'}:{os.environ.get('PATH', '/usr/bin:/bin')}")
            env.pop("DOCKER_HOST")
            before = snapshot(box.root)
            doctor = run_cli(["doctor", reg.ref, "--json"], box, DOCTOR_BOUND, env)
            problems = check_run(doctor, box.secrets(), frozenset({0, 1}))
            if doctor.code in (0, 1) and not isinstance(doctor.json(), list):
                problems.append("doctor --json printed no JSON list")
            res.check(doctor, problems, inputs)
            after = snapshot(box.root)
        tree = check_tree(box, before, after, []) + leftover_processes(box)
        if tree:
            res.findings.append(Finding(case, "doctor (files, processes)", tree, inputs))
        return res
    return case_fn


@pytest.mark.timeout(900)
def test_fuzz_registry_pull(tmp_path: Path, engine: Any) -> None:
    results = run_cases("registry-pull", PULL_CASES, pull_case(tmp_path, engine), WORKERS)
    message = report("registry-pull", results)
    if message:
        pytest.fail(message, pytrace=False)


@pytest.mark.timeout(900)
def test_fuzz_registry_doctor(tmp_path: Path, engine: Any) -> None:
    results = run_cases("registry-doctor", DOCTOR_CASES, doctor_case(tmp_path), WORKERS)
    message = report("registry-doctor", results)
    if message:
        pytest.fail(message, pytrace=False)
