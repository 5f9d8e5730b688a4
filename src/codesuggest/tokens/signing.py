"""Signing tokens: RS256 with `kid` in the header and the standard claims of docs/contracts.md."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import jwt

from codesuggest.tokens.clock import Clock, SystemClock
from codesuggest.tokens.keys import PrivateKey

NBF_SKEW = 5


class Signer:
    """Signs tokens for one issuer with one key."""

    def __init__(self, key: PrivateKey, issuer: str, clock: Clock | None = None) -> None:
        self.key = key
        self.issuer = issuer
        self.clock = clock or SystemClock()

    def sign(self, claims: Mapping[str, Any]) -> str:
        """Sign claims exactly as given (no defaults added)."""
        return jwt.encode(
            dict(claims), self.key.key, algorithm="RS256", headers={"kid": self.key.kid}
        )

    def mint(
        self,
        *,
        subject: str,
        audience: str | list[str],
        lifetime: float,
        extra: Mapping[str, Any] | None = None,
        expires_at: int | None = None,
    ) -> tuple[str, dict[str, Any]]:
        """Issue a token: `iat` now, `nbf` = iat - 5 s, `exp` = iat + lifetime (or `expires_at`
        if earlier), a fresh `jti`. Returns the token and its claims."""
        iat = int(self.clock.now())
        exp = iat + int(lifetime)
        if expires_at is not None:
            exp = min(exp, int(expires_at))
        claims: dict[str, Any] = dict(extra or {})
        claims.update(
            iss=self.issuer,
            sub=subject,
            aud=audience,
            iat=iat,
            nbf=iat - NBF_SKEW,
            exp=exp,
            jti=str(uuid.uuid4()),
        )
        return self.sign(claims), claims
