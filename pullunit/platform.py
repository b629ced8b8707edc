"""Image platforms (OS/ARCH[/VARIANT]): parse, normalise and match, the one rule for all.

Pure logic. The config validates `image.platform` with `parse`, the puller accepts a
pulled image with `matches`, and doctor judges local images and manifests with the same
`matches`, so they cannot disagree.

Normalisation is containerd's (platforms/database.go, which dockerd uses): uname names
become Go's GOARCH (x86_64 -> amd64, aarch64 -> arm64, i386/i686 -> 386), Debian's
armhf/armel become arm/v7 and arm/v6, a default variant is dropped (arm64/v8 is arm64,
amd64/v1 is amd64) and `arm` without a variant is arm/v7.

Matching: OS and architecture must be equal after normalisation; the variant counts
only when the wanted platform names one (`linux/arm` takes any arm image, as a pull with
`--platform linux/arm` does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# containerd's specifier grammar for each part (platforms.go: specifierRe)
_PART = re.compile(r"[A-Za-z0-9_-]+")

# architecture (lower case) -> (GOARCH, variant it implies, or None to keep the given one)
_ARCH: dict[str, tuple[str, str | None]] = {
    "x86_64": ("amd64", None), "x86-64": ("amd64", None), "amd64": ("amd64", None),
    "i386": ("386", ""), "i686": ("386", ""), "386": ("386", ""),
    "aarch64": ("arm64", None), "arm64": ("arm64", None),
    "armhf": ("arm", "v7"), "armel": ("arm", "v6"),
    # uname -m on 32-bit ARM kernels
    "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"), "armv5l": ("arm", "v5"),
}
# variants that are the architecture's default, written every way containerd accepts
_DEFAULT_VARIANT = {"amd64": {"v1"}, "arm64": {"8", "v8"}}
_ARM_VARIANTS = {"": "v7", "7": "v7", "5": "v5", "6": "v6", "8": "v8"}


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base


def parse(text: str) -> Platform:
    """OS/ARCH[/VARIANT] as written (not normalised); ValueError says what is wrong."""
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(_PART.fullmatch(p) for p in parts):
        raise ValueError(f"invalid platform {text!r}; expected OS/ARCH[/VARIANT], "
                         "e.g. linux/amd64")
    return Platform(*parts)


def normalize(p: Platform) -> Platform:
    """containerd's normalisation (see the module docstring)."""
    arch, variant = p.architecture.lower(), p.variant.lower()
    goarch, implied = _ARCH.get(arch, (arch, None))
    if implied is not None:
        variant = implied
    if variant in _DEFAULT_VARIANT.get(goarch, ()):
        variant = ""
    if goarch == "arm":
        variant = _ARM_VARIANTS.get(variant, variant)
    return Platform(p.os.lower() or "linux", goarch, variant)


def _as_platform(p: str | Platform) -> Platform:
    """Lenient: what an engine or a manifest reports is compared, not validated."""
    if isinstance(p, Platform):
        return p
    parts = [*p.split("/", 2), "", ""]
    return Platform(parts[0], parts[1], parts[2])


def matches(want: str | Platform, have: str | Platform) -> bool:
    """Whether an image for `have` satisfies a request for `want`. Both are taken as
    written; a variant in `want` (even a default one like arm64/v8) must agree with
    `have`'s after normalisation, no variant in `want` accepts any."""
    w_raw = _as_platform(want)
    w, h = normalize(w_raw), normalize(_as_platform(have))
    if (w.os, w.architecture) != (h.os, h.architecture):
        return False
    return not _names_variant(w_raw) or w.variant == h.variant


def _names_variant(p: Platform) -> bool:
    """Does p ask for a variant? armhf/armel name one implicitly."""
    return bool(p.variant) or _ARCH.get(p.architecture.lower(), ("", None))[1] not in (None, "")


def architecture_of_machine(machine: str) -> str:
    """GOARCH for `uname -m` (platform.machine()); unknown names pass through."""
    return normalize(Platform("linux", machine)).architecture
