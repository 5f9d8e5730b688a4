"""`POST /graphql`: a strict JSON front for the schema.

Bodies are capped, malformed requests get a 400 JSON body, GraphQL errors come back in
`errors` with status 200, and a fault of ours is masked as 500 without internals.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from graphql import GraphQLError

from codesuggest.common.logs import get_logger
from codesuggest.portal.access import AccessDenied, AccessService
from codesuggest.portal.graphql_schema import RequestContext, schema

log = get_logger("codesuggest.portal.graphql")

_CALLER_HEADERS = (
    "x-gitlab-instance-id",
    "x-gitlab-host-name",
    "x-gitlab-realm",
    "x-gitlab-version",
)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"errors": [{"message": message}]}, status_code=status)


class BodyTooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(body: bytes) -> tuple[str, dict[str, Any] | None, str | None] | str:
    """(query, variables, operationName), or the message saying what is wrong."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        return "Request body is not valid JSON"
    if not isinstance(payload, dict):
        return "Request body must be a JSON object"
    unknown = set(payload) - {"query", "variables", "operationName", "extensions"}
    if unknown:
        return f"Unknown request member(s): {', '.join(sorted(unknown))}"
    query, variables, operation = (
        payload.get("query"),
        payload.get("variables"),
        payload.get("operationName"),
    )
    if not isinstance(query, str) or not query.strip():
        return "'query' must be a non-empty string"
    if variables is not None and not isinstance(variables, dict):
        return "'variables' must be an object"
    if operation is not None and not isinstance(operation, str):
        return "'operationName' must be a string"
    return query, variables, operation


def _is_ours(error: GraphQLError) -> bool:
    """True for a resolver crash (not a refusal, not a client's query or variable error)."""
    original = error.original_error
    return (
        bool(error.path)
        and original is not None
        and not isinstance(original, AccessDenied | GraphQLError)
    )


async def graphql_endpoint(request: Request) -> JSONResponse:
    service: AccessService = request.app.state.access
    try:
        body = await _read_body(request, request.app.state.settings.max_body_bytes)
    except BodyTooLarge:
        limit = request.app.state.settings.max_body_bytes
        return _error(413, f"Request body is larger than {limit} bytes")
    parsed = _parse(body)
    if isinstance(parsed, str):
        return _error(400, parsed)
    query, variables, operation = parsed
    headers = {name: request.headers[name] for name in _CALLER_HEADERS if name in request.headers}
    result = await schema.execute(
        query,
        variable_values=variables,
        context_value=RequestContext(service=service, headers=headers),
        operation_name=operation,
    )
    response: dict[str, Any] = {"data": result.data}
    status = 200
    if result.errors:
        errors = []
        for error in result.errors:
            if _is_ours(error):
                status = 500
                log.error(
                    "graphql resolver failed",
                    error_type=type(error.original_error).__name__,
                    exc_info=error.original_error,
                )
                errors.append(
                    {
                        "message": "Internal server error",
                        "path": error.path,
                        "extensions": {"code": "INTERNAL_SERVER_ERROR"},
                    }
                )
            else:
                if isinstance(error.original_error, AccessDenied):
                    log.info("cloud connector access refused", code=error.original_error.code)
                errors.append(error.formatted)
        response["errors"] = errors
    return JSONResponse(response, status_code=status)
