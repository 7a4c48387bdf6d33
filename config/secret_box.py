"""Secrets at rest (alert webhook signing secrets and channel URLs): Fernet, with a key
derived per purpose from SPYGLASS_SECRETS_KEY (default: SECRET_KEY).

A purpose label in the derivation makes each key useless for anything else Django signs
or this module encrypts. Rotating the source key makes stored values unreadable:
`decrypt` then returns None and the caller asks for the value again; it never guesses.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings


def _fernet(purpose: str) -> Fernet:
    source = settings.SPYGLASS_SECRETS_KEY or settings.SECRET_KEY
    digest = hashlib.sha256(f"spyglass.{purpose}:".encode() + source.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def encrypt(raw: str, *, purpose: str) -> str:
    return _fernet(purpose).encrypt(raw.encode()).decode()


def decrypt(token: str, *, purpose: str) -> str | None:
    """The plain value, or None when there is none or it cannot be read with today's key."""
    if not token:
        return None
    try:
        return _fernet(purpose).decrypt(token.encode()).decode()
    except InvalidToken:
        return None
