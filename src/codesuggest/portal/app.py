"""The licensing portal: `create_app(settings)` (see docs/portal.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from codesuggest.common.logs import RequestIdMiddleware
from codesuggest.common.openapi import declare
from codesuggest.common.web import health_router, install_crash_handler
from codesuggest.portal.context import PortalContext
from codesuggest.portal.openapi import OPENAPI
from codesuggest.portal.routes import discovery, graphql
from codesuggest.portal.settings import PortalSettings
from codesuggest.tokens import Clock, SystemClock


def create_app(settings: PortalSettings | None = None, clock: Clock | None = None) -> FastAPI:
    """Migrate the database, make sure a signing key exists, and build the app."""
    context = PortalContext.build(settings or PortalSettings(), clock or SystemClock())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        context.close()

    app = FastAPI(
        title="codesuggest portal",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.ctx = context
    app.add_middleware(RequestIdMiddleware)
    install_crash_handler(app, "codesuggest.portal", {"error": "Internal server error"})
    app.include_router(health_router)
    for module in (graphql, discovery):
        app.include_router(module.router)
    declare(app, OPENAPI)
    return app
