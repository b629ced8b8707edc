"""Benchmark `pullunit generate` (200 apps) and `pullunit-generator` (20 apps).

Each command runs as a subprocess, exactly as an admin or systemd runs it, interleaved
round by round with the interpreter baseline (`python3 -c pass`, the same interpreter
the console scripts use) so that machine noise hits all of them alike. Reported: medians
(and min, p90) over the rounds, and the median minus the baseline median, which is the
cost pullunit adds on top of starting Python.

    .venv/bin/python benchmarks/bench_generate.py [--rounds N] [--write-readme]

Targets (2-core machine): generate for 200 apps < 0.5 s; generator for 20 apps < 150 ms.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"
BIN = Path(sys.executable).parent
START, END = "<!-- bench_generate:start -->", "<!-- bench_generate:end -->"
GEN_TMPFS = "pullunit-generator, 20 apps, NORMAL_DIR on tmpfs"
GEN_DISK = "pullunit-generator, 20 apps, NORMAL_DIR on disk"
TARGETS = {"generate, 200 apps, fresh output dir": 0.5,
           "generate, 200 apps, units up to date": 0.5,
           GEN_TMPFS: 0.150,
           GEN_DISK: 0.150}
# systemd hands generators dirs under /run/systemd/generator*, a tmpfs.
TMPFS = Path("/dev/shm")


def app_config(i: int) -> str:
    """A spread of realistic configs: every fourth uses most of the schema."""
    text = f'[image]\nref = "registry.example.com:5000/team/app{i}:1.{i}"\n'
    if i % 4 == 0:
        text += (
            'policy = "always"\n'
            "[pull]\nmax_delay = \"10min\"\ndeadline = \"1h\"\n"
            "[run]\n"
            f'command = ["--port", "{8000 + i}", "--greeting", "100% \\"quoted\\" $HOME"]\n'
            f'env = {{ TZ = "UTC", APP_ID = "{i}", NOTE = "a b; c" }}\n'
            f'ports = ["{10000 + i}:80"]\n'
            f'volumes = ["/srv/app{i}:/data", "cache{i}:/cache:ro"]\n'
            'read_only = true\nmemory = "256m"\n'
            "[unit]\n"
            f'description = "App {i} (100% generated)"\n'
            'after = ["postgresql.service"]\n'
        )
    return text


def make_config_dir(root: Path, n: int) -> Path:
    d = root / f"config-{n}"
    d.mkdir()
    for i in range(n):
        (d / f"app{i:03d}.toml").write_text(app_config(i))
    return d


def timed(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({proc.returncode}): {proc.stderr.decode()}")
    return elapsed


def run(rounds: int) -> tuple[dict[str, list[float]], dict[str, str]]:
    env = dict(os.environ, NO_COLOR="1")
    for k in ("PULLUNIT_CONFIG_DIR", "PULLUNIT_RUNTIME_DIR", "SYSTEMD_LOG_LEVEL"):
        env.pop(k, None)
    root = Path(tempfile.mkdtemp(prefix="pullunit-bench-"))
    shm = Path(tempfile.mkdtemp(prefix="pullunit-bench-", dir=TMPFS if TMPFS.is_dir() else None))
    try:
        cfg200 = make_config_dir(root, 200)
        cfg20 = make_config_dir(root, 20)
        warm = root / "warm"
        subprocess.run([str(BIN / "pullunit"), "generate", "--config-dir", str(cfg200),
                        "--output-dir", str(warm)], env=env, check=True,
                       capture_output=True)
        assert len(list(warm.glob("*.service"))) == 400
        gen_env = dict(env, PULLUNIT_CONFIG_DIR=str(cfg20))
        counter = iter(range(10**9))

        def fresh(name: str, base: Path = root) -> str:
            return str(base / f"{name}-{next(counter)}")

        cases: dict[str, Callable[[], float]] = {
            "python3 -c pass": lambda: timed([sys.executable, "-c", "pass"], env),
            "generate, 200 apps, fresh output dir": lambda: timed(
                [str(BIN / "pullunit"), "generate", "--config-dir", str(cfg200),
                 "--output-dir", fresh("out")], env),
            "generate, 200 apps, units up to date": lambda: timed(
                [str(BIN / "pullunit"), "generate", "--config-dir", str(cfg200),
                 "--output-dir", str(warm)], env),
            GEN_TMPFS: lambda: timed(
                [str(BIN / "pullunit-generator"), fresh("normal", shm)], gen_env),
            GEN_DISK: lambda: timed(
                [str(BIN / "pullunit-generator"), fresh("normal")], gen_env),
        }
        for fn in cases.values():  # warm the page cache and .pyc files
            fn()
        samples: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(rounds):
            for name, fn in cases.items():
                samples[name].append(fn())
        # Sanity: the generator produced units and wants links.
        normal = sorted(root.glob("normal-*"))[-1]
        assert len(list(normal.glob("*.service"))) == 40
        assert len(list(normal.glob("multi-user.target.wants/*"))) == 20
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(shm, ignore_errors=True)
    info = {
        "python": platform.python_version(),
        "cpus": str(os.cpu_count()),
        "machine": f"{platform.system()} {platform.release()} {platform.machine()}",
        "rounds": str(rounds),
        "date": time.strftime("%Y-%m-%d"),
        "tmpfs": str(TMPFS) if TMPFS.is_dir() else "n/a (fell back to disk)",
    }
    return samples, info


def p90(xs: list[float]) -> float:
    return statistics.quantiles(xs, n=10)[-1] if len(xs) >= 2 else xs[0]


def table(samples: dict[str, list[float]], info: dict[str, str]) -> str:
    base = statistics.median(samples["python3 -c pass"])
    lines = [
        f"Measured {info['date']}: {info['machine']}, {info['cpus']} CPUs, Python "
        f"{info['python']}, {info['rounds']} interleaved rounds "
        f"(`.venv/bin/python benchmarks/bench_generate.py --write-readme`); tmpfs: "
        f"{info['tmpfs']}.",
        "",
        "| command | median | min | p90 | median - baseline | target | |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, xs in samples.items():
        med = statistics.median(xs)
        target = TARGETS.get(name)
        verdict = "" if target is None else ("ok" if med < target else "**MISSED**")
        over = "" if name == "python3 -c pass" else f"{(med - base) * 1000:.0f} ms"
        lines.append(
            f"| {name} | {med * 1000:.0f} ms | {min(xs) * 1000:.0f} ms | {p90(xs) * 1000:.0f} ms"
            f" | {over} | {'' if target is None else f'< {target * 1000:.0f} ms'} | {verdict} |")
    return "\n".join(lines)


def write_readme(section: str) -> None:
    block = f"{START}\n{section}\n{END}"
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + block + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n## generate and generator\n\n" + block + "\n"
    README.write_text(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=21)
    ap.add_argument("--write-readme", action="store_true",
                    help=f"replace the results block in {README}")
    args = ap.parse_args()
    samples, info = run(args.rounds)
    section = table(samples, info)
    print(section)
    if args.write_readme:
        write_readme(section)
    base = statistics.median(samples["python3 -c pass"])
    missed = [n for n, t in TARGETS.items() if statistics.median(samples[n]) >= t]
    if missed:
        print(f"\nmissed targets: {', '.join(missed)} (baseline {base * 1000:.0f} ms)")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
