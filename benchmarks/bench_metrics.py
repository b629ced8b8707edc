"""What writing metrics adds to a warm start (image present, policy missing).

Three variants of the same `pullunit pull APP`, as a subprocess like systemd runs it,
interleaved round by round (the order rotates every round, so load from other jobs hits
each alike):

* off:       [metrics] enabled = false (no metrics at all)
* unchanged: metrics on, the file already shows these values: it is read, not written
             (every warm start after the first)
* changed:   metrics on, the file is removed before each run, so it is rendered
             (prometheus_client imported) and written: the first warm start after a
             change (e.g. ready 0 -> 1)

Target: unchanged - off <= 5 ms (median of the per-round differences). The spread of the
per-round differences (p10..p90) is printed with it.

    .venv/bin/python benchmarks/bench_metrics.py [--rounds 41] [--write-readme]

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

PULLUNIT = str(ROOT / ".venv" / "bin" / "pullunit")
README = ROOT / "benchmarks" / "README.md"
TARGET_MS = 5.0


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


_IN_PROCESS = """
import sys, time
from pathlib import Path
import pullunit.commands.pull  # the warm path's imports
from pullunit import metrics, state
from pullunit.hostconfig import MetricsConfig
directory, remove = Path(sys.argv[1]), sys.argv[2] == "1"
st = state.load("app")
if remove:
    metrics.metrics_file(directory, "app").unlink(missing_ok=True)
t = time.perf_counter()
metrics.publish(MetricsConfig(dir=directory), "app", st)
print((time.perf_counter() - t) * 1000)
"""


def in_process(directory: Path, env: dict[str, str], remove: bool) -> float:
    """Milliseconds of one metrics.publish() in a fresh interpreter."""
    out = subprocess.run([sys.executable, "-c", _IN_PROCESS, str(directory),
                          "1" if remove else "0"], check=True, env=env, capture_output=True,
                         text=True).stdout
    return float(out.strip())


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=41)
    ap.add_argument("--write-readme", action="store_true")
    a = ap.parse_args()
    ensure_dockerd()
    names = ["off", "unchanged", "changed"]
    times: dict[str, list[float]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory(prefix="pullunit-bench-metrics-") as tmp, \
            Registry("benchm", storage=Path(tmp) / "registry") as reg:
        ref = reg.ref("bench/metrics", "1")
        make_big_image(ref, total_mb=4, layers=1)
        prom = Path(tmp) / "prom"
        cmds: dict[str, list[str]] = {}
        env = {}
        for n in names:
            cfg = Path(tmp) / n
            cfg.mkdir()
            (cfg / "app.toml").write_text(f'[image]\nref = "{ref}"\n')
            (cfg / "pullunit.toml").write_text(
                "[metrics]\nenabled = false\n" if n == "off"
                else f'[metrics]\ndir = "{prom / n}"\n')
            cmds[n] = [PULLUNIT, "pull", "--config-dir", str(cfg), "app"]
            env[n] = dict(os.environ, PULLUNIT_RUNTIME_DIR=f"{tmp}/run-{n}",
                          PULLUNIT_STATE_DIR=f"{tmp}/state-{n}", NO_COLOR="1")
        for n in names:  # pull once (present now), then settle: ready, source local
            timed(cmds[n], env[n])
            timed(cmds[n], env[n])
        assert (prom / "unchanged" / "pullunit-app.prom").exists()
        for r in range(a.rounds):
            order = names[r % 3:] + names[:r % 3]
            if r % 2:
                order.reverse()
            for n in order:
                if n == "changed":
                    (prom / "changed" / "pullunit-app.prom").unlink(missing_ok=True)
                times[n].append(timed(cmds[n], env[n]))
        inproc = {n: [in_process(prom / "unchanged", env["unchanged"], n == "changed")
                      for _ in range(a.rounds)] for n in ("unchanged", "changed")}
        subprocess.run(["/usr/bin/docker", "rmi", "-f", ref], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=False)

    ms = {n: [t * 1000 for t in v] for n, v in times.items()}
    diff = {n: [x - y for x, y in zip(ms[n], ms["off"], strict=True)]
            for n in ("unchanged", "changed")}
    added = statistics.median(diff["unchanged"])
    ok = added <= TARGET_MS
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')}: {platform.system()} {platform.release()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{a.rounds} interleaved rounds of a warm `pullunit pull` (image present, policy "
        f"missing), load average {os.getloadavg()[0]:.1f} at the end.",
        "",
        "| variant | median | min | p90 | added vs off: median (p10..p90 of the rounds) "
        "| target | |",
        "|---|---:|---:|---:|---:|---:|---|",
        f"| metrics off | {statistics.median(ms['off']):.1f} ms | {min(ms['off']):.1f} ms | "
        f"{pct(ms['off'], 0.9):.1f} ms | | | |",
    ]
    for n, label in (("unchanged", "metrics on, file unchanged (every warm start after "
                                   "the first)"),
                     ("changed", "metrics on, file rewritten (values changed)")):
        d = diff[n]
        target = f"<= {TARGET_MS:.0f} ms" if n == "unchanged" else ""
        verdict = ("ok" if ok else "**MISSED**") if n == "unchanged" else ""
        lines.append(f"| {label} | {statistics.median(ms[n]):.1f} ms | {min(ms[n]):.1f} ms | "
                     f"{pct(ms[n], 0.9):.1f} ms | {statistics.median(d):+.1f} ms "
                     f"({pct(d, 0.1):+.1f}..{pct(d, 0.9):+.1f}) | {target} | {verdict} |")
    lines += ["", "In-process, the call itself (`metrics.publish` in a fresh interpreter that "
              "has imported the warm path): " + "; ".join(
                  f"{label}: median {statistics.median(inproc[n]):.2f} ms "
                  f"(p10..p90 {pct(inproc[n], 0.1):.2f}..{pct(inproc[n], 0.9):.2f})"
                  for n, label in (("unchanged", "file unchanged"),
                                   ("changed", "file rewritten, import included")))
              + "."]
    text = "\n".join(lines) + "\n"
    print(text)
    if a.write_readme:
        readme = README.read_text()
        start, end = "<!-- bench_metrics:start -->", "<!-- bench_metrics:end -->"
        block = f"{start}\n{text}{end}"
        if start in readme:
            readme = readme[: readme.index(start)] + block + readme[readme.index(end) + len(end):]
        else:
            readme += f"\n## metrics\n\n{(__doc__ or '').strip()}\n\n{block}\n"
        README.write_text(readme)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
