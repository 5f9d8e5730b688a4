"""OIDC discovery and JWKS, so the gateway can verify tokens a SaaS instance signs."""

from __future__ import annotations

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from codesuggest.instance.routes.deps import ctx
from codesuggest.tokens import jwks_document, openid_configuration

router = APIRouter()
CACHE_CONTROL = "max-age=86400, public"


@router.get("/.well-known/openid-configuration")
async def discovery(request: Request) -> JSONResponse:
    issuer = ctx(request).settings.url.rstrip("/")
    return JSONResponse(openid_configuration(issuer), headers={"Cache-Control": CACHE_CONTROL})


@router.get("/oauth/discovery/keys")
async def keys(request: Request) -> JSONResponse:
    context = ctx(request)

    def read() -> dict[str, object]:
        with context.store.session() as session:
            return jwks_document(context.keyring.public_keys(session))

    return JSONResponse(await to_thread.run_sync(read), headers={"Cache-Control": CACHE_CONTROL})
