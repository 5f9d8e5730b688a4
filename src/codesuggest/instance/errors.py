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


def unavailable(message: str, error: str) -> InstanceError:
    return InstanceError(503, {"message": message, "error": error})


class GatewayRefused(Exception):
    """The gateway answered 401/402/403: its status and body go back to the client as they are."""

    def __init__(self, status: int, body: bytes, content_type: str) -> None:
        super().__init__(f"gateway refused with {status}")
        self.status = status
        self.body = body
        self.content_type = content_type
