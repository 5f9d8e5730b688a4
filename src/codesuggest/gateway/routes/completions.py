"""`POST /v2/completions`, `/v2/code/completions` (any token with `complete_code`) and
`/v2/code/generations` (instance tokens with `generate_code`). The edge prefix `/ai/...` is
rewritten to these paths by the app's middleware (edge_routes), so they are registered once.

The route parses the body and turns the service's result into HTTP; the service does the rest."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.background import BackgroundTask
from starlette.responses import StreamingResponse

from codesuggest.common.openapi import ANY_OBJECT, STRING, answers, json_body, ref, shape
from codesuggest.common.strict_json import BadJson, parse_model
from codesuggest.gateway.caller import Caller
from codesuggest.gateway.completions import responses, sse
from codesuggest.gateway.completions.results import (
    Answered,
    ClientLeft,
    CompletionResult,
    InferenceFailed,
    Invalid,
    RateLimited,
    Streamed,
)
from codesuggest.gateway.completions.schemas import (
    CompletionRequest,
    CompletionResponse,
    GenerationRequest,
)
from codesuggest.gateway.completions.service import CompletionService, RequestInfo
from codesuggest.gateway.completions.timing import measure, server_timing, timings_of
from codesuggest.gateway.context import GatewayContext, get_context
from codesuggest.gateway.routes.deps import completion_caller, generation_caller

router = APIRouter()

SSE_EVENT = {
    "description": 'One event: `message` frames carry `{"text": chunk}`; the last is `done` '
    'with the whole suggestion or `error` with `{"detail": ...}` (docs/contracts.md)',
    "type": "object",
    "properties": {
        "event": {"enum": ["message", "done", "error"]},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
    "required": ["data"],
}


def _documented(body: type[BaseModel]) -> dict[str, Any]:
    """The route's OpenAPI: the body it parses itself, and every answer."""
    return {
        "openapi_extra": json_body(body),
        "responses": answers(
            {
                200: ("A completion, or with `stream: true` its text as server-sent events", None),
                401: (
                    "No token, a token not verified, or a header disagreeing",
                    shape(error=STRING),
                ),
                403: ("The token does not grant this route", shape(detail=STRING)),
                422: (
                    "The body is not valid (FastAPI's shape)",
                    shape(detail={"type": "array", "items": ANY_OBJECT}),
                ),
                429: (
                    "Over the user's or instance's rate or concurrency (Retry-After)",
                    ANY_OBJECT,
                ),
                503: (
                    "The model failed, or the issuer's keys are not loaded (Retry-After)",
                    ANY_OBJECT,
                ),
            },
            media_types={
                200: {
                    "application/json": {"schema": ref(CompletionResponse)},
                    "text/event-stream": {"schema": SSE_EVENT},
                }
            },
        ),
    }


# The hot path: the routes take only the request and authenticate in the body, and the app's
# middleware calls them without FastAPI's routing (`hot_routes`, docs/architecture.md).
@router.post("/v2/completions", **_documented(CompletionRequest))
@router.post("/v2/code/completions", **_documented(CompletionRequest))
async def completions(request: Request) -> Response:
    context = get_context(request)
    caller = await completion_caller(request, context)
    return await _serve(request, caller, context, CompletionRequest)


@router.post("/v2/code/generations", **_documented(GenerationRequest))
async def generations(request: Request) -> Response:
    context = get_context(request)
    caller = await generation_caller(request, context)
    return await _serve(request, caller, context, GenerationRequest)


async def _serve(
    request: Request,
    caller: Caller,
    context: GatewayContext,
    schema: type[CompletionRequest],
) -> Response:
    info = RequestInfo(
        caller=caller,
        usage=context.usage,
        clock=context.clock,
        request_id=getattr(request.state, "request_id", None),
        started=getattr(request.state, "started", time.perf_counter()),
        timings=timings_of(request),
        disconnected=_disconnect_of(request),
    )
    service = context.completions
    # Per-user rate and concurrency (gateway/fairness.py): a 429 costs nothing more.
    ticket = context.fairness.admit(caller, request.headers.get("authorization"))
    try:
        return ticket.release_after(await _answer(request, schema, service, info))
    except BaseException:
        ticket.release()
        raise


async def _answer(
    request: Request, schema: type[CompletionRequest], service: CompletionService, info: RequestInfo
) -> Response:
    try:
        with measure(info.timings, "parse"):
            body = parse_model(schema, await request.body())
    except BadJson as exc:
        error = {"type": "json_invalid", "loc": ("body",), "msg": str(exc)}
        result: CompletionResult = await service.refuse(info, [error])
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        result = await service.refuse(info, errors)
    else:
        result = await service.complete(body, info)
    info.timings["total"] = time.perf_counter() - info.started
    return _response(result, info.timings)


def _response(result: CompletionResult, timings: dict[str, float]) -> Response:
    match result:
        case Answered(encoded=encoded, after=after):
            headers = {"Server-Timing": server_timing(timings)}
            later = BackgroundTask(_run, after) if after is not None else None
            return Response(
                encoded, media_type="application/json", headers=headers, background=later
            )
        case Streamed(events=events):
            headers = {**sse.HEADERS, "Server-Timing": server_timing(timings)}
            return StreamingResponse(events, media_type=sse.MEDIA_TYPE, headers=headers)
        case Invalid(errors=errors):
            return responses.invalid(errors, timings)
        case RateLimited(retry_after=retry_after):
            return responses.rate_limited(retry_after, timings)
        case InferenceFailed(unreachable=unreachable):
            return responses.inference_failed(timings, unreachable)
        case ClientLeft():
            return Response(status_code=499)  # nobody is listening any more


async def _run(after: Callable[[], None]) -> None:
    """`after` as an async task: Starlette runs a plain function's in a thread."""
    after()


def hot_routes() -> dict[str, APIRoute]:
    """The routes above by path, for the app's middleware to serve (gateway/middleware.py)."""
    return {route.path: route for route in router.routes if isinstance(route, APIRoute)}


def _disconnect_of(request: Request) -> Callable[[], Awaitable[None]]:
    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    return disconnected
