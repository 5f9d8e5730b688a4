"""The AI gateway app: token authority, verifier of every token, completions, usage events."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from codesuggest.common.logs import RequestIdMiddleware, get_logger
from codesuggest.gateway import authority, monitoring
from codesuggest.gateway.auth import TrustStore
from codesuggest.gateway.completions.routes import build_router as completions_router
from codesuggest.gateway.edge_routes import EdgeRoutes
from codesuggest.gateway.errors import GatewayError, handle_gateway_error
from codesuggest.gateway.metrics import GatewayMetrics
from codesuggest.gateway.settings import GatewaySettings
from codesuggest.gateway.usage.recorder import make_recorder
from codesuggest.tokens import Clock, Signer, SystemClock

log = get_logger("codesuggest.gateway")


class RequestMetrics:
    """Counts requests by route template and status; pure ASGI so streams pass untouched."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            name = getattr(route, "path", "unmatched")
            self.metrics.requests.labels(route=name, status=str(status)).inc()
            self.metrics.latency.labels(route=name).observe(time.perf_counter() - started)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", path=request.url.path, error=f"{type(exc).__name__}: {exc}")
    return JSONResponse({"detail": "Internal server error"}, status_code=500)


def create_app(settings: GatewaySettings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or GatewaySettings()
    clock = clock or SystemClock()
    metrics = GatewayMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        trust = TrustStore(settings, clock, metrics)
        app.state.trust = trust
        app.state.signer = Signer(trust.signing_key, settings.service_name, clock)
        usage = make_recorder(
            settings.usage, data_dir=settings.data_dir, signer=app.state.signer, clock=clock
        )
        await usage.start()
        app.state.usage = usage
        trust.start()
        try:
            yield
        finally:
            await usage.aclose()
            await trust.aclose()

    app = FastAPI(
        title="codesuggest gateway",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.metrics = metrics
    app.add_exception_handler(GatewayError, handle_gateway_error)
    app.add_exception_handler(Exception, _internal_error)
    app.include_router(monitoring.router)
    app.include_router(authority.router)
    app.include_router(completions_router(settings.completions))
    app.add_middleware(RequestMetrics, metrics=metrics)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(EdgeRoutes)
    return app
