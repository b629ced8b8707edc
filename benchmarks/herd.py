"""Thundering herd: 1,000 hosts whose registry is down, then comes back at once.

Every host's puller is driven by pullunit's real decision code: `retry.decide` (with the
backoff and the probe schedule of `backoff.py`) says after each failure how long to wait
and whether the next try is a cheap probe (a manifest HEAD) or a layer pull. The loop
below only keeps the clock, as `Puller.run` does. Rows:

- pullunit's defaults (probes on their schedule, capped at pull.probe_interval);
- pullunit without probes (every retry a pull on the backoff; pullunit before probes),
  for each jitter mode;
- kubelet's policy (10 s doubling to 300 s, no jitter), through the same code.

Counted per 1-second window: probes and layer pulls (a pull that reaches a registry which
is up; a pull sent while it is down fails at once and counts as an attempt). A host is
ready when its layer pull starts: the transfer takes as long under every policy, and is
left out. Pure and seeded: the numbers reproduce exactly.

Targets (issue 10), for the defaults: after recovery, peak layer pulls in any second
<= 5 % of the fleet, median host ready <= 20 s, every host ready <= 60 s; probes <= 6 % of
the fleet in any second once the boot wave is over (the first minute: hosts that boot
together all try at once whatever the policy). Exit status 1 when one is missed.

    python3 benchmarks/herd.py [--hosts 1000] [--outage 900] [--seeds 1-5]
        [--probe-interval 45] [--markdown]
"""

from __future__ import annotations

import argparse
import collections
import heapq
import math
import random
import statistics
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TextIO

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pullunit.backoff import Backoff, kubelet_like
from pullunit.classify import FailureClass
from pullunit.config import Jitter, Policy, PullConfig
from pullunit.retry import RetryAfter, Rules, Situation, decide

BOOT_WAVE = 60.0  # seconds after boot in which every policy's first tries coincide
TARGET_PULLS = 0.05  # of the fleet, in any second after recovery
TARGET_MEDIAN = 20.0  # seconds after recovery
TARGET_ALL = 60.0
TARGET_PROBES = 0.06  # of the fleet, in any second after the boot wave


@dataclass(frozen=True)
class Result:
    peak_tries: int  # probes + pulls in any second, after the boot wave, while down
    peak_probes: int  # probes in any second after the boot wave
    peak_pulls: int  # layer pulls in any second after recovery
    median_ready: float  # seconds after recovery
    all_ready: float


@dataclass
class Host:
    booted: float
    retries: int = 0
    probes: int = 0
    previous: float | None = None


def simulate(rules: Rules, hosts: int, outage: float, seed: int,
             start_spread: float = 1.0) -> Result:
    """The registry is down from 0 to `outage` and up after; hosts boot within
    `start_spread` seconds of each other (a power cut, a fleet reboot)."""
    rng = random.Random(seed)
    fleet = [Host(rng.uniform(0, start_spread)) for _ in range(hosts)]
    # (time, host, is_probe): every host starts with a pull
    events = [(h.booted, i, False) for i, h in enumerate(fleet)]
    heapq.heapify(events)
    probes: collections.Counter[int] = collections.Counter()
    tries: collections.Counter[int] = collections.Counter()
    pulls: collections.Counter[int] = collections.Counter()
    ready: list[float] = []
    while events:
        t, i, is_probe = heapq.heappop(events)
        host = fleet[i]
        second = int(t)
        tries[second] += 1
        if is_probe:
            probes[second] += 1
        if t >= outage:
            if is_probe:
                host.probes = 0  # answered: the layer pull starts now
            pulls[second] += 1
            ready.append(t - outage)
            continue
        now = Situation(FailureClass.UNREACHABLE, t - host.booted, host.retries,
                        host.previous, fallback_possible=False, probes=host.probes)
        d = decide(rules, now, rng)
        assert isinstance(d, RetryAfter), d  # no deadline, no fallback: always a retry
        if d.probing:
            host.probes += 1
        else:
            host.retries, host.previous = host.retries + 1, d.drawn
        heapq.heappush(events, (t + d.delay, i, d.probe))
    down = [n for s, n in tries.items() if BOOT_WAVE <= s < outage]
    return Result(peak_tries=max(down, default=0),
                  peak_probes=max((n for s, n in probes.items() if s >= BOOT_WAVE),
                                  default=0),
                  peak_pulls=max((n for s, n in pulls.items() if s >= outage), default=0),
                  median_ready=statistics.median(ready), all_ready=max(ready))


