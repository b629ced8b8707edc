"""`pullunit update` against the hand-run switch, under real systemd (Debian 12 booted in
systemd-nspawn, the host's engine, a loopback registry).

1. Switch downtime: from the old container's `die` to the new container's
   `health_status: healthy`, both read from the engine's own event stream (its clock, ns).
   pullunit: `pullunit update --to DIGEST APP` (restart of APP.service over D-Bus: docker
   stop, docker run, the readiness gate). By hand: `docker stop OLD && docker run -d
   --name NEW ...` (a second name, so no `docker rm` is needed in between) and polling
   `docker inspect` until healthy. Same two
   images (healthy at their first check, one second after the start), already present
   locally; the rounds alternate which method goes first. Target: ratio of the medians
   <= 1.1.
2. Memory added per running app by the readiness mechanism: the resident memory (VmRSS
   summed over the unit's cgroup) of an app with the gate against the same app with
   `[health] enabled = false`, once both are up. Target: <= 5 MiB. Also shown: the gate
   process's own peak (VmHWM) while it waits, which is gone after start-up.

    .venv/bin/python benchmarks/bench_update.py [--rounds 7] [--runs 3] [--write-readme]

Needs root, systemd-nspawn and debootstrap (the e2e harness), dockerd on /run/docker.sock
(started if absent) and Debian's docker-registry.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

import harness  # noqa: E402
import registry_helpers as rh  # noqa: E402
from health_images import push_health_image  # noqa: E402

from tests.testbed.dockerd import ensure_dockerd  # noqa: E402
from tests.testbed.registry import Registry  # noqa: E402

README = ROOT / "benchmarks" / "README.md"
DOCKER = "/usr/bin/docker"
APP = "benchupd"
CONTAINER = "bench-upd"
MANUAL = ("bench-manual-a", "bench-manual-b")
CONFIG = """[image]
ref = "{ref}"
[run]
name = "{name}"
network = "none"
[health]
enabled = {gate}
start_timeout = "30s"
"""


def engine_events(since: float, until: float) -> list[dict[str, Any]]:
    out = subprocess.run([DOCKER, "events", "--since", f"{since:.3f}", "--until",
                          f"{until:.3f}", "--filter", "type=container", "--format",
                          "{{json .}}"], capture_output=True, text=True, timeout=60,
                         check=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def downtime(events: list[dict[str, Any]], old_id: str, new_name: str) -> float:
    """Seconds from the old container's die to the new one's first healthy, by the
    engine's clock."""
    die = next(e["timeNano"] for e in events if e["id"] == old_id and e["status"] == "die")
    healthy = next(e["timeNano"] for e in events
                   if e["Actor"]["Attributes"].get("name") == new_name
                   and e["status"] == "health_status: healthy" and e["timeNano"] > die)
    return (healthy - die) / 1e9


def container_id(name: str) -> str:
    return rh.docker("inspect", "-f", "{{.Id}}", name).stdout.strip()


