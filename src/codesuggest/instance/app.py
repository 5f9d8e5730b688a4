"""The instance app: `create_app(settings, clock=None) -> FastAPI`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from codesuggest.common.logs import RequestIdMiddleware, get_logger
from codesuggest.common.web import health_router, install_crash_handler
from codesuggest.instance import errors, openapi
from codesuggest.instance.admin_ui import routes as admin_pages
from codesuggest.instance.context import InstanceContext
from codesuggest.instance.errors import ORIGIN_HEADER, GatewayRefused, InstanceError
from codesuggest.instance.graphql import endpoint as graphql
from codesuggest.instance.keys import ensure_key
from codesuggest.instance.models import utc
from codesuggest.instance.routes import (
    api,
    code_suggestions,
    discovery,
    monitoring,
    pats,
    seats,
    token_info,
    usage,
    usage_data,
    users,
)
from codesuggest.instance.settings import InstanceSettings
from codesuggest.instance.store import application_settings, open_store
from codesuggest.tokens import REALM_SAAS, REALM_SELF_MANAGED, Clock, SystemClock

log = get_logger("codesuggest.instance")
ORIGIN = {ORIGIN_HEADER: "monolith"}


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(InstanceError)
    async def instance_error(_: Request, exc: InstanceError) -> JSONResponse:
        return JSONResponse(exc.body, status_code=exc.status, headers={**exc.headers, **ORIGIN})

    @app.exception_handler(GatewayRefused)
    async def gateway_refused(_: Request, exc: GatewayRefused) -> Response:
        return Response(exc.body, status_code=exc.status, media_type=exc.content_type)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {"message": f"{exc.status_code} {exc.detail}"},
            status_code=exc.status_code,
            headers={**(exc.headers or {}), **ORIGIN},
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields = ", ".join(".".join(map(str, e["loc"][1:])) or "body" for e in exc.errors())
        return JSONResponse({"error": f"{fields} is invalid"}, status_code=400, headers=ORIGIN)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(SQLAlchemyTimeoutError)
    async def database_down(request: Request, exc: Exception) -> JSONResponse:
        """The database is down or unreachable: 503, one log line, no traceback. The pool
        pre-pings, so the first request after the database is back succeeds."""
        log.warning("database unavailable", path=request.url.path, error=type(exc).__name__)
        down = errors.unavailable(*errors.DATABASE_DOWN)
        return JSONResponse(down.body, status_code=503, headers={**down.headers, **ORIGIN})

    body = {"message": "500 Internal Server Error"}
    install_crash_handler(app, "codesuggest.instance", body, headers=ORIGIN)


def create_app(settings: InstanceSettings | None = None, clock: Clock | None = None) -> FastAPI:
    settings = settings or InstanceSettings()
    clock = clock or SystemClock()
    store = open_store(settings)
    with store.session() as session:
        realm = application_settings(session).realm
        if realm == REALM_SAAS:
            ensure_key(session, store.sealer, utc(clock.now()))
    context = InstanceContext.build(settings, clock, store)
    run_sync_job = (
        settings.sync_enabled and realm == REALM_SELF_MANAGED and bool(settings.license_key)
    )
    if settings.sync_enabled and realm == REALM_SELF_MANAGED and not settings.license_key:
        log.warning("token sync is off: CODESUGGEST_INSTANCE_LICENSE_KEY is not set")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await context.start(run_sync_job=run_sync_job)
        try:
            yield
        finally:
            await context.aclose()

    app = FastAPI(title="codesuggest instance", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.ctx = context
    app.include_router(health_router)
    routers = (code_suggestions, api, users, pats, seats, token_info, usage_data, usage, graphql)
    for module in (*routers, discovery, monitoring):
        app.include_router(module.router)
    _install_error_handlers(app)
    admin_pages.install(app)
    app.add_middleware(RequestIdMiddleware)
    openapi.document(app)
    return app
