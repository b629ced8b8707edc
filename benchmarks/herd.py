"""Thundering herd: 1,000 hosts whose registry is down, then comes back at once.

Each host's puller retries by its backoff policy. We count attempts per 1-second window
and report the peak over the whole run and in the minute after recovery, for each jitter
mode of pullunit's defaults and for kubelet's policy (10 s doubling to 300 s, no jitter).
Pure simulation, seeded: the numbers are exactly reproducible.

    python3 benchmarks/herd.py [--hosts 1000] [--outage 900] [--seed 1]
"""

from __future__ import annotations

import argparse
import collections
import heapq
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pullunit.backoff import Backoff, kubelet_like
from pullunit.config import Jitter


def simulate(policy: Backoff, hosts: int, outage: float, seed: int,
             start_spread: float = 1.0) -> tuple[int, int, float]:
    """Returns (peak attempts in any 1 s window once the boot wave is over (t >= 60 s),
    peak from recovery on, seconds after recovery until every host has succeeded)."""
    rng = random.Random(seed)
    # Hosts boot within `start_spread` seconds of each other (a power cut, a fleet reboot).
    events = [(rng.uniform(0, start_spread), h, 0, None) for h in range(hosts)]
    heapq.heapify(events)
    per_second: collections.Counter[int] = collections.Counter()
    last_success = 0.0
    while events:
        t, host, retry, previous = heapq.heappop(events)
        per_second[int(t)] += 1
        if t >= outage:
            last_success = max(last_success, t)
            continue
        delay = policy.delay(retry, previous, rng)
        heapq.heappush(events, (t + delay, host, retry + 1, delay))
    peak = max((n for s, n in per_second.items() if s >= 60), default=0)
    after = max((n for s, n in per_second.items() if s >= outage), default=0)
    return peak, after, last_success - outage


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--hosts", type=int, default=1000)
    p.add_argument("--outage", type=float, default=900.0)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    rows = [("kubelet (10s→300s, no jitter)", kubelet_like())]
    for j in Jitter:
        rows.append((f"pullunit defaults (2s→300s, jitter={j})",
                     Backoff(2.0, 300.0, 2.0, j)))
    print(f"{a.hosts} hosts, registry down for {a.outage:.0f} s, seed {a.seed}\n")
    print("| policy | peak attempts/s during the outage (after the boot wave) "
          "| peak attempts/s after recovery | all hosts pulled after recovery |")
    print("|---|---|---|---|")
    for name, policy in rows:
        peak, after, tail = simulate(policy, a.hosts, a.outage, a.seed)
        print(f"| {name} | {peak} | {after} | {tail:.0f} s |")


if __name__ == "__main__":
    main()
