"""The gateway as token authority: mint user tokens from verified instance tokens, and publish
the gateway's own keys."""

from __future__ import annotations

import time

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from codesuggest.gateway.auth import Caller, TrustStore, requires
from codesuggest.gateway.errors import GatewayError
from codesuggest.gateway.usage.events import UsageEvent
from codesuggest.tokens import COMPLETE_CODE, Signer, jwks_document, openid_configuration

router = APIRouter()

MINT_REFUSAL = "Unauthorized to create user access token"


@router.post("/v1/code/user_access_token")
async def user_access_token(
    request: Request,
    caller: Caller = Depends(requires(COMPLETE_CODE, user_tokens=False, refusal=MINT_REFUSAL)),
) -> JSONResponse:
    """Mint a user token. Realm and instance come from the verified instance token, never from
    headers; the user token lives 1 h but never past the instance token."""
    global_user_id = request.headers.get("x-gitlab-global-user-id")
    if not global_user_id:
        raise GatewayError(400, {"detail": "Missing X-Gitlab-Global-User-Id header"})
    started = time.perf_counter()
    state = request.app.state
    signer: Signer = state.signer
    token, claims = signer.mint(
        subject=global_user_id,
        audience=state.settings.service_name,
        lifetime=state.settings.user_token_lifetime,
        expires_at=caller.claims["exp"],
        extra={
            "gitlab_realm": caller.claims.get("gitlab_realm"),
            "gitlab_instance_id": caller.claims.get("gitlab_instance_id", caller.claims["sub"]),
            "scopes": [COMPLETE_CODE],
        },
    )
    state.metrics.token_mints.labels(realm=str(caller.realm)).inc()
    await state.usage.record(
        UsageEvent(
            name="user_token_issued",
            realm=caller.realm,
            instance_id=claims["gitlab_instance_id"],
            global_user_id=global_user_id,
            host_name=caller.host_name,
            path=caller.path,
            status="served",
            latency_ms=(time.perf_counter() - started) * 1000,
            client_name=caller.client_name,
            client_version=caller.client_version,
            request_id=getattr(request.state, "request_id", None),
        )
    )
    return JSONResponse({"token": token, "expires_at": claims["exp"]})


@router.get("/.well-known/openid-configuration", include_in_schema=False)
async def discovery(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    doc = openid_configuration(
        settings.service_name, settings.public_url.rstrip("/") + "/oauth/discovery/keys"
    )
    return JSONResponse(doc, headers={"Cache-Control": "max-age=86400, public"})


@router.get("/oauth/discovery/keys", include_in_schema=False)
async def keys(request: Request) -> JSONResponse:
    trust: TrustStore = request.app.state.trust
    return JSONResponse(
        jwks_document(list(trust.own_keys.keys.values())),
        headers={"Cache-Control": "max-age=86400, public"},
    )
