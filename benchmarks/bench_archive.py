"""Peak memory of a fallback that restores a large rollback archive.

With `[pull] archive = true`, the image pruned (`docker image prune -a`) and the registry
down, `pullunit pull` falls back to the newest good image and loads it from its archive
under /var/lib/pullunit/cache/APP/. The archive is streamed into `docker load`, so the
peak RSS of `pullunit pull` must not grow with the image. Measured, interleaved (the
order alternates every round):

* `pullunit pull`, fallback restoring the 480 MB archive (the image removed first);
* `pullunit pull`, fallback with the image still present (no load: what the same path
  costs without the archive);
* `docker load -i ARCHIVE` of the same file, for the time it takes dockerd (time only).

Peak RSS is the VmHWM of the `pullunit pull` process, read from /proc/self/status as it
ends (its console-script entry point, run by a few lines of wrapper). Not ru_maxrss from
wait4: Linux carries the RSS of the forked copy of this (big) benchmark process into the
child's ru_maxrss across exec. Target: restore <= 40 MB.

    .venv/bin/python benchmarks/bench_archive.py [--rounds 5] [--size 480] [--write-readme]

Needs root, dockerd on /run/docker.sock (started if absent) and Debian's docker-registry.
"""

from __future__ import annotations

import argparse
import math
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

from tests.testbed.dockerd import ensure_dockerd, stop_main_dockerd_if_started  # noqa: E402
from tests.testbed.images import make_big_image  # noqa: E402
from tests.testbed.registry import Registry  # noqa: E402

DOCKER = "/usr/bin/docker"
PYTHON = str(ROOT / ".venv" / "bin" / "python")
README = ROOT / "benchmarks" / "README.md"
TARGET_MB = 40.0
RESTORE, PRESENT, DOCKER_LOAD = ("pullunit pull, restore from archive",
                                 "pullunit pull, image present", "docker load -i")


# `pullunit ARGS` as its console script runs it, then its own high-water mark to a file.
PROBE = """
import os, sys
from pullunit.cli import main
try:
    code = main(sys.argv[1:])
finally:
    with open("/proc/self/status") as f:
        hwm = next(line for line in f if line.startswith("VmHWM:"))
    with open(os.environ["BENCH_HWM_FILE"], "w") as f:
        f.write(hwm.split()[1])
sys.exit(code)
"""


def run(cmd: list[str], env: dict[str, str], hwm_file: Path | None = None
        ) -> tuple[float, float, str]:
    """(seconds, peak RSS in MB or NaN, stderr) of one child process; it must succeed."""
    t = time.perf_counter()
    p = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       check=False)
    seconds = time.perf_counter() - t
    err = p.stderr.decode(errors="replace")
    if p.returncode != 0:
        raise SystemExit(f"{cmd} exited {p.returncode}:\n{err}")
    peak = int(hwm_file.read_text()) / 1024 if hwm_file else math.nan  # VmHWM is in kB
    return seconds, peak, err


