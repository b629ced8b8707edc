"""What the e2e scenarios need from registries and images, on top of tests/testbed.

Registries are ``tests.testbed.registry.Registry`` (Debian's docker-registry on a free
127.0.0.1 port, the same port across stop()/start(), a readable access log). Images are
made with ``tests.testbed.images`` (busybox-static rootfs, ``docker import``, push) on the
host engine that the machines use through /run/docker.sock, and are then *removed* from
that engine so the puller inside a machine really has to pull.

The e2e image's entrypoint is ``/show``: the testbed's showargs script (argv between
``<<<ARGV``/``ARGV>>>``, then ``env`` between ``<<<ENV``/``ENV>>>``, read back with
``tests.testbed.images.parse_showargs``), then ``READY-MARKER``, then it stays up until
SIGTERM and exits 0 on it (so ``docker stop`` is quick and Restart=on-failure is quiet).

Containers are looked at with the host's docker client (``docker inspect``/``kill``).
Only loopback is ever contacted.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:  # `tests.testbed` is imported as a package of the repo root
    sys.path.insert(0, _ROOT)

from tests.testbed import images as tb_images  # noqa: E402
from tests.testbed import nginx as tb_nginx  # noqa: E402,F401 - re-exported
from tests.testbed.images import parse_showargs  # noqa: E402,F401 - re-exported
from tests.testbed.registry import AccessEntry, Registry  # noqa: E402,F401 - re-exported

DOCKER_SOCK = "unix:///run/docker.sock"
SHOW = tb_images.SHOWARGS + """echo READY-MARKER
trap 'exit 0' TERM INT
while :; do sleep 1 & wait $!; done
"""


def client() -> Any:
    """A docker SDK client of the host engine (the one the machines share)."""
    import docker

    return docker.DockerClient(base_url=DOCKER_SOCK, version="auto", timeout=120)


def docker_cli() -> str:
    found = shutil.which("docker") or shutil.which("docker", path="/usr/bin:/usr/local/bin")
    if found is None:
        raise RuntimeError("no docker client on the host: apt-get install -y docker.io")
    return found


def docker(*args: str, check: bool = True, timeout: float = 120,
           ) -> subprocess.CompletedProcess[str]:
    """The host docker client against the host engine."""
    p = subprocess.run([docker_cli(), *args], capture_output=True, timeout=timeout,
                       check=False)
    res = subprocess.CompletedProcess(p.args, p.returncode, p.stdout.decode(errors="replace"),
                                      p.stderr.decode(errors="replace"))
    if check and res.returncode != 0:
        raise subprocess.CalledProcessError(res.returncode, res.args, res.stdout, res.stderr)
    return res


def push_image(ref: str, *, keep_local: bool = False) -> tuple[str, str]:
    """A new e2e image (a fresh digest every call) pushed as *ref* (host:port/repo:tag).
    Unless *keep_local*, it is removed from the host engine again, so that a pull inside
    a machine has to go to the registry. Returns (image ID, registry digest)."""
    import secrets

    c = client()
    try:
        pushed = tb_images.make_busybox_image(
            c, ref, extra_files={"/show": SHOW, "/serial": secrets.token_hex(16) + "\n"},
            executable=("/show",), changes=['ENTRYPOINT ["/show"]', "CMD []", "ENV PATH=/bin"])
    finally:
        c.close()
    assert pushed.image_id
    if not keep_local:
        remove_image(pushed.image_id)
    return pushed.image_id, pushed.digest


def image_id_of(name: str) -> str | None:
    r = docker("image", "inspect", "--format", "{{.Id}}", name, check=False)
    return r.stdout.strip() if r.returncode == 0 else None


def remove_image(name: str) -> None:
    docker("rmi", "--force", name, check=False)


def remove_repo_images(repository: str) -> None:
    """Remove every local image of *repository* (any tag or digest)."""
    r = docker("images", "--no-trunc", "--format", "{{.ID}}", repository, check=False)
    for image_id in sorted(set(r.stdout.split())):
        remove_image(image_id)


def remove_container(name: str) -> None:
    docker("rm", "--force", name, check=False)


def container_info(name: str) -> dict[str, str] | None:
    """Id, image ID, state and the image reference it was started from, or None."""
    r = docker("inspect", "--type", "container", "--format",
               "{{.Id}}|{{.Image}}|{{.State.Status}}|{{.State.StartedAt}}|{{.Config.Image}}",
               name, check=False)
    if r.returncode != 0:
        return None
    cid, image, status, started, config_image = r.stdout.strip().split("|", 4)
    return {"id": cid, "image": image, "status": status, "started_at": started,
            "config_image": config_image}
