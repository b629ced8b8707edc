"""Credentials out of any text before it is logged, shown or recorded: one rule for the
puller's failure messages and doctor's findings.

Only real credentials are removed: secret values the caller read itself (passwords,
encoded auth, tokens), the userinfo of URLs, and the values of known credential headers
and fields. Words like `secret` or `token` elsewhere are left alone: they are legal in
image references (`team/secret:1.0`), and a scrubber that pattern-matches `secret:...`
eats the tag. Proxy settings are redacted where they are read (dockerconf.redact_url),
since a password with a space cannot be found in free text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
# scheme://USERINFO@: up to the last '@' of the word (a password may hold '@' or '/'),
# but not the '@' of a digest in a path (http://reg/v2/team/app@sha256:...)
_URL = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)\S*@(?!sha(?:256|384|512):)")
_AUTH_HEADER = re.compile(r"(?i)\b((?:proxy-)?authorization:\s*(?:(?:basic|bearer)\s+)?)[^\s,;]+")
_FIELDS = "password|passwd|auth|identitytoken|registrytoken|token|access_token|refresh_token"
_JSON_FIELD = re.compile(rf'(?i)("(?:{_FIELDS})"\s*:\s*")[^"]*(")')
_FORM_FIELD = re.compile(rf"(?i)\b((?:{_FIELDS}|client_secret)=)[^&\s\"',;]+")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """text without credentials: `secrets` (values the caller knows) and every credential
    form above, each replaced by ***."""
    for s in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(s, MASK)
    text = _URL.sub(lambda m: m.group(1) + MASK + "@", text)
    text = _AUTH_HEADER.sub(lambda m: m.group(1) + MASK, text)
    text = _JSON_FIELD.sub(lambda m: m.group(1) + MASK + m.group(2), text)
    return _FORM_FIELD.sub(lambda m: m.group(1) + MASK, text)
