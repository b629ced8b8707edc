"""The systemd generator for 20 apps that use drop-ins and most container keys, against
today's generator (a baseline commit) for the same 20 apps written with the keys it had.

Both run as systemd runs a generator: a fresh process, `pullunit-generator NORMAL_DIR`
with PULLUNIT_CONFIG_DIR set, NORMAL_DIR fresh on tmpfs. Each tree is imported from its
own source checkout (PYTHONPATH; run from a scratch directory, as `-c` puts the working
directory first on sys.path) by /usr/bin/python3, as the .deb runs it (the venv's
editable install would put the checkout's code ahead of PYTHONPATH), so only pullunit's
code differs. Both trees are byte-compiled first, as the .deb's py3compile does: a session
with PYTHONDONTWRITEBYTECODE=1 would otherwise compile every module from source on every
run and measure the size of the source instead.
Rounds are interleaved (the order alternates every round) with `python3 -c pass`, and
the verdict is on the median of the per-round ratios new/old: the two commands of a round
run back to back and see the same load.

    .venv/bin/python benchmarks/bench_generator_keys.py [--baseline REV] [--rounds N]
        [--runs K] [--write-readme]

Target (issue 13): within 10 % of the baseline: the median over the runs of their median
per-round ratio <= 1.10; every run's ratio is shown, for the spread.
"""

from __future__ import annotations

import argparse
import compileall
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
README = HERE / "README.md"
START, END = "<!-- bench_generator_keys:start -->", "<!-- bench_generator_keys:end -->"
# The last commit before issue 13's keys and drop-ins.
DEFAULT_BASELINE = "989253b"
TARGET = 1.10
APPS = 20
TMPFS = Path("/dev/shm")
PYTHON = "/usr/bin/python3"
GENERATOR = "import sys; from pullunit.sdgenerator import main; raise SystemExit(main())"


def old_config(i: int) -> str:
    """What an app had to write before issue 13: the same settings, as docker_args."""
    return (
        f'[image]\nref = "registry.example.com:5000/team/app{i}:1.{i}"\n'
        "[run]\n"
        f'command = ["--port", "{8000 + i}"]\n'
        f'env = {{ TZ = "UTC", APP_ID = "{i}" }}\n'
        f'ports = ["{10000 + i}:80"]\n'
        f'volumes = ["/srv/app{i}:/data"]\n'
        "docker_args = [\n"
        '  "--memory=256m", "--memory-swap=512m", "--cpus=1.5", "--pids-limit=200",\n'
        '  "--shm-size=64m", "--ulimit=nofile=1024:2048", "--log-driver=none",\n'
        '  "--read-only", "--tmpfs=/tmp", "--cap-drop=ALL", "--cap-add=NET_BIND_SERVICE",\n'
        '  "--security-opt=no-new-privileges", "--sysctl=net.core.somaxconn=1024",\n'
        f'  "--hostname=app{i}", "--dns=10.0.0.53", "--dns-search=example.com",\n'
        '  "--add-host=db.internal:10.0.0.5", "--label=team=web", "--workdir=/srv",\n'
        '  "--init", "--stop-signal=SIGINT",\n'
        "]\n"
        "[unit]\n"
        f'description = "App {i}"\n'
        'after = ["postgresql.service"]\n'
    )


def new_config(i: int) -> tuple[str, dict[str, str]]:
    """The same app with issue 13's keys, and two drop-ins (a host override, a limit)."""
    main = (
        f'[image]\nref = "registry.example.com:5000/team/app{i}:1.{i}"\n'
        "[run]\n"
        f'command = ["--port", "{8000 + i}"]\n'
        f'env = {{ TZ = "UTC", APP_ID = "{i}" }}\n'
        f'ports = ["{10000 + i}:80"]\n'
        f'volumes = ["/srv/app{i}:/data"]\n'
        'memory = "256m"\nmemory_swap = "512m"\ncpus = 1.5\npids_limit = 200\n'
        'shm_size = "64m"\n'
        "read_only = true\n"
        'tmpfs = ["/tmp"]\ncap_drop = ["ALL"]\ncap_add = ["NET_BIND_SERVICE"]\n'
        "no_new_privileges = true\n"
        f'hostname = "app{i}"\ndns = ["10.0.0.53"]\ndns_search = ["example.com"]\n'
        'add_hosts = { "db.internal" = "10.0.0.5" }\n'
        'workdir = "/srv"\ninit = true\nstop_signal = "SIGINT"\n'
        "[run.ulimits]\nnofile = { soft = 1024, hard = 2048 }\n"
        "[run.sysctls]\n\"net.core.somaxconn\" = \"1024\"\n"
        "[run.labels]\nteam = \"web\"\n"
        "[unit]\n"
        f'description = "App {i}"\n'
        'after = ["postgresql.service"]\n'
    )
    dropins = {
        "10-host.toml": '[run]\nlog_driver = "none"\n[run.labels]\nhost = "web-1"\n',
        "50-limits.toml": '[run]\nmemory = "512m"\n',
    }
    return main, dropins


def make_dirs(root: Path) -> tuple[Path, Path]:
    old, new = root / "old", root / "new"
    old.mkdir()
    new.mkdir()
    for i in range(APPS):
        name = f"app{i:02d}"
        (old / f"{name}.toml").write_text(old_config(i))
        main, dropins = new_config(i)
        (new / f"{name}.toml").write_text(main)
        d = new / f"{name}.toml.d"
        d.mkdir()
        for fname, text in dropins.items():
            (d / fname).write_text(text)
    return old, new


