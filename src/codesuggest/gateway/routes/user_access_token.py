"""`POST /v1/code/user_access_token`: the gateway mints a user token from a verified instance
token (docs/contracts.md section 5)."""

from __future__ import annotations

import re
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from codesuggest.common.openapi import ANY_OBJECT, STRING, answers, shape
from codesuggest.common.usage import UsageEvent
from codesuggest.gateway.context import ContextDep
from codesuggest.gateway.errors import GatewayError
from codesuggest.gateway.routes.deps import MintingCaller
from codesuggest.tokens import COMPLETE_CODE

router = APIRouter()

MAX_GLOBAL_USER_ID = 255
BAD_GLOBAL_USER_ID = (
    f"X-Gitlab-Global-User-Id must be 1 to {MAX_GLOBAL_USER_ID} printable ASCII characters"
)
_PRINTABLE = re.compile(r"[\x21-\x7e]+")


@router.post(
    "/v1/code/user_access_token",
    responses=answers(
        {
            200: ("The user token", shape(token=STRING, expires_at={"type": "integer"})),
            400: ("X-Gitlab-Global-User-Id is missing or not acceptable", shape(detail=STRING)),
            401: ("No token, a token not verified, or a header disagreeing", shape(error=STRING)),
            403: ("Not an instance token with complete_code", shape(detail=STRING)),
            503: ("The issuer's keys cannot be loaded yet (Retry-After)", ANY_OBJECT),
        }
    ),
    openapi_extra={
        "parameters": [
            {
                "name": "X-Gitlab-Global-User-Id",
                "in": "header",
                "required": True,
                "schema": {"type": "string", "minLength": 1, "maxLength": MAX_GLOBAL_USER_ID},
            }
        ]
    },
)
async def user_access_token(
    request: Request, caller: MintingCaller, context: ContextDep
) -> JSONResponse:
    """Mint a user token. Realm and instance come from the verified instance token, never from
    headers; the user token lives 1 h but never past the instance token."""
    global_user_id = request.headers.get("x-gitlab-global-user-id")
    if not global_user_id:
        raise GatewayError(400, {"detail": "Missing X-Gitlab-Global-User-Id header"})
    if len(global_user_id) > MAX_GLOBAL_USER_ID or not _PRINTABLE.fullmatch(global_user_id):
        # It becomes the token's `sub`: an over-long one made tokens the gateway then refused.
        raise GatewayError(400, {"detail": BAD_GLOBAL_USER_ID})
    started = time.perf_counter()
    token, claims = context.signer.mint(
        subject=global_user_id,
        audience=context.settings.service_name,
        lifetime=context.settings.user_token_lifetime,
        expires_at=caller.claims["exp"],
        extra={
            "gitlab_realm": caller.claims.get("gitlab_realm"),
            "gitlab_instance_id": caller.claims.get("gitlab_instance_id", caller.claims["sub"]),
            "scopes": [COMPLETE_CODE],
        },
    )
    context.metrics.token_mints.labels(realm=str(caller.realm)).inc()
    await context.usage.submit(  # durable when the future resolves
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
