"""Integration test bed for pullunit: real dockerd, registries and faults on one host.

Everything here starts real processes (as root), idempotently, and undoes itself:
each component records what it left on the host (pids, mounts, netns, files) under
/run/pullunit-testbed, so a crashed run is cleaned up by the next one
(``sweep_stale()``, also ``python3 -m tests.testbed sweep``). Network traffic goes only
to 127.0.0.0/8 or to test hosts in network namespaces made here (10.231.0.0/16).

See README.md in this directory for the API, and observed_messages.py for the
daemon's real error texts.
"""

from __future__ import annotations

from ._util import (
    TestbedError,
    free_port,
    leftovers,
    missing_prerequisites,
    sweep_stale,
)
from .dns import DnsDockerd
from .dockerd import (
    MAIN_SOCKET,
    DockerdProcess,
    ensure_dockerd,
    main_dockerd_started_here,
    start_extra_dockerd,
    stop_extra_dockerd,
    stop_main_dockerd_if_started,
)
from .faultfront import FaultFront
from .images import (
    Pushed,
    make_big_image,
    make_busybox_image,
    make_index_image,
    make_platform_image,
    make_showargs_image,
    parse_showargs,
    push_new_digest,
)
from .netns import Netns
from .nginx import Fault, NginxProxy, rate_limited, server_error, stalled
from .pulls import PullOutcome, try_pull
from .regapi import RegistryAPI
from .registry import AccessEntry, Registry, pull_through_cache
from .tlsreg import TlsRegistry

__all__ = [
    "MAIN_SOCKET", "AccessEntry", "DnsDockerd", "DockerdProcess", "Fault", "FaultFront", "Netns",
    "NginxProxy", "PullOutcome", "Pushed", "Registry", "RegistryAPI", "TestbedError",
    "TlsRegistry", "ensure_dockerd", "free_port", "leftovers", "main_dockerd_started_here",
    "make_big_image", "make_busybox_image", "make_index_image", "make_platform_image",
    "make_showargs_image", "missing_prerequisites", "parse_showargs", "pull_through_cache",
    "push_new_digest",
    "rate_limited", "server_error", "stalled", "start_extra_dockerd", "stop_extra_dockerd",
    "stop_main_dockerd_if_started", "sweep_stale", "try_pull",
]
