"""`POST /api/v4/code_suggestions/direct_access` and `.../completions` (docs/contracts.md 4)."""

from __future__ import annotations

import asyncio
import json

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from codesuggest.common import strict_json
from codesuggest.instance import errors, upstream
from codesuggest.instance.access import FEATURE_ENABLEMENT, SeatedUser, seated_user
from codesuggest.instance.context import InstanceContext
from codesuggest.instance.routes.deps import ContextDep, PatHeaders, RequestId, now
from codesuggest.instance.seats import seat_group_ids
from codesuggest.tokens import REALM_SAAS

router = APIRouter(prefix="/api/v4/code_suggestions")

NO_INSTANCE_TOKEN = errors.unavailable(
    "No usable instance token: the instance has not synced a token from the portal "
    "(check the license and run `codesuggest instance sync`)",
    "missing_instance_token",
)


async def _caller(context: InstanceContext, pat: tuple[str | None, str | None]) -> SeatedUser:
    return await to_thread.run_sync(seated_user, context.store, *pat, now(context))


async def _rate_limit(context: InstanceContext, name: str, user_id: int, limit: int) -> None:
    assert context.limiter is not None
    decision = await context.limiter.hit(name, str(user_id), limit)
    if not decision.allowed:
        raise errors.too_many_requests(decision.retry_after)


async def _instance_token(context: InstanceContext, caller: SeatedUser) -> str:
    def read() -> str | None:
        with context.store.session() as session:
            return context.instance_tokens.for_gateway(session, caller.info)

    token = await to_thread.run_sync(read)
    if token is None:
        raise NO_INSTANCE_TOKEN
    return token


async def _mint(context: InstanceContext, caller: SeatedUser, rid: str | None) -> tuple[str, int]:
    if caller.info.realm == REALM_SAAS and context.settings.saas_user_tokens == "self":

        def sign() -> tuple[str, int]:
            with context.store.session() as session:
                return context.instance_tokens.sign_user_token(session, caller)

        return await to_thread.run_sync(sign)
    instance_token = await _instance_token(context, caller)
    assert context.http is not None
    return await upstream.mint_user_token(
        context.http,
        caller.info.mint_url,
        upstream.gateway_headers(caller, instance_token, rid),
        context.settings.gateway_timeout,
    )


async def _after_revocation(context: InstanceContext, caller: SeatedUser) -> None:
    """A token minted in the second of a revocation would be void (`iat` counts whole
    seconds): wait for the next second (at most one)."""
    if caller.void_before is not None:
        wait = caller.void_before - context.clock.now()
        if 0 < wait <= 1:
            await asyncio.sleep(wait)


@router.post("/direct_access", status_code=201)
async def direct_access(context: ContextDep, pat: PatHeaders, rid: RequestId) -> JSONResponse:
    caller = await _caller(context, pat)
    if caller.info.disabled_direct_code_suggestions:
        raise errors.forbidden(errors.DIRECT_CONNECTIONS_DISABLED)
    await _rate_limit(
        context, "direct_access", caller.auth.user_id, context.settings.direct_access_per_minute
    )
    await _after_revocation(context, caller)
    # A revocation changes the key: a token cached before it is never handed out again.
    key = (caller.global_user_id, caller.info.realm, caller.info.edge_base, caller.void_before)
    token, expires_at = await context.user_tokens.get(key, lambda: _mint(context, caller, rid))
    body: dict[str, object] = {
        "base_url": caller.info.base_url,
        "token": token,
        "expires_at": expires_at,
        "headers": caller.gitlab_headers(),
    }
    if caller.info.model_details:
        body["model_details"] = caller.info.model_details
    return JSONResponse(body, status_code=201)


@router.post("/connection_details", status_code=201)
async def connection_details(context: ContextDep, pat: PatHeaders) -> JSONResponse:
    """What the IDE puts in its own telemetry context (GitLab 18.3): who and where, no token."""
    caller = await _caller(context, pat)

    def namespaces() -> list[int]:
        if caller.info.realm != REALM_SAAS:
            return []
        with context.store.session() as session:
            return seat_group_ids(session, caller.auth.user_id)

    body = {
        "instance_id": caller.info.instance_uuid,
        "instance_version": caller.info.version,
        "realm": caller.info.realm,
        "global_user_id": caller.global_user_id,
        "host_name": caller.info.host_name,
        "feature_enablement_type": FEATURE_ENABLEMENT,
        "saas_duo_pro_namespace_ids": await to_thread.run_sync(namespaces),
    }
    return JSONResponse(body, status_code=201)


@router.post("/completions")
async def completions(
    request: Request, context: ContextDep, pat: PatHeaders, rid: RequestId
) -> Response:
    caller = await _caller(context, pat)
    await _rate_limit(
        context, "completions", caller.auth.user_id, context.settings.completions_per_minute
    )
    raw = await request.body()
    try:
        payload = strict_json.loads(raw) if raw else {}
    except strict_json.BadJson as exc:
        raise errors.InstanceError(400, {"error": str(exc)}) from exc
    if not isinstance(payload, dict):
        raise errors.InstanceError(400, {"error": "the request body must be a JSON object"})
    intent = payload.get("intent") or "completion"
    if not isinstance(intent, str) or intent not in {"completion", "generation"}:
        raise errors.InstanceError(400, {"error": "intent does not have a valid value"})
    path = "/v2/code/generations" if intent == "generation" else "/v2/code/completions"
    pinned = caller.info.model_details
    if pinned and not payload.get("model_provider"):
        # The model an admin pinned applies on this path as on the direct one (model_details).
        raw = json.dumps({**payload, **pinned}).encode()
    instance_token = await _instance_token(context, caller)
    assert context.http is not None
    return await upstream.forward_completion(
        context.http,
        caller.info.gateway_url.rstrip("/") + path,
        upstream.gateway_headers(caller, instance_token, rid)
        | upstream.client_headers(request.headers),
        raw or b"{}",
        context.settings.completions_timeout,
    )
