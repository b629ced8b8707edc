"""Registry credentials from a docker config.json, as the docker CLI finds them.

Read here rather than through docker-py for two reasons: a cold pull need not import
docker-py at all, and a credential helper (`credsStore`/`credHelpers`, a
`docker-credential-NAME` program) is a process that can wait forever (for a prompt, a
locked keyring, a network call). docker-py runs it with no timeout; here it runs in its
own process group with a limit, and the whole group is killed when the limit passes.

A helper that is missing, fails or does not answer is a configuration problem of this
host, its own failure class `credentials` (exit 78) with a fix naming the helper and the
config key that names it: pulling anonymously instead would only turn it into a
misleading "no basic auth credentials", and calling it `denied` would send the operator
to the registry's permissions instead of this host's helper.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from .classify import Failure, FailureClass, PullFailed
from .errors import ConfigError
from .printable import printable
from .redact import redact
from .reference import ImageRef, canonical_registry

# How long one `docker-credential-NAME get` may take. A helper that answers from a
# keyring or a file takes milliseconds; a cloud helper (ecr-login, gcr) makes one HTTPS
# call. Callers lower it further to what is left of their own deadline.
HELPER_TIMEOUT = 10.0
INDEX_SERVER = "https://index.docker.io/v1/"  # how the CLI names Docker Hub in configs
TOKEN_USERNAME = "<token>"  # a helper's way of saying "Secret is an identity token"


@dataclass(frozen=True)
class Auth:
    """What the daemon takes in X-Registry-Auth. Never logged."""

    username: str = ""
    password: str = ""
    identitytoken: str = ""
    registrytoken: str = ""
    serveraddress: str = ""

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in self.__dict__.items() if v}

    def secrets(self) -> tuple[str, ...]:
        """Every form in which these credentials could come back in a registry's or the
        daemon's text: the secret values, Basic auth's base64, the X-Registry-Auth header."""
        import base64

        basic = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return tuple(v for v in (self.password, self.identitytoken, self.registrytoken,
                                 basic if self.password else "", self.header()) if v)

    def header(self) -> str:
        """base64url(JSON), exactly as docker-py's auth.encode_header builds it."""
        import base64

        return base64.urlsafe_b64encode(json.dumps(self.as_dict()).encode("ascii")).decode()


@dataclass(frozen=True)
class Credentials:
    config_path: Path | None  # which docker config.json was consulted
    auth: Auth | None  # never logged
    helper: str | None = None  # the docker-credential-NAME that supplied them

    @property
    def found(self) -> bool:
        return self.auth is not None

    def secrets(self) -> tuple[str, ...]:
        return self.auth.secrets() if self.auth else ()

    @property
    def auth_config(self) -> dict[str, str] | None:
        """docker-py's form (for callers that hand credentials to docker-py)."""
        return self.auth.as_dict() if self.auth else None


class HelperFailed(PullFailed):
    """A credential helper is missing, failed, or did not answer in time: `helper` is the
    docker-credential-NAME program, `where` the config key that names it
    ("credsStore in /root/.docker/config.json")."""

    def __init__(self, helper: str, message: str, where: str = ""):
        super().__init__(Failure(FailureClass.CREDENTIALS, printable(redact(message))))
        self.helper = helper
        self.where = where


def default_config_path() -> Path:
    """The docker CLI's own lookup: $DOCKER_CONFIG/config.json, else ~/.docker/config.json."""
    base = os.environ.get("DOCKER_CONFIG")
    if base:
        return Path(base) / "config.json"
    return Path(os.path.expanduser("~")) / ".docker" / "config.json"


def _host_of(key: str) -> str:
    """An auths key may be a URL (legacy https://host/v1/); compare by host[:port]."""
    host = key.split("://", 1)[-1].split("/", 1)[0]
    return canonical_registry(host)


def _load(path: Path, explicit: bool) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        if explicit:
            raise ConfigError(f"image.auth_file {path}: cannot read: no such file") from None
        return None
    except OSError as e:
        if explicit:
            raise ConfigError(f"image.auth_file {path}: cannot read: {e.strerror}") from e
        return None
    except ValueError as e:
        if explicit:
            raise ConfigError(f"image.auth_file {path}: not valid JSON: {e}") from e
        return None  # the CLI refuses such a file too; pull anonymously and say so on 401
    if not isinstance(data, dict):
        if explicit:
            raise ConfigError(f"image.auth_file {path}: not a JSON object")
        return None
    return data


