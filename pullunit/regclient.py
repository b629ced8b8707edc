"""Doctor's registry client: WWW-Authenticate parsing, and a registry session the way
dockerd holds one (the token flow, redirects, Authorization dropped off the host), over
boundedhttp.py's requests, each bounded by the caller's deadline. Also the registry's pull
quota (`read_rate_limit`, one manifest HEAD) for doctor and for the puller after a 429
(`quota_after_429`)."""

from __future__ import annotations

import base64
import enum
import http.client
import json
import re
import ssl
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .boundedhttp import (
    Deadline,
    Download,
    Endpoint,
    Response,
    describe_oserror,
    download_once,
    request,
    resolve,
)

if TYPE_CHECKING:
    from .ratelimit import RateLimit
    from .reference import ImageRef

_CHALLENGE = re.compile(r"\s*([A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*)(?:\s+(.*))?$", re.S)
_PARAM = re.compile(r'\s*([A-Za-z0-9!#$%&\'*+.^_`|~-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))'
                    r"\s*(?:,|$)")


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: "bearer", "basic"
    params: dict[str, str]


def parse_www_authenticate(value: str) -> Challenge | None:
    """The first challenge of a WWW-Authenticate header (RFC 7235 auth-params, quoted
    strings with backslash escapes). Registries send one: Basic or Bearer."""
    m = _CHALLENGE.match(value or "")
    if not m:
        return None
    rest = m.group(2) or ""
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        p = _PARAM.match(rest, pos)
        if not p or p.end() == pos:
            break
        raw = p.group(2)
        params[p.group(1).lower()] = (re.sub(r"\\(.)", r"\1", raw) if raw is not None
                                      else p.group(3))
        pos = p.end()
    return Challenge(m.group(1).lower(), params)


def pick_challenge(headers: Sequence[str]) -> Challenge | None:
    """Bearer over Basic when a registry offers both (dockerd prefers the token flow)."""
    parsed = [c for c in map(parse_www_authenticate, headers) if c is not None]
    for c in parsed:
        if c.scheme == "bearer":
            return c
    return parsed[0] if parsed else None


def token_url(challenge: Challenge, remote_path: str) -> str | None:
    """The token request for a pull of remote_path, from a Bearer challenge."""
    realm = challenge.params.get("realm")
    if not realm:
        return None
    query = [("scope", f"repository:{remote_path}:pull")]
    if challenge.params.get("service"):
        query.insert(0, ("service", challenge.params["service"]))
    sep = "&" if urllib.parse.urlsplit(realm).query else "?"
    return realm + sep + urllib.parse.urlencode(query)


def registry_errors(body: bytes) -> list[str]:
    """The error codes of a registry error body ({"errors": [{"code": ...}]})."""
    try:
        data = json.loads(body)
    except ValueError:
        return []
    errs = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(errs, list):
        return []
    return [str(e.get("code")) for e in errs if isinstance(e, dict) and e.get("code")]


# --- a registry session: the registry's endpoint, the token flow, redirects ---


class TokenProblem(enum.Enum):
    UNSUPPORTED = "unsupported"  # a challenge Docker does not answer
    NO_REALM = "no_realm"  # a Bearer challenge without a token service
    UNREACHABLE = "unreachable"  # the token request failed on the network
    DENIED = "denied"  # 401/403 from the token service
    STATUS = "status"  # another status
    NO_TOKEN = "no_token"  # 200 without a token


class TokenError(Exception):
    """No Authorization for the registry; the message says why (no secrets in it)."""

    def __init__(self, problem: TokenProblem, message: str, status: int = 0):
        super().__init__(message)
        self.problem, self.message, self.status = problem, message, status


def basic_authorization(auth: Mapping[str, Any]) -> str | None:
    """"Basic BASE64(user:password)" from a docker auth config (keys in lower case)."""
    user, password = auth.get("username"), auth.get("password")
    if not user or password is None:
        return None
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


_REDIRECTS = (301, 302, 303, 307, 308)


