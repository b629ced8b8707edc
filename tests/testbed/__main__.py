"""``python3 -m tests.testbed up|down|status|sweep|observe [--write]`` (as root).

up:      a Docker engine on /run/docker.sock (reused if one answers) and a plain
         registry on 127.0.0.1:5000 holding 127.0.0.1:5000/demo/hello:1.0. Idempotent.
down:    stop what `up` started (an engine that was already running is left alone),
         and clean up after crashed test runs.
status:  what the test bed has running.
sweep:   only the crashed-run cleanup.
observe: provoke every pull failure and print the daemon's texts (--write:
         regenerate tests/testbed/observed_messages.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import _util as u
from .dockerd import MAIN_SOCKET, ensure_dockerd, main_dockerd_started_here, socket_answers
from .regapi import RegistryAPI
from .registry import Registry

DEMO_DIR = Path("/var/lib/pullunit-testbed/demo-registry")
DEMO_PORT = 5000
DEMO_REF = f"127.0.0.1:{DEMO_PORT}/demo/hello:1.0"


def _demo_running() -> bool:
    for rec in u.load_records():
        if rec.id == "registry-demo" and any(u.pid_alive(p) for p, _ in rec.pids):
            return Registry.probe(f"http://127.0.0.1:{DEMO_PORT}")
    return False


def up() -> int:
    u.sweep_stale()
    was_up = socket_answers(MAIN_SOCKET)
    ensure_dockerd(owner="cli")
    if was_up:
        print(f"dockerd: already answering on {MAIN_SOCKET}, reused (`down` leaves it alone)")
    else:
        d = main_dockerd_started_here()
        print(f"dockerd: started pid {d.pid if d else '?'} on {MAIN_SOCKET}, "
              f"log /var/log/pullunit-test-dockerd.log")
    if _demo_running():
        print(f"registry: already running on 127.0.0.1:{DEMO_PORT} ({DEMO_DIR})")
    else:
        for rec in u.load_records():  # a dead or deaf earlier demo registry
            if rec.id == "registry-demo":
                for pid, marker in rec.pids:
                    u.stop_pid(pid, marker)
        if not u.port_is_free(DEMO_PORT):
            print(f"registry: 127.0.0.1:{DEMO_PORT} is taken by something else", file=sys.stderr)
            return 1
        reg = Registry("demo", port=DEMO_PORT, workdir=DEMO_DIR, owner="cli").start()
        print(f"registry: started pid {reg.proc.pid if reg.proc else '?'} on {reg.url} "
              f"(storage {reg.storage}, access log {reg.access_log})")
    api = RegistryAPI(f"http://127.0.0.1:{DEMO_PORT}")
    if "1.0" in _tags(api, "demo/hello"):
        print(f"image: {DEMO_REF} already in the registry")
    else:
        import docker

        from .images import make_busybox_image
        c = docker.DockerClient(base_url=f"unix://{MAIN_SOCKET}", version="auto")
        try:
            p = make_busybox_image(c, DEMO_REF,
                                   changes=['CMD ["/bin/echo", "hello from pullunit"]'])
        finally:
            c.close()
        print(f"image: pushed {DEMO_REF} ({p.digest})")
    return 0


def _tags(api: RegistryAPI, repo: str) -> list[str]:
    try:
        return api.tags(repo)
    except u.TestbedError:
        return []  # unknown repository: 404


def down() -> int:
    stale = u.sweep_stale()
    for s in stale:
        print(f"cleaned up after a crashed run: {s}")
    mine = [r for r in u.load_records() if r.owner == "cli"]
    for rec in mine:
        u.undo_record(rec)
        print(f"stopped {rec.kind} {rec.id} (pids {[p for p, _ in rec.pids]})")
    if not stale and not mine:
        print("nothing of the test bed's `up` is running")
    return 0


def status() -> int:
    recs = u.load_records()
    if not recs:
        print("nothing recorded")
    for r in recs:
        alive = [p for p, _ in r.pids if u.pid_alive(p)]
        print(f"{r.kind:9} {r.id:28} owner={r.owner} alive={alive} paths={r.paths} "
              f"netns={r.netns}")
    print(f"dockerd on {MAIN_SOCKET}: "
          f"{'answering' if socket_answers(MAIN_SOCKET) else 'not answering'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python3 -m tests.testbed", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["up", "down", "status", "sweep", "observe"])
    ap.add_argument("--write", action="store_true", help="observe: rewrite observed_messages.py")
    args = ap.parse_args(argv)
    problems = u.missing_prerequisites()
    if problems and args.command not in ("status",):
        print("test bed prerequisites missing:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 2
    if args.command == "up":
        return up()
    if args.command == "down":
        return down()
    if args.command == "status":
        return status()
    if args.command == "sweep":
        for s in u.sweep_stale():
            print(f"cleaned up: {s}")
        return 0
    from .observe import main as observe_main
    return observe_main(write=args.write)


if __name__ == "__main__":
    sys.exit(main())
