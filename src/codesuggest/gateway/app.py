"""The AI gateway app: token authority, verifier of every token, completions, usage events."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from codesuggest.common.logs import RequestIdMiddleware
from codesuggest.common.web import health_router, install_crash_handler
from codesuggest.gateway.context import GatewayContext
from codesuggest.gateway.edge_routes import EdgeRoutes
from codesuggest.gateway.errors import GatewayError, handle_gateway_error
from codesuggest.gateway.metrics import GatewayMetrics
from codesuggest.gateway.providers import ProviderRegistry
from codesuggest.gateway.routes import completions, discovery, monitoring, user_access_token
from codesuggest.gateway.settings import GatewaySettings
from codesuggest.tokens import Clock, SystemClock


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


def create_app(
    settings: GatewaySettings | None = None,
    clock: Clock | None = None,
    registry: ProviderRegistry | None = None,
) -> FastAPI:
    """The gateway over `settings` (environment by default); `registry` replaces the providers
    the settings describe."""
    context = GatewayContext.build(settings or GatewaySettings(), clock or SystemClock(), registry)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await context.start()
        try:
            yield
        finally:
            await context.aclose()

    app = FastAPI(title="codesuggest gateway", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.ctx = context
    app.add_exception_handler(GatewayError, handle_gateway_error)
    install_crash_handler(app, "codesuggest.gateway", {"detail": "Internal server error"})
    app.include_router(health_router)
    for module in (monitoring, discovery, user_access_token, completions):
        app.include_router(module.router)
    app.add_middleware(RequestMetrics, metrics=context.metrics)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(EdgeRoutes)
    return app