def remove(image_id: str) -> None:
    subprocess.run([DOCKER, "rmi", "-f", image_id], check=False, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def summary(values: list[float], fmt: str) -> str:
    if all(math.isnan(v) for v in values):
        return " | | "
    return (f"{fmt.format(statistics.median(values))} | {fmt.format(min(values))} | "
            f"{fmt.format(max(values))}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size", type=int, default=480, help="image size in MB")
    ap.add_argument("--write-readme", action="store_true")
    a = ap.parse_args()
    ensure_dockerd()
    rss: dict[str, list[float]] = {RESTORE: [], PRESENT: [], DOCKER_LOAD: []}
    secs: dict[str, list[float]] = {k: [] for k in rss}
    try:
        with tempfile.TemporaryDirectory(prefix="pullunit-bench-") as tmp:
            cfg = Path(tmp) / "cfg"
            cfg.mkdir()
            env = dict(os.environ, PULLUNIT_RUNTIME_DIR=f"{tmp}/run",
                       PULLUNIT_STATE_DIR=f"{tmp}/state", NO_COLOR="1", HOME=tmp)
            for k in ("NOTIFY_SOCKET", "JOURNAL_STREAM", "DOCKER_HOST"):
                env.pop(k, None)
            with Registry("bench", storage=Path(tmp) / "registry") as reg:
                ref = reg.ref("bench/archive", f"{a.size}mb")
                make_big_image(ref, total_mb=a.size, layers=4)
                (cfg / "big.toml").write_text(
                    f'[image]\nref = "{ref}"\npolicy = "always"\n[pull]\narchive = true\n'
                    'refresh_timeout = "1s"\ninitial_delay = "200ms"\njitter = "none"\n')
                pull = [PYTHON, "-c", PROBE, "pull", "--config-dir", str(cfg), "big", "--json"]
                hwm = Path(tmp) / "hwm"
                env["BENCH_HWM_FILE"] = str(hwm)
                out = subprocess.run(pull, env=env, check=True, capture_output=True,
                                     text=True).stdout
                image_id = out.split('"image_id": "', 1)[1].split('"', 1)[0]
            # the registry is down from here on: every pull falls back
            archive = Path(tmp) / "state" / "cache" / "big" / (
                image_id.removeprefix("sha256:") + ".tar.gz")
            archive_mb = archive.stat().st_size / 1e6
            for r in range(a.rounds):
                order = [RESTORE, PRESENT, DOCKER_LOAD]
                if r % 2:
                    order.reverse()
                for name in order:
                    if name == PRESENT:
                        s, m, _ = run(pull, env, hwm)
                    elif name == RESTORE:
                        remove(image_id)
                        s, m, err = run(pull, env, hwm)
                        assert "rollback archive" in err, err
                    else:
                        remove(image_id)
                        s, m, _ = run([DOCKER, "load", "-q", "-i", str(archive)], env)
                    secs[name].append(s)
                    rss[name].append(m)
                print(f"round {r + 1}: " + ", ".join(
                    f"{k}: {rss[k][-1]:.1f} MB {secs[k][-1]:.1f} s" for k in rss
                    if k != DOCKER_LOAD) + f", {DOCKER_LOAD}: {secs[DOCKER_LOAD][-1]:.1f} s",
                    flush=True)
            remove(image_id)
    finally:
        stop_main_dockerd_if_started()

    restore_med = statistics.median(rss[RESTORE])
    ok = restore_med <= TARGET_MB and max(rss[RESTORE]) <= TARGET_MB
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')}: {platform.system()} {platform.release()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, dockerd 20.10 "
        f"(Debian docker.io); image of {a.size} MB in 4 random layers, archive "
        f"{archive_mb:.0f} MB (gzip -1 of random data); {a.rounds} interleaved rounds "
        f"(`.venv/bin/python benchmarks/bench_archive.py --rounds {a.rounds} --size {a.size}`).",
        "",
        "| run | peak RSS median | min | max | time median | min | max | target | |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name in rss:
        target = f"<= {TARGET_MB:.0f} MB" if name == RESTORE else ""
        verdict = ("ok" if ok else "**MISSED**") if name == RESTORE else ""
        lines.append(f"| {name} | {summary(rss[name], '{:.1f} MB')} | "
                     f"{summary(secs[name], '{:.1f} s')} | {target} | {verdict} |")
    lines += ["", "Peak RSS per round (MB): " + "; ".join(
        f"{k}: " + ", ".join(f"{x:.1f}" for x in v) for k, v in rss.items() if k != DOCKER_LOAD),
        "", "Time per round (s): " + "; ".join(
            f"{k}: " + ", ".join(f"{x:.1f}" for x in v) for k, v in secs.items()), ""]
    text = "\n".join(lines).rstrip() + "\n"
    print(text)
    if a.write_readme:
        readme = README.read_text()
        start, end = "<!-- bench_archive:start -->", "<!-- bench_archive:end -->"
        block = f"{start}\n{text}{end}"
        if start in readme:
            readme = readme[: readme.index(start)] + block + readme[readme.index(end) + len(end):]
        else:
            readme += f"\n## rollback archives\n\n{(__doc__ or '').strip()}\n\n{block}\n"
        README.write_text(readme)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
