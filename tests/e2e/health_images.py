"""Images that differ in health, for the readiness gate and `pullunit update`: busybox
rootfs images made on the host engine and pushed (tests.testbed.images), with Docker's
own HEALTHCHECK in their image config.

* ``healthy``: healthy ``ready_after`` seconds after the start (the entrypoint creates
  /tmp/ready then; the check is ``test -f /tmp/ready``, inside a start period so the
  early failures do not count).
* ``never``: the check always fails: unhealthy after ``retries`` (2) one-second checks.
* ``exits``: the container exits with status 3 at once (the check would pass).

Every container stays up until SIGTERM and exits 0 on it (``docker stop`` is quick).
"""

from __future__ import annotations

import secrets
from typing import Literal

import registry_helpers as rh

Kind = Literal["healthy", "never", "exits"]

_STAY = """trap 'exit 0' TERM INT
while :; do sleep 1 & wait $!; done
"""
_ENTRY = {
    "healthy": "#!/bin/sh\n(sleep {ready_after}; : > /tmp/ready) &\n" + _STAY,
    "never": "#!/bin/sh\n" + _STAY,
    "exits": "#!/bin/sh\necho 'exiting at once' >&2\nexit 3\n",
}
_CHECK = {
    "healthy": 'HEALTHCHECK --interval=1s --timeout=2s --start-period=60s --retries=2 '
               'CMD ["test", "-f", "/tmp/ready"]',
    "never": 'HEALTHCHECK --interval=1s --timeout=2s --retries=2 CMD ["false"]',
    "exits": 'HEALTHCHECK --interval=1s --timeout=2s --retries=2 CMD ["true"]',
}


def push_health_image(ref: str, kind: Kind, *, ready_after: int = 3,
                      keep_local: bool = False) -> tuple[str, str]:
    """Push a new image of this kind as *ref* (host:port/repo:tag); a fresh digest every
    call. Returns (image ID, registry digest); the local copy is removed unless
    *keep_local*, so a machine's puller has to pull it."""
    from tests.testbed import images as tb_images

    entry = _ENTRY[kind].format(ready_after=ready_after)
    c = rh.client()
    try:
        pushed = tb_images.make_busybox_image(
            c, ref, extra_files={"/entry": entry, "/serial": secrets.token_hex(16) + "\n"},
            executable=("/entry",),
            changes=['ENTRYPOINT ["/entry"]', "CMD []", "ENV PATH=/bin", _CHECK[kind]])
    finally:
        c.close()
    assert pushed.image_id
    if not keep_local:
        rh.remove_image(pushed.image_id)
    return pushed.image_id, pushed.digest
