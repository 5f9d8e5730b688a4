"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) with a key derived from a part's secret,
and one-way hashes for bearer secrets (PATs, license keys) that only need comparing."""

from __future__ import annotations

import base64
import hashlib
import secrets

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class Sealer:
    def __init__(self, secret: str | bytes, purpose: str = "codesuggest-at-rest") -> None:
        raw = secret.encode() if isinstance(secret, str) else secret
        if len(raw) < 16:
            raise ValueError("the secret must be at least 16 bytes")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(
            raw
        )
        self._fernet = Fernet(base64.urlsafe_b64encode(key))

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def open(self, sealed: str) -> str:
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("sealed value does not open with this secret") from exc


def new_secret(prefix: str = "", nbytes: int = 32) -> str:
    return prefix + secrets.token_urlsafe(nbytes)


def hash_secret(value: str, pepper: str = "") -> str:
    """SHA-256 of a high-entropy bearer secret (random tokens need no slow KDF)."""
    return hashlib.sha256((pepper + value).encode()).hexdigest()