@dataclass(frozen=True)
class Session:
    """Requests to one registry endpoint and to the URLs it sends us to (the token realm,
    blob storage), the way dockerd makes them: those use the registry's TLS settings
    too, redirects are followed up to three times, and Authorization is dropped when a
    redirect leaves the host."""

    endpoint: Endpoint

    def get(self, path: str, headers: Mapping[str, str], deadline: Deadline) -> Response:
        return request(self.endpoint, "GET", path, headers, deadline)

    def _endpoint_for(self, scheme: str, host: str, port: int,
                      deadline: Deadline) -> Endpoint:
        ep = self.endpoint
        if (host, port, scheme) == (ep.host, ep.port, ep.scheme):
            return ep
        ctx = ep.context
        if scheme == "https" and ctx is None:
            ctx = ssl.create_default_context()
        if ep.proxy is not None:  # the proxy resolves the name, as it does for dockerd
            return Endpoint(scheme, host, port, (), 0, ctx, ep.proxy)
        family, sockaddr = resolve(host, port, deadline)[0]
        return Endpoint(scheme, host, port, sockaddr, family, ctx)

    def _target(self, url: str, deadline: Deadline) -> tuple[Endpoint, str]:
        """Where a URL (absolute, or relative to the registry) is asked, and its path."""
        u = urllib.parse.urlsplit(url)
        scheme, host = u.scheme or self.endpoint.scheme, u.hostname or self.endpoint.host
        # a relative URL is the registry's own: its port too
        port = u.port or (self.endpoint.port if not u.hostname
                          else 443 if scheme == "https" else 80)
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        return self._endpoint_for(scheme, host, port, deadline), path

    @staticmethod
    def _redirect(ep: Endpoint, path: str, location: str,
                  headers: Mapping[str, str]) -> tuple[str, dict[str, str]]:
        """The URL a redirect names, and the headers to send there: the Authorization
        header never goes to another host (or port) than the one that asked for it."""
        nxt = urllib.parse.urljoin(f"{ep.base}{path}", location)
        n = urllib.parse.urlsplit(nxt)
        if (n.hostname, n.port or (443 if n.scheme == "https" else 80)) != (ep.host, ep.port):
            return nxt, {k: v for k, v in headers.items() if k.lower() != "authorization"}
        return nxt, dict(headers)

    def fetch(self, method: str, url: str, headers: Mapping[str, str], deadline: Deadline,
              body: str | None = None, redirects: int = 3) -> Response:
        """A request to any URL (absolute, or relative to the registry)."""
        for _ in range(redirects + 1):
            ep, path = self._target(url, deadline)
            r = request(ep, method, path, headers, deadline,
                        body=None if body is None else body.encode())
            if r.status in _REDIRECTS and r.headers.get("Location"):
                url, headers = self._redirect(ep, path, r.headers["Location"], headers)
                if r.status == 303:
                    method, body = "GET", None
                continue
            return r
        raise ValueError(f"more than {redirects} redirects")

    def download(self, url: str, headers: Mapping[str, str], deadline: Deadline, want: int,
                 stall: float) -> Download:
        """GET url (redirects followed as by fetch) and read up to `want` bytes of its body,
        counting, not keeping them. Each read waits at most `stall` seconds: a transfer
        that stops is reported as stalled with the bytes it got, not as an error."""
        for _ in range(4):
            ep, path = self._target(url, deadline)
            r = download_once(ep, path, headers, deadline, want, stall)
            if r.status in _REDIRECTS and r.location:
                url, headers = self._redirect(ep, path, r.location, headers)
                continue
            return r
        raise ValueError("more than 3 redirects")

    def authorization(self, challenge: Challenge | None, remote_path: str,
                      auth: Mapping[str, Any], deadline: Deadline) -> dict[str, str]:
        """The Authorization header for a pull of remote_path after /v2/ answered 401
        with `challenge` (None: no header needed): Basic credentials, or a token from
        the Bearer realm (a refresh-token grant for an identity token, else a GET with
        Basic credentials or anonymous). `auth` is a docker auth config, keys in lower
        case. Raises TokenError."""
        if challenge is None:
            return {}
        basic = basic_authorization(auth)
        if challenge.scheme == "basic":
            return {"Authorization": basic} if basic else {}
        if challenge.scheme != "bearer":
            raise TokenError(TokenProblem.UNSUPPORTED, f"the registry asks for "
                             f"{challenge.scheme} authentication, which Docker does not speak")
        url = token_url(challenge, remote_path)
        if url is None:
            raise TokenError(TokenProblem.NO_REALM, "the Bearer challenge names no realm")
        headers: dict[str, str] = {}
        method, body = "GET", None
        if auth.get("identitytoken"):
            method = "POST"
            params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
            body = urllib.parse.urlencode({"grant_type": "refresh_token",
                                           "refresh_token": str(auth["identitytoken"]),
                                           "client_id": "pullunit", **params})
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            url = url.split("?", 1)[0]
        elif basic:
            headers["Authorization"] = basic
        shown = url.split("?", 1)[0]
        try:
            r = self.fetch(method, url, headers, deadline, body)
        except (OSError, ssl.SSLError, http.client.HTTPException, ValueError) as e:
            raise TokenError(TokenProblem.UNREACHABLE,
                             f"token request to {shown}: {describe_oserror(e)}") from e
        if r.status in (401, 403):
            what = ("refused the credentials" if basic or auth.get("identitytoken")
                    else "refused an anonymous token (no credentials were sent)")
            raise TokenError(TokenProblem.DENIED,
                             f"the token service {shown} {what} ({r.status})", r.status)
        if r.status != 200:
            raise TokenError(TokenProblem.STATUS,
                             f"token request to {shown}: {r.status} {r.reason}", r.status)
        try:
            data = json.loads(r.body)
            token = str(data.get("token") or data.get("access_token") or "")
        except (ValueError, AttributeError):
            token = ""
        if not token:
            raise TokenError(TokenProblem.NO_TOKEN,
                             f"the token service {shown} returned no token")
        return {"Authorization": f"Bearer {token}"}


