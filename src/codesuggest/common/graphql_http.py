"""The HTTP front of a GraphQL schema, shared by the portal and the instance.

`read_request` takes the request: a body not sent as JSON gets a 415, one over the part's cap a
413, one that is not `{"query": ..., "variables": ..., "operationName": ...}` a 400 naming the
problem; `execute` runs it. GraphQL
errors (syntax, validation, refusals raised by resolvers) come back in `errors` with status
200, as GraphQL servers answer them; a resolver's crash is masked as a 500 without internals.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import strawberry
from fastapi import Request
from fastapi.responses import JSONResponse
from graphql import GraphQLError

from codesuggest.common import strict_json
from codesuggest.common.bodies import BodyTooLarge, read_capped

MEMBERS = frozenset({"query", "variables", "operationName", "extensions"})
# The HTTP front's contract, for the parts' OpenAPI documents.
GRAPHQL_REQUEST = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "minLength": 1},
        "variables": {"type": ["object", "null"]},
        "operationName": {"type": ["string", "null"]},
        "extensions": {"type": ["object", "null"]},
    },
    "required": ["query"],
    "additionalProperties": False,
}
GRAPHQL_ANSWER = {"type": "object", "anyOf": [{"required": ["data"]}, {"required": ["errors"]}]}


@dataclass(frozen=True)
class GraphQLRequest:
    query: str
    variables: dict[str, Any] | None
    operation_name: str | None


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"errors": [{"message": message}]}, status_code=status, headers=headers)


def parse_request(body: bytes) -> GraphQLRequest | str:
    """The request, or the message saying what is wrong with it."""
    try:
        payload = strict_json.loads(body)
    except strict_json.BadJson as exc:
        return str(exc)[0].upper() + str(exc)[1:]
    if not isinstance(payload, dict):
        return "Request body must be a JSON object"
    unknown = set(payload) - MEMBERS
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
    extensions = payload.get("extensions")
    if extensions is not None and not isinstance(extensions, dict):
        return "'extensions' must be an object"
    return GraphQLRequest(query, variables, operation)


async def read_request(request: Request, limit: int) -> GraphQLRequest | JSONResponse:
    """The GraphQL request in the body (at most `limit` bytes), or the error answer."""
    content_type = request.headers.get("content-type", "application/json").lower()
    if not content_type.startswith("application/json"):
        return error_response(415, "Send the request as application/json")
    try:
        body = await read_capped(request, limit)
    except BodyTooLarge as exc:
        return error_response(413, str(exc))
    parsed = parse_request(body)
    return error_response(400, parsed) if isinstance(parsed, str) else parsed


def _is_crash(error: GraphQLError, refusals: tuple[type[Exception], ...]) -> bool:
    """True for a resolver crash (not a refusal, not a client's query or variable error)."""
    original = error.original_error
    return (
        bool(error.path)
        and original is not None
        and not isinstance(original, (GraphQLError, *refusals))
    )


async def execute(
    schema: strawberry.Schema,
    request: GraphQLRequest,
    context: Any,
    log: Any,
    refusals: tuple[type[Exception], ...] = (),
    on_refusal: Callable[[Exception], None] | None = None,
) -> JSONResponse:
    """Run the request; `refusals` are exception types resolvers raise on purpose (their
    message goes to the client as a GraphQL error)."""
    result = await schema.execute(
        request.query,
        variable_values=request.variables,
        context_value=context,
        operation_name=request.operation_name,
    )
    body: dict[str, Any] = {"data": result.data}
    status = 200
    if result.errors:
        errors: list[Any] = []
        for error in result.errors:
            if _is_crash(error, refusals):
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
                continue
            if on_refusal is not None and isinstance(error.original_error, refusals):
                on_refusal(error.original_error)
            errors.append(error.formatted)
        body["errors"] = errors
    return JSONResponse(body, status_code=status)
