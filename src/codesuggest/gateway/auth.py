"""The authentication layer of docs/contracts.md section 5.

Bearer token + `X-Gitlab-Authentication-Type: oidc`; the token is verified against the issuer it
names (signature, `iss`, `aud`, times); then headers must agree with the signed claims, which
always win. Failures are logged and counted by reason; clients only see the contract's bodies.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import Request

from codesuggest.common.logs import get_logger
from codesuggest.gateway.caller import Caller
from codesuggest.gateway.context import ContextDep, GatewayContext
from codesuggest.gateway.errors import GatewayError, forbidden, keys_unavailable, unauthorized
from codesuggest.gateway.metrics import GatewayMetrics
from codesuggest.tokens import TokenError, is_user_token
from codesuggest.tokens.errors import KeysUnavailable

log = get_logger("codesuggest.gateway.auth")

FORBIDDEN_BY_PROVIDER = "Forbidden by auth provider"


def _header_mismatch(name: str) -> GatewayError:
    return unauthorized(f"Header mismatch '{name}'")


async def authenticate(request: Request, context: GatewayContext) -> Caller:
    """Run the whole authentication layer for one request (no scope check)."""
    started = time.perf_counter()
    metrics = context.metrics
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
        trust = context.trust
        try:
            claims = await trust.verifier.verify(token)
            trust.check_kind(claims)
        except KeysUnavailable as exc:
            # Not a refusal: another replica (or this one, later) can answer. Never a 401.
            log.warning("token not checked", reason=exc.reason, detail=str(exc))
            raise _refuse(metrics, exc.reason, keys_unavailable()) from None
        except TokenError as exc:
            log.info("token refused", reason=exc.reason, detail=str(exc))
            raise _refuse(metrics, exc.reason, unauthorized(FORBIDDEN_BY_PROVIDER)) from None
        user_token = is_user_token(claims, trust.service_name)
        if user_token and context.revocations.is_revoked(claims):
            raise _refuse(metrics, "revoked", unauthorized(FORBIDDEN_BY_PROVIDER))
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


def requires(
    scope: str, *, user_tokens: bool, refusal: str
) -> Callable[[Request, GatewayContext], Awaitable[Caller]]:
    """A FastAPI dependency: authenticate, then require `scope` (and an instance token unless
    `user_tokens`). `refusal` is the 403 detail of the route."""

    async def dependency(request: Request, context: ContextDep) -> Caller:
        caller = await authenticate(request, context)
        if scope not in caller.scopes or (caller.is_user_token and not user_tokens):
            context.metrics.auth_failures.labels(reason="scope").inc()
            raise forbidden(refusal)
        return caller

    return dependency
