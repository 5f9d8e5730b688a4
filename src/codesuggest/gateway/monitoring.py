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
    """Ready = keys loaded for every trusted issuer, and every model provider able to serve
    (the embedded engine loads or trains at start)."""
    missing = request.app.state.trust.missing_issuers()
    completions = getattr(request.app.state, "completions", None)
    loading = completions.registry.loading() if completions is not None else []
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
async def metrics(request: Request) -> Response:
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
