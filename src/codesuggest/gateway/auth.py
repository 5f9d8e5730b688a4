"""The authentication layer of docs/contracts.md section 5.

Bearer token + `X-Gitlab-Authentication-Type: oidc`; the token is verified against the issuer it
names (signature, `iss`, `aud`, times); then headers must agree with the signed claims, which
always win. Failures are logged and counted by reason; clients only see the contract's bodies.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import Request

from codesuggest.common.logs import get_logger
from codesuggest.gateway.errors import GatewayError, forbidden, unauthorized
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
    is_user_token,
)

log = get_logger("codesuggest.gateway.auth")

FORBIDDEN_BY_PROVIDER = "Forbidden by auth provider"
_REALM_OF_KIND = {"portal": REALM_SELF_MANAGED, "saas-instance": REALM_SAAS}


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling, from verified claims (and, for attribution only, agreeing headers)."""

    claims: dict[str, Any]
    is_user_token: bool
    realm: str | None
    instance_id: str | None
    global_user_id: str | None
    host_name: str | None
    scopes: frozenset[str]
    client_name: str | None
    client_version: str | None

    @property
    def path(self) -> str:
        """User tokens come straight from the IDE; instance tokens through the monolith."""
        return "direct" if self.is_user_token else "monolith"


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
            timeout=settings.jwks_timeout, limits=httpx.Limits(max_connections=20)
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


def _header_mismatch(name: str) -> GatewayError:
    return unauthorized(f"Header mismatch '{name}'")


async def authenticate(request: Request) -> Caller:
    """Run the whole authentication layer for one request (no scope check)."""
    started = time.perf_counter()
    state = request.app.state
    metrics: GatewayMetrics = state.metrics
    headers = request.headers
    try:
        authorization = headers.get("authorization")
        if authorization is None:
            raise _refuse(metrics, "no_header", unauthorized("No authorization header presented"))
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _refuse(metrics, "bad_header", unauthorized("Invalid authorization header"))
        if headers.get("x-gitlab-authentication-type") != "oidc":
            raise _refuse(
                metrics,
                "not_oidc",
                unauthorized("Invalid authentication token type - only OIDC is supported"),
            )
        trust: TrustStore = state.trust
        try:
            claims = await trust.verifier.verify(token)
            trust.check_kind(claims)
        except TokenError as exc:
            log.info("token refused", reason=exc.reason, detail=str(exc))
            raise _refuse(metrics, exc.reason, unauthorized(FORBIDDEN_BY_PROVIDER)) from None
        user_token = is_user_token(claims, trust.service_name)
        realm = claims.get("gitlab_realm")
        instance_id = claims.get("gitlab_instance_id")
        if realm is not None and headers.get("x-gitlab-realm") != realm:
            raise _refuse(metrics, "header_mismatch", _header_mismatch("X-Gitlab-Realm"))
        if instance_id is not None and headers.get("x-gitlab-instance-id") != instance_id:
            raise _refuse(metrics, "header_mismatch", _header_mismatch("X-Gitlab-Instance-Id"))
        if user_token:
            if headers.get("x-gitlab-global-user-id") != claims["sub"]:
                raise _refuse(
                    metrics, "header_mismatch", _header_mismatch("X-Gitlab-Global-User-Id")
                )
            global_user_id = claims["sub"]
        else:
            if headers.get("x-gitlab-instance-id") != claims["sub"]:
                raise _refuse(metrics, "header_mismatch", _header_mismatch("X-Gitlab-Instance-Id"))
            global_user_id = headers.get("x-gitlab-global-user-id")
        scopes = claims.get("scopes")
        return Caller(
            claims=claims,
            is_user_token=user_token,
            realm=realm,
            instance_id=instance_id or (None if user_token else claims["sub"]),
            global_user_id=global_user_id,
            host_name=headers.get("x-gitlab-host-name"),
            scopes=frozenset(scopes) if isinstance(scopes, list) else frozenset(),
            client_name=headers.get("user-agent"),
            client_version=headers.get("x-gitlab-language-server-version"),
        )
    finally:
        timings = getattr(request.state, "timings", None)
        if timings is None:
            timings = request.state.timings = {}
        timings["auth"] = time.perf_counter() - started


def _refuse(metrics: GatewayMetrics, reason: str, error: GatewayError) -> GatewayError:
    metrics.auth_failures.labels(reason=reason).inc()
    return error


def requires(scope: str, *, user_tokens: bool, refusal: str):  # type: ignore[no-untyped-def]
    """A FastAPI dependency: authenticate, then require `scope` (and an instance token unless
    `user_tokens`). `refusal` is the 403 detail of the route."""

    async def dependency(request: Request) -> Caller:
        caller = await authenticate(request)
        if scope not in caller.scopes or (caller.is_user_token and not user_tokens):
            request.app.state.metrics.auth_failures.labels(reason="scope").inc()
            raise forbidden(refusal)
        request.state.caller = caller
        return caller

    return dependency
