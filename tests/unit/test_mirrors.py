"""Mirrors of a registry: [[mirror]] in pullunit.toml and [image] mirrors (validated, named,
exit 78, apps unaffected), the endpoint order, the safety decisions (mirrors.py), and one
attempt's turn at the mirrors (mirrorpull.py) against a scripted engine. The real daemon
and registries (origin, mirrors, a pull-through cache) are in
tests/integration/test_mirrors.py."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pullunit.classify import Failure, FailureClass, PullFailed
from pullunit.config import load_app
from pullunit.credentials import Auth, Credentials
from pullunit.engine import LocalImage
from pullunit.enginehttp import EngineUnavailable
from pullunit.errors import ConfigError
from pullunit.hostconfig import load_host
from pullunit.mirrorpull import MirrorPull, Served
from pullunit.mirrors import (
    Endpoint,
    Mirror,
    Try,
    at,
    endpoints_for,
    mismatch,
    named_by_origin,
    plan,
)
from pullunit.reference import BadReference, parse_reference, parse_registry

from .conftest import MINIMAL, assert_no_traceback, run_cli

ORIGIN = "registry.example.com"
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
TAG = parse_reference(f"{ORIGIN}/team/app:1.0")
PINNED = parse_reference(f"{ORIGIN}/team/app@{D1}")


# ------------------------------------------------------------------ configuration


def test_host_mirrors_parse(config_dir: Path) -> None:
    (config_dir / "pullunit.toml").write_text(
        '[[mirror]]\nregistry = "registry.example.com"\n'
        'endpoints = ["cache.dc1.example:5000", "cache.dc2.example:5000"]\n'
        '[[mirror]]\nregistry = "docker.io"\nendpoints = ["127.0.0.1:5000"]\n'
        "trust_mirror_tags = true\n")
    host = load_host(config_dir)
    assert host.mirrors == (
        Mirror(ORIGIN, ("cache.dc1.example:5000", "cache.dc2.example:5000"), False),
        Mirror("docker.io", ("127.0.0.1:5000",), True))


def test_no_mirror_table_is_none(config_dir: Path) -> None:
    assert load_host(config_dir).mirrors == ()
    (config_dir / "pullunit.toml").write_text("[metrics]\nenabled = false\n")
    assert load_host(config_dir).mirrors == ()


@pytest.mark.parametrize("text", ["cache:5000", "10.0.0.1", "[::1]:5000", "Cache.Example"])
def test_registry_host_grammar_accepts(text: str) -> None:
    assert parse_registry(text) == text


@pytest.mark.parametrize(("text", "why"), [
    ("http://cache:5000", "no scheme"), ("cache:5000/v2", "no path"),
    ("user:pw@cache:5000", "no credentials"), ("cache_1:5000", "expected HOST[:PORT]"),
    ("", "empty"), ("cache:port", "expected HOST[:PORT]"), ("cache\n", "expected")])
def test_registry_host_grammar_rejects(text: str, why: str) -> None:
    with pytest.raises(BadReference, match=re.escape(why)):
        parse_registry(text)


@dataclass(frozen=True)
class Bad:
    id: str
    toml: str
    expected: str


BAD = [
    Bad("unknown-key", '[[mirror]]\nregistry = "r.example"\nendpoints = ["m:5000"]\n'
        "trust_tags = true\n",
        "mirror[0].trust_tags: unknown key 'trust_tags'"),
    Bad("typo-table", '[[mirrors]]\nregistry = "r.example"\nendpoints = ["m:5000"]\n',
        "mirrors: unknown table or key 'mirrors'; did you mean 'mirror'?"),
    Bad("scheme", '[[mirror]]\nregistry = "r.example"\nendpoints = ["https://m:5000"]\n',
        "mirror[0].endpoints[0]: invalid registry host 'https://m:5000' (no scheme"),
    Bad("path", '[[mirror]]\nregistry = "r.example"\nendpoints = ["m:5000/v2/"]\n',
        "mirror[0].endpoints[0]: invalid registry host 'm:5000/v2/' (no path"),
    Bad("credentials", '[[mirror]]\nregistry = "r.example"\nendpoints = ["u:p@m:5000"]\n',
        "mirror[0].endpoints[0]: invalid registry host 'u:p@m:5000' (no credentials"),
    Bad("bad-registry", '[[mirror]]\nregistry = "r.example/team"\nendpoints = ["m:5000"]\n',
        "mirror[0].registry: invalid registry host 'r.example/team' (no path"),
    Bad("empty-endpoints", '[[mirror]]\nregistry = "r.example"\nendpoints = []\n',
        "mirror[0].endpoints: must list at least one endpoint"),
    Bad("no-endpoints", '[[mirror]]\nregistry = "r.example"\n',
        "mirror[0].endpoints: is required"),
    Bad("no-registry", '[[mirror]]\nendpoints = ["m:5000"]\n',
        "mirror[0].registry: is required"),
    Bad("duplicate-registry",
        '[[mirror]]\nregistry = "r.example"\nendpoints = ["m:5000"]\n'
        '[[mirror]]\nregistry = "R.example"\nendpoints = ["n:5000"]\n',
        "mirror[1].registry: 'R.example' has a [[mirror]] table already"),
    Bad("endpoint-twice", '[[mirror]]\nregistry = "r.example"\nendpoints = ["m:1", "m:1"]\n',
        "mirror[0].endpoints[1]: endpoint 'm:1' is listed twice"),
    Bad("origin-as-endpoint", '[[mirror]]\nregistry = "r.example"\nendpoints = ["r.example"]\n',
        "mirror[0].endpoints: lists the origin 'r.example' itself"),
    Bad("trust-not-bool", '[[mirror]]\nregistry = "r.example"\nendpoints = ["m:5000"]\n'
        'trust_mirror_tags = "yes"\n', "mirror[0].trust_mirror_tags: expected true or false"),
    Bad("not-array", '[mirror]\nregistry = "r.example"\nendpoints = ["m:5000"]\n',
        "mirror: expected an array of tables [[mirror]]"),
    Bad("endpoint-not-string", '[[mirror]]\nregistry = "r.example"\nendpoints = [5000]\n',
        "mirror[0].endpoints[0]: expected a string, got integer"),
]


@pytest.mark.parametrize("case", BAD, ids=[c.id for c in BAD])
def test_bad_mirror_config(case: Bad, config_dir: Path) -> None:
    path = config_dir / "pullunit.toml"
    path.write_text(case.toml)
    with pytest.raises(ConfigError) as e:
        load_host(config_dir)
    assert e.value.exit_code == 78
    assert e.value.message.startswith(f"{path}: ") and case.expected in e.value.message
    # validate: one line naming file and key, exit 78; the app still validates on its own
    (config_dir / "web.toml").write_text(MINIMAL)
    proc = run_cli("validate", "--config-dir", config_dir)
    assert proc.returncode == 78, proc.stderr
    assert case.expected in proc.stderr and proc.stderr.count("\n") == 1
    assert f"{config_dir / 'web.toml'}: ok" in proc.stdout
    assert_no_traceback(proc.stderr)
    alone = run_cli("validate", "--config-dir", config_dir, "web")
    assert alone.returncode == 0, alone.stderr
    assert f"{config_dir / 'web.toml'}: ok" in alone.stdout


def test_app_mirrors_override(tmp_path: Path) -> None:
    path = tmp_path / "web.toml"
    path.write_text(f'[image]\nref = "{ORIGIN}/team/app:1.0"\nmirrors = ["m1:5000", "m2"]\n')
    assert load_app(path).image.mirrors == ("m1:5000", "m2")
    path.write_text(f'[image]\nref = "{ORIGIN}/team/app:1.0"\nmirrors = []\n')
    assert load_app(path).image.mirrors == ()
    path.write_text(f'[image]\nref = "{ORIGIN}/team/app:1.0"\n')
    assert load_app(path).image.mirrors is None


@pytest.mark.parametrize(("value", "expected"), [
    ('["http://m:5000"]', "image.mirrors[0]: invalid registry host 'http://m:5000' (no scheme"),
    ('["m:5000", "m:5000"]', "image.mirrors[1]: endpoint 'm:5000' is listed twice"),
    ('"m:5000"', "image.mirrors: expected an array, got string"),
])
def test_bad_app_mirrors(tmp_path: Path, value: str, expected: str) -> None:
    path = tmp_path / "web.toml"
    path.write_text(f'[image]\nref = "{ORIGIN}/team/app:1.0"\nmirrors = {value}\n')
    with pytest.raises(ConfigError) as e:
        load_app(path)
    assert e.value.exit_code == 78 and e.value.message.startswith(f"{path}: {expected}")


# ------------------------------------------------------------------ endpoint order


HOST = (Mirror(ORIGIN, ("m1:5000", "m2:5000"), trust_mirror_tags=True),
        Mirror("other.example", ("o1",)))


def test_endpoints_in_order_for_the_registry_only() -> None:
    assert endpoints_for(TAG, HOST) == (Endpoint("m1:5000", True), Endpoint("m2:5000", True))
    assert endpoints_for(parse_reference("other.example/x:1"), HOST) == (Endpoint("o1"),)
    assert endpoints_for(parse_reference("third.example/x:1"), HOST) == ()
    assert endpoints_for(TAG, ()) == ()


def test_registry_names_compare_like_hosts() -> None:
    hub = (Mirror("docker.io", ("hubcache:5000",)),)
    assert endpoints_for(parse_reference("nginx:1.25"), hub) == (Endpoint("hubcache:5000"),)
    assert endpoints_for(parse_reference("index.docker.io/library/nginx:1"), hub)
    assert endpoints_for(parse_reference("REGISTRY.example.com/team/app:1"), HOST)


def test_app_override_replaces_and_trust_stays_the_hosts() -> None:
    # The app's list replaces the host's; an endpoint the host trusts keeps that, one the
    # host never named is not trusted for tags.
    assert endpoints_for(TAG, HOST, ("m2:5000", "mine:5000")) == (
        Endpoint("m2:5000", True), Endpoint("mine:5000", False))
    assert endpoints_for(TAG, HOST, ()) == ()
    untrusted = (Mirror(ORIGIN, ("m1:5000",)),)
    assert endpoints_for(TAG, untrusted, ("m1:5000",)) == (Endpoint("m1:5000", False),)
    assert endpoints_for(TAG, (), ("m1:5000",)) == (Endpoint("m1:5000", False),)
    assert endpoints_for(TAG, (), (ORIGIN,)) == ()  # the origin comes last anyway


def test_at_names_the_repository_at_the_mirror() -> None:
    assert str(at(TAG, "m:5000", D1)) == f"m:5000/team/app@{D1}"
    assert str(at(TAG, "m:5000")) == "m:5000/team/app:1.0"
    # Docker Hub's short names are library/NAME at any other registry
    assert str(at(parse_reference("nginx:1.25"), "m:5000", D1)) == f"m:5000/library/nginx@{D1}"


# ------------------------------------------------------------------ safety decisions


E1, E2 = Endpoint("m1:5000"), Endpoint("m2:5000", trust_tags=True)


def test_a_digest_is_asked_of_every_mirror_by_digest() -> None:
    assert plan(PINNED, (E1, E2)) == (
        Try(E1, at(PINNED, E1.host, D1), D1), Try(E2, at(PINNED, E2.host, D1), D1))
    pinned_tag = parse_reference(f"{ORIGIN}/team/app:1.0@{D1}")
    assert all(t.ref.digest == D1 and t.want == D1 for t in plan(pinned_tag, (E1, E2)))


def test_a_tag_is_asked_by_the_digest_the_origin_named() -> None:
    assert plan(TAG, (E1, E2), D2) == (
        Try(E1, at(TAG, E1.host, D2), D2), Try(E2, at(TAG, E2.host, D2), D2))


@pytest.mark.parametrize("cls", sorted(FailureClass))
def test_a_mirrors_tag_counts_only_when_trusted_and_the_origin_is_silent(
        cls: FailureClass) -> None:
    tries = plan(TAG, (E1, E2), failure=cls)
    silent = cls in (FailureClass.UNREACHABLE, FailureClass.DNS, FailureClass.STALLED,
                     FailureClass.SERVER_ERROR, FailureClass.RATE_LIMITED)
    assert plan(TAG, (E1, E2)) == ()  # the origin not asked: nothing to go by
    assert tries == ((Try(E2, at(TAG, E2.host), None),) if silent else ())


def test_a_different_digest_is_rejected() -> None:
    assert mismatch(D1, D1, "m") is None
    assert "served " + D2 in (mismatch(D1, D2, "m") or "")
    assert mismatch(D1, None, "m") is not None


def test_named_by_origin() -> None:
    assert named_by_origin(TAG, (f"{ORIGIN}/team/app:1.0",), ())
    assert named_by_origin(TAG, (), (f"{ORIGIN}/team/app@{D1}",))
    assert not named_by_origin(TAG, ("m1:5000/team/app:1.0",), (f"m1:5000/team/app@{D1}",))
    assert not named_by_origin(TAG, (f"{ORIGIN}/team/other:1.0",), ())
    hub = parse_reference("nginx:1.25")
    assert named_by_origin(hub, ("nginx:1.25",), ())
    assert named_by_origin(hub, (), (f"nginx@{D1}",))


# ------------------------------------------------------------------ one turn at the mirrors


def image(n: int, *digests: str, tags: tuple[str, ...] = ()) -> LocalImage:
    return LocalImage(id=f"sha256:{n:064x}", repo_digests=digests, repo_tags=tags,
                      os="linux", architecture="amd64", variant=None, size=1)


@dataclass
class Registry:
    """What one registry (an origin or a mirror) serves: digest -> image number; tag ->
    digest; or a failure class for everything."""

    tags: dict[str, str] = field(default_factory=dict)
    content: dict[str, int] = field(default_factory=dict)
    down: FailureClass | None = None


ORIGIN_AUTH = Auth(username="origin-user", password="origin-secret")


class World:
    """A scripted daemon in front of registries: remote_digest, pulls by digest (follow),
    inspect, tag (hold) and untag (release), as the engine does them."""

    def __init__(self, registries: dict[str, Registry]):
        self.registries = registries
        self.names: dict[str, str] = {}  # local name -> image id
        self.images: dict[str, LocalImage] = {}
        self.asked: list[tuple[str, str, Auth | None]] = []  # (what, ref, auth)
        self.released: list[str] = []

    def _registry(self, ref_text: str) -> Registry:
        reg = self.registries[parse_reference(ref_text).registry]
        if reg.down is not None:
            raise PullFailed.of(reg.down, f"{ref_text}: scripted {reg.down}")
        return reg

    # Engine
    def remote_digest(self, ref: object, auth: Auth | None, timeout: float) -> str:
        assert 0 < timeout <= 60
        self.asked.append(("resolve", str(ref), auth))
        r = parse_reference(str(ref))
        reg = self._registry(str(ref))
        if r.tag not in reg.tags:
            raise PullFailed.of(FailureClass.NOT_FOUND, f"manifest for {ref} not found")
        return reg.tags[r.tag]

    def follow(self, ref: object, auth: Auth | None, limit: float | None) -> None:
        self.asked.append(("pull", str(ref), auth))
        r = parse_reference(str(ref))
        reg = self._registry(str(ref))
        assert r.digest is not None, "pulls go by digest"
        if r.digest not in reg.content:
            raise PullFailed.of(FailureClass.NOT_FOUND, f"manifest for {ref} not found")
        n = reg.content[r.digest]
        iid = f"sha256:{n:064x}"
        old = self.images.get(iid) or image(n)
        # what dockerd records: the digest under the name pulled (the manifest's own digest
        # when it checked it; a lying world stores the served digest in content's key)
        self.images[iid] = LocalImage(**{**old.__dict__,
                                         "repo_digests": (*old.repo_digests, str(ref))})
        self.names[str(ref)] = iid

    def inspect(self, name: str) -> LocalImage | None:
        iid = self.names.get(name, name)
        return self.images.get(iid)

    def hold(self, image_id: str, repo: str, tag: str) -> None:
        old = self.images[image_id]
        self.images[image_id] = LocalImage(**{**old.__dict__,
                                              "repo_tags": (*old.repo_tags, f"{repo}:{tag}")})
        self.names[f"{repo}:{tag}"] = image_id

    def release(self, name: str) -> None:
        self.released.append(name)
        iid = self.names.pop(name)
        old = self.images[iid]
        self.images[iid] = LocalImage(**{**old.__dict__, "repo_digests": tuple(
            d for d in old.repo_digests if d != name)})


def creds_by_host(ref: object, limit: float) -> Credentials:
    """Each host its own credentials, as credentials.credentials finds them."""
    host = parse_reference(str(ref)).registry
    return Credentials(None, Auth(username=f"user@{host}", password=f"secret@{host}"))


def turn(world: World, ref: object, endpoints: tuple[Endpoint, ...],
         left: Callable[[], float] = lambda: 100.0) -> Served | None:
    return MirrorPull(world, parse_reference(str(ref)), endpoints,  # type: ignore[arg-type]
                      origin_auth=ORIGIN_AUTH, follow=world.follow, credentials=creds_by_host,
                      left=left, stall_timeout=30.0).run()


def test_tag_resolved_at_origin_then_pulled_by_digest_from_the_first_mirror_that_has_it(
        caplog: pytest.LogCaptureFixture) -> None:
    world = World({ORIGIN: Registry({"1.0": D1}, {D1: 1}),
                   "m1:5000": Registry(down=FailureClass.UNREACHABLE),
                   "m2:5000": Registry({}, {}),  # up, but never had it
                   "m3:5000": Registry({"1.0": D2}, {D1: 1, D2: 2})})
    caplog.set_level(logging.INFO, "pullunit")
    served = turn(world, TAG, (E1, Endpoint("m2:5000"), Endpoint("m3:5000")))
    assert served is not None and served.digest == D1 and served.endpoint == "m3:5000"
    assert served.image.id == f"sha256:{1:064x}"
    # failed mirrors logged with their class, and skipped
    assert "mirror m1:5000 skipped (unreachable)" in caplog.text
    assert "mirror m2:5000 skipped (not_found)" in caplog.text
    # named as the origin names it; the mirror's name pullunit made is gone again
    assert f"{ORIGIN}/team/app:1.0" in served.image.repo_tags
    assert served.image.repo_digests == (f"{ORIGIN}/team/app@{D1}",)
    assert world.released == [f"m3:5000/team/app@{D1}"]
    assert ("resolve", str(TAG), ORIGIN_AUTH) == world.asked[0]
    assert world.asked[-1] == ("pull", f"{ORIGIN}/team/app@{D1}", ORIGIN_AUTH)


def test_each_host_gets_its_own_credentials_never_the_origins() -> None:
    world = World({ORIGIN: Registry({"1.0": D1}, {D1: 1}),
                   "m1:5000": Registry(down=FailureClass.SERVER_ERROR),
                   "m2:5000": Registry({}, {D1: 1})})
    assert turn(world, TAG, (E1, E2)) is not None
    for what, ref, auth in world.asked:
        host = parse_reference(ref).registry
        assert auth is not None
        if host == ORIGIN:
            assert auth == ORIGIN_AUTH
        else:
            assert auth.username == f"user@{host}", (what, ref)


def test_a_mirror_serving_another_digest_is_rejected(caplog: pytest.LogCaptureFixture) -> None:
    # The mirror claims D1 but what it served carries another digest: rejected, origin used.
    class Lying(World):
        def follow(self, ref: object, auth: Auth | None, limit: float | None) -> None:
            if parse_reference(str(ref)).registry == "m1:5000":
                super().follow(str(ref).replace(D1, D2), auth, limit)
                self.names[str(ref)] = self.names[str(ref).replace(D1, D2)]
                return
            super().follow(ref, auth, limit)

    world = Lying({ORIGIN: Registry({"1.0": D1}, {D1: 1}), "m1:5000": Registry({}, {D2: 2})})
    caplog.set_level(logging.WARNING, "pullunit")
    assert turn(world, TAG, (E1,)) is None  # the caller pulls from the origin
    assert "mirror m1:5000 skipped (digest_mismatch)" in caplog.text
    assert f"served {D2}, but {D1} was asked for" in caplog.text


def test_a_pinned_digest_is_pulled_from_a_mirror_without_asking_the_origin_first() -> None:
    world = World({ORIGIN: Registry(down=FailureClass.UNREACHABLE),
                   "m1:5000": Registry({}, {D1: 1})})
    served = turn(world, PINNED, (E1,))
    assert served is not None and served.digest == D1
    assert world.asked[0] == ("pull", f"m1:5000/team/app@{D1}",
                              Auth(username="user@m1:5000", password="secret@m1:5000"))
    # the origin is down: the image keeps the mirror's name (nothing else names it)
    assert served.image.repo_digests == (f"m1:5000/team/app@{D1}",)
    assert world.released == []


@pytest.mark.parametrize("trusted", [False, True])
def test_origin_down_a_tag_needs_a_trusted_mirror(trusted: bool) -> None:
    world = World({ORIGIN: Registry(down=FailureClass.UNREACHABLE),
                   "m1:5000": Registry({"1.0": D2}, {D2: 2})})
    endpoint = Endpoint("m1:5000", trust_tags=trusted)
    if not trusted:
        with pytest.raises(PullFailed) as e:  # the origin's answer stands: retry or fall back
            turn(world, TAG, (endpoint,))
        assert e.value.failure.cls is FailureClass.UNREACHABLE
        assert not [a for a in world.asked if "m1:5000" in a[1]]
        return
    served = turn(world, TAG, (endpoint,))
    assert served is not None and served.digest == D2
    assert world.asked[1][:2] == ("resolve", "m1:5000/team/app:1.0")
    assert ("pull", f"m1:5000/team/app@{D2}") == world.asked[2][:2]
    # no name pull from a silent origin; the tag says what the origin would call it
    assert not [a for a in world.asked[3:] if a[0] == "pull"]
    assert f"{ORIGIN}/team/app:1.0" in served.image.repo_tags
    assert world.released == [f"m1:5000/team/app@{D2}"]


@pytest.mark.parametrize("cls", [FailureClass.NOT_FOUND, FailureClass.DENIED])
def test_an_origin_that_answers_no_is_not_overruled_by_a_trusted_mirror(
        cls: FailureClass) -> None:
    world = World({ORIGIN: Registry(down=cls), "m1:5000": Registry({"1.0": D2}, {D2: 2})})
    with pytest.raises(PullFailed) as e:
        turn(world, TAG, (Endpoint("m1:5000", trust_tags=True),))
    assert e.value.failure.cls is cls
    assert len(world.asked) == 1


def test_a_dead_daemon_or_a_spent_attempt_ends_the_turn() -> None:
    class NoDaemon(World):
        def follow(self, ref: object, auth: Auth | None, limit: float | None) -> None:
            raise EngineUnavailable("gone", "unix:///run/docker.sock")

    world = NoDaemon({ORIGIN: Registry({"1.0": D1}, {D1: 1}), "m1:5000": Registry({}, {D1: 1})})
    with pytest.raises(PullFailed) as e:
        turn(world, TAG, (E1, E2))
    assert e.value.failure.cls is FailureClass.DAEMON_UNAVAILABLE
    # the cutoff passed during a mirror's pull: not that mirror's fault, the attempt is over
    clock = iter([100.0, 100.0, 0.0, 0.0, 0.0])  # resolve, m1's credentials, m1 failed
    world = World({ORIGIN: Registry({"1.0": D1}, {D1: 1}),
                   "m1:5000": Registry(down=FailureClass.STALLED),
                   "m2:5000": Registry({}, {D1: 1})})
    with pytest.raises(PullFailed) as e:
        turn(world, TAG, (E1, E2), left=lambda: next(clock))
    assert e.value.failure.cls is FailureClass.STALLED
    assert not [a for a in world.asked if "m2:5000" in a[1]]


def test_a_mirrors_credentials_never_reach_the_log(caplog: pytest.LogCaptureFixture) -> None:
    class Echo(World):
        def follow(self, ref: object, auth: Auth | None, limit: float | None) -> None:
            assert auth is not None
            raise PullFailed(Failure(FailureClass.DENIED, f"denied for {auth.password}"))

    world = Echo({ORIGIN: Registry({"1.0": D1}, {D1: 1}), "m1:5000": Registry({}, {D1: 1})})
    caplog.set_level(logging.WARNING, "pullunit")
    assert turn(world, TAG, (E1,)) is None
    assert "secret@m1:5000" not in caplog.text and "mirror m1:5000 skipped" in caplog.text


def test_the_origins_credentials_never_reach_the_log(caplog: pytest.LogCaptureFixture) -> None:
    class Echo(World):
        def remote_digest(self, ref: object, auth: Auth | None, timeout: float) -> str:
            assert auth is not None
            raise PullFailed(Failure(FailureClass.UNREACHABLE, f"no: {auth.password}"))

    world = Echo({ORIGIN: Registry(), "m1:5000": Registry({}, {D1: 1})})
    caplog.set_level(logging.WARNING, "pullunit")
    with pytest.raises(PullFailed) as e:
        turn(world, TAG, (E1,))
    assert "origin-secret" not in caplog.text and "cannot resolve" in caplog.text
    assert "origin-secret" not in e.value.failure.message
