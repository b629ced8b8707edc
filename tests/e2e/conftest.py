"""Fixtures for the systemd-in-nspawn end-to-end tests.

* ``e2e_root`` (session): the cached Debian 12 root from :func:`harness.build_root`.
* ``host_docker`` (session): makes sure a host Docker engine answers on /run/docker.sock.
* ``machine`` (function): a freshly booted :class:`harness.Machine`; on a failed test the
  container's journal is attached to the test report as an "e2e journal" section.

Every test in this directory is marked ``e2e``. Missing prerequisites (not root, no
systemd-nspawn / debootstrap) fail the tests with a message saying what to install:
a silently skipped e2e suite would look green while testing nothing.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

# Test modules here import `harness` by its plain name; make that work whether or not
# tests/e2e is a package and whatever pytest's import mode is.
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import harness  # noqa: E402


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(_HERE):
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """Attach the container journal to a failed test's report. Done here, while the
    machine is still up (fixture teardown comes after the call report)."""
    outcome = yield
    rep = outcome.get_result()
    if rep.when != "call" or not rep.failed:
        return
    funcargs = getattr(item, "funcargs", {})
    seen: set[int] = set()  # one machine may be reachable through several fixtures
    for name, value in funcargs.items():
        if isinstance(value, harness.Machine) and value.pid1 is not None:
            if id(value) in seen:
                continue
            seen.add(id(value))
            try:
                text = value.journal()
            except Exception as e:  # the machine may be the thing that broke
                text = f"(could not read journal: {e})\nconsole:\n{value.console_tail()}"
            rep.sections.append((f"e2e journal ({name}: {value.name})", text))


def _require_prerequisites() -> None:
    problems = harness.check_prerequisites()
    if problems:
        pytest.fail("e2e prerequisites missing:\n  " + "\n  ".join(problems), pytrace=False)


@pytest.fixture(scope="session")
def e2e_root() -> Path:
    _require_prerequisites()
    cache = os.environ.get("PULLUNIT_E2E_CACHE", harness.DEFAULT_CACHE_DIR)
    return Path(harness.build_root(cache))


@pytest.fixture(scope="session")
def host_docker() -> Generator[None, None, None]:
    """A Docker engine on the host's /run/docker.sock for the whole session (machines
    bind-mount that socket, so it must exist before the first boot). Stopped at the
    end only if this fixture started it."""
    from tests.testbed.dockerd import ensure_dockerd, stop_main_dockerd_if_started

    _require_prerequisites()
    ensure_dockerd()
    try:
        yield
    finally:
        stop_main_dockerd_if_started()


@pytest.fixture(scope="session", autouse=True)
def no_leftovers_at_end() -> Generator[None, None, None]:
    """After the last e2e test: no machine dir, overlay mount, nspawn process or
    machine cgroup of ours may survive. (Checked only when no other session's
    machines were already around at the start, so a parallel run can't trip it.)"""
    before = harness.leftovers()
    yield
    if not before:
        left = harness.leftovers()
        assert not left, "e2e harness left things behind:\n  " + "\n  ".join(left)


@pytest.fixture
def machine(e2e_root: Path, host_docker: None) -> Iterator[harness.Machine]:
    with harness.Machine(e2e_root) as m:
        yield m
