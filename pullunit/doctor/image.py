"""Checks of the image itself: its reference, the local copy, the platforms offered."""

from __future__ import annotations

import http.client
import json
import ssl

from .. import platform
from ..boundedhttp import WatchdogTimeout, describe_oserror, human_bytes, with_timeout
from ..classify import FailureClass
from ..reference import DEFAULT_REGISTRY, BadReference, parse_reference
from ..regclient import HUB_API_HOST
from .context import Context
from .model import Check, Status
from .verdicts import config_platform, manifest_platforms


def reference(ctx: Context) -> Check:
    assert ctx.target is not None
    try:
        ref = parse_reference(ctx.target.reference)
    except BadReference as e:
        return Check("reference", Status.FAIL, str(e),
                     "write it as [HOST[:PORT]/]PATH:TAG or PATH@sha256:DIGEST, in lower "
                     "case, e.g. registry.example.com/team/app:1.2.3")
    ctx.ref = ref
    what = f"digest {ref.digest[:19]}…" if ref.digest else f"tag {ref.tag}"
    where = (f"Docker Hub ({HUB_API_HOST})" if ref.registry == DEFAULT_REGISTRY
             else ref.registry)
    detail = f"{ref}: repository {ref.remote_path} at {where}, {what}"
    if ctx.target.pinned_by:
        detail += f" (pinned by {ctx.target.pinned_by})"
    elif ref.tag and not ref.digest:
        detail += " (a tag can move; 'pullunit pin' locks a digest)"
    return Check("reference", Status.PASS, detail)


def local_image(ctx: Context) -> Check:
    from .. import dockerapi
    from ..engine import find_local

    assert ctx.ref is not None and ctx.daemon is not None
    ref, api = ctx.ref, ctx.daemon.api
    try:
        img = with_timeout(lambda: find_local(dockerapi.SdkEngine(api), ref),
                           ctx.deadline.remaining(), "inspecting the local image")
    except WatchdogTimeout as e:
        return Check("local_image", Status.FAIL, f"the Docker daemon stopped answering: {e}",
                     ctx.hint(FailureClass.DAEMON_UNAVAILABLE))
    policy = ctx.target.policy if ctx.target else None
    if img is None:
        if policy == "never":
            return Check("local_image", Status.FAIL,
                         f"{ref} is not present locally, and image.policy = \"never\" "
                         "means the pull unit will not pull it",
                         f"load it ('docker load -i FILE' or 'docker pull {ref}'), or set "
                         "image.policy = \"missing\"")
        return Check("local_image", Status.PASS,
                     f"{ref} is not present locally; the pull unit will pull it")
    digest = img.digest_for(ref)
    ctx.local_digest = digest
    detail = (f"present: image {img.id[:19]}…, "
              f"{'digest ' + digest if digest else 'no registry digest (built or loaded here)'}"
              f", {img.platform}, {human_bytes(img.size)}")
    want, source = ctx.want_platform()
    if not platform.matches(want, img.platform):
        return Check("local_image", Status.WARN,
                     f"{detail}; but it is {img.platform}, not {want} ({source})",
                     "the puller rejects it (exit 65): remove it ('docker image rm "
                     f"{ref}') and pull an image built for {want}")
    return Check("local_image", Status.PASS, detail)


def platform_check(ctx: Context) -> Check:
    if ctx.manifest is None:
        return Check("platform", Status.SKIP, "skipped: no manifest")
    assert ctx.ref is not None
    want, source = ctx.want_platform()
    offered = manifest_platforms(ctx.manifest.data)
    if offered is None:
        have = _config_platform(ctx)
        if isinstance(have, Check):
            return have
        offered = [have]
        what = "single-platform image"
    else:
        what = "image index"
    names = ", ".join(str(p) for p in offered) or "no platforms"
    if any(platform.matches(want, p) for p in offered):
        return Check("platform", Status.PASS, f"{want} ({source}) is offered: {what} for "
                     f"{names}")
    note = ("; dockerd 20.10 pulls it anyway, and the puller then rejects it (exit 65)"
            if what.startswith("single") else "")
    return Check("platform", Status.FAIL,
                 f"{ctx.ref} has no image for {want} ({source}): {what} for {names}" + note,
                 ctx.hint(FailureClass.PLATFORM, platform=want))


def _config_platform(ctx: Context) -> platform.Platform | Check:
    """A single manifest's platform, from its config blob."""
    assert ctx.ref is not None and ctx.manifest is not None and ctx.session is not None
    m = ctx.manifest.data
    if m.get("schemaVersion") == 1:
        return config_platform(m)
    cfg = m.get("config")
    digest = cfg.get("digest") if isinstance(cfg, dict) else None
    cannot = "cannot tell the image's platform"
    if not isinstance(digest, str):
        return Check("platform", Status.WARN, "the manifest names no config blob; "
                     + cannot, "check the image's manifest ('docker manifest inspect')")
    url = f"{ctx.session.endpoint.base}/v2/{ctx.ref.remote_path}/blobs/{digest}"
    try:
        r = ctx.session.fetch("GET", url, ctx.manifest.authorization, ctx.deadline)
        data = json.loads(r.body) if r.status == 200 else None
    except (OSError, ssl.SSLError, http.client.HTTPException, ValueError) as e:
        return Check("platform", Status.WARN, f"GET {url}: {describe_oserror(e)}; {cannot}",
                     ctx.hint(FailureClass.UNREACHABLE))
    if not isinstance(data, dict):
        return Check("platform", Status.WARN, f"GET {url}: {r.status} {r.reason}; {cannot}",
                     ctx.hint(FailureClass.SERVER_ERROR))
    return config_platform(data)
