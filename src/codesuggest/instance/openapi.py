"""The instance's OpenAPI contract for its routes that parse raw bodies or answer with more than
their success: request bodies and every status (docs/instance.md has the behavior). Checked by
the schemathesis suite (tests/instance/test_fuzz.py): an undeclared status fails it."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from codesuggest.common.graphql_http import GRAPHQL_ANSWER, GRAPHQL_REQUEST
from codesuggest.common.openapi import ANY_OBJECT, STRING, answers, declare, json_body, shape
from codesuggest.instance.admin import SETTABLE

ERROR = {
    "description": "GitLab's error shapes: `message` (a string or an object) or `error`",
    "type": "object",
    "anyOf": [{"required": ["message"]}, {"required": ["error"]}],
}
_401 = ("No PAT, or a PAT that is unknown, revoked or expired", ERROR)
_403 = ("The PAT lacks the scope, the user a seat or the right", ERROR)
_429 = ("Over the per-user limit (Retry-After)", ERROR)
_503 = ("A store, the portal token or the gateway is unavailable (Retry-After)", ERROR)
_400 = ("The body or a parameter is not valid; the message names it", ERROR)
_GATEWAY = ("The gateway's refusal, passed through as it is", ANY_OBJECT)

SETTING_VALUES = {
    "type": "object",
    "properties": {
        name: {"type": "boolean"} if kind is bool else {"type": ["string", "null"]}
        for name, kind in SETTABLE.items()
    },
    "additionalProperties": False,
}
EVENT = {
    "type": "object",
    "properties": {
        "event_id": {"type": "string", "minLength": 1, "maxLength": 64},
        "name": {"type": "string"},
        "timestamp": {"type": "string", "format": "date-time"},
    },
    "required": ["event_id", "name", "timestamp"],
}
DIRECT_ACCESS = shape(
    base_url=STRING, token=STRING, expires_at={"type": "integer"}, headers=ANY_OBJECT
)

_404 = ("No such user, token, purchase or assignment", ERROR)
_409 = ("Taken already (a username)", ERROR)
ADMIN_REFUSALS = {400: _400, 401: _401, 403: _403, 404: _404, 503: _503}
_LIST = {"type": "array", "items": ANY_OBJECT}
PARAMS_BODY = json_body(
    {"description": "Parameters as JSON (or a form, or the query string)", "type": "object"},
    required=False,
)


def admin_call(
    status: int, description: str, schema: dict[str, Any] | None, body: bool = False
) -> dict[str, Any]:
    """An admin REST route (routes/admin_calls.py): its success plus GitLab's refusals."""
    table = {status: (description, schema)} | ADMIN_REFUSALS | {409: _409}
    return (PARAMS_BODY if body else {}) | {"responses": answers(table)}


ADMIN_TABLE: dict[str, dict[str, Any]] = {
    "GET /api/v4/users": admin_call(200, "A page of users (X-Total headers)", _LIST),
    "POST /api/v4/users": admin_call(201, "The new user", ANY_OBJECT, body=True),
    "GET /api/v4/users/{user_id}": admin_call(200, "The user", ANY_OBJECT),
    "DELETE /api/v4/users/{user_id}": admin_call(204, "Deleted", None),
    "POST /api/v4/users/{user_id}/block": admin_call(
        201, "true, or null when blocked already", {"type": ["boolean", "null"]}
    ),
    "POST /api/v4/users/{user_id}/unblock": admin_call(201, "true", {"type": "boolean"}),
    "GET /api/v4/users/{user_id}/personal_access_tokens": admin_call(
        200, "A page of the user's tokens", _LIST
    ),
    "POST /api/v4/users/{user_id}/personal_access_tokens": admin_call(
        201, "The token entity plus `token`, shown this once", ANY_OBJECT, body=True
    ),
    "GET /api/v4/personal_access_tokens": admin_call(200, "A page of tokens", _LIST),
    "GET /api/v4/personal_access_tokens/{token_id}": admin_call(200, "The token", ANY_OBJECT),
    "DELETE /api/v4/personal_access_tokens/self": admin_call(204, "Revoked", None),
    "DELETE /api/v4/personal_access_tokens/{token_id}": admin_call(204, "Revoked", None),
    "GET /api/v4/add_on_purchases": admin_call(200, "The add-on purchases", _LIST),
    "POST /api/v4/add_on_purchases/{purchase_id}/assignments": admin_call(
        201, "The purchase with the seat taken", ANY_OBJECT, body=True
    ),
    "DELETE /api/v4/add_on_purchases/{purchase_id}/assignments/{user_id}": admin_call(
        204, "The seat freed", None
    ),
}

