"""pullunit.reference: image references by the distribution/reference grammar."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pullunit.reference import DIGEST_RE, BadReference, ImageRef, parse_reference

DIGEST = "sha256:" + "0123456789abcdef" * 4

# text -> (domain, path, tag, digest, registry, host, remote_path)
VALID = {
    "nginx:1.25": (None, "nginx", "1.25", None, "docker.io", "docker.io", "library/nginx"),
    "library/nginx:1": (None, "library/nginx", "1", None, "docker.io", "docker.io",
                        "library/nginx"),
    "grafana/grafana:10.0.0": (None, "grafana/grafana", "10.0.0", None, "docker.io",
                               "docker.io", "grafana/grafana"),
    "docker.io/library/nginx:1.25": ("docker.io", "library/nginx", "1.25", None, "docker.io",
                                     "docker.io", "library/nginx"),
    "ghcr.io/org/app/sub:v1": ("ghcr.io", "org/app/sub", "v1", None, "ghcr.io", "ghcr.io",
                               "org/app/sub"),
    "localhost/app:dev": ("localhost", "app", "dev", None, "localhost", "localhost", "app"),
    "localhost:5000/app:dev": ("localhost:5000", "app", "dev", None, "localhost:5000",
                               "localhost", "app"),
    "registry.example.com:5000/shop/web:1.4.2": (
        "registry.example.com:5000", "shop/web", "1.4.2", None,
        "registry.example.com:5000", "registry.example.com", "shop/web"),
    "[::1]:5000/app:1": ("[::1]:5000", "app", "1", None, "[::1]:5000", "::1", "app"),
    "Registry.Example.COM/app:1": ("Registry.Example.COM", "app", "1", None,
                                   "Registry.Example.COM", "Registry.Example.COM", "app"),
    f"nginx@{DIGEST}": (None, "nginx", None, DIGEST, "docker.io", "docker.io",
                        "library/nginx"),
    f"nginx:1.25@{DIGEST}": (None, "nginx", "1.25", DIGEST, "docker.io", "docker.io",
                             "library/nginx"),
    "a__b/c-d/e.f/g--h:T_a.g-1": (None, "a__b/c-d/e.f/g--h", "T_a.g-1", None, "docker.io",
                                  "docker.io", "a__b/c-d/e.f/g--h"),
    "app:" + "t" * 128: (None, "app", "t" * 128, None, "docker.io", "docker.io",
                         "library/app"),
}


@pytest.mark.parametrize("text", list(VALID), ids=lambda t: t[:40])
def test_valid(text: str) -> None:
    domain, path, tag, digest, registry, host, remote_path = VALID[text]
    ref = parse_reference(text)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (domain, path, tag, digest)
    assert ref.registry == registry
    assert ref.host == host
    assert ref.remote_path == remote_path
    assert str(ref) == text


def test_derived_forms() -> None:
    ref = parse_reference(f"ghcr.io/org/app:v1@{DIGEST}")
    assert ref.repository == "ghcr.io/org/app"
    assert ref.tagged == "ghcr.io/org/app:v1"
    assert ref.with_digest("sha256:" + "f" * 64) == "ghcr.io/org/app@sha256:" + "f" * 64
    assert parse_reference(f"app@{DIGEST}").tagged is None


INVALID = [
    ("uppercase repo", "Nginx:1", "repository names must be lower case"),
    ("uppercase path after domain", "docker.io/Library/nginx:1",
     "repository names must be lower case"),
    ("short digest", "nginx@sha256:abc", "a digest is @sha256: followed by 64"),
    ("upper-case hex digest", "nginx@sha256:" + "A" * 64, "a digest is @sha256:"),
    ("unknown digest algorithm", "nginx@md5:" + "0" * 32, "a digest is @sha256:"),
    ("no tag", "nginx", "has neither tag nor digest"),
    ("no tag with domain", "ghcr.io/org/app", "has neither tag nor digest"),
    ("port but no tag", "localhost:5000/app", "has neither tag nor digest"),
    ("empty tag", "nginx:", "invalid image reference"),
    ("tag starts with dash", "nginx:-1", "invalid image reference"),
    ("tag too long", "app:" + "t" * 129, "invalid image reference"),
    ("triple underscore", "a___b:1", "invalid image reference"),
    ("double dot", "a..b:1", "invalid image reference"),
    ("trailing slash", "app/:1", "invalid image reference"),
    ("leading white space", " nginx:1", "leading or trailing white space"),
    ("inner white space", "ng inx:1", "invalid image reference"),
    ("empty", "", "image reference is empty"),
    ("bad domain", "-bad.example.com/app:1", "invalid image reference"),
    ("name too long", "a/" * 127 + "bb:1", "longer than 255 characters"),
    ("scheme", "https://ghcr.io/app:1", "invalid image reference"),
    # defect 13: the grammar is ASCII (Go's \w), not Python's Unicode \w
    ("unicode tag", "nginx:t\u00e9n\u00e8", "invalid image reference"),
    ("arabic-indic digit tag", "nginx:\u0661", "invalid image reference"),
    ("fullwidth tag", "nginx:\uff56\uff11", "invalid image reference"),
    ("unicode domain", "r\u00e9g.example.com/app:1", "invalid image reference"),
    ("unicode port", "registry.example.com:\u0665\u0660\u0660\u0660/app:1",
     "invalid image reference"),
    # "$" would let a trailing newline through
    ("digest with newline", f"nginx@{DIGEST}\n", "leading or trailing white space"),
    ("domain with newline", "ghcr.io\n/app:1", "invalid image reference"),
]


@pytest.mark.parametrize(("text", "message"), [c[1:] for c in INVALID],
                         ids=[c[0] for c in INVALID])
def test_invalid(text: str, message: str) -> None:
    with pytest.raises(BadReference) as e:
        parse_reference(text)
    assert message in str(e.value)


@pytest.mark.parametrize("text", [f"{DIGEST}\n", f"{DIGEST}x", f" {DIGEST}"])
def test_digest_re_is_anchored_for_every_method(text: str) -> None:
    assert not DIGEST_RE.match(text) and not DIGEST_RE.search(text)
    assert not DIGEST_RE.fullmatch(text)


def test_invalid_message_shows_the_grammar() -> None:
    with pytest.raises(BadReference,
                       match=r"expected \[HOST\[:PORT\]/\]PATH\[:TAG\]\[@sha256:DIGEST\]"):
        parse_reference("UPPER:1")


def test_tag_optional_when_asked() -> None:
    ref = parse_reference("ghcr.io/org/app", require_tag_or_digest=False)
    assert ref == ImageRef("ghcr.io", "org/app", None, None)
    assert str(ref) == "ghcr.io/org/app"


_alnum = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=6)
_separator = st.sampled_from(["_", ".", "__", "-", "--"])
_component = st.builds(lambda first, rest: first + "".join(s + a for s, a in rest),
                       _alnum, st.lists(st.tuples(_separator, _alnum), max_size=2))
_tag = st.builds(lambda head, tail: head + tail,
                 st.sampled_from(["v", "1", "_", "A"]),
                 st.text(alphabet="abcXYZ019_.-", max_size=20))


@given(st.lists(_component, min_size=1, max_size=4), _tag)
def test_generated_references_round_trip(components: list[str], tag: str) -> None:
    # A first component with a dot would be a registry host (distribution's rule).
    components[0] = components[0].replace(".", "-")
    text = "/".join(components) + ":" + tag
    ref = parse_reference(text)
    assert ref.domain is None
    assert (ref.path, ref.tag) == ("/".join(components), tag)
    assert str(ref) == text
    assert parse_reference(str(ref)) == ref


@given(st.lists(_component, min_size=1, max_size=3), _tag)
def test_generated_references_with_registry(components: list[str], tag: str) -> None:
    text = "registry.example.com:5000/" + "/".join(components) + ":" + tag
    ref = parse_reference(text)
    assert ref.domain == "registry.example.com:5000"
    assert ref.host == "registry.example.com"
    assert str(ref) == text
