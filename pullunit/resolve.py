"""A tag resolved to the digest the registry serves now, asked through the daemon (so its
mirrors, proxies, certs.d and insecure-registry list apply), with the app's credentials
and a bound of pullunit's own: `pin` and `update` both ask it here."""

from __future__ import annotations

from .classify import PullFailed
from .config import AppConfig
from .engine import Engine
from .hints import HintContext, fix_for
from .reference import ImageRef

# A tag resolves with one manifest request; a registry (or a front of it) that has not
# answered within the app's stall_timeout, or this, is not going to.
RESOLVE_LIMIT = 60.0


def remote_digest(engine: Engine, app: AppConfig, ref: ImageRef | None = None) -> str:
    """The digest of ref (default: the app's image.ref). Raises PullFailed with its fix;
    a credential the registry echoes back never reaches the message."""
    from .credentials import HelperFailed, credentials

    pull = app.pull
    limit = min(pull.stall_timeout, pull.deadline, RESOLVE_LIMIT)
    ref = ref or app.image.ref
    try:
        creds = credentials(ref, app.image.auth_file, helper_timeout=min(limit, 10.0))
    except HelperFailed as e:
        e.hint = fix_for(e.failure.cls, HintContext(ref=ref, credential_helper=e.helper,
                                                    credential_source=e.where))
        raise
    try:
        return engine.remote_digest(ref, creds.auth, limit)
    except PullFailed as e:
        scrubbed = PullFailed(e.failure.without(creds.secrets()))
        scrubbed.hint = e.hint or fix_for(e.failure.cls, HintContext(
            ref=ref, config_path=creds.config_path, credentials_found=creds.found,
            auth_file_configured=app.image.auth_file is not None))
        raise scrubbed from None
