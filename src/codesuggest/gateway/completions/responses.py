"""The error answers of the completion routes, each with the Server-Timing header."""

from __future__ import annotations

import json
from typing import Any

from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from codesuggest.common.model_server import MODEL_RETRY_AFTER, MODEL_UNREACHABLE
from codesuggest.common.strict_json import json_safe
from codesuggest.gateway.completions.timing import server_timing

TOO_MANY = "Too many requests. Please try again later."
INFERENCE_FAILED = "Inference failed"


def json_response(
    body: Any, status: int, timings: dict[str, float], headers: dict[str, str] | None = None
) -> JSONResponse:
    headers = {"Server-Timing": server_timing(timings), **(headers or {})}
    return JSONResponse(body, status_code=status, headers=headers)


MAX_ECHOED_INPUT = 200


def _short_input(error: dict[str, Any]) -> dict[str, Any]:
    """Do not echo a 100,000-character field back, nor one JSON cannot carry (`NaN`, raw
    bytes): the field's name and the rule say enough."""
    value = error.get("input")
    if not json_safe(value) or len(json.dumps(value)) > MAX_ECHOED_INPUT:
        return {k: v for k, v in error.items() if k != "input"}
    return error


def invalid(errors: list[dict[str, Any]], timings: dict[str, float]) -> JSONResponse:
    """FastAPI's own 422 shape: `{"detail": [{"loc": ["body", ...], "msg": ...}]}`."""
    detail = jsonable_encoder([_short_input(e) for e in errors])
    return json_response({"detail": detail}, 422, timings)


def rate_limited(retry_after: str | None, timings: dict[str, float]) -> JSONResponse:
    return json_response({"detail": TOO_MANY}, 429, timings, {"Retry-After": retry_after or "1"})


def inference_failed(timings: dict[str, float], unreachable: bool = False) -> JSONResponse:
    """503 with Retry-After; the detail says when the model server cannot be reached."""
    detail = MODEL_UNREACHABLE if unreachable else INFERENCE_FAILED
    return json_response({"detail": detail}, 503, timings, {"Retry-After": MODEL_RETRY_AFTER})
