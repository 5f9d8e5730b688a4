"""`POST /v1/code/user_token_revocations` (ours): an instance voids the user tokens of one of its
users issued before a time (docs/contracts.md section 5, docs/gateway.md "Revocation").

Authenticated like a mint: an instance token with `complete_code` (the right to have user
tokens minted for an instance is the right to void them); self-managed instances present the
portal's token, SaaS instances their own signed token, verified against their JWKS. The instance
and the revoked user are taken from the verified token, never from the body alone: a body naming
another instance is refused, and a user id is only ever stored under the pushing instance, so
one instance cannot void another's users. A push id seen before is refused (409), a time in the
future too (422). The body is parsed with the strict rules every gateway route uses
(`common.strict_json`): malformed JSON, `NaN` or too deep a nesting is a 422 in FastAPI's shape.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from codesuggest.common.openapi import ANY_OBJECT, STRING, answers, json_body, shape
from codesuggest.common.strict_json import BadJson, parse_model
from codesuggest.gateway.context import ContextDep
from codesuggest.gateway.errors import GatewayError, forbidden
from codesuggest.gateway.revocations import RevocationStoreUnavailable
from codesuggest.gateway.routes.deps import RevokingCaller

router = APIRouter()


class Revocation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=64)
    """Unique per push: the gateway refuses one it has seen."""
    instance_id: str = Field(min_length=1, max_length=64)
    global_user_id: str = Field(min_length=1, max_length=255)
    issued_before: int = Field(ge=0)
    """Epoch seconds: the user's tokens with an earlier `iat` are void."""


def _parse(raw: bytes) -> Revocation:
    """The push, or a 422 listing what is wrong (the inputs are not echoed)."""
    errors: list[dict[str, Any]]
    try:
        return parse_model(Revocation, raw)
    except BadJson as exc:
        errors = [{"type": "json_invalid", "loc": ["body"], "msg": str(exc)}]
    except ValidationError as exc:
        found = exc.errors(include_url=False, include_input=False)
        errors = [{**error, "loc": ["body", *error["loc"]]} for error in found]
    raise GatewayError(422, {"detail": jsonable_encoder(errors)})


@router.post(
    "/v1/code/user_token_revocations",
    openapi_extra=json_body(Revocation.model_json_schema()),
    responses=answers(
        {
            200: ("Stored", shape(id=STRING, status=STRING)),
            401: ("No token, a token not verified, or a header disagreeing", ANY_OBJECT),
            403: (
                "Not an instance token with complete_code, or another instance's users",
                ANY_OBJECT,
            ),
            409: ("This push id was received before", shape(detail=STRING)),
            422: (
                "The body is not strict JSON or not a revocation (FastAPI's shape), or "
                "issued_before is in the future",
                ANY_OBJECT,
            ),
            503: (
                "The issuer's keys or the revocation store unavailable (Retry-After)",
                ANY_OBJECT,
            ),
        }
    ),
)
async def revoke_user_tokens(
    request: Request, caller: RevokingCaller, context: ContextDep
) -> JSONResponse:
    push = _parse(await request.body())
    if push.instance_id != caller.instance_id:
        context.metrics.auth_failures.labels(reason="revocation_other_instance").inc()
        raise forbidden("Revocations only for the instance's own users")
    if push.issued_before > context.clock.now() + context.settings.leeway:
        raise GatewayError(422, {"detail": "issued_before is in the future"})
    assert caller.instance_id is not None  # an instance token always names its instance
    try:
        stored = await context.revocations.add(
            caller.instance_id, push.global_user_id, push.issued_before, push.id
        )
    except RevocationStoreUnavailable as exc:
        raise GatewayError(
            503, {"detail": "Revocation store unavailable"}, {"Retry-After": "1"}
        ) from exc
    if not stored:
        context.metrics.auth_failures.labels(reason="revocation_replayed").inc()
        raise GatewayError(409, {"detail": "Revocation already received"})
    context.metrics.revocations.inc()
    return JSONResponse({"id": push.id, "status": "stored"})
