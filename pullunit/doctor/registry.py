"""Checks against the registry itself: /v2/, the credentials, the manifest, its clock."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import ssl

from ..boundedhttp import WatchdogTimeout, describe_oserror, with_timeout
from ..classify import FailureClass
from ..errors import PullunitError
from ..regclient import (
    TokenError,
    TokenProblem,
    basic_authorization,
    read_rate_limit,
    registry_errors,
)
from .context import Context, Manifest
from .model import Check, Status
from .verdicts import (
    MANIFEST_TYPES,
    MEDIA_NAMES,
    clock_skew,
    rate_limit_verdict,
    skew_status,
)

_NETWORK_ERRORS = (OSError, ssl.SSLError, http.client.HTTPException, ValueError)


def _status_class(status: int) -> FailureClass:
    return {404: FailureClass.NOT_FOUND, 429: FailureClass.RATE_LIMITED}.get(
        status, FailureClass.SERVER_ERROR if status >= 500 else FailureClass.UNKNOWN)


def registry_api(ctx: Context) -> Check:
    assert ctx.session is not None
    url = f"{ctx.session.endpoint.base}/v2/"
    try:
        r = ctx.session.get("/v2/", {}, ctx.deadline)
    except _NETWORK_ERRORS as e:
        return Check("registry_api", Status.FAIL, f"GET {url}: {describe_oserror(e)}",
                     ctx.hint(FailureClass.UNREACHABLE))
    ctx.v2 = r
    api_version = r.headers.get("Docker-Distribution-Api-Version", "")
    if r.status == 200:
        return Check("registry_api", Status.PASS,
                     f"GET {url}: 200, no authentication needed"
                     + (f" ({api_version})" if api_version else ""))
    if r.status == 401:
        c = ctx.challenge
        how = "no WWW-Authenticate challenge" if c is None else (
            f"{c.scheme.capitalize()} authentication"
            + (f" (realm {c.params['realm']})" if c.params.get("realm") else ""))
        return Check("registry_api", Status.PASS,
                     f"GET {url}: 401, {how}: DNS, TLS and routing work")
    detail = f"GET {url}: {r.status} {r.reason}"
    if r.status == 404 or not api_version:
        detail += " (is this a Docker registry? expected 200 or 401 with " \
                  "Docker-Distribution-Api-Version)"
    return Check("registry_api", Status.FAIL, detail, ctx.hint(_status_class(r.status)))


def credentials(ctx: Context) -> Check:
    from .. import dockerapi
    from ..credentials import HelperFailed

    assert ctx.ref is not None
    auth_file = ctx.target.auth_file if ctx.target else None
    ref = ctx.ref
    try:
        # The helper gets what is left of this check's time and is killed (with its
        # process group) when that runs out; the watchdog is only a second line.
        limit = ctx.deadline.remaining()
        creds = with_timeout(lambda: dockerapi.credentials(ref, auth_file,
                                                           helper_timeout=max(limit - 0.2, 0.1)),
                             limit, "reading docker credentials")
    except WatchdogTimeout as e:
        return Check("credentials", Status.FAIL, str(e),
                     "the docker credential helper (credsStore/credHelpers) did not "
                     "answer: check it with 'docker-credential-NAME list'")
    except HelperFailed as e:
        # the same class and fix as the pull unit's (hints.fix_for)
        return Check("credentials", Status.FAIL, e.message,
                     ctx.hint(FailureClass.CREDENTIALS, credential_helper=e.helper,
                              credential_source=e.where or None))
    except PullunitError as e:
        return Check("credentials", Status.FAIL, e.message,
                     "image.auth_file must be a readable docker config.json "
                     "({\"auths\": {HOST: {\"auth\": BASE64(user:password)}}})")
    ctx.creds = creds
    auth = ctx.auth
    ctx.secrets.extend(str(auth[k]) for k in ("password", "auth", "identitytoken",
                                              "registrytoken") if auth.get(k))
    basic = basic_authorization(auth)
    if basic:
        ctx.secrets.append(basic.split(" ", 1)[1])
    which = (f"image.auth_file {creds.config_path}" if auth_file
             else f"{creds.config_path}")
    warn: list[str] = []
    hints: list[str] = []
    if auth_file is None and os.geteuid() != 0:
        warn.append(f"doctor runs as uid {os.geteuid()} and read {creds.config_path}, but "
                    "the pull unit runs as root and reads root's docker config")
        hints.append("run doctor as root, or set image.auth_file")
    if auth_file is None and os.environ.get("DOCKER_CONFIG"):
        warn.append("DOCKER_CONFIG is set in this shell; the pull unit does not inherit it")
        hints.append("set image.auth_file to that config instead")
    if creds.found:
        kind = ("an identity token" if auth.get("identitytoken")
                else "a registry token" if auth.get("registrytoken")
                else "a user name and password")
        detail = f"{which} holds {kind} for {ctx.registry} (not shown)"
    else:
        detail = f"no credentials for {ctx.registry} in {which}"
        challenge = ctx.challenge
        if ctx.v2 is not None and ctx.v2.status == 200:
            detail += "; none needed (the registry allows anonymous access)"
        elif challenge is not None and challenge.scheme == "basic":
            warn.append(detail + "; the registry asks for Basic authentication")
            hints.append(ctx.hint(FailureClass.DENIED))
            detail = ""
        else:
            detail += "; pulling anonymously"
    if warn:
        return Check("credentials", Status.WARN, "; ".join(w for w in [*warn, detail] if w),
                     "; ".join(hints))
    return Check("credentials", Status.PASS, detail)


_TOKEN_HINTS = {
    TokenProblem.UNSUPPORTED: "Docker answers only Basic and Bearer challenges: ask the "
                              "registry's operator which endpoint Docker clients use",
    TokenProblem.NO_REALM: "the registry's token service is misconfigured",
    TokenProblem.NO_TOKEN: "the registry's token service is misconfigured",
}


def _token_check(ctx: Context, e: TokenError) -> Check:
    hint = _TOKEN_HINTS.get(e.problem)
    if hint is None:
        cls = {TokenProblem.UNREACHABLE: FailureClass.UNREACHABLE,
               TokenProblem.DENIED: FailureClass.DENIED}.get(e.problem)
        hint = ctx.hint(cls or (FailureClass.SERVER_ERROR if e.status >= 500
                                else FailureClass.UNKNOWN))
    return Check("manifest", Status.FAIL, e.message, hint)


def manifest(ctx: Context) -> Check:
    assert ctx.ref is not None and ctx.session is not None
    ref = ctx.ref
    try:
        authorization = ctx.session.authorization(ctx.challenge, ref.remote_path, ctx.auth,
                                                  ctx.deadline)
    except TokenError as e:
        return _token_check(ctx, e)
    ctx.secrets.extend(v.split(" ", 1)[-1] for v in authorization.values())
    which = ref.digest or ref.tag
    path = f"/v2/{ref.remote_path}/manifests/{which}"
    url = f"{ctx.session.endpoint.base}{path}"
    try:
        r = ctx.session.get(path, {**authorization, "Accept": ", ".join(MANIFEST_TYPES)},
                            ctx.deadline)
    except _NETWORK_ERRORS as e:
        return Check("manifest", Status.FAIL, f"GET {url}: {describe_oserror(e)}",
                     ctx.hint(FailureClass.UNREACHABLE))
    if r.status != 200:
        codes = registry_errors(r.body)
        detail = f"GET {url}: {r.status} {r.reason}" + (f" ({', '.join(codes)})"
                                                        if codes else "")
        if r.status in (401, 403):
            if ctx.creds is not None and not ctx.creds.found:
                detail += f": no credentials for {ctx.registry} were sent"
            else:
                detail += f": the credentials for {ctx.registry} were rejected"
            return Check("manifest", Status.FAIL, detail, ctx.hint(FailureClass.DENIED))
        if r.status == 404:
            if "NAME_UNKNOWN" in codes:
                detail += f": repository {ref.remote_path} does not exist"
            else:
                detail += f": {ref.remote_path} has no {'digest' if ref.digest else 'tag'} " \
                          f"{which}"
        return Check("manifest", Status.FAIL, detail, ctx.hint(_status_class(r.status)))
    media = (r.headers.get("Content-Type") or "").split(";")[0].strip()
    digest = r.headers.get("Docker-Content-Digest") or \
        "sha256:" + hashlib.sha256(r.body).hexdigest()
    try:
        data = json.loads(r.body)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except ValueError as e:
        return Check("manifest", Status.FAIL, f"GET {url}: the manifest is not JSON ({e})",
                     ctx.hint(FailureClass.SERVER_ERROR))
    media = media or str(data.get("mediaType", ""))
    kind = MEDIA_NAMES.get(media, media or "manifest")
    detail = f"{ref}: {kind}, {digest}"
    if ref.digest and digest != ref.digest:
        return Check("manifest", Status.FAIL, detail + f", but {ref.digest} was pinned",
                     ctx.hint(FailureClass.DIGEST_MISMATCH))
    ctx.manifest = Manifest(data, media, digest, authorization)
    if ctx.local_digest:
        detail += ("; the local image is this digest" if ctx.local_digest == digest
                   else f"; the local image is {ctx.local_digest} (a newer digest is "
                   "in the registry)")
    return Check("manifest", Status.PASS, detail)


def clock(ctx: Context) -> Check:
    r = ctx.v2
    if r is None:
        return Check("clock", Status.SKIP, "skipped: no answer from the registry")
    date = r.headers.get("Date")
    skew = clock_skew(date or "", r.sent, r.received)
    if skew is None:
        return Check("clock", Status.SKIP, "the registry sent no usable Date header")
    status = skew_status(skew)
    direction = "ahead of" if skew > 0 else "behind"
    detail = (f"the registry's clock is {abs(skew):.0f} s {direction} this host's "
              f"(Date: {date})")
    if status is Status.PASS:
        text = (f"in sync with the registry (skew {round(skew):+d} s, within the Date "
                "header's 1 s resolution)" if abs(skew) < 2 else detail)
        return Check("clock", Status.PASS, text)
    return Check("clock", status, detail,
                 "check this host's clock: 'timedatectl' (NTP active?); TLS certificates "
                 "and registry tokens depend on it (field guide 5.4)")


_ANONYMOUS_HUB_HINT = ("log in to Docker Hub as root ('docker login', the pull unit runs as "
                       "root) or set image.auth_file, for your account's higher limit; for "
                       "many hosts, a pull-through cache or mirror (field guide 7)")


def rate_limit(ctx: Context) -> Check:
    """The registry's pull quota, from a manifest HEAD (Docker Hub does not count it as a
    pull) with the pull's credentials; and a warning for anonymous pulls from Docker Hub."""
    assert ctx.ref is not None and ctx.session is not None
    from ..reference import HUB_NAMES

    hub = ctx.registry in HUB_NAMES  # docker.io, also as index.docker.io / registry-1
    anonymous = ctx.creds is None or not ctx.creds.found
    authorization = ctx.manifest.authorization if ctx.manifest is not None else None
    try:
        reading = read_rate_limit(ctx.session, ctx.ref, ctx.auth, ctx.deadline, authorization)
    except TokenError as e:
        return Check("rate_limit", Status.SKIP, f"the quota could not be read: {e.message}")
    except _NETWORK_ERRORS as e:
        return Check("rate_limit", Status.SKIP,
                     f"the quota could not be read: HEAD manifest: {describe_oserror(e)}")
    status, detail, hint = rate_limit_verdict(reading.status, reading.rate_limit, hub,
                                              anonymous)
    text = {"rate_limited": ctx.hint(FailureClass.RATE_LIMITED),
            "anonymous_hub": _ANONYMOUS_HUB_HINT, "": ""}[hint]
    return Check("rate_limit", status, detail, text,
                 {**reading.rate_limit.as_json(), "status": reading.status,
                  "anonymous": anonymous})
