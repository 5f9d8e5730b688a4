"""The licensing portal: `create_app(settings)` (see docs/portal.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from codesuggest.common.logs import RequestIdMiddleware, get_logger
from codesuggest.portal import keyring
from codesuggest.portal.access import AccessService
from codesuggest.portal.admin import PortalAdmin
from codesuggest.portal.graphql_endpoint import graphql_endpoint
from codesuggest.portal.settings import PortalSettings
from codesuggest.tokens import Clock, PublicKey, SystemClock, jwks_document, openid_configuration

log = get_logger("codesuggest.portal")

JWKS_CACHE_CONTROL = "max-age=86400, public"


def create_app(settings: PortalSettings | None = None, clock: Clock | None = None) -> FastAPI:
    """Migrate the database, make sure a signing key exists, and build the app."""
    settings = settings or PortalSettings()
    clock = clock or SystemClock()
    admin = PortalAdmin.open(settings, clock)
    admin.ensure_signing_key()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        admin.close()

    app = FastAPI(
        title="codesuggest portal",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.admin = admin
    app.state.access = AccessService(
        admin.sessions,
        admin.sealer,
        clock,
        issuer=settings.issuer,
        audience=settings.service_name,
        lifetime=settings.token_lifetime,
    )
    public_keys: dict[str, PublicKey] = {}
    app.add_middleware(RequestIdMiddleware)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled error", path=request.url.path, error_type=type(exc).__name__)
        return JSONResponse({"error": "Internal server error"}, status_code=500)

    app.add_api_route("/graphql", graphql_endpoint, methods=["POST"])

    @app.get("/.well-known/openid-configuration")
    def discovery() -> dict:
        return openid_configuration(settings.issuer)

    @app.get("/oauth/discovery/keys")
    def jwks() -> JSONResponse:
        with admin.sessions.begin() as session:
            rows = keyring.published_keys(session, admin.now())
            keys = []
            for row in rows:
                if row.kid not in public_keys:
                    public_keys[row.kid] = keyring.public_key(row)
                keys.append(public_keys[row.kid])
        return JSONResponse(jwks_document(keys), headers={"Cache-Control": JWKS_CACHE_CONTROL})

    @app.get("/monitoring/healthz")
    def healthz() -> dict:
        return {"status": "ok"}

    return app
