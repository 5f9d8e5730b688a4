"""The HTTP pieces every part's app shares: the health route and the last-resort 500 handler."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse

from codesuggest.common.logs import get_logger

health_router = APIRouter(include_in_schema=False)


@health_router.get("/monitoring/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers HTTP."""
    return {"status": "ok"}


def install_crash_handler(
    app: FastAPI,
    logger: str,
    body: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> None:
    """Answer any uncaught exception with `body` (the part's own 500 shape, no traceback) and
    log it once, on `logger`, as `unhandled error` with the path and `error_type`."""
    log = get_logger(logger)

    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", path=request.url.path, error_type=type(exc).__name__)
        return JSONResponse(body, status_code=500, headers=headers)

    app.add_exception_handler(Exception, crashed)