def checkout(rev: str, into: Path) -> Path:
    """The baseline's pullunit/ and templates/, from git (no worktree left behind)."""
    tree = into / "baseline"
    tree.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "pullunit", "templates"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def timed(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          cwd=TMPFS if TMPFS.is_dir() else "/")
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{argv} failed ({proc.returncode}): {proc.stderr.decode()}")
    return elapsed


def run(baseline: str, rounds: int) -> dict[str, list[float]]:
    env = dict(os.environ, NO_COLOR="1")
    for k in ("PULLUNIT_CONFIG_DIR", "PULLUNIT_RUNTIME_DIR", "SYSTEMD_LOG_LEVEL", "PYTHONPATH"):
        env.pop(k, None)
    root = Path(tempfile.mkdtemp(prefix="pullunit-bench-keys-"))
    shm = Path(tempfile.mkdtemp(prefix="pullunit-bench-keys-",
                                dir=TMPFS if TMPFS.is_dir() else None))
    try:
        old_cfg, new_cfg = make_dirs(root)
        base_tree = checkout(baseline, root)
        for tree in (base_tree, ROOT):
            compileall.compile_dir(str(tree / "pullunit"), quiet=1)
        old_env = dict(env, PULLUNIT_CONFIG_DIR=str(old_cfg), PYTHONPATH=str(base_tree))
        new_env = dict(env, PULLUNIT_CONFIG_DIR=str(new_cfg), PYTHONPATH=str(ROOT))
        counter = iter(range(10**9))

        def fresh() -> str:
            return str(shm / f"normal-{next(counter)}")

        cases: dict[str, Callable[[], float]] = {
            "python3 -c pass": lambda: timed([PYTHON, "-c", "pass"], env),
            "old": lambda: timed([PYTHON, "-c", GENERATOR, fresh()], old_env),
            "new": lambda: timed([PYTHON, "-c", GENERATOR, fresh()], new_env),
        }
        for fn in cases.values():  # page cache, .pyc files
            fn()
        check_outputs(shm)
        samples: dict[str, list[float]] = {name: [] for name in cases}
        order = list(cases)
        for r in range(rounds):
            for name in (order if r % 2 == 0 else order[::-1]):
                samples[name].append(cases[name]())
            for d in shm.glob("normal-*"):
                shutil.rmtree(d)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(shm, ignore_errors=True)
    return samples


def check_outputs(shm: Path) -> None:
    """The warm-up runs made the units: the new tree applied the keys and the drop-ins."""
    runs = sorted(shm.glob("normal-*"), key=lambda p: int(p.name.split("-")[1]))
    old, new = runs[0], runs[1]
    for d in (old, new):
        assert len(list(d.glob("*.service"))) == 2 * APPS, d
    text = (new / "app00.service").read_text()
    for needle in ("--memory 512m", "--label host=web-1", "--cpus 1.5", "--read-only"):
        assert needle in text or needle.replace(" ", "=") in text, (needle, text)


def ratios(samples: dict[str, list[float]]) -> list[float]:
    return [n / o for n, o in zip(samples["new"], samples["old"], strict=True)]


def summary(samples: dict[str, list[float]]) -> tuple[float, float, float, float]:
    base = statistics.median(samples["python3 -c pass"])
    return (statistics.median(samples["old"]), statistics.median(samples["new"]),
            statistics.median(ratios(samples)), base)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", default=DEFAULT_BASELINE)
    ap.add_argument("--rounds", type=int, default=31)
    ap.add_argument("--runs", type=int, default=3, help="independent runs, for the spread")
    ap.add_argument("--write-readme", action="store_true")
    args = ap.parse_args()
    rows = []
    for k in range(args.runs):
        old, new, ratio, base = summary(run(args.baseline, args.rounds))
        rows.append((old, new, ratio, base))
        print(f"run {k + 1}: old {old * 1000:.0f} ms, new {new * 1000:.0f} ms, median "
              f"per-round ratio {ratio:.3f}, python3 -c pass {base * 1000:.0f} ms",
              flush=True)
    worst = max(r[2] for r in rows)
    best = min(r[2] for r in rows)
    verdict = statistics.median(r[2] for r in rows)
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')}: {platform.system()} {platform.release()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}; {args.runs} runs of "
        f"{args.rounds} interleaved rounds, baseline {args.baseline}, {APPS} apps, NORMAL_DIR "
        "on tmpfs (`.venv/bin/python benchmarks/bench_generator_keys.py --write-readme`).",
        "",
        "| run | today's generator (docker_args) | with keys + 2 drop-ins per app "
        "| median per-round ratio | python3 -c pass |",
        "|---|---:|---:|---:|---:|",
    ]
    for k, (old, new, ratio, base) in enumerate(rows, 1):
        lines.append(f"| {k} | {old * 1000:.0f} ms | {new * 1000:.0f} ms | {ratio:.3f} "
                     f"| {base * 1000:.0f} ms |")
    lines.append("")
    lines.append(f"Target: median ratio over the runs <= {TARGET:.2f}: {verdict:.3f}, "
                 f"{'ok' if verdict <= TARGET else '**MISSED**'} (runs {best:.3f}-{worst:.3f}).")
    section = "\n".join(lines)
    print(section)
    if args.write_readme:
        text = README.read_text()
        block = f"{START}\n{section}\n{END}"
        if START in text:
            head, rest = text.split(START, 1)
            text = head + block + rest.split(END, 1)[1]
        else:
            text = text.rstrip("\n") + ("\n\n## generator with container keys and drop-ins\n\n"
                                        + block + "\n")
        README.write_text(text)
    return 0 if verdict <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
