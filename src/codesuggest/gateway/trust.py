"""The keys the gateway verifies tokens with: its own (signing plus an optional older validation
key) and every trusted issuer's published JWKS, refreshed in the background."""

from __future__ import annotations

from typing import Any

import httpx

from codesuggest.common.serving import PEER_KEEPALIVE_EXPIRY
from codesuggest.gateway.keys import load_signing_key, load_validation_keys
from codesuggest.gateway.metrics import GatewayMetrics
from codesuggest.gateway.settings import GatewaySettings
from codesuggest.tokens import (
    REALM_SAAS,
    REALM_SELF_MANAGED,
    Clock,
    LocalKeySet,
    PrivateKey,
    RemoteKeySet,
    TokenError,
    Verifier,
)

_REALM_OF_KIND = {"portal": REALM_SELF_MANAGED, "saas-instance": REALM_SAAS}


class TrustStore:
    """The verifier over the gateway's own keys and every trusted issuer's published keys."""

    def __init__(self, settings: GatewaySettings, clock: Clock, metrics: GatewayMetrics) -> None:
        self.settings = settings
        self.service_name = settings.service_name
        self.signing_key: PrivateKey = load_signing_key(settings)
        self.own_keys = LocalKeySet(
            settings.service_name, [self.signing_key.public, *load_validation_keys(settings)]
        )
        self.http = httpx.AsyncClient(
            timeout=settings.jwks_timeout,
            limits=httpx.Limits(max_connections=20, keepalive_expiry=PEER_KEEPALIVE_EXPIRY),
        )
        self.kinds = {i.url.rstrip("/"): i.kind for i in settings.trusted_issuers}

        def on_refresh(issuer: str, outcome: str) -> None:
            metrics.key_refreshes.labels(issuer=issuer, outcome=outcome).inc()

        self.remote = [
            RemoteKeySet(
                issuer.url,
                self.http,
                clock=clock,
                min_refetch_interval=settings.jwks_min_refetch_interval,
                retry_max=settings.jwks_retry_max,
                timeout=settings.jwks_timeout,
                on_refresh=on_refresh,
            )
            for issuer in settings.trusted_issuers
        ]
        self.verifier = Verifier(
            [self.own_keys, *self.remote],
            settings.service_name,
            leeway=settings.leeway,
            clock=clock,
        )

    def start(self) -> None:
        for keyset in self.remote:
            keyset.start()

    async def aclose(self) -> None:
        for keyset in self.remote:
            await keyset.aclose()
        await self.http.aclose()

    def missing_issuers(self) -> list[str]:
        return [k.issuer for k in self.remote if not k.ready]

    def check_kind(self, claims: dict[str, Any]) -> None:
        """An issuer may only issue what its kind allows: portals issue self-managed instance
        tokens; SaaS instances issue SaaS tokens. Raises TokenError otherwise."""
        iss = str(claims.get("iss", "")).rstrip("/")
        if iss == self.service_name:
            return
        kind = self.kinds.get(iss)
        if kind == "portal" and claims.get("token_kind") == "user":
            raise TokenError("portal tokens cannot be user tokens", reason="kind_mismatch")
        realm = claims.get("gitlab_realm")
        if realm is not None and kind is not None and realm != _REALM_OF_KIND[kind]:
            raise TokenError(f"{kind} issuer cannot issue realm {realm!r}", reason="kind_mismatch")
