"""Puller benchmarks against the real engine and a loopback registry.

1. Cold pull of a multi-layer image (120 MB and 480 MB): `pullunit pull` vs `docker pull`,
   interleaved (the order alternates every round), the image and its layers removed
   before every run. Target: median ratio <= 1.05.
2. Warm start (image present, policy missing), what every pull unit runs at every boot:
   `pullunit pull` vs the venv's `python -c pass` (the interpreter the console script
   runs), interleaved. Target: median ratio <= 3. Also, for context, the same start as the
   .deb lays it out (/usr/bin/python3, pullunit on sys.path) vs `/usr/bin/python3 -c pass`,
   and `docker image inspect`.
3. Peak RSS (VmHWM) of `pullunit pull` while it waits in backoff. Target: <= 40 MB.

As installed, pullunit's modules come with their bytecode (the .deb's py3compile); the
benchmark compiles them first (compileall), or a session with PYTHONDONTWRITEBYTECODE=1
would time Python's compiler at every start. The runtime directory is on tmpfs and the
state directory on disk, as /run/pullunit and /var/lib/pullunit are.

    .venv/bin/python benchmarks/bench_pull.py [--rounds 7] [--warm-rounds 31]
        [--also NAME=EXECUTABLE ...] [--write-readme]

--also adds another `pullunit` executable (e.g. an older tree's console script, its
modules compiled beforehand) to the same interleaved rounds, so that a before/after
comparison sees the same load. Needs
root, dockerd on /run/docker.sock (started if absent) and Debian's docker-registry.
"""

from __future__ import annotations

import argparse
import compileall
import functools
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.testbed.dockerd import ensure_dockerd  # noqa: E402
from tests.testbed.images import make_big_image  # noqa: E402
from tests.testbed.registry import Registry  # noqa: E402

DOCKER = "/usr/bin/docker"
VENV_PYTHON = str(ROOT / ".venv" / "bin" / "python")
PULLUNIT = str(ROOT / ".venv" / "bin" / "pullunit")
SYSTEM_PYTHON = "/usr/bin/python3"
README = ROOT / "benchmarks" / "README.md"
TMPFS = "/run"  # where /run/pullunit lives: a tmpfs

Samples = dict[str, list[float]]
LOADS: list[float] = []  # the 1-minute load average at the start of every round


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


def interleaved(cmds: dict[str, list[str]], env: dict[str, str], rounds: int,
                before: Callable[[], None] | None = None) -> Samples:
    """Each command once per round, the order reversed every other round, so that load
    from elsewhere falls on every command alike."""
    out: Samples = {name: [] for name in cmds}
    for r in range(rounds):
        LOADS.append(os.getloadavg()[0])
        for name in (list(cmds) if r % 2 == 0 else list(cmds)[::-1]):
            if before is not None:
                before()
            out[name].append(timed(cmds[name], env))
    return out


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


def deb_wrapper(tmp: Path) -> str:
    """/usr/bin/pullunit as the .deb has it (the e2e harness's CLI_WRAPPER), with the tree
    on sys.path in place of /usr/lib/python3/dist-packages."""
    path = tmp / "pullunit-deb"
    path.write_text(f"#!{SYSTEM_PYTHON}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n"
                    "from pullunit.cli import main\nraise SystemExit(main())\n")
    path.chmod(0o755)
    return str(path)


def fmt_s(v: list[float]) -> str:
    return ", ".join(f"{x:.2f}" for x in v)


def fmt_ms(v: list[float]) -> str:
    return ", ".join(f"{x * 1000:.0f}" for x in v)


