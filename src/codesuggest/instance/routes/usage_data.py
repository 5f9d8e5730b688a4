"""`POST /api/v4/usage_data/track_event`: IDE telemetry (docs/contracts.md 4).

Follows GitLab: a PAT with `api` (or `ai_features`) scope, `event` required (400 when missing
or malformed), an event this instance does not know is a 422, success is `200 {}`.
"""

from __future__ import annotations

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from codesuggest.common.bodies import BodyTooLarge, read_capped
from codesuggest.instance import errors, ide_telemetry
from codesuggest.instance.access import authenticated_user
from codesuggest.instance.identity import global_user_id, require_ai_scope
from codesuggest.instance.routes.deps import ContextDep, PatHeaders, RequestId, now

router = APIRouter(prefix="/api/v4/usage_data")


def _invalid(exc: ValidationError) -> errors.InstanceError:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    if first["type"] == "missing":
        return errors.InstanceError(400, {"error": f"{where} is missing"})
    return errors.InstanceError(400, {"error": f"{where} is invalid"})


@router.post("/track_event")
async def track_event(
    request: Request, context: ContextDep, pat: PatHeaders, rid: RequestId
) -> JSONResponse:
    when = now(context)
    auth, info = await to_thread.run_sync(authenticated_user, context.store, *pat, when)
    require_ai_scope(auth)
    try:
        raw = await read_capped(request, ide_telemetry.MAX_BODY)
    except BodyTooLarge as exc:
        raise errors.InstanceError(413, {"message": f"413 {exc}"}) from exc
    try:
        body = ide_telemetry.TrackEvent.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        raise _invalid(exc) from exc
    if body.event not in ide_telemetry.IDE_EVENTS:
        raise errors.InstanceError(422, {"message": f"Unknown event: {body.event}"})
    if body.additional_properties is None:
        raise errors.InstanceError(400, {"error": "additional_properties is missing"})
    reporter = ide_telemetry.Reporter(
        global_user_id=global_user_id(context.store.secret, info.instance_uuid, auth.user_id),
        client_name=request.headers.get("user-agent"),
        client_version=request.headers.get("x-gitlab-language-server-version"),
        request_id=rid,
    )
    try:
        await to_thread.run_sync(
            ide_telemetry.store_event,
            context.store.engine,
            body,
            body.additional_properties,
            info,
            reporter,
            when,
        )
    except ide_telemetry.TrackingIdTaken as exc:
        raise errors.forbidden("unique_tracking_id belongs to another user") from exc
    return JSONResponse({}, status_code=200)