# --- the pull quota: one manifest HEAD ---

HUB_API_HOST = "registry-1.docker.io"  # where dockerd sends docker.io requests
QUOTA_TIMEOUT = 3.0  # the puller's look at the quota after a 429: short, it is a courtesy
_HEAD_ACCEPT = ", ".join((
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
))


@dataclass(frozen=True)
class QuotaReading:
    status: int  # of the HEAD: 200, or 429 when the quota is used up
    rate_limit: RateLimit


def read_rate_limit(session: Session, ref: ImageRef, auth: Mapping[str, Any],
                    deadline: Deadline,
                    authorization: Mapping[str, str] | None = None) -> QuotaReading:
    """The registry's pull quota for ref, from a manifest HEAD (Docker Hub does not count
    a HEAD as a pull) sent with the pull's credentials: Docker Hub counts per account when
    authenticated, per address when not. `authorization` when the caller has it already;
    else GET /v2/ and its challenge decide it, as dockerd does before a pull. Raises what
    Session raises (OSError, ssl.SSLError, http.client.HTTPException, ValueError,
    TokenError); no credential is ever part of an error."""
    import time

    from .ratelimit import from_headers

    if authorization is None:
        ping = session.fetch("GET", "/v2/", {}, deadline)
        challenge = (pick_challenge(ping.headers.get_all("WWW-Authenticate") or [])
                     if ping.status == 401 else None)
        authorization = session.authorization(challenge, ref.remote_path, auth, deadline)
    path = f"/v2/{ref.remote_path}/manifests/{ref.digest or ref.tag or 'latest'}"
    r = session.fetch("HEAD", path, {**authorization, "Accept": _HEAD_ACCEPT}, deadline)
    return QuotaReading(r.status, from_headers(r.headers.items(), time.time()))


def quota_after_429(ref: ImageRef, auth: Mapping[str, Any], timeout: float,
                    certs_d: Path = Path("/etc/docker/certs.d")) -> RateLimit | None:
    """The puller's look at the quota after the daemon reported a 429: straight to the
    registry (https with the system CAs and certs.d/REGISTRY, plain http for loopback,
    which dockerd treats as insecure), everything within `timeout`. None when the
    registry sends no quota or cannot be asked directly (a host that needs the daemon's
    proxy): the pull goes on either way."""
    from .dockerconf import is_loopback, registry_port
    from .reference import HUB_NAMES

    deadline = Deadline.after(timeout)
    hub = ref.registry in HUB_NAMES
    host = HUB_API_HOST if hub else ref.host
    plain = is_loopback(host)
    scheme = "http" if plain else "https"
    port = (None if hub else registry_port(ref.registry)) or (80 if plain else 443)
    try:
        context = None
        if not plain:
            from .boundedhttp import load_certs_dir

            context = ssl.create_default_context()
            load_certs_dir(context, certs_d / ref.registry)
        family, sockaddr = resolve(host, port, deadline)[0]
        session = Session(Endpoint(scheme, host, port, sockaddr, family, context))
        reading = read_rate_limit(session, ref, auth, deadline)
    except (OSError, ssl.SSLError, http.client.HTTPException, ValueError, TokenError) as e:
        import logging

        logging.getLogger("pullunit").debug("no quota from %s: %s", ref.registry,
                                            describe_oserror(e))
        return None
    return reading.rate_limit if reading.rate_limit.known or \
        reading.rate_limit.retry_after is not None else None
