"""RSA keys, RFC 7638 key ids, JWKS and OIDC discovery documents."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

KEY_BITS = 2048


def _b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 SHA-256 thumbprint of an RSA JWK (required members in lexical order)."""
    canonical = json.dumps(
        {"e": jwk["e"], "kty": jwk["kty"], "n": jwk["n"]}, separators=(",", ":"), sort_keys=True
    )
    return (
        base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
    )


@dataclass(frozen=True)
class PublicKey:
    """A verification key: the cryptography object plus its JWK form."""

    kid: str
    key: rsa.RSAPublicKey = field(repr=False)

    @classmethod
    def from_crypto(cls, key: rsa.RSAPublicKey) -> PublicKey:
        numbers = key.public_numbers()
        jwk = {"kty": "RSA", "e": _b64url_uint(numbers.e), "n": _b64url_uint(numbers.n)}
        return cls(kid=thumbprint(jwk), key=key)

    @classmethod
    def from_jwk(cls, jwk: dict[str, Any]) -> PublicKey:
        if jwk.get("kty") != "RSA":
            raise ValueError("only RSA keys are supported")
        key = RSAAlgorithm.from_jwk(jwk)
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError("JWKS entries must be public keys")
        return cls.from_crypto(key)

    def jwk(self) -> dict[str, str]:
        numbers = self.key.public_numbers()
        return {
            "kty": "RSA",
            "kid": self.kid,
            "e": _b64url_uint(numbers.e),
            "n": _b64url_uint(numbers.n),
            "use": "sig",
            "alg": "RS256",
        }


@dataclass(frozen=True)
class PrivateKey:
    """An RSA-2048 signing key; `kid` is the RFC 7638 thumbprint of its public half."""

    key: rsa.RSAPrivateKey = field(repr=False)
    public: PublicKey

    @property
    def kid(self) -> str:
        return self.public.kid

    @classmethod
    def generate(cls) -> PrivateKey:
        key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
        return cls(key=key, public=PublicKey.from_crypto(key.public_key()))

    @classmethod
    def from_pem(cls, pem: str | bytes) -> PrivateKey:
        data = pem.encode() if isinstance(pem, str) else pem
        key = serialization.load_pem_private_key(data, password=None)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("only RSA private keys are supported")
        if key.key_size < KEY_BITS:
            raise ValueError(f"RSA keys must have at least {KEY_BITS} bits")
        return cls(key=key, public=PublicKey.from_crypto(key.public_key()))

    @classmethod
    def from_file(cls, path: str | Path) -> PrivateKey:
        return cls.from_pem(Path(path).read_bytes())

    def to_pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()

    def write(self, path: str | Path) -> None:
        """Write the PEM with mode 0600 from the start (never world-readable, even briefly)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(self.to_pem())
        os.chmod(path, 0o600)


def jwks_document(keys: list[PublicKey]) -> dict[str, Any]:
    """The `/oauth/discovery/keys` body: every key that may still have live tokens."""
    seen: dict[str, PublicKey] = {}
    for key in keys:
        seen.setdefault(key.kid, key)
    return {"keys": [k.jwk() for k in seen.values()]}


def parse_jwks(document: Any) -> dict[str, PublicKey]:
    """Parse a JWKS body into kid -> key. Non-RSA and non-signing entries are skipped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("JWKS document has no 'keys' list")
    keys: dict[str, PublicKey] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("kty") != "RSA":
            continue
        if entry.get("use", "sig") != "sig" or entry.get("alg", "RS256") != "RS256":
            continue
        key = PublicKey.from_jwk(entry)
        # Index by the published kid (what token headers carry) and by the thumbprint.
        keys[str(entry.get("kid") or key.kid)] = key
        keys.setdefault(key.kid, key)
    return keys


def openid_configuration(issuer: str, jwks_uri: str | None = None) -> dict[str, Any]:
    """The `/.well-known/openid-configuration` body."""
    return {
        "issuer": issuer,
        "jwks_uri": jwks_uri or issuer.rstrip("/") + "/oauth/discovery/keys",
        "id_token_signing_alg_values_supported": ["RS256"],
    }
