"""Readiness (keys loaded for every trusted issuer, every model provider able to serve) and
Prometheus metrics. Liveness is the shared `/monitoring/healthz`."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from codesuggest.gateway.context import ContextDep

router = APIRouter(include_in_schema=False)


@router.get("/monitoring/ready")
async def ready(context: ContextDep) -> JSONResponse:
    """Ready = not shutting down (SIGTERM), keys loaded for every trusted issuer, and every
    model provider able to serve (the embedded engine loads or trains at start)."""
    if context.draining:
        return JSONResponse({"status": "not ready", "detail": "shutting down"}, status_code=503)
    missing = context.trust.missing_issuers()
    loading = context.completions.registry.loading()
    if missing or loading:
        return JSONResponse(
            {
                "status": "not ready",
                "detail": "keys or models not loaded yet",
                "missing_issuers": missing,
                "loading_providers": loading,
            },
            status_code=503,
        )
    return JSONResponse({"status": "ready"})


@router.get("/metrics")
async def metrics(context: ContextDep) -> Response:
    return Response(context.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