def _from_auths(auths: object, registry: str) -> Auth | None:
    if not isinstance(auths, dict):
        return None
    entry = auths.get(registry)
    if entry is None:
        entry = next((v for k, v in auths.items() if _host_of(str(k)) == registry), None)
    if not isinstance(entry, dict):
        return None
    server = str(entry.get("serveraddress") or registry)
    if entry.get("identitytoken"):
        return Auth(identitytoken=str(entry["identitytoken"]), serveraddress=server)
    user, password = str(entry.get("username") or ""), str(entry.get("password") or "")
    if entry.get("auth"):
        import base64

        try:
            user, _, password = base64.b64decode(str(entry["auth"])).decode().partition(":")
        except ValueError:  # binascii.Error is one
            return None
    if entry.get("registrytoken"):
        return Auth(registrytoken=str(entry["registrytoken"]), serveraddress=server)
    if not user and not password:
        return None  # an empty placeholder: the CLI keeps such entries for a credsStore
    return Auth(username=user, password=password, serveraddress=server)


def run_helper(name: str, server: str, timeout: float, where: str) -> Auth | None:
    """`docker-credential-NAME get` with the server on stdin, bounded by `timeout`.

    None when the helper has no credentials for `server`; HelperFailed when it is
    missing, fails, or does not answer within `timeout` (its process group is killed)."""
    # Only here: a cold pull without a helper need not import process machinery.
    import shutil
    import signal
    import subprocess

    program = f"docker-credential-{name}"
    path = shutil.which(program)
    if path is None:
        raise HelperFailed(program, f"credential helper {program} ({where}) is not installed "
                           "or not on PATH", where)
    try:
        proc = subprocess.Popen([path, "get"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True)
    except OSError as e:
        raise HelperFailed(program, f"credential helper {program} ({where}) cannot run: "
                           f"{e.strerror}", where) from e
    try:
        out, err = proc.communicate(server.encode(), timeout=max(timeout, 0.1))
    except subprocess.TimeoutExpired:
        raise HelperFailed(program, f"credential helper {program} ({where}) did not answer "
                           f"within {timeout:.3g}s; it was stopped", where) from None
    finally:
        if proc.returncode is None:
            # Its own session, so this reaches whatever it started too (a prompt, a
            # browser, a keyring daemon it spawned), and nothing else.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.communicate(timeout=2)
    text = (out or b"").decode(errors="replace").strip()
    if proc.returncode != 0:
        said = text or (err or b"").decode(errors="replace").strip()
        if "credentials not found" in said.lower():
            return None
        raise HelperFailed(program, f"credential helper {program} ({where}) failed with exit "
                           f"status {proc.returncode}: {said[:200]}", where)
    try:
        data = json.loads(text)
        user, secret = str(data["Username"]), str(data["Secret"])
    except (ValueError, KeyError, TypeError):
        raise HelperFailed(program, f"credential helper {program} ({where}) answered "
                           "something that is not {\"Username\", \"Secret\"} JSON",
                           where) from None
    if user == TOKEN_USERNAME:
        return Auth(identitytoken=secret, serveraddress=server)
    return Auth(username=user, password=secret, serveraddress=server)


def credentials(ref: ImageRef, auth_file: Path | None,
                helper_timeout: float = HELPER_TIMEOUT) -> Credentials:
    """Credentials for ref's registry from auth_file, else the running user's docker config.

    The same order as the docker CLI: a credHelpers entry for the registry, else the
    credsStore; when the helper has nothing for it, the config's own `auths`."""
    path = auth_file or default_config_path()
    data = _load(path, explicit=auth_file is not None)
    if data is None:
        return Credentials(path, None)
    registry = _host_of(ref.registry)
    server = INDEX_SERVER if registry == "docker.io" else registry
    helpers = data.get("credHelpers")
    helpers = helpers if isinstance(helpers, dict) else {}
    name = helpers.get(server) or helpers.get(registry)
    where = f"credHelpers[{registry!r}] in {path}"
    if not name:
        name = data.get("credsStore")
        where = f"credsStore in {path}"
    if isinstance(name, str) and name:
        auth = run_helper(name, server, helper_timeout, where)
        if auth is not None:
            return Credentials(path, auth, f"docker-credential-{name}")
    return Credentials(path, _from_auths(data.get("auths"), registry))
