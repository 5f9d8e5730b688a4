"""Gateway errors with the exact bodies of docs/contracts.md section 5."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse


class GatewayError(Exception):
    def __init__(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(body)
        self.status = status
        self.body = body
        self.headers = headers


def unauthorized(message: str) -> GatewayError:
    return GatewayError(401, {"error": message})


KEYS_UNAVAILABLE = "Token keys unavailable: the issuer's keys are not loaded yet. Try again later."
KEYS_RETRY_AFTER = "5"


def keys_unavailable() -> GatewayError:
    """503: the token's issuer is unreachable and its keys are not loaded, so the token can be
    neither accepted nor refused (the edge sends the request to another replica)."""
    return GatewayError(503, {"detail": KEYS_UNAVAILABLE}, {"Retry-After": KEYS_RETRY_AFTER})


def forbidden(detail: str) -> GatewayError:
    return GatewayError(403, {"detail": detail})


async def handle_gateway_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GatewayError)
    return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)
