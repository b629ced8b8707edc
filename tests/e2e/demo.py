"""The last part of scripts/demo: run an app's units under real systemd.

Boots Debian 12 (systemd 252 as PID 1) in systemd-nspawn with the host's Docker socket,
installs pullunit from this tree, copies the app config in, runs
`pullunit generate --enable --start` and shows what systemd and `pullunit status` say.
Then `pullunit update`: a second app whose images have a Docker HEALTHCHECK is updated to
a healthy image (switched through the readiness gate) and then to a broken one (never
healthy), which it rolls back from by itself.

    python3 -m tests.e2e.demo /path/to/APP.toml [REGISTRY]   # REGISTRY: 127.0.0.1:5000
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.harness import Machine, build_root, install_pullunit_from_tree, prepare_host
from tests.testbed.dockerd import ensure_dockerd

TREE = Path(__file__).resolve().parents[2]
UPDATE_APP = """# The update demo: images with a Docker HEALTHCHECK.
[image]
ref = "{registry}/demo/shop:1.0"

[run]
name = "shop"

[health]
start_timeout = "20s"
"""


def main(argv: list[str]) -> int:
    config = Path(argv[0])
    app = config.name.removesuffix(".toml")
    ensure_dockerd()
    prepare_host()
    t = time.monotonic()
    print("building (or reusing) the cached Debian 12 root ...", flush=True)
    root = build_root()
    print(f"root ready in {time.monotonic() - t:.1f}s; booting it", flush=True)
    subprocess.run(["/usr/bin/docker", "rm", "-f", app], capture_output=True, check=False)
    with Machine(root, name="pullunit-demo") as m:
        print(f"booted in {m.boot_seconds:.1f}s", flush=True)
        install_pullunit_from_tree(m, str(TREE))
        m.write_file(f"/etc/pullunit/{app}.toml", config.read_text())

        def sh(*cmd: str) -> None:
            print("# " + " ".join(cmd), flush=True)
            r = m.run(list(cmd), check=False, timeout=120)
            sys.stdout.write(r.stdout + r.stderr)

        sh("pullunit", "generate", "--enable", "--start")
        m.wait_state(f"{app}.service", "active", timeout=120)
        time.sleep(1)
        sh("systemctl", "--no-pager", "status", f"{app}-pull.service", f"{app}.service")
        sh("pullunit", "status", app)
        sh("journalctl", "--no-pager", "-o", "cat", "-u", f"{app}.service", "-n", "3")
        sh("systemctl", "stop", f"{app}.service")
        update_demo(m, sh, argv[1] if len(argv) > 1 else "127.0.0.1:5000")
    for name in (app, "shop"):
        subprocess.run(["/usr/bin/docker", "rm", "-f", name], capture_output=True, check=False)
    return 0


def update_demo(m: Machine, sh: Callable[..., None], registry: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from health_images import push_health_image

    tag = f"{registry}/demo/shop:1.0"

    def step(text: str) -> None:
        print(f"\n== {text}", flush=True)

    step(f"pullunit update: {tag} is healthy 2 s after its start (HEALTHCHECK)")
    push_health_image(tag, "healthy", ready_after=2)
    m.write_file("/etc/pullunit/shop.toml", UPDATE_APP.format(registry=registry))
    sh("pullunit", "generate")
    sh("systemctl", "start", "shop.service")  # returns once shop is healthy: the gate
    sh("systemctl", "--no-pager", "show", "-p", "ActiveState", "-p", "StatusText",
       "shop.service")

    step("A new healthy image under the same tag: update switches to it")
    push_health_image(tag, "healthy", ready_after=2)
    sh("pullunit", "update", "--dry-run", "shop")
    sh("sh", "-c", "pullunit update shop 2>&1; echo \"exit status: $?\"")

    step("A broken image (its healthcheck never passes): rolled back by itself, exit 80")
    push_health_image(tag, "never")
    sh("sh", "-c", "pullunit update shop 2>&1; echo \"exit status: $?\"")
    sh("pullunit", "status", "shop")
    sh("cat", "/etc/pullunit/shop.lock.toml")
    sh("systemctl", "stop", "shop.service")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
