"""`pullunit status`: the effective limits of the running container, from its inspect."""

from __future__ import annotations

from typing import Any

import pytest

from pullunit.commands.status import _limits_line, limits


def inspect(status: str = "running", **host: Any) -> dict[str, Any]:
    return {"State": {"Status": status}, "HostConfig": host}


@pytest.mark.parametrize(("container", "expected"), [
    (None, None),
    (inspect("exited", Memory=1 << 29), None),
    (inspect("created", Memory=1 << 29), None),
    (inspect(), {"memory": None, "memory_swap": None, "cpus": None, "pids": None}),
    # what dockerd 20.10 reports for --memory 512m --memory-swap 1g --cpus 1.5 --pids-limit 200
    (inspect(Memory=536870912, MemorySwap=1073741824, NanoCpus=1500000000, PidsLimit=200),
     {"memory": 536870912, "memory_swap": 1073741824, "cpus": 1.5, "pids": 200}),
    # no limits: zeros and nulls; unlimited swap is -1
    (inspect(Memory=0, MemorySwap=0, NanoCpus=0, PidsLimit=None, CpuQuota=0),
     {"memory": None, "memory_swap": None, "cpus": None, "pids": None}),
    (inspect(Memory=1 << 30, MemorySwap=-1, PidsLimit=-1),
     {"memory": 1 << 30, "memory_swap": -1, "cpus": None, "pids": None}),
    # --cpu-quota/--cpu-period through docker_args: the same effective limit
    (inspect(CpuQuota=50000, CpuPeriod=100000), {"memory": None, "memory_swap": None,
                                                 "cpus": 0.5, "pids": None}),
    (inspect(CpuQuota=25000), {"memory": None, "memory_swap": None, "cpus": 0.25,
                               "pids": None}),
    # odd replies are no limit, never a crash
    ({"State": None, "HostConfig": None}, None),
    (inspect(Memory="1g", NanoCpus=True, PidsLimit=[1]),
     {"memory": None, "memory_swap": None, "cpus": None, "pids": None}),
])
def test_limits_of_an_inspect(container: dict[str, Any] | None,
                              expected: dict[str, Any] | None) -> None:
    assert limits(container) == expected


def test_limits_line() -> None:
    assert _limits_line({"memory": 536870912, "memory_swap": 1073741824, "cpus": 1.5,
                         "pids": 200}) == "memory 512 MiB (with swap 1 GiB), cpus 1.5, pids 200"
    assert _limits_line({"memory": None, "memory_swap": None, "cpus": None, "pids": None}) == (
        "memory unlimited, cpus unlimited, pids unlimited")
    assert _limits_line({"memory": 6291456, "memory_swap": -1, "cpus": 0.25, "pids": None}) == (
        "memory 6 MiB (with swap unlimited), cpus 0.25, pids unlimited")
