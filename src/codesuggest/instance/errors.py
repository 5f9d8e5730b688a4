"""Errors the instance raises itself (they carry `X-GitLab-Error-Origin: monolith`) and the
gateway refusals it passes through unchanged."""

from __future__ import annotations

from typing import Any

ORIGIN_HEADER = "X-GitLab-Error-Origin"


class InstanceError(Exception):
    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body
        self.headers = headers or {}


def unauthorized() -> InstanceError:
    return InstanceError(401, {"message": "401 Unauthorized"})


def insufficient_scope() -> InstanceError:
    return InstanceError(
        403,
        {
            "error": "insufficient_scope",
            "error_description": "The request requires higher privileges than provided by the "
            "access token.",
            "scope": "api ai_features",
        },
    )


def forbidden(reason: str) -> InstanceError:
    return InstanceError(403, {"message": f"403 Forbidden - {reason}"})


DIRECT_CONNECTIONS_DISABLED = "Direct connections are disabled"


def too_many_requests(retry_after: int) -> InstanceError:
    return InstanceError(
        429,
        {"message": {"error": "This endpoint has been requested too many times. Try again later."}},
        {"Retry-After": str(retry_after)},
    )


RETRY_AFTER = "5"
"""Seconds a client waits before asking again when a dependency is down (every 503 says it)."""


def unavailable(message: str, error: str, retry_after: str | None = None) -> InstanceError:
    """503: a dependency (database, Redis, portal token, gateway) cannot serve right now."""
    return InstanceError(
        503, {"message": message, "error": error}, {"Retry-After": retry_after or RETRY_AFTER}
    )


DATABASE_DOWN = (
    "The database is unavailable. Try again later.",
    "database_unavailable",
)


class GatewayRefused(Exception):
    """The gateway answered 401/402/403: its status and body go back to the client as they are."""

    def __init__(self, status: int, body: bytes, content_type: str) -> None:
        super().__init__(f"gateway refused with {status}")
        self.status = status
        self.body = body
        self.content_type = content_type
