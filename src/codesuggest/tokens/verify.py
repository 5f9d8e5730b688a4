"""Token verification for every part that accepts JWTs.

RS256 only; `jku`/`x5u`/`jwk`/`x5c` headers are never consulted; the key is looked up by `kid`
in the key source of the issuer the token names, so a signature that verifies proves the `iss`
claim. Time checks use the injectable clock with a leeway.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import jwt

from codesuggest.tokens import errors
from codesuggest.tokens.clock import Clock, SystemClock
from codesuggest.tokens.keys import PublicKey
from codesuggest.tokens.keysets import KeySource

MAX_TOKEN_BYTES = 8 * 1024
DEFAULT_LEEWAY = 30.0
_JWS = jwt.PyJWS(algorithms=["RS256"])


def _b64json(segment: str) -> Any:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        return json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise errors.Malformed("segment is not base64url JSON") from exc


class Verifier:
    """Verifies tokens from a fixed set of trusted issuers for one audience."""

    def __init__(
        self,
        sources: Iterable[KeySource],
        audience: str,
        *,
        leeway: float = DEFAULT_LEEWAY,
        clock: Clock | None = None,
        cache_size: int = 4096,
    ) -> None:
        self.sources = {s.issuer.rstrip("/"): s for s in sources}
        self.audience = audience
        self.leeway = leeway
        self.clock = clock or SystemClock()
        self.cache_size = cache_size
        # token -> (claims, key): a token seen before skips the RSA check but not the
        # time checks, and only while its key is still published by its issuer.
        self._cache: OrderedDict[str, tuple[dict[str, Any], PublicKey, KeySource]] = OrderedDict()

    async def verify(self, token: str) -> dict[str, Any]:
        """Return the verified claims or raise a `TokenError` subclass."""
        if len(token) > MAX_TOKEN_BYTES:
            raise errors.TooLarge(f"token is {len(token)} bytes")
        hit = self._cache.get(token)
        if hit is not None:
            claims, key, source = hit
            if source.get(key.kid) is key:
                self._check_times(claims)
                self._cache.move_to_end(token)
                return claims
            del self._cache[token]
        claims, key, source = await self._verify_uncached(token)
        self._check_times(claims)
        self._cache[token] = (claims, key, source)
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return claims

    async def _verify_uncached(self, token: str) -> tuple[dict[str, Any], PublicKey, KeySource]:
        parts = token.split(".")
        if len(parts) != 3 or not all(parts):
            raise errors.Malformed("not three non-empty segments")
        header = _b64json(parts[0])
        if not isinstance(header, dict):
            raise errors.Malformed("header is not an object")
        if header.get("alg") != "RS256":
            raise errors.BadAlgorithm(f"alg {header.get('alg')!r} is not RS256")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise errors.Malformed("header has no kid")
        claims = _b64json(parts[1])
        if not isinstance(claims, dict):
            raise errors.Malformed("payload is not an object")
        iss = claims.get("iss")
        if not isinstance(iss, str):
            raise errors.MissingClaim("iss")
        source = self.sources.get(iss.rstrip("/"))
        if source is None:
            raise errors.UnknownIssuer(f"issuer {iss!r} is not trusted")
        key = source.get(kid) or await source.lookup_unknown(kid)
        if key is None and not source.reachable:
            raise errors.KeysUnavailable(f"keys of {source.issuer} could not be loaded")
        if key is None:
            raise errors.UnknownKey(f"kid {kid!r} is not published by {source.issuer}")
        try:
            _JWS.decode(token, key.key, algorithms=["RS256"])
        except jwt.InvalidSignatureError as exc:
            raise errors.BadSignature("signature does not verify") from exc
        except jwt.PyJWTError as exc:
            raise errors.Malformed(str(exc)) from exc
        for name in ("sub", "exp", "iat", "aud"):
            if name not in claims:
                raise errors.MissingClaim(name)
        if not isinstance(claims["sub"], str) or not claims["sub"]:
            raise errors.MissingClaim("sub")
        aud = claims["aud"]
        audiences = [aud] if isinstance(aud, str) else aud
        if not isinstance(audiences, list) or self.audience not in audiences:
            raise errors.BadAudience(f"audience {aud!r} does not include {self.audience!r}")
        for name in ("exp", "iat", "nbf"):
            value = claims.get(name)
            if name in claims and (not isinstance(value, int | float) or isinstance(value, bool)):
                raise errors.Malformed(f"{name} is not a number")
        return claims, key, source

    def _check_times(self, claims: dict[str, Any]) -> None:
        now = self.clock.now()
        if now > claims["exp"] + self.leeway:
            raise errors.Expired("token has expired")
        if "nbf" in claims and now < claims["nbf"] - self.leeway:
            raise errors.NotYetValid("token is not valid yet")
        if claims["iat"] > now + self.leeway:
            raise errors.IssuedInFuture("token was issued in the future")
