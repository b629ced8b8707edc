"""pullunit.platform: the one parse / normalise / match rule for config, puller and doctor."""

from __future__ import annotations

import pytest

from pullunit import platform
from pullunit.platform import Platform, architecture_of_machine, matches, normalize, parse


@pytest.mark.parametrize(("text", "expected"), [
    ("linux/amd64", Platform("linux", "amd64")),
    ("linux/arm64/v8", Platform("linux", "arm64", "v8")),  # as written, not normalised
    ("linux/arm/v7", Platform("linux", "arm", "v7")),
    ("Linux/AMD64", Platform("Linux", "AMD64")),  # containerd's grammar allows case
    ("linux/x86-64", Platform("linux", "x86-64")),
    ("windows/amd64", Platform("windows", "amd64")),
    ("linux/s390x", Platform("linux", "s390x")),
])
def test_parse(text: str, expected: Platform) -> None:
    assert parse(text) == expected
    assert str(parse(text)) == text


@pytest.mark.parametrize("text", [
    "", "amd64", "linux", "linux/", "/amd64", "linux//v7", "linux/amd64/", "linux/arm/v7/x",
    "linux/amd 64", "linux/amd64\n", "linux/$ARCH", "linux/%i", "linux/amd64;x", "li nux/arm",
    "linux/ténè",
])
def test_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="expected OS/ARCH\\[/VARIANT\\]"):
        parse(text)


@pytest.mark.parametrize(("given", "normal"), [
    # containerd's normalizeArch, case by case
    ("linux/amd64", "linux/amd64"),
    ("linux/x86_64", "linux/amd64"),
    ("linux/x86-64", "linux/amd64"),
    ("linux/amd64/v1", "linux/amd64"),  # v1 is amd64's default
    ("linux/amd64/v2", "linux/amd64/v2"),
    ("linux/amd64/v3", "linux/amd64/v3"),
    ("linux/i386", "linux/386"),
    ("linux/i686", "linux/386"),
    ("linux/386", "linux/386"),
    ("linux/aarch64", "linux/arm64"),
    ("linux/arm64", "linux/arm64"),
    ("linux/arm64/v8", "linux/arm64"),  # v8 is arm64's default
    ("linux/arm64/8", "linux/arm64"),
    ("linux/aarch64/v8", "linux/arm64"),
    ("linux/arm64/v9", "linux/arm64/v9"),
    ("linux/armhf", "linux/arm/v7"),
    ("linux/armel", "linux/arm/v6"),
    ("linux/arm", "linux/arm/v7"),  # arm without a variant is v7
    ("linux/arm/7", "linux/arm/v7"),
    ("linux/arm/v7", "linux/arm/v7"),
    ("linux/arm/6", "linux/arm/v6"),
    ("linux/arm/v6", "linux/arm/v6"),
    ("linux/arm/5", "linux/arm/v5"),
    ("linux/arm/8", "linux/arm/v8"),
    ("linux/armv7l", "linux/arm/v7"),  # uname -m on 32-bit ARM
    ("linux/armv6l", "linux/arm/v6"),
    ("linux/ppc64le", "linux/ppc64le"),
    ("linux/s390x", "linux/s390x"),
    ("linux/riscv64", "linux/riscv64"),
    ("Linux/AMD64", "linux/amd64"),
    ("LINUX/ARM64/V8", "linux/arm64"),
    ("windows/amd64", "windows/amd64"),
])
def test_normalize(given: str, normal: str) -> None:
    assert str(normalize(parse(given))) == normal
    assert normalize(normalize(parse(given))) == normalize(parse(given))  # idempotent


@pytest.mark.parametrize(("want", "have", "ok"), [
    # the disagreements of issue 12: the puller used to reject these, doctor passed them
    ("linux/arm64/v8", "linux/arm64", True),
    ("linux/arm/v7", "linux/arm", True),
    ("linux/aarch64", "linux/arm64", True),
    # the same, the other way round
    ("linux/arm64", "linux/arm64/v8", True),
    ("linux/arm", "linux/arm/v7", True),
    ("linux/arm64", "linux/aarch64", True),
    # exact and normalised names
    ("linux/amd64", "linux/amd64", True),
    ("linux/amd64", "linux/x86_64", True),
    ("linux/x86_64", "linux/amd64", True),
    ("linux/386", "linux/i386", True),
    ("linux/amd64/v1", "linux/amd64", True),
    ("linux/armhf", "linux/arm/v7", True),
    ("linux/armhf", "linux/arm", True),
    ("linux/armel", "linux/arm/v6", True),
    ("linux/armhf", "linux/arm/v6", False),  # armhf names a variant (v7)
    ("Linux/amd64", "linux/amd64", True),
    # no variant wanted: any variant will do
    ("linux/arm", "linux/arm/v6", True),
    ("linux/arm", "linux/arm/v5", True),
    ("linux/arm64", "linux/arm64/v9", True),
    ("linux/amd64", "linux/amd64/v3", True),
    # a variant wanted: it must agree
    ("linux/arm/v7", "linux/arm/v6", False),
    ("linux/arm/v6", "linux/arm", False),  # the image's missing variant is v7
    ("linux/arm64/v8", "linux/arm64/v9", False),
    ("linux/amd64/v3", "linux/amd64", False),
    # different OS or architecture never match
    ("linux/amd64", "linux/arm64", False),
    ("linux/amd64", "windows/amd64", False),
    ("linux/arm64", "linux/arm", False),
    ("linux/arm", "linux/arm64", False),
    ("linux/amd64", "linux/386", False),
    ("linux/s390x", "linux/amd64", False),
    # what an engine may report for a half-described image: compared, never raised
    ("linux/amd64", "linux/", False),
    ("linux/amd64", "", False),
])
def test_matches(want: str, have: str, ok: bool) -> None:
    assert matches(want, have) is ok
    assert matches(parse(want), have) is ok  # a Platform as written means the same


def test_matches_takes_platforms() -> None:
    assert matches(Platform("linux", "arm64", "v8"), Platform("linux", "aarch64"))
    assert not matches(Platform("linux", "arm", "v6"), Platform("linux", "arm"))


@pytest.mark.parametrize(("machine", "arch"), [
    ("x86_64", "amd64"), ("aarch64", "arm64"), ("armv7l", "arm"), ("i686", "386"),
    ("ppc64le", "ppc64le"), ("s390x", "s390x"), ("riscv64", "riscv64"),
])
def test_architecture_of_machine(machine: str, arch: str) -> None:
    assert architecture_of_machine(machine) == arch


def test_puller_and_doctor_use_this_rule() -> None:
    """One rule per fact: neither keeps a copy of its own."""
    from pullunit import puller
    from pullunit.doctor import image

    assert not hasattr(puller, "_platform_matches")
    assert puller.platform is platform and image.platform is platform
