"""The last part of scripts/demo: run an app's units under real systemd.

Boots Debian 12 (systemd 252 as PID 1) in systemd-nspawn with the host's Docker socket,
installs pullunit from this tree, copies the app config in, runs
`pullunit generate --enable --start` and shows what systemd and `pullunit status` say.

    python3 -m tests.e2e.demo /path/to/APP.toml
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.harness import Machine, build_root, install_pullunit_from_tree, prepare_host
from tests.testbed.dockerd import ensure_dockerd

TREE = Path(__file__).resolve().parents[2]


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
    subprocess.run(["/usr/bin/docker", "rm", "-f", app], capture_output=True, check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
