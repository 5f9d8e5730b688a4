"""Where a verifier finds an issuer's keys: a fixed local set, or a remote JWKS (remote.py)."""

from __future__ import annotations

from typing import Protocol

from codesuggest.tokens.keys import PublicKey


class KeySource(Protocol):
    issuer: str

    @property
    def ready(self) -> bool:
        """True once keys are loaded."""
        ...

    @property
    def reachable(self) -> bool:
        """False while the newest attempt to load keys failed (the issuer is unreachable)."""
        ...

    def get(self, kid: str) -> PublicKey | None:
        """The key for `kid` from what is cached; never does I/O."""
        ...

    async def lookup_unknown(self, kid: str) -> PublicKey | None:
        """Called when `kid` is not cached: may refetch (rate-limited, single-flight)."""
        ...


class LocalKeySet:
    """Keys held in process, e.g. the gateway's own signing key plus an older validation key."""

    def __init__(self, issuer: str, keys: list[PublicKey]) -> None:
        self.issuer = issuer
        self.keys = {k.kid: k for k in keys}

    @property
    def ready(self) -> bool:
        return bool(self.keys)

    @property
    def reachable(self) -> bool:
        return True

    def get(self, kid: str) -> PublicKey | None:
        return self.keys.get(kid)

    async def lookup_unknown(self, kid: str) -> PublicKey | None:
        return None
