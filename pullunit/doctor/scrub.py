"""The last line of defence before doctor prints anything: remove credentials.

Only real credentials are removed: the secret values doctor itself read (passwords,
encoded auth, identity/registry/bearer tokens), the userinfo of URLs, and the values of
known credential headers and fields. Words like `secret` or `token` elsewhere are left
alone: they are legal in image references (`team/secret:1.0`), and a scrubber that
pattern-matches `secret:...` eats the tag. Proxy settings are redacted where they are
read (dockerconf.redact_url), since a password with a space cannot be found in free text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .model import Check

MASK = "***"
# scheme://USERINFO@: up to the last '@' of the word (a password may hold '@' or '/'),
# but not the '@' of a digest in a path (http://reg/v2/team/app@sha256:...)
_URL = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)\S*@(?!sha(?:256|384|512):)")
_AUTH_HEADER = re.compile(r"(?i)\b((?:proxy-)?authorization:\s*(?:(?:basic|bearer)\s+)?)[^\s,;]+")
_FIELDS = "password|passwd|auth|identitytoken|registrytoken|token|access_token|refresh_token"
_JSON_FIELD = re.compile(rf'(?i)("(?:{_FIELDS})"\s*:\s*")[^"]*(")')
_FORM_FIELD = re.compile(rf"(?i)\b((?:{_FIELDS}|client_secret)=)[^&\s\"',;]+")


def scrub_text(text: str, secrets: Iterable[str] = ()) -> str:
    for s in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(s, MASK)
    text = _URL.sub(lambda m: m.group(1) + MASK + "@", text)
    text = _AUTH_HEADER.sub(lambda m: m.group(1) + MASK, text)
    text = _JSON_FIELD.sub(lambda m: m.group(1) + MASK + m.group(2), text)
    return _FORM_FIELD.sub(lambda m: m.group(1) + MASK, text)


def scrub(check: Check, secrets: Iterable[str] = ()) -> Check:
    known = list(secrets)
    return Check(check.check, check.status, scrub_text(check.detail, known),
                 scrub_text(check.hint, known))
