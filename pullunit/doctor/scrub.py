"""The last line of defence before doctor prints anything: remove credentials, by the
one rule in pullunit.redact."""

from __future__ import annotations

from collections.abc import Iterable

from ..redact import MASK, redact
from .model import Check

__all__ = ["MASK", "scrub", "scrub_text"]


def scrub_text(text: str, secrets: Iterable[str] = ()) -> str:
    return redact(text, secrets)


def scrub(check: Check, secrets: Iterable[str] = ()) -> Check:
    known = list(secrets)
    return Check(check.check, check.status, scrub_text(check.detail, known),
                 scrub_text(check.hint, known), check.data)
