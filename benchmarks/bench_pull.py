"""Puller benchmarks against the real engine and a loopback registry.

1. Cold pull of a multi-layer image (>= 100 MB): `pullunit pull` vs `docker pull`,
   interleaved (the order alternates every round), image and its layers removed before
   every run. Target: median ratio <= 1.05.
2. Warm start (image present, policy missing): `pullunit pull` vs `docker image inspect`.
   Target: pullunit <= 150 ms median.
3. Peak RSS (VmHWM) of `pullunit pull` while it waits in backoff. Target: <= 40 MB.

    .venv/bin/python benchmarks/bench_pull.py [--rounds 5] [--warm-rounds 21] [--write-readme]

Needs root, dockerd on /run/docker.sock (started if absent) and Debian's docker-registry.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.testbed.dockerd import ensure_dockerd  # noqa: E402
from tests.testbed.images import make_big_image  # noqa: E402
from tests.testbed.registry import Registry  # noqa: E402

DOCKER = "/usr/bin/docker"
PULLUNIT = str(ROOT / ".venv" / "bin" / "pullunit")
README = ROOT / "benchmarks" / "README.md"


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def remove_image(ref: str) -> None:
    subprocess.run([DOCKER, "rmi", "-f", ref], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)
    subprocess.run([DOCKER, "image", "prune", "-f"], stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)


def peak_rss_in_backoff(env: dict[str, str], cfg: Path) -> float:
    """Start a pull against a port nothing listens on and read VmHWM while it sleeps."""
    (cfg / "down.toml").write_text('[image]\nref = "127.0.0.1:9/bench/down:1"\n'
                                   '[pull]\ninitial_delay = "20s"\njitter = "none"\n')
    p = subprocess.Popen([PULLUNIT, "pull", "--config-dir", str(cfg), "down"], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stderr is not None
        for line in p.stderr:  # wait until it says it is retrying: it is in backoff now
            if "retrying in" in line:
                break
        time.sleep(1.0)
        status = Path(f"/proc/{p.pid}/status").read_text()
        hwm = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        return int(hwm.split()[1]) / 1024
    finally:
        p.terminate()
        p.wait(5)


def cold_rounds(ref: str, pull_cmd: list[str], env: dict[str, str],
                rounds: int) -> dict[str, list[float]]:
    cold: dict[str, list[float]] = {"docker pull": [], "pullunit pull": []}
    for r in range(rounds):
        order = ["docker pull", "pullunit pull"]
        if r % 2:
            order.reverse()
        for name in order:
            remove_image(ref)
            cmd = [DOCKER, "pull", "-q", ref] if name == "docker pull" else pull_cmd
            cold[name].append(timed(cmd, env))
    return cold


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--warm-rounds", type=int, default=21)
    ap.add_argument("--sizes", default="120,480", help="image sizes in MB, comma-separated")
    ap.add_argument("--write-readme", action="store_true")
    a = ap.parse_args()
    ensure_dockerd()
    sizes = [int(x) for x in a.sizes.split(",")]
    layers = 4
    cold_by_size: dict[int, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="pullunit-bench-") as tmp, \
            Registry("bench", storage=Path(tmp) / "registry") as reg:
        cfg = Path(tmp) / "cfg"
        cfg.mkdir()
        env = dict(os.environ, PULLUNIT_RUNTIME_DIR=f"{tmp}/run",
                   PULLUNIT_STATE_DIR=f"{tmp}/state", NO_COLOR="1")
        for size in sizes:
            ref = reg.ref("bench/big", f"{size}mb")
            make_big_image(ref, total_mb=size, layers=layers)
            (cfg / f"big{size}.toml").write_text(f'[image]\nref = "{ref}"\n')
            pull_cmd = [PULLUNIT, "pull", "--config-dir", str(cfg), f"big{size}"]
            cold_by_size[size] = cold_rounds(ref, pull_cmd, env, a.rounds)
            if size != sizes[0]:
                remove_image(ref)
        ref = reg.ref("bench/big", f"{sizes[0]}mb")
        pull_cmd = [PULLUNIT, "pull", "--config-dir", str(cfg), f"big{sizes[0]}"]
        warm: dict[str, list[float]] = {"docker image inspect": [], "pullunit pull": []}
        timed(pull_cmd, env)  # present now
        for r in range(a.warm_rounds):
            order = ["docker image inspect", "pullunit pull"]
            if r % 2:
                order.reverse()
            for name in order:
                cmd = ([DOCKER, "image", "inspect", ref] if name == "docker image inspect"
                       else pull_cmd)
                warm[name].append(timed(cmd, env))
        rss = peak_rss_in_backoff(env, cfg)
        remove_image(ref)

    wmed = {k: statistics.median(v) for k, v in warm.items()}
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')}: {platform.system()} {platform.release()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, dockerd 20.10 "
        f"(Debian docker.io), docker-registry on loopback; images of {layers} layers; "
        f"{a.rounds} cold and {a.warm_rounds} warm interleaved rounds.",
        "",
        "| measurement | pullunit | baseline | ratio | pullunit - baseline | target | |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    ok = True
    for size, cold in cold_by_size.items():
        med = {k: statistics.median(v) for k, v in cold.items()}
        ratio = med["pullunit pull"] / med["docker pull"]
        ok = ok and ratio <= 1.05
        lines.append(
            f"| cold pull {size} MB, median | {med['pullunit pull']:.2f} s | "
            f"{med['docker pull']:.2f} s (docker pull) | {ratio:.3f} | "
            f"{(med['pullunit pull'] - med['docker pull']) * 1000:+.0f} ms | <= 1.05 | "
            f"{'ok' if ratio <= 1.05 else '**MISSED**'} |")
    ok = ok and wmed["pullunit pull"] <= 0.150 and rss <= 40
    lines += [
        f"| warm start, median | {wmed['pullunit pull'] * 1000:.0f} ms | "
        f"{wmed['docker image inspect'] * 1000:.0f} ms (docker image inspect) | "
        f"{wmed['pullunit pull'] / wmed['docker image inspect']:.2f} | "
        f"{(wmed['pullunit pull'] - wmed['docker image inspect']) * 1000:+.0f} ms | <= 150 ms | "
        f"{'ok' if wmed['pullunit pull'] <= 0.150 else '**MISSED**'} |",
        f"| peak RSS waiting in backoff | {rss:.1f} MB | | | | <= 40 MB | "
        f"{'ok' if rss <= 40 else '**MISSED**'} |",
        "",
    ]
    for size, cold in cold_by_size.items():
        lines.append(f"Cold runs {size} MB (s): " + "; ".join(
            f"{k}: " + ", ".join(f"{x:.2f}" for x in v) for k, v in cold.items()))
        lines.append("")
    text = "\n".join(lines).rstrip() + "\n"
    print(text)
    if a.write_readme:
        readme = README.read_text()
        start, end = "<!-- bench_pull:start -->", "<!-- bench_pull:end -->"
        block = f"{start}\n{text}{end}"
        if start in readme:
            readme = readme[: readme.index(start)] + block + readme[readme.index(end) + len(end):]
        else:
            readme += f"\n## pull\n\n{(__doc__ or '').strip()}\n\n{block}\n"
        README.write_text(readme)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