def policies(probe_interval: float) -> list[tuple[str, Rules]]:
    """(name, rules) per row; the first is pullunit's defaults."""
    defaults = Rules.of_pull(replace(PullConfig(), probe_interval=probe_interval),
                             Policy.MISSING)
    rows = [(f"pullunit defaults: probes (2s->{probe_interval:g}s, equal jitter), "
             "pull when one answers", defaults)]
    for j in Jitter:
        rows.append((f"no probes (2s->300s, jitter={j}): pullunit before",
                     replace(defaults, backoff=Backoff(2.0, 300.0, 2.0, j),
                             probe_interval=None)))
    rows.append(("kubelet (10s->300s, no jitter)",
                 replace(defaults, backoff=kubelet_like(), probe_interval=None)))
    return rows


def misses(r: Result, hosts: int) -> list[str]:
    """The targets this result misses (none: it meets them all)."""
    out = []
    if r.peak_pulls > TARGET_PULLS * hosts:
        out.append(f"peak layer pulls {r.peak_pulls}/s > {TARGET_PULLS:.0%} of {hosts}")
    if r.median_ready > TARGET_MEDIAN:
        out.append(f"median ready {r.median_ready:.1f} s > {TARGET_MEDIAN:g} s")
    if r.all_ready > TARGET_ALL:
        out.append(f"all ready {r.all_ready:.1f} s > {TARGET_ALL:g} s")
    if r.peak_probes > TARGET_PROBES * hosts:
        out.append(f"peak probes {r.peak_probes}/s > {TARGET_PROBES:.0%} of {hosts}")
    return out


def _spread(values: list[float], fmt: str) -> str:
    lo, hi = min(values), max(values)
    return format(lo, fmt) if math.isclose(lo, hi) else f"{lo:{fmt}}-{hi:{fmt}}"


def seeds_of(text: str) -> list[int]:
    first, _, last = text.partition("-")
    return list(range(int(first), int(last or first) + 1))


def run(hosts: int, outage: float, seeds: list[int], probe_interval: float,
        out: TextIO | None = None) -> list[str]:
    """Print the table; the targets the defaults missed, per seed."""
    def say(line: str) -> None:
        print(line, file=out or sys.stdout)

    say(f"{hosts} hosts, registry down for {outage:.0f} s, seeds {seeds[0]}-{seeds[-1]} "
        "(min-max over the seeds)\n")
    say("| policy | peak tries/s while down (after the boot wave) | peak probes/s "
        "| peak layer pulls/s after recovery | median host ready after recovery "
        "| all hosts ready after recovery |")
    say("|---|---|---|---|---|---|")
    missed: list[str] = []
    for n, (name, rules) in enumerate(policies(probe_interval)):
        results = [simulate(rules, hosts, outage, seed) for seed in seeds]
        if n == 0:
            missed += [f"seed {s}: {m}" for s, r in zip(seeds, results, strict=True)
                       for m in misses(r, hosts)]
        probes = (_spread([r.peak_probes for r in results], ".0f")
                  if rules.probe_interval is not None else "—")
        say(f"| {name} | {_spread([r.peak_tries for r in results], '.0f')} | {probes} "
            f"| {_spread([r.peak_pulls for r in results], '.0f')} "
            f"| {_spread([r.median_ready for r in results], '.0f')} s "
            f"| {_spread([r.all_ready for r in results], '.0f')} s |")
    say(f"\nTargets for the defaults: peak layer pulls <= {TARGET_PULLS * hosts:.0f}/s, "
        f"median ready <= {TARGET_MEDIAN:.0f} s, all ready <= {TARGET_ALL:.0f} s, "
        f"peak probes <= {TARGET_PROBES * hosts:.0f}/s: "
        + ("all met." if not missed else "MISSED: " + "; ".join(missed)))
    return missed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--hosts", type=int, default=1000)
    p.add_argument("--outage", type=float, default=900.0)
    p.add_argument("--seeds", type=seeds_of, default=seeds_of("1-5"),
                   help="a seed or a range, e.g. 1-5")
    p.add_argument("--probe-interval", type=float, default=PullConfig().probe_interval)
    a = p.parse_args(argv)
    return 1 if run(a.hosts, a.outage, a.seeds, a.probe_interval) else 0


if __name__ == "__main__":
    sys.exit(main())