def wait_healthy(name: str, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        r = rh.docker("inspect", "-f", "{{.State.Health.Status}}", name, check=False)
        if r.stdout.strip() == "healthy":
            return
        time.sleep(0.05)
    raise TimeoutError(f"{name} not healthy")


def pullunit_round(m: harness.Machine, digest: str) -> float:
    old = container_id(CONTAINER)
    t0 = time.time()
    r = m.run(["pullunit", "update", "--to", digest, APP], check=False, timeout=120)
    t1 = time.time()
    if r.returncode != 0:
        raise RuntimeError(f"pullunit update -> {r.returncode}: {r.stdout}{r.stderr}")
    return downtime(engine_events(t0 - 1, t1 + 1), old, CONTAINER)


def manual_round(old_name: str, new_name: str, ref: str) -> float:
    old = container_id(old_name)
    t0 = time.time()
    subprocess.run(["sh", "-c", f'{DOCKER} stop --time 30 "$1" >/dev/null && {DOCKER} run -d '
                    f'--name "$2" --network none "$3" >/dev/null', "sh", old_name, new_name,
                    ref], check=True, timeout=60)
    wait_healthy(new_name)
    t1 = time.time()
    rh.docker("rm", "-f", old_name)
    return downtime(engine_events(t0 - 1, t1 + 1), old, new_name)


def cgroup_rss_kib(m: harness.Machine, unit: str) -> int:
    cgroup = m.show(unit, "ControlGroup")["ControlGroup"]
    pids: list[str] = []
    for base in ("/sys/fs/cgroup", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"):
        r = m.run(["cat", f"{base}{cgroup}/cgroup.procs"], check=False)
        if r.returncode == 0 and r.stdout.split():
            pids = r.stdout.split()
            break
    total = 0
    for pid in pids:
        status = m.run(["cat", f"/proc/{pid}/status"], check=False).stdout
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


def gate_peak_kib(m: harness.Machine, unit: str) -> int:
    """Start `unit` and sample its ExecStartPost= process (the gate) while it waits."""
    m.systemctl("start", "--no-block", unit)
    peak = 0
    end = time.monotonic() + 30
    while time.monotonic() < end:
        props = m.show(unit, "ActiveState", "SubState", "ControlPID")
        if props["ActiveState"] == "active":
            break
        pid = props["ControlPID"]
        if props["SubState"] == "start-post" and pid != "0":
            status = m.run(["cat", f"/proc/{pid}/status"], check=False).stdout
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]))
        time.sleep(0.1)
    return peak


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=7, help="interleaved rounds per run")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--write-readme", action="store_true")
    args = ap.parse_args()

    ensure_dockerd()
    root = harness.build_root(os.environ.get("PULLUNIT_E2E_CACHE", harness.DEFAULT_CACHE_DIR))
    reg = Registry("bench-update").start()
    tag = f"{reg.address}/bench/upd:1.0"
    repo = f"{reg.address}/bench/upd"
    images = []
    for _ in range(2):  # healthy at the first check, one second after the start
        image_id, digest = push_health_image(tag, "healthy", ready_after=0, keep_local=True)
        images.append((image_id, digest))
    runs: list[dict[str, list[float]]] = []
    try:
        with harness.Machine(root, name="pullunit-bench-update") as m:
            harness.install_pullunit_from_tree(m, ROOT)
            m.write_file(f"/etc/pullunit/{APP}.toml",
                         CONFIG.format(ref=tag, name=CONTAINER, gate="true"))
            m.write_file(f"/etc/pullunit/{APP}nogate.toml",
                         CONFIG.format(ref=tag, name=f"{CONTAINER}-nogate", gate="false"))
            m.run(["pullunit", "generate"])
            m.systemctl("daemon-reload")
            gate_peak = gate_peak_kib(m, f"{APP}.service")
            m.systemctl("start", f"{APP}.service", f"{APP}nogate.service")
            time.sleep(3)
            rss_gate = cgroup_rss_kib(m, f"{APP}.service")
            rss_nogate = cgroup_rss_kib(m, f"{APP}nogate.service")
            m.systemctl("stop", f"{APP}nogate.service")

            refs = [f"{repo}@{d}" for _, d in images]
            # warm-up: the app runs the tag's digest (the second image); switch to the
            # first and back, so both are pulled and each round really switches
            for _, d in images:
                m.run(["pullunit", "update", "--to", d, APP], timeout=120)
            rh.docker("run", "-d", "--name", MANUAL[0], "--network", "none", refs[0])
            wait_healthy(MANUAL[0])
            manual_at = 0
            # the app went 1 -> 0 -> 1 in the warm-up; the hand-run container runs 0
            on = {"pullunit": 1, "by hand": 0}
            for run in range(args.runs):
                times: dict[str, list[float]] = {"pullunit": [], "by hand": []}
                for r in range(args.rounds):
                    order = ["pullunit", "by hand"] if (run + r) % 2 == 0 else [
                        "by hand", "pullunit"]
                    for name in order:
                        # every round switches images, A -> B or B -> A
                        on[name] = 1 - on[name]
                        if name == "pullunit":
                            times[name].append(pullunit_round(m, images[on[name]][1]))
                        else:
                            old, new = MANUAL[manual_at], MANUAL[1 - manual_at]
                            times[name].append(manual_round(old, new, refs[on[name]]))
                            manual_at = 1 - manual_at
                runs.append(times)
                med = {k: statistics.median(v) for k, v in times.items()}
                print(f"run {run + 1}: pullunit {med['pullunit']:.3f}s, by hand "
                      f"{med['by hand']:.3f}s, ratio {med['pullunit'] / med['by hand']:.3f}",
                      flush=True)
            m.systemctl("stop", f"{APP}.service")
    finally:
        for name in (*MANUAL, CONTAINER, f"{CONTAINER}-nogate"):
            rh.docker("rm", "-f", name, check=False)
        reg.close()
        rh.remove_repo_images(repo)

    every = {k: [t for run in runs for t in run[k]] for k in ("pullunit", "by hand")}
    med = {k: statistics.median(v) for k, v in every.items()}
    ratio = med["pullunit"] / med["by hand"]
    run_ratios = [statistics.median(r["pullunit"]) / statistics.median(r["by hand"])
                  for r in runs]
    added_mib = (rss_gate - rss_nogate) / 1024
    ok_ratio, ok_mem = ratio <= 1.1, added_mib <= 5
    lines = [
        f"Measured {time.strftime('%Y-%m-%d')}: Linux {platform.release()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, systemd 252 in "
        f"systemd-nspawn, dockerd 20.10, busybox images with a 1 s HEALTHCHECK; "
        f"{args.runs} runs of {args.rounds} interleaved rounds.",
        "",
        "| measurement | pullunit | by hand | ratio | target | |",
        "|---|---:|---:|---:|---:|---|",
        f"| switch downtime (die -> healthy), median | {med['pullunit']:.3f} s | "
        f"{med['by hand']:.3f} s | {ratio:.3f} | <= 1.1 | {'ok' if ok_ratio else 'MISSED'} |",
        f"| resident memory of the running app's unit | {rss_gate / 1024:.1f} MiB | "
        f"{rss_nogate / 1024:.1f} MiB (gate off) | +{added_mib:.1f} MiB | <= 5 MiB | "
        f"{'ok' if ok_mem else 'MISSED'} |",
        f"| the gate's own peak while it waits (gone after start-up) | "
        f"{gate_peak / 1024:.1f} MiB | | | | |",
        "",
        "Median ratio of each run: " + ", ".join(f"{r:.3f}" for r in run_ratios),
        "",
    ]
    for k in ("pullunit", "by hand"):
        lines.append(f"Downtimes {k} (s): " + ", ".join(f"{t:.3f}" for t in every[k]))
        lines.append("")
    text = "\n".join(lines)
    print(text)
    if args.write_readme:
        readme = README.read_text()
        start, end = "<!-- bench_update:start -->", "<!-- bench_update:end -->"
        block = f"{start}\n{text}{end}"
        if start in readme:
            readme = readme[: readme.index(start)] + block + readme[readme.index(end) + len(end):]
        else:
            readme += f"\n## update\n\n{(__doc__ or '').strip()}\n\n{block}\n"
        README.write_text(readme)
    return 0 if ok_ratio and ok_mem else 1


if __name__ == "__main__":
    raise SystemExit(main())
