"""`pullunit doctor`: the incident checklist of the field guide (sections 2, 4, 5, 6, 8, 9
and 12), automated, against the exact reference, credentials and daemon the pull unit
would use. See docs/doctor.md.

Doctor only looks: it never pulls, logs in, writes or restarts anything. It talks to the
registry itself (regclient, the standard library) the way dockerd would: the same host
and port, HTTPS verified against the system CAs plus certs.d/HOST/*.crt unless the
daemon counts the registry as insecure, in which case TLS is tried unverified and plain
HTTP is the fallback. Each check has one overall time limit, and nothing it prints
carries a credential (scrub.py).

  checklist.py   the checks in order, with their prerequisites, and the loop
  model.py       Target, Options, Check, Status
  context.py     what earlier checks learned, for later ones
  image.py       reference, local_image, platform
  daemon.py      daemon, daemon_config
  host.py        disk, proxy (docker.service over D-Bus)
  network.py     dns, tcp, tls
  registry.py    registry_api, credentials, manifest, clock
  verdicts.py    the pure judgements (platforms, clock skew, disk)
  scrub.py       credentials out of every text
"""

from .checklist import CHECKS, REPEATED, diagnose, diagnose_repeated
from .model import CONFIG_CHECK, Check, Options, Status, Tally, Target, Verdict, failed

__all__ = ["CHECKS", "CONFIG_CHECK", "REPEATED", "Check", "Options", "Status", "Tally",
           "Target", "Verdict", "diagnose", "diagnose_repeated", "failed"]
