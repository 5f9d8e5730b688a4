"""The AI gateway app: token authority, verifier of every token, completions, usage events."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

from fastapi import FastAPI
from starlette.types import ASGIApp

from codesuggest.common.openapi import publish_models
from codesuggest.common.web import health_router, install_crash_handler
from codesuggest.gateway.completions.schemas import (
    CompletionRequest,
    CompletionResponse,
    GenerationRequest,
)
from codesuggest.gateway.context import GatewayContext
from codesuggest.gateway.errors import GatewayError, handle_gateway_error
from codesuggest.gateway.middleware import CrashHandler, GatewayMiddleware
from codesuggest.gateway.providers import ProviderRegistry
from codesuggest.gateway.routes import (
    completions,
    discovery,
    monitoring,
    user_access_token,
    user_token_revocations,
)
from codesuggest.gateway.settings import GatewaySettings
from codesuggest.tokens import Clock, SystemClock


class GatewayApp(FastAPI):
    """FastAPI with the gateway's middleware around FastAPI's own layers (error handling,
    telemetry, body limit) instead of inside them: the hot routes, which the middleware serves
    itself, cross one layer where four stood (gateway/middleware.py)."""

    def build_middleware_stack(self) -> ASGIApp:
        context: GatewayContext = self.state.ctx
        return GatewayMiddleware(
            super().build_middleware_stack(),
            metrics=context.metrics,
            hot_routes=completions.hot_routes(),
            crash=cast(CrashHandler, self.exception_handlers[Exception]),
        )


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

    app = GatewayApp(title="codesuggest gateway", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.ctx = context
    app.add_exception_handler(GatewayError, handle_gateway_error)
    install_crash_handler(app, "codesuggest.gateway", {"detail": "Internal server error"})
    # The completion routes first: routing tries the routers in order, for every request.
    app.include_router(completions.router)
    app.include_router(health_router)
    for module in (monitoring, discovery, user_access_token, user_token_revocations):
        app.include_router(module.router)
    publish_models(app, CompletionRequest, GenerationRequest, CompletionResponse)
    return app
