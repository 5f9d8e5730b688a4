"""`POST /api/v4/usage/events` (the gateway's batches, with its signed token) and
`GET /api/v4/usage/report` (administrators); both 404 when this instance takes no usage events.

The gateway ships the events of every instance it serves to its collector, so the report is
of one instance's events: this instance's unless `instance_id` names another (or `all`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from anyio import to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from codesuggest.common.logs import get_logger
from codesuggest.common.strict_json import BadJson, parse_model
from codesuggest.instance import errors
from codesuggest.instance.routes.deps import Administrator, ContextDep
from codesuggest.instance.store import application_settings
from codesuggest.instance.usage_sink import EventBatch, UsageSink
from codesuggest.tokens.errors import TokenError

log = get_logger("codesuggest.instance.usage")
router = APIRouter(prefix="/api/v4/usage")
UNAUTHORIZED = {"message": "401 Unauthorized"}


def running_sink(context: ContextDep) -> UsageSink:
    """The started sink (404 when `usage_sink_enabled` is off)."""
    if context.usage_sink is None:
        raise errors.InstanceError(404, {"message": "404 Not Found"})
    return context.usage_sink


Sink = Annotated[UsageSink, Depends(running_sink)]


def own_instance_id(context: ContextDep) -> str:
    with context.store.session() as session:
        return application_settings(session).instance_uuid


OwnInstanceId = Annotated[str, Depends(own_instance_id)]


@router.post("/events")
async def receive_events(request: Request, sink: Sink) -> JSONResponse:
    try:
        await sink.authenticate(request.headers.get("authorization"))
    except TokenError as exc:
        log.info("usage batch refused", reason=exc.reason)
        return JSONResponse(UNAUTHORIZED, status_code=401)
    try:
        batch = parse_model(EventBatch, await request.body())
    except BadJson as exc:
        return JSONResponse({"error": str(exc)}, status_code=400)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        return JSONResponse({"error": f"{where} is invalid: {first['msg']}"}, status_code=400)
    stored, duplicates = await to_thread.run_sync(sink.store, batch.events)
    return JSONResponse({"stored": stored, "duplicates": duplicates})


@router.get("/report")
async def usage_report(
    sink: Sink,
    _admin: Administrator,
    own: OwnInstanceId,
    by: Literal["user", "day", "language", "client"] = Query("user"),
    since: datetime | None = Query(None),
    source: Literal["all", "ide", "gateway"] = Query("all"),
    instance_id: str | None = Query(
        None,
        min_length=1,
        max_length=64,
        description="Whose events: an instance id, or `all`; default this instance's",
    ),
) -> JSONResponse:
    instance_id = instance_id or own
    wanted = None if instance_id == "all" else instance_id
    rows = await to_thread.run_sync(sink.report, by, since, source, wanted)
    body = {"by": by, "since": since.isoformat() if since else None, "source": source}
    return JSONResponse(body | {"instance_id": instance_id, "rows": rows})
