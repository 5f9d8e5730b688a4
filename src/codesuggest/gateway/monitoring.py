"""Liveness, readiness (keys loaded for every trusted issuer) and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter(include_in_schema=False)


@router.get("/monitoring/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/monitoring/ready")
async def ready(request: Request) -> JSONResponse:
    missing = request.app.state.trust.missing_issuers()
    if missing:
        return JSONResponse(
            {"status": "not ready", "detail": "keys not loaded yet", "missing_issuers": missing},
            status_code=503,
        )
    return JSONResponse({"status": "ready"})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
