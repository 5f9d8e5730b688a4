"""OIDC discovery and JWKS routes, the same for every issuer (portal, SaaS instance, gateway):
both answer with a day's `Cache-Control`, so verifiers and the edge may cache them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from anyio import to_thread
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from codesuggest.tokens import PublicKey, jwks_document

CACHE_CONTROL = "max-age=86400, public"
C = TypeVar("C")


def discovery_router(
    context_of: Callable[[Request], C],
    document: Callable[[C], dict[str, Any]],
    keys: Callable[[C], list[PublicKey]],
    include_in_schema: bool = False,
) -> APIRouter:
    """`/.well-known/openid-configuration` from `document(context)` and `/oauth/discovery/keys`
    from `keys(context)`; `keys` may block (it runs in a worker thread)."""
    router = APIRouter(include_in_schema=include_in_schema)

    @router.get("/.well-known/openid-configuration")
    async def openid_configuration(request: Request) -> JSONResponse:
        body = document(context_of(request))
        return JSONResponse(body, headers={"Cache-Control": CACHE_CONTROL})

    @router.get("/oauth/discovery/keys")
    async def jwks(request: Request) -> JSONResponse:
        published = await to_thread.run_sync(keys, context_of(request))
        return JSONResponse(jwks_document(published), headers={"Cache-Control": CACHE_CONTROL})

    return router
