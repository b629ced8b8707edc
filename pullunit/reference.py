"""Image references, parsed by the grammar of distribution/reference.

Pure logic. Parsing here, not in the daemon, lets `validate` reject a typo before any
unit exists, and gives the puller the registry host it must talk about in errors.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[_.]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[[a-fA-F0-9:]+\]"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|{_IPV6})(?::[0-9]+)?"
# distribution's tag grammar is [\w][\w.-]{0,127} in Go, where \w is ASCII; Python's \w
# would take "ténè", which the daemon refuses.
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"sha256:[0-9a-f]{64}"

# Used with fullmatch() only: "$" would also match before a trailing newline.
_DOMAIN_RE = re.compile(_DOMAIN, re.ASCII)
_REMAINDER = re.compile(
    rf"(?P<path>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?", re.ASCII)
# Public, so anchored for any use (match, fullmatch or search): \Z, not "$".
DIGEST_RE = re.compile(rf"\A{_DIGEST}\Z", re.ASCII)

DEFAULT_REGISTRY = "docker.io"
# Docker Hub's names: as refs write it, as the CLI's configs write it, where dockerd sends it.
HUB_NAMES = ("docker.io", "index.docker.io", "registry-1.docker.io")


def canonical_registry(host: str) -> str:
    """A registry host as Docker means it: Docker Hub under any of its names is
    "docker.io"; other hosts as written."""
    return DEFAULT_REGISTRY if host.lower() in HUB_NAMES else host
NAME_TOTAL_LENGTH_MAX = 255


class BadReference(ValueError):
    pass


@dataclass(frozen=True)
class ImageRef:
    """A parsed reference. `domain` is None when the user wrote none (Docker Hub)."""

    domain: str | None
    path: str
    tag: str | None
    digest: str | None

    @property
    def registry(self) -> str:
        """The registry host[:port] the daemon will contact."""
        return self.domain or DEFAULT_REGISTRY

    @property
    def host(self) -> str:
        """Host name without port, for DNS checks and certs.d lookups."""
        reg = self.registry
        if reg.startswith("["):
            return reg[1 : reg.index("]")]
        return reg.rsplit(":", 1)[0] if ":" in reg else reg

    @property
    def repository(self) -> str:
        """The name as written, without tag or digest (what Docker shows in RepoTags)."""
        return f"{self.domain}/{self.path}" if self.domain else self.path

    @property
    def remote_path(self) -> str:
        """The repository path at the registry (Docker Hub adds library/ for short names)."""
        if self.domain is None and "/" not in self.path:
            return f"library/{self.path}"
        return self.path

    @property
    def tagged(self) -> str | None:
        return f"{self.repository}:{self.tag}" if self.tag else None

    def with_digest(self, digest: str) -> str:
        """repo@sha256:... — the immutable form the run unit starts."""
        return f"{self.repository}@{digest}"

    def __str__(self) -> str:
        s = self.repository
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s


def parse_registry(text: str) -> str:
    """A registry host[:port] on its own (a mirror endpoint, an origin in pullunit.toml),
    by the same grammar as the registry part of a reference: no scheme, path or user."""
    if not isinstance(text, str) or not text:
        raise BadReference("registry host is empty")
    hint = ""
    if "://" in text:
        hint = " (no scheme: the daemon chooses https, or http for an insecure registry)"
    elif "@" in text:
        hint = " (no credentials: they come from the docker config of the host)"
    elif "/" in text:
        hint = " (no path: a registry is HOST[:PORT])"
    if hint or not _DOMAIN_RE.fullmatch(text):
        raise BadReference(f"invalid registry host {text!r}{hint}; expected HOST[:PORT]")
    return text


def _looks_like_domain(first: str) -> bool:
    # The same rule as distribution's splitDockerDomain: a first component is a registry
    # when it has a dot, a port, is localhost, or has upper-case letters.
    return "." in first or ":" in first or first == "localhost" or first != first.lower()


def parse_reference(text: str, *, require_tag_or_digest: bool = True) -> ImageRef:
    if not isinstance(text, str) or not text:
        raise BadReference("image reference is empty")
    if text != text.strip():
        raise BadReference(f"image reference {text!r} has leading or trailing white space")
    # Split the domain off first so that a port colon is not taken for a tag.
    domain: str | None = None
    rest = text
    if "/" in text:
        first, remainder = text.split("/", 1)
        if _looks_like_domain(first):
            domain, rest = first, remainder
    m = _REMAINDER.fullmatch(rest)
    if not m or (domain is not None and not _DOMAIN_RE.fullmatch(domain)):
        hint = ""
        if any(c.isupper() for c in rest.split(":")[0].split("@")[0]):
            hint = " (repository names must be lower case)"
        elif "@" in text and not re.search(r"@sha256:[0-9a-f]{64}\Z", text):
            hint = " (a digest is @sha256: followed by 64 lower-case hex digits)"
        raise BadReference(
            f"invalid image reference {text!r}{hint}; "
            "expected [HOST[:PORT]/]PATH[:TAG][@sha256:DIGEST]"
        )
    ref = ImageRef(domain=domain, path=m.group("path"), tag=m.group("tag"),
                   digest=m.group("digest"))
    if len(ref.repository) > NAME_TOTAL_LENGTH_MAX:
        raise BadReference(
            f"image name {ref.repository!r} is longer than {NAME_TOTAL_LENGTH_MAX} characters")
    if require_tag_or_digest and not ref.tag and not ref.digest:
        raise BadReference(
            f"image reference {text!r} has neither tag nor digest; pullunit does not assume "
            f"':latest' (write {text}:latest if you mean it, or pin @sha256:...)"
        )
    return ref