TABLE: dict[str, dict[str, Any]] = {
    "POST /api/v4/code_suggestions/direct_access": {
        "responses": answers(
            {
                201: ("The user token and how to reach the gateway", DIRECT_ACCESS),
                401: _401,
                402: _GATEWAY,
                403: _403,
                429: _429,
                503: _503,
            }
        )
    },
    "POST /api/v4/code_suggestions/connection_details": {
        "responses": answers(
            {201: ("Who and where, for the IDE's telemetry", ANY_OBJECT), 401: _401, 403: _403}
            | {503: _503}
        )
    },
    "POST /api/v4/code_suggestions/completions": {
        **json_body(
            {
                "description": "The gateway's completion body plus `intent`, passed on",
                "type": "object",
                "properties": {"intent": {"enum": ["completion", "generation"]}},
            },
            required=False,
        ),
        "responses": answers(
            {
                200: ("The gateway's answer, JSON or server-sent events", None),
                400: _400,
                401: _401,
                402: _GATEWAY,
                403: _403,
                422: ("The gateway refused the body", ANY_OBJECT),
                429: _429,
                503: _503,
            },
            media_types={
                200: {
                    "application/json": {"schema": ANY_OBJECT},
                    "text/event-stream": {"schema": ANY_OBJECT},
                }
            },
        ),
    },
    "GET /api/v4/version": {"responses": answers({401: _401, 403: _403, 503: _503})},
    "GET /api/v4/user": {"responses": answers({401: _401, 403: _403, 503: _503})},
    "GET /api/v4/application/settings": {"responses": answers({401: _401, 403: _403, 503: _503})},
    "PUT /api/v4/application/settings": {
        **json_body(SETTING_VALUES, required=False),
        "responses": answers(
            {400: _400, 401: _401, 403: _403, 415: ("Not JSON, a form or query", ERROR)}
            | {503: _503}
        ),
    },
    "GET /api/v4/personal_access_tokens/self": {
        "responses": answers({401: _401, 403: _403, 503: _503})
    },
    "GET /oauth/token/info": {"responses": answers({401: _401, 503: _503})},
    "POST /api/v4/usage_data/track_event": {
        **json_body(
            shape(event=STRING, additional_properties=ANY_OBJECT) | {"additionalProperties": True}
        ),
        "responses": answers(
            {400: _400, 401: _401, 403: _403, 413: ("The body is too large", ERROR)}
            | {422: ("An event the instance does not track", ERROR), 503: _503}
        ),
    },
    "POST /api/graphql": {
        **json_body(GRAPHQL_REQUEST),
        "responses": answers(
            {
                200: ("`data` and/or `errors`", GRAPHQL_ANSWER),
                400: ("The request is not a GraphQL request", GRAPHQL_ANSWER),
                401: _401,
                403: _403,
                413: ("The body is too large", GRAPHQL_ANSWER),
                415: ("Not application/json", GRAPHQL_ANSWER),
                503: _503,
            }
        ),
    },
    "GET /monitoring/ready": {"responses": answers({503: ("Not ready: what is missing", None)})},
    "POST /api/v4/usage/events": {
        **json_body(shape(events={"type": "array", "items": EVENT, "maxItems": 5000})),
        "responses": answers(
            {400: _400, 401: _401, 404: ("This instance takes no usage events", ERROR)}
        ),
    },
    "GET /api/v4/usage/report": {
        "parameter_schemas": {
            "since": {
                "description": "ISO-8601 date-time, or Unix seconds",
                "anyOf": [{"type": "string", "format": "date-time"}, {"type": "number"}],
            }
        },
        "responses": answers(
            {400: _400, 401: _401, 403: _403, 404: ("No usage sink here", ERROR), 503: _503}
        ),
    },
}


def document(app: FastAPI) -> None:
    declare(app, TABLE | ADMIN_TABLE)