def row(label: str, num: list[float], den: list[float], base: str, target: float,
        unit: str) -> tuple[str, bool]:
    """One table row. The verdict is on the median of the per-round ratios: the two
    commands of a round ran back to back, so each pair saw the same load (the ratio of
    the medians is shown too)."""
    mn, md = statistics.median(num), statistics.median(den)
    paired = [n / d for n, d in zip(num, den, strict=True)]
    ratio = statistics.median(paired)
    ok = ratio <= target
    scale, u = (1, "s") if unit == "s" else (1000, "ms")
    prec = 2 if unit == "s" else 0
    return (f"| {label} | {mn * scale:.{prec}f} {u} ({min(num) * scale:.{prec}f} to "
            f"{max(num) * scale:.{prec}f}) | {md * scale:.{prec}f} {u} ({base}) | "
            f"**{ratio:.3f}** ({min(paired):.2f} to {max(paired):.2f}) | {mn / md:.3f} | "
            f"{(mn - md) * 1000:+.0f} ms | <= {target:g} | {'ok' if ok else '**MISSED**'} |",
            ok)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--warm-rounds", type=int, default=31)
    ap.add_argument("--sizes", default="120,480", help="image sizes in MB, comma-separated")
    ap.add_argument("--also", action="append", default=[], metavar="NAME=EXECUTABLE",
                    help="another pullunit to time in the same rounds")
    ap.add_argument("--write-readme", action="store_true")
    a = ap.parse_args()
    also = dict(x.split("=", 1) for x in a.also)
    ensure_dockerd()
    compileall.compile_dir(str(ROOT / "pullunit"), quiet=1)
    sizes = [int(x) for x in a.sizes.split(",")]
    layers = 4
    started = time.monotonic()
    cold_by_size: dict[int, Samples] = {}
    with tempfile.TemporaryDirectory(prefix="pullunit-bench-") as tmp, \
            tempfile.TemporaryDirectory(prefix="pullunit-bench-", dir=TMPFS) as run, \
            Registry("bench", storage=Path(tmp) / "registry") as reg:
        cfg = Path(tmp) / "cfg"
        cfg.mkdir()
        env = dict(os.environ, PULLUNIT_RUNTIME_DIR=run, PULLUNIT_STATE_DIR=f"{tmp}/state",
                   NO_COLOR="1")
        env.pop("NOTIFY_SOCKET", None)

        def pullunits(app: str) -> dict[str, list[str]]:
            return {"pullunit pull": [PULLUNIT, "pull", "--config-dir", str(cfg), app],
                    **{f"{name} pull": [exe, "pull", "--config-dir", str(cfg), app]
                       for name, exe in also.items()}}

        for size in sizes:
            ref = reg.ref("bench/big", f"{size}mb")
            make_big_image(ref, total_mb=size, layers=layers)
            (cfg / f"big{size}.toml").write_text(f'[image]\nref = "{ref}"\n')
            cmds = {"docker pull": [DOCKER, "pull", "-q", ref], **pullunits(f"big{size}")}
            cold_by_size[size] = interleaved(cmds, env, a.rounds,
                                             before=functools.partial(remove_image, ref))
            if size != sizes[0]:
                remove_image(ref)
        ref = reg.ref("bench/big", f"{sizes[0]}mb")
        warm_cmds = pullunits(f"big{sizes[0]}")
        timed(warm_cmds["pullunit pull"], env)  # present now, and the app's current image
        warm = interleaved({"python -c pass": [VENV_PYTHON, "-c", "pass"], **warm_cmds,
                            "deb layout: pullunit pull": [deb_wrapper(Path(tmp)), "pull",
                                                          "--config-dir", str(cfg),
                                                          f"big{sizes[0]}"],
                            "/usr/bin/python3 -c pass": [SYSTEM_PYTHON, "-c", "pass"],
                            "docker image inspect": [DOCKER, "image", "inspect", ref]},
                           env, a.warm_rounds)
        rss = peak_rss_in_backoff(env, cfg)
        remove_image(ref)
    minutes = (time.monotonic() - started) / 60

    lines = [
        f"Measured {time.strftime('%Y-%m-%d %H:%M')}: {platform.system()} "
        f"{platform.release()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"dockerd 20.10 (Debian docker.io), docker-registry on loopback; images of {layers} "
        f"layers; {a.rounds} cold and {a.warm_rounds} warm interleaved rounds in "
        f"{minutes:.0f} min; 1-minute load average over the rounds: median "
        f"{statistics.median(LOADS):.1f}, {min(LOADS):.1f} to {max(LOADS):.1f} (2 cores; other "
        "jobs share the machine).",
        "",
        "| measurement | median (min to max) | baseline median | per-round ratio: median "
        "(min to max) | ratio of medians | difference of medians | target | |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    ok = True
    for size, cold in cold_by_size.items():
        for name in cold:
            if name == "docker pull":
                continue
            text, good = row(f"cold pull {size} MB, {name}", cold[name], cold["docker pull"],
                             "docker pull", 1.05, "s")
            lines.append(text)
            ok = ok and (good or name != "pullunit pull")
    for name in warm_cmds:
        text, good = row(f"warm start, {name}", warm[name], warm["python -c pass"],
                         "the venv's python -c pass", 3.0, "ms")
        lines.append(text)
        ok = ok and (good or name != "pullunit pull")
    text, _ = row("warm start, deb layout: pullunit pull", warm["deb layout: pullunit pull"],
                  warm["/usr/bin/python3 -c pass"], "/usr/bin/python3 -c pass", 3.0, "ms")
    lines.append(text.rsplit("| <= 3 |", 1)[0] + "| (context) | |")
    ok = ok and rss <= 40
    lines += [
        f"| peak RSS waiting in backoff | {rss:.1f} MB | | | | | <= 40 MB | "
        f"{'ok' if rss <= 40 else '**MISSED**'} |",
        "",
    ]
    for size, cold in cold_by_size.items():
        lines += [f"Cold runs {size} MB (s): " + "; ".join(
            f"{k}: {fmt_s(v)}" for k, v in cold.items()), ""]
    lines += ["Warm runs (ms): " + "; ".join(f"{k}: {fmt_ms(v)}" for k, v in warm.items()),
              ""]
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
